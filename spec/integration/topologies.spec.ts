import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { expect } from 'chai';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { connect, Engine, from, named, type ChannelBindings } from '../../lib/index.js';
import { routes, type AcceptedOrder, type Channels, type Quote } from '../../examples/topologies/routes.js';
import { AMQP2_URL, AMQP_URL, testLogger, waitFor } from '../helpers.js';

/** Channel names on the broker that no other run uses (each test its own prefix), deleted after. */
const prefixes: string[] = [];
function prefix(): string {
  const p = `t${randomBytes(4).toString('hex')}`;
  prefixes.push(p);
  return p;
}

async function deleteChannels(url: string, p: string): Promise<void> {
  const c = await amqp.connect(url);
  c.on('error', () => undefined);
  for (const q of ['direct.quote', 'queue.orders', 'queue.billing', 'queue.invoices']) {
    const ch = await c.createChannel();
    ch.on('error', () => undefined);
    await ch.deleteQueue(`${p}.${q}`).catch(() => undefined);
    await ch.close().catch(() => undefined);
  }
  await c.close().catch(() => undefined);
}

function child(args: string[], env: Record<string, string>): { proc: ChildProcess; output: () => string } {
  let out = '';
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { proc, output: () => out };
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGINT');
  await Promise.race([done, new Promise((r) => setTimeout(r, 8000))]);
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}

/** Ask for a quote until the routes on the other side are up (they start in another process). */
async function firstQuote(ask: () => Promise<Quote>): Promise<Quote> {
  let last: unknown;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      return await ask();
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  throw last;
}

