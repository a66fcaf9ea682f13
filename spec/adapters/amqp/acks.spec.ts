import { expect } from 'chai';
import type { Channel } from 'amqplib';
import { AckBatcher } from '../../../adapters/amqp/acks.js';

/** Records what would go to the broker. */
function recorder(): { ch: Channel; sent: Array<{ op: 'ack' | 'nack'; tag: number; multiple: boolean; requeue?: boolean }> } {
  const sent: Array<{ op: 'ack' | 'nack'; tag: number; multiple: boolean; requeue?: boolean }> = [];
  const ch = {
    ack: (m: { fields: { deliveryTag: number } }, multiple: boolean) => sent.push({ op: 'ack', tag: m.fields.deliveryTag, multiple }),
    nack: (m: { fields: { deliveryTag: number } }, multiple: boolean, requeue: boolean) => sent.push({ op: 'nack', tag: m.fields.deliveryTag, multiple, requeue }),
  } as unknown as Channel;
  return { ch, sent };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('amqp ack batching', () => {
  it('acknowledges the settled prefix with one multiple-ack, never a delivery still in the route', async () => {
    const { ch, sent } = recorder();
    const b = new AckBatcher(ch);
    for (let t = 1; t <= 5; t++) b.delivered(t);
    b.ack(2);
    b.ack(3);
    await tick();
    expect(sent).to.deep.equal([]); // 1 is still in the route
    b.ack(1);
    await tick();
    expect(sent).to.deep.equal([{ op: 'ack', tag: 3, multiple: true }]);
    b.ack(5);
    await tick();
    expect(sent).to.have.length(1); // 4 still open
    b.nack(4, true);
    await tick();
    expect(sent).to.deep.equal([
      { op: 'ack', tag: 3, multiple: true },
      { op: 'nack', tag: 4, multiple: false, requeue: true },
      { op: 'ack', tag: 5, multiple: true },
    ]);
  });

  it('holds the property over a long random completion order', async () => {
    const { ch, sent } = recorder();
    const b = new AckBatcher(ch);
    const n = 5000;
    for (let t = 1; t <= n; t++) b.delivered(t);
    const order = Array.from({ length: n }, (_, i) => i + 1).sort(() => Math.random() - 0.5);
    const settled = new Set<number>();
    for (let i = 0; i < n; i++) {
      b.ack(order[i]!);
      settled.add(order[i]!);
      if (i % 97 === 0) {
        await tick();
        const last = sent.at(-1);
        // every tag a multiple-ack covers has settled
        if (last) for (let t = 1; t <= last.tag; t++) expect(settled.has(t)).to.equal(true);
      }
    }
    await tick();
    expect(sent.at(-1)).to.deep.equal({ op: 'ack', tag: n, multiple: true });
    expect(sent.length).to.be.lessThan(n / 10);
  });
});
