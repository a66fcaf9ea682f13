import { expect } from 'chai';
import { from } from '../../lib/index.js';
import { uniqueName } from '../adapters/amqp/amqp-helpers.js';
import { call, portOf } from '../adapters/http/helpers.js';
import { waitFor } from '../helpers.js';
import { amqpWorld } from './fixtures/amqp-world.js';

/**
 * Return address / correlation over a real RabbitMQ: a route fed by a request-reply source
 * (http, amqp RPC) sends the request one way and answers its caller with the message that
 * comes back on another queue, matched by correlation id, without user-written maps.
 */
describe('awaitReply: answering a request-reply source with a message from another channel (real RabbitMQ)', function () {
  this.timeout(30_000);
  const world = amqpWorld('await-reply');

  /** A third-party worker (plain amqplib): answers on `replies` with the request's correlation id (or message id). */
  async function rawWorker(work: string, replies: string, answer: (body: string) => string): Promise<void> {
    const ch = await world.broker.channel();
    await ch.assertQueue(work, { durable: false });
    await ch.assertQueue(replies, { durable: false });
    await ch.consume(work, (m) => {
      if (!m) return;
      const correlationId = String(m.properties.correlationId ?? m.properties.messageId);
      // out of order on purpose: the slower answers come later
      const delay = m.content.toString().length * 3;
      setTimeout(() => {
        ch.sendToQueue(replies, Buffer.from(answer(m.content.toString())), { correlationId, contentType: 'application/json' });
        ch.ack(m);
      }, delay);
    });
  }

  it('http source: each of several concurrent callers gets its own answer, which came back on amqp:queue:replies', async () => {
    const [work, replies] = ['work', 'replies'].map((n) => world.broker.track('queue', uniqueName(n)));
    await rawWorker(work!, replies!, (b) => JSON.stringify({ answer: (JSON.parse(b) as { q: string }).q.toUpperCase() }));
    const { engine } = world;
    engine.addRoutes(from('http:/ask?port=0').routeId('ask').awaitReply(`amqp:queue:${replies}?bodyType=json`, { send: `amqp:queue:${work}`, timeoutMs: 5000 }));
    await engine.start();
    const port = portOf(engine);
    const words = ['a', 'bbbbbbbbbbbb', 'ccccc', 'dd', 'eeeeeeeeeeeeeeeeee'];
    const got = await Promise.all(words.map((q) => call(port, 'POST', '/ask', JSON.stringify({ q }), { 'content-type': 'application/json' })));
    expect(got.map((r) => r.status)).to.deep.equal(words.map(() => 200));
    expect(got.map((r) => r.json())).to.deep.equal(words.map((q) => ({ answer: q.toUpperCase() })));
    expect(engine.routeStats('ask').steps!['/steps/0']).to.deep.equal({ waiting: 0, matched: 5, timedOut: 0, lateReplies: 0 });
  });

  it('amqp RPC source: a client waiting on its reply-to gets the answer a busbar worker sent to another queue', async () => {
    const [rpc, work, replies] = ['rpc', 'work', 'replies'].map((n) => world.broker.track('queue', uniqueName(n)));
    const { engine } = world;
    engine.addRoutes(
      from(`amqp:queue:${rpc}?bodyType=json`).awaitReply(`amqp:queue:${replies}?bodyType=json`, { send: `amqp:queue:${work}`, timeoutMs: 5000 }),
      from<{ n: number }>(`amqp:queue:${work}?bodyType=json`).transform((b) => ({ doubled: b.n * 2 })).to(`amqp:queue:${replies}`),
    );
    await engine.start();
    // the client: plain amqplib with direct reply-to, its own correlation id
    const ch = await world.broker.connection.createChannel();
    const answers = new Map<string, unknown>();
    await ch.consume('amq.rabbitmq.reply-to', (m) => {
      if (m) answers.set(String(m.properties.correlationId), JSON.parse(m.content.toString()));
    }, { noAck: true });
    for (const n of [1, 2, 3]) ch.sendToQueue(rpc!, Buffer.from(JSON.stringify({ n })), { replyTo: 'amq.rabbitmq.reply-to', correlationId: `client-${n}`, contentType: 'application/json' });
    await waitFor(() => answers.size === 3, 10_000);
    expect(Object.fromEntries(answers)).to.deep.equal({ 'client-1': { doubled: 2 }, 'client-2': { doubled: 4 }, 'client-3': { doubled: 6 } });
    await ch.close();
  });

  it('no answer in time: the http caller gets the coded failure, and the answer arriving later is counted as late, not leaked', async () => {
    const [work, replies] = ['work', 'replies'].map((n) => world.broker.track('queue', uniqueName(n)));
    const ch = await world.broker.channel();
    await ch.assertQueue(work!, { durable: false });
    const { engine } = world;
    engine.addRoutes(from('http:/ask?port=0').routeId('ask').awaitReply(`amqp:queue:${replies}`, { send: `amqp:queue:${work}`, timeoutMs: 300 }));
    await engine.start();
    const r = await call(portOf(engine), 'POST', '/ask', '"q"', { 'content-type': 'application/json' });
    expect(r.status).to.be.within(500, 599);
    expect(r.text).to.contain('BUSBAR_ERR_TIMEOUT');
    // the request is on the work queue; its answer comes too late
    const [request] = await world.broker.drain(work!, 1);
    ch.sendToQueue(replies!, Buffer.from('"late"'), { correlationId: String(request!.properties.correlationId ?? request!.properties.messageId) });
    await waitFor(() => engine.routeStats('ask').steps!['/steps/0']!.lateReplies === 1, 5000);
    expect(engine.routeStats('ask').steps!['/steps/0']).to.deep.equal({ waiting: 0, matched: 0, timedOut: 1, lateReplies: 1 });
    // acknowledged, not left on the queue
    await waitFor(async () => (await world.broker.queueCount(replies!)).messageCount === 0, 5000);
  });
});
