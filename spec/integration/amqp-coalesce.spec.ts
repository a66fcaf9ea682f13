import { expect } from 'chai';
import type { ChannelModel } from 'amqplib';
import { coalesceWrites } from '../../adapters/amqp/coalesce.js';
import { rawConnection, uniqueName } from '../adapters/amqp/amqp-helpers.js';

/** Counts the socket's write calls (one per system call: `_write` for one chunk, `_writev` for several). */
function countWrites(conn: ChannelModel): { calls: number } {
  const stream = (conn as unknown as { connection: { stream: { _write: (...a: unknown[]) => void; _writev?: (...a: unknown[]) => void } } }).connection.stream;
  const counter = { calls: 0 };
  const write = stream._write;
  const writev = stream._writev;
  stream._write = function (this: unknown, ...a: unknown[]) {
    counter.calls++;
    return write.apply(this, a);
  };
  if (writev) {
    stream._writev = function (this: unknown, ...a: unknown[]) {
      counter.calls++;
      return writev.apply(this, a);
    };
  }
  return counter;
}

/** Publish `n` persistent messages in one turn and wait for their confirms; the socket writes it took. */
async function burst(conn: ChannelModel, queue: string, n: number): Promise<number> {
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue, { durable: false, autoDelete: false });
  const counter = countWrites(conn);
  for (let i = 0; i < n; i++) ch.sendToQueue(queue, Buffer.from(JSON.stringify({ seq: i })), { persistent: true, messageId: `m-${i}` });
  await ch.waitForConfirms();
  const calls = counter.calls;
  const got: number[] = [];
  for (let m = await ch.get(queue, { noAck: true }); m; m = await ch.get(queue, { noAck: true })) got.push((JSON.parse(m.content.toString()) as { seq: number }).seq);
  await ch.deleteQueue(queue);
  await ch.close();
  expect(got, 'every message arrives, in order').to.deep.equal(Array.from({ length: n }, (_, i) => i));
  return calls;
}

describe('amqp socket write coalescing (RabbitMQ)', function () {
  this.timeout(20_000);

  it('sends the frames of one turn in one write, same bytes in the same order', async () => {
    const plain = await rawConnection();
    const coalesced = await rawConnection();
    coalesceWrites(coalesced);
    try {
      const n = 300;
      const plainCalls = await burst(plain, uniqueName('coalesce-plain'), n);
      const coalescedCalls = await burst(coalesced, uniqueName('coalesce'), n);
      // amqplib alone writes each frame on its own; coalesced, the burst is a handful of writes
      // (the confirms' round trips add a few more for the waitForConfirms bookkeeping)
      expect(plainCalls).to.be.at.least(n);
      expect(coalescedCalls).to.be.at.most(10);
    } finally {
      await plain.close();
      await coalesced.close();
    }
  });
});
