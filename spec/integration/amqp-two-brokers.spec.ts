import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import amqp, { type ChannelModel } from 'amqplib';
import { expect } from 'chai';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { Engine, from, named, type SourceStatus } from '../../lib/index.js';
import { AMQP2_URL, AMQP_URL, testLogger, waitFor } from '../helpers.js';

const run = promisify(execFile);
/**
 * How a broker is restarted mid-bridge: `restart` (the whole node: SIGTERM, then a fresh boot)
 * by default, or with BUSBAR_BRIDGE_RESTART=bounce the RabbitMQ application inside its running
 * node (connections drop, durable queues recover from disk, no VM boot).
 */
const RESTART = process.env.BUSBAR_BRIDGE_RESTART === 'bounce' ? 'bounce' : 'restart';

async function connect(url: string): Promise<ChannelModel> {
  try {
    const c = await amqp.connect(url, { timeout: 5000 });
    c.on('error', () => undefined);
    return c;
  } catch (err) {
    throw new Error(`RabbitMQ is not reachable at ${url.replace(/:[^:@/]*@/, ':***@')} (${(err as Error).message}); start both brokers with: bash scripts/test-services.sh`);
  }
}

async function reachable(url: string): Promise<boolean> {
  return amqp.connect(url, { timeout: 2000 }).then(async (c) => (await c.close(), true)).catch(() => false);
}

/** Fill a durable queue with `n` persistent JSON messages, ids `m-<seq>`, through a confirm window. */
async function fill(conn: ChannelModel, queue: string, n: number): Promise<void> {
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue, { durable: true });
  for (let i = 0; i < n; i += 1000) {
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      ch.sendToQueue(queue, Buffer.from(JSON.stringify({ seq: j })), { persistent: true, messageId: `m-${j}`, contentType: 'application/json' });
    }
    await ch.waitForConfirms();
  }
  await ch.close();
}