describe('one routes file, three deployments (examples/topologies)', function () {
  this.timeout(120_000);
  const engines: Engine[] = [];
  const children: ChildProcess[] = [];
  after(async () => {
    for (const e of engines) await e.stop({ timeoutMs: 5000 });
    for (const c of children) await stopChild(c);
    for (const p of prefixes) {
      await deleteChannels(AMQP_URL, p);
      await deleteChannels(AMQP2_URL, p).catch(() => undefined);
    }
  });

  it('in one process: every channel in memory', async () => {
    const engine = new Engine({ logger: testLogger() });
    engines.push(engine);
    engine.addRoutes(routes, from('topic:orders.*').routeId('watch').to('mock:accepted'));
    await engine.start();
    expect(await engine.request<Quote>('direct:quote', { sku: 'apple', qty: 4 })).to.deep.equal({ sku: 'apple', qty: 4, total: 2 });
    await engine.send('queue:orders', { id: 'o-1', sku: 'pear', qty: 2 });
    await waitFor(() => engine.mock('mock:accepted').received.length === 1, 5000, 'the accepted order');
    expect(engine.mock('mock:accepted').received[0]!.body).to.deep.equal({ id: 'o-1', sku: 'pear', qty: 2, total: 1.5 });
    expect(engine.stats().adapters.amqp).to.equal(undefined);
  });

  it('as a bus: two applications, each with its own engine, sharing the channels over RabbitMQ', async () => {
    const p = prefix();
    // application 1 (another process) hosts the routes
    const app = child(['--import', 'tsx', 'examples/topologies/bus.ts'], { BUSBAR_AMQP_URL: AMQP_URL, BUSBAR_CHANNEL_PREFIX: p, BUSBAR_LOG_LEVEL: 'warn' });
    children.push(app.proc);
    // application 2 (here) subscribes to accepted orders, asks for a quote, places an order
    const channels: ChannelBindings = { transport: 'amqp', prefix: p };
    const shop = new Engine({ name: 'shop', logger: testLogger(), adapters: [createAmqpAdapter({ url: AMQP_URL })], channels });
    engines.push(shop);
    shop.addRoutes(from<AcceptedOrder>('topic:orders.accepted').routeId('watch').to('mock:accepted'));
    await shop.start();
    const quote = await firstQuote(() => shop.request<Quote>('direct:quote', { sku: 'apple', qty: 4 }));
    expect(quote, app.output()).to.deep.equal({ sku: 'apple', qty: 4, total: 2 });
    for (let i = 0; i < 20; i++) await shop.send('queue:orders', { id: `o-${i}`, sku: 'pear', qty: 2 });
    await waitFor(() => shop.mock('mock:accepted').received.length === 20, 20_000, 'the 20 accepted orders from the other application');
    expect(shop.mock('mock:accepted').received.map((m) => (m.body as AcceptedOrder).id).sort()).to.deep.equal(Array.from({ length: 20 }, (_, i) => `o-${i}`).sort());
    // the channels really went over the broker: this engine's stats show the amqp transport
    expect(shop.stats().adapters['topic']?.consumers).to.equal(1);
    expect(shop.stats().adapters['queue']?.sent).to.equal(20);
  });

  it('behind a hub: the routes in `busbar run`, a thin spoke through connect()', async () => {
    const p = prefix();
    const hub = child(['bin/busbar.js', 'run', 'examples/topologies/hub.ts', '--no-pretty', '--log-level', 'warn'], { BUSBAR_AMQP_URL: AMQP_URL, BUSBAR_CHANNEL_PREFIX: p });
    children.push(hub.proc);
    const bus = await connect<Channels>(AMQP_URL, { prefix: p });
    try {
      const seen: AcceptedOrder[] = [];
      const sub = await bus.subscribe('topic:orders.accepted', (o) => {
        seen.push(o);
      });
      const quote = await firstQuote(() => bus.request('direct:quote', { sku: 'pear', qty: 4 }));
      expect(quote, hub.output()).to.deep.equal({ sku: 'pear', qty: 4, total: 3 });
      for (let i = 0; i < 20; i++) await bus.send('queue:orders', { id: `h-${i}`, sku: 'apple', qty: 1 });
      await waitFor(() => seen.length === 20, 20_000, 'the 20 accepted orders published by the hub');
      expect(seen.every((o) => o.total === 0.5)).to.equal(true);
      await sub.close();
      // a spoke refuses what is not a channel it can subscribe to, with a code
      const err = await bus.subscribe('direct:quote' as 'queue:orders', () => undefined).catch((e: { code?: string }) => e);
      expect(err).to.have.property('code', 'BUSBAR_ERR_INVALID_URI');
    } finally {
      await bus.close();
    }
  });

  it('hub federation: a hub on its own broker consumes from and sends to channels of another hub on another broker', async () => {
    const p = prefix();
    const logger = testLogger();
    // hub A (broker 1) takes billing requests and publishes accepted orders
    const hubA = new Engine({ name: 'hub-a', logger, adapters: [createAmqpAdapter({ url: AMQP_URL })], channels: { transport: 'amqp', prefix: p } });
    hubA.addRoutes(routes, from('queue:billing').routeId('billing').to('mock:billed'));
    // hub B (broker 2) keeps its own channels on its own broker, and names two of A's channels
    // on A's broker: the first binding that includes a channel carries it
    const hubB = new Engine({
      name: 'hub-b',
      logger,
      adapters: [named('amqp-a', createAmqpAdapter({ url: AMQP_URL })), named('amqp-b', createAmqpAdapter({ url: AMQP2_URL }))],
      channels: [
        { transport: 'amqp-a', prefix: p, include: ['topic:orders.*', 'queue:billing'] },
        { transport: 'amqp-b', prefix: p },
      ],
    });
    hubB.addRoutes(
      from<AcceptedOrder>('topic:orders.accepted').routeId('invoice').transform((o) => ({ order: o.id, amount: o.total })).to('queue:invoices'),
      from('queue:invoices').routeId('invoices').to('queue:billing'),
    );
    engines.push(hubA, hubB);
    await hubA.start();
    await hubB.start();
    for (let i = 0; i < 50; i++) await hubA.send('queue:orders', { id: `f-${i}`, sku: 'apple', qty: 2 });
    await waitFor(() => hubA.mock('mock:billed').received.length === 50, 30_000, 'the 50 invoices back on hub A');
    expect(new Set(hubA.mock('mock:billed').received.map((m) => (m.body as { order: string }).order)).size).to.equal(50);
    // B's own channel lived on B's broker, the federated ones on A's
    const onB = await amqp.connect(AMQP2_URL);
    expect((await (await onB.createChannel()).checkQueue(`${p}.queue.invoices`)).messageCount).to.equal(0);
    await onB.close();
    const onA = await amqp.connect(AMQP_URL);
    const ch = await onA.createChannel();
    ch.on('error', () => undefined);
    expect(await ch.checkQueue(`${p}.queue.invoices`).then(() => true, () => false)).to.equal(false);
    await onA.close().catch(() => undefined);
  });
});
