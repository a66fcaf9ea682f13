import { expect } from 'chai';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { from } from '../../lib/index.js';
import { Broker, uniqueName } from '../adapters/amqp/amqp-helpers.js';
import { AMQP_URL } from '../helpers.js';
import { call, managementFixture } from '../lib/management/fixture.js';

interface DL {
  id: string;
  routeId: string;
  endpoint: string;
  code: string;
  message: string;
  body: unknown;
}

describe('management API: dead letters in an amqp queue (RabbitMQ)', function () {
  this.timeout(60_000);
  const fx = managementFixture();
  let broker: Broker;
  before(async () => {
    broker = await Broker.open();
  });
  after(() => broker.cleanup());

  it('lists them with their reason without taking them, replays them into the route; one that fails again is dead-lettered again; nothing is lost', async () => {
    const queue = uniqueName('dead');
    // bodyType=value: a replayed message gets its body back as busbar sent it (here an object)
    const dead = `amqp:queue:${queue}?bodyType=value`;
    const engine = fx.engine({ adapters: [createAmqpAdapter({ url: AMQP_URL })] });
    const broken = new Set(['a', 'b', 'c']);
    engine.addRoutes(
      from<{ k: string }>('direct:in')
        .routeId('orders')
        .deadLetter(dead)
        .process((msg) => {
          if (broken.has(msg.body.k)) throw new Error(`cannot take ${msg.body.k}`);
          return msg;
        })
        .to('mock:done'),
    );
    await engine.start();
    const m = await fx.serve(engine);
    for (const k of ['a', 'b', 'c', 'ok']) await engine.send('direct:in', { k }).catch(() => undefined);
    const listed = async (): Promise<DL[]> => (await call(m, 'GET', '/api/v1/dead-letters?route=orders')).body.deadLetters as DL[];
    const first = await listed();
    expect(first.map((d) => (d.body as { k: string }).k)).to.deep.equal(['a', 'b', 'c']);
    expect(first[0]).to.include({ routeId: 'orders', endpoint: dead, code: 'BUSBAR_ERR_STEP_FAILED' });
    expect(first[0]!.message).to.contain('cannot take a');
    // listing took nothing: the queue still holds all three
    expect(await listed()).to.have.length(3);
    expect((await broker.queueCount(queue)).messageCount).to.equal(3);
    broken.delete('a');
    broken.delete('b');
    const r = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'orders' });
    expect(r.status).to.equal(200);
    expect(r.body).to.include({ total: 3, replayed: 2, deadLetteredAgain: 1, failed: 0 });
    expect(engine.mock('mock:done').received.map((x) => (x.body as { k: string }).k)).to.have.members(['ok', 'a', 'b']);
    const left = await listed();
    expect(left.map((d) => (d.body as { k: string }).k)).to.deep.equal(['c']);
    expect(left[0]!.message).to.contain('cannot take c');
    // replayed to a named endpoint instead of the route
    const to = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'orders', to: 'mock:elsewhere' });
    expect(to.body).to.include({ total: 1, replayed: 1 });
    expect(engine.mock('mock:elsewhere').received.map((x) => (x.body as { k: string }).k)).to.deep.equal(['c']);
    expect((await broker.queueCount(queue)).messageCount).to.equal(0);
  });
});
