import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { from } from '../../lib/index.js';
import { Broker, rawConnection, uniqueName } from '../adapters/amqp/amqp-helpers.js';
import { BIN } from '../cli/hub.js';
import { AMQP_URL, waitFor } from '../helpers.js';
import { call, managementFixture } from '../lib/management/fixture.js';

const run = promisify(execFile);

interface ReadyBody {
  status: string;
  routes: Array<{ id: string; state: string; ready: boolean; endpoints: Array<{ uri: string; role: string; status: string; since?: string; error?: string }> }>;
}

const brokerUp = (): Promise<boolean> => rawConnection().then(async (c) => (await c.close(), true)).catch(() => false);

/** `busbar status` against the management API: exit code and output. */
function status(url: string, token: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'status', '--url', url, '--token', token], { env: process.env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('management API: /ready while RabbitMQ goes down and comes back (own broker)', function () {
  this.timeout(240_000);
  const fx = managementFixture();
  let broker: Broker;
  const queues: string[] = [];
  before(async () => {
    broker = await Broker.open();
  });
  after(async () => {
    // whatever happened, leave the broker running for the next specs
    if (!(await brokerUp())) await run('bash', ['scripts/rabbitmq.sh', 'start'], { timeout: 180_000 });
    const b = await Broker.open();
    for (const q of queues) b.track('queue', q);
    await b.cleanup();
  });

  it('flips to 503 with what is down, since when and the last error, and back to 200 when the broker returns', async () => {
    const src = uniqueName('ready-in');
    const out = uniqueName('ready-out');
    queues.push(src, out);
    const engine = fx.engine({ adapters: [createAmqpAdapter({ url: AMQP_URL, reconnect: { initialDelayMs: 100, maxDelayMs: 1000 } })] });
    engine.addRoutes(from(`amqp:queue:${src}`).routeId('orders').to(`amqp:queue:${out}`), from('direct:local').routeId('local').to('mock:local'));
    await engine.start();
    const m = await fx.serve(engine, { token: 'r3ady' });
    const ready = async (): Promise<{ status: number; body: ReadyBody }> => {
      const r = await call(m, 'GET', '/ready', undefined, 'r3ady');
      return { status: r.status, body: r.body as unknown as ReadyBody };
    };
    await waitFor(async () => (await ready()).status === 200, 20_000, '/ready 200 at start');
    expect((await call(m, 'GET', '/ready')).status, 'the token is asked for').to.equal(401);

    const stoppedAt = Date.now();
    await broker.connection.close().catch(() => undefined);
    await run('bash', ['scripts/rabbitmq.sh', 'stop'], { timeout: 120_000 });
    let down: { status: number; body: ReadyBody } | undefined;
    await waitFor(
      async () => {
        down = await ready();
        return down.status === 503 && down.body.routes.find((r) => r.id === 'orders')!.endpoints.every((e) => e.status !== 'connected');
      },
      30_000,
      '/ready 503 with both endpoints of the amqp route down',
    );
    expect(down!.body.status).to.equal('not-ready');
    const orders = down!.body.routes.find((r) => r.id === 'orders')!;
    expect(orders).to.include({ state: 'started', ready: false });
    expect(orders.endpoints.map((e) => [e.uri, e.role])).to.deep.equal([
      [`amqp:queue:${src}`, 'source'],
      [`amqp:queue:${out}`, 'output'],
    ]);
    for (const e of orders.endpoints) {
      expect(e.since, `${e.uri} says since when`).to.be.a('string');
      expect(Date.parse(e.since!)).to.be.at.least(stoppedAt - 1000);
      expect(e.error, `${e.uri} says the last error`).to.be.a('string').and.not.equal('');
    }
    // a route without RabbitMQ stays ready in the breakdown
    expect(down!.body.routes.find((r) => r.id === 'local')).to.include({ ready: true });
    const st = await status(m.url, 'r3ady');
    expect(st.code, st.out).to.equal(1);
    expect(st.out).to.contain('NOT READY');

    await run('bash', ['scripts/rabbitmq.sh', 'start'], { timeout: 180_000 });
    await waitFor(async () => (await ready()).status === 200, 60_000, '/ready back to 200');
    const back = (await ready()).body;
    expect(back.status).to.equal('ready');
    expect(back.routes.find((r) => r.id === 'orders')!.endpoints.map((e) => e.status)).to.deep.equal(['connected', 'connected']);
    // and the route works again
    await engine.send(`amqp:queue:${src}`, { after: 'restart' });
    broker = await Broker.open();
    await waitFor(async () => (await broker.queueCount(out)).messageCount === 1, 20_000, 'a message through the route after the restart');
    await broker.connection.close();
  });
});