describe('two brokers: named adapter instances and a bridge between them', function () {
  this.timeout(240_000);
  const conns: ChannelModel[] = [];
  const engines: Engine[] = [];
  const queues: Array<{ url: string; name: string }> = [];
  const name = (p: string): string => `busbar-test.${p}.${randomBytes(4).toString('hex')}`;

  before(async () => {
    // the second node comes from the project's script (idempotent; fails, never skips)
    await run('bash', ['scripts/rabbitmq-second.sh', 'start'], { timeout: 180_000 });
    conns.push(await connect(AMQP_URL), await connect(AMQP2_URL));
  });
  after(async () => {
    for (const e of engines) await e.stop({ timeoutMs: 5000 });
    for (const c of conns) await c.close().catch(() => undefined);
    for (const q of queues) {
      const c = await connect(q.url);
      const ch = await c.createChannel();
      await ch.deleteQueue(q.name).catch(() => undefined);
      await c.close().catch(() => undefined);
    }
  });

  it('keeps each instance apart: its own broker, its own stats, the same schema-checked options', async () => {
    const qa = name('named-a');
    const qb = name('named-b');
    queues.push({ url: AMQP_URL, name: qa }, { url: AMQP2_URL, name: qb });
    const engine = new Engine({ logger: testLogger(), adapters: [named('amqp-eu', createAmqpAdapter({ url: AMQP_URL })), named('amqp-us', createAmqpAdapter({ url: AMQP2_URL }))] });
    engines.push(engine);
    // an unknown option of a named instance fails like one of the plain adapter, naming it
    expect(() => engine.addRoutes(from('amqp-us:queue:x?prefech=3').to('log:x'))).to.throw(/prefetch/).with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
    await engine.start();
    await engine.send(`amqp-eu:queue:${qa}`, { to: 'eu' });
    await engine.send(`amqp-us:queue:${qb}`, { to: 'us' });
    await engine.send(`amqp-us:queue:${qb}`, { to: 'us' });
    // each message is on its own broker only
    const [ea, eb] = [await conns[0]!.createChannel(), await conns[1]!.createChannel()];
    expect((await ea.checkQueue(qa)).messageCount).to.equal(1);
    expect((await eb.checkQueue(qb)).messageCount).to.equal(2);
    const probe = await connect(AMQP_URL);
    const pch = await probe.createChannel();
    pch.on('error', () => undefined);
    expect(await pch.checkQueue(qb).then(() => true, () => false)).to.equal(false);
    await probe.close().catch(() => undefined);
    await ea.close();
    await eb.close();
    const stats = engine.stats().adapters;
    expect(stats['amqp-eu']).to.include({ type: 'amqp', producers: 1, sent: 1 });
    expect(stats['amqp-us']).to.include({ type: 'amqp', producers: 1, sent: 2 });
  });

  // the full 20,000 run: bash scripts/soak-bridge.sh (the same test with BUSBAR_BRIDGE_MESSAGES=20000);
  // the suite runs 5,000, which still puts both restarts mid-bridge
  const N = Number(process.env.BUSBAR_BRIDGE_MESSAGES ?? 5000);
  const STEP = Math.max(1000, Math.floor(N / 10));
  it(`bridges ${N.toLocaleString('en')} messages from broker A to broker B while each broker restarts in turn: 0 lost, duplicates counted`, async () => {
    const qa = name('bridge-a');
    const qb = name('bridge-b');
    queues.push({ url: AMQP_URL, name: qa }, { url: AMQP2_URL, name: qb });
    await fill(conns[0]!, qa, N);
    const reconnect = { initialDelayMs: 200, maxDelayMs: 1000 };
    const logger = testLogger();
    const bridge = new Engine({
      name: 'bridge',
      logger,
      adapters: [named('amqp-eu', createAmqpAdapter({ url: AMQP_URL, reconnect })), named('amqp-us', createAmqpAdapter({ url: AMQP2_URL, reconnect, topology: { queues: [{ name: qb }] } }))],
    });
    engines.push(bridge);
    // the bridge is an ordinary route: ack on A only after B confirmed the publish
    // (paced to ~2,000/s so that both restarts fall inside the run, however fast the brokers are)
    bridge.addRoutes(
      from(`amqp-eu:queue:${qa}`)
        .routeId('bridge')
        .maxInflight(16)
        .process(async (m) => (await new Promise((r) => setTimeout(r, 8)), m))
        .to(`amqp-us:queue:${qb}?publishTimeoutMs=120000`),
    );
    await bridge.start();

    const statuses = new Set<SourceStatus>();
    const sampler = setInterval(() => statuses.add(bridge.stats().routes.bridge!.source.status), 25);
    const bridged = (): number => bridge.stats().routes.bridge!.completed;
    const restarts: number[] = [];
    try {
      for (const [script, url] of [['scripts/rabbitmq.sh', AMQP_URL], ['scripts/rabbitmq-second.sh', AMQP2_URL]] as const) {
        // once STEP more have gone through since the start or the last restart
        const at = bridged() + STEP;
        await waitFor(() => bridged() >= at && bridge.stats().routes.bridge!.source.status === 'connected', 120_000, `${at} messages bridged`);
        restarts.push(bridged());
        const out = await run('bash', [script, RESTART], { timeout: 180_000 }).catch((err: { stderr?: string }) => ({ stderr: err.stderr ?? String(err) }));
        expect(out.stderr).to.match(/stopped/);
        await waitFor(() => reachable(url), 120_000, `${script} broker back up`);
      }
      await waitFor(() => bridged() >= N && bridge.stats().routes.bridge!.inflight === 0, 120_000, `all ${N} bridged (have ${bridged()})`);
    } finally {
      clearInterval(sampler);
    }
    // each restart happened mid-bridge, and the source saw its broker go
    for (const r of restarts) expect(r).to.be.below(N);
    expect([...statuses].some((s) => s !== 'connected')).to.equal(true);

    // the restarts dropped the helper connections
    for (const c of conns.splice(0)) await c.close().catch(() => undefined);
    conns.push(await connect(AMQP_URL), await connect(AMQP2_URL));
    const left = await (await conns[0]!.createChannel()).checkQueue(qa);
    expect(left.messageCount).to.equal(0);

    // an idempotent consumer on B: every message once; the raw count shows the duplicates
    const reader = new Engine({ name: 'reader', logger, adapters: [named('amqp-us', createAmqpAdapter({ url: AMQP2_URL }))] });
    engines.push(reader);
    const perId = new Map<string, number>();
    reader.addRoutes(
      from(`amqp-us:queue:${qb}`)
        .routeId('reader')
        .process((m) => {
          perId.set(m.id, (perId.get(m.id) ?? 0) + 1);
          return m;
        })
        .idempotent()
        .to('mock:final'),
    );
    await reader.start();
    await waitFor(async () => perId.size === N && (await (await conns[1]!.createChannel()).checkQueue(qb)).messageCount === 0 && reader.stats().routes.reader!.inflight === 0, 120_000, `all ${N} on B (have ${perId.size})`);
    const received = [...perId.values()].reduce((a, b) => a + b, 0);
    const duplicates = received - N;
    process.stdout.write(`      bridged ${N} across two brokers restarted in turn (at ${restarts.join(' and ')}): 0 lost, ${duplicates} duplicates on B, ${reader.mock('mock:final').received.length} after the idempotent consumer\n`);
    for (let i = 0; i < N; i++) if (!perId.has(`m-${i}`)) throw new Error(`message m-${i} was lost`);
    expect(reader.mock('mock:final').received).to.have.length(N);
  });
});
