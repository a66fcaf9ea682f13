import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { from } from '../../lib/index.js';
import { Broker, uniqueName } from '../adapters/amqp/amqp-helpers.js';
import { BIN } from '../cli/hub.js';
import { AMQP_URL, capturedLogger, waitFor } from '../helpers.js';
import { call, managementFixture } from '../lib/management/fixture.js';

/** `busbar route OP ID` against the management API. */
function cliRoute(url: string, op: string, id: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'route', op, id, '--url', url, '--token', 'ctl', '--json'], { env: process.env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('route stop/start/suspend/resume through the API and the CLI keep the delivery contract (RabbitMQ)', function () {
  this.timeout(120_000);
  const fx = managementFixture();
  let broker: Broker;
  before(async () => {
    broker = await Broker.open();
  });
  after(() => broker.cleanup());

  it('a bounded stream through an amqp route operated 12 times (8 through the API, 4 through the CLI): every message delivered exactly once, queue empty, no channel error', async () => {
    const src = broker.track('queue', uniqueName('ctl-in'));
    const { logger, lines } = capturedLogger('warn');
    const engine = fx.engine({ logger, adapters: [createAmqpAdapter({ url: AMQP_URL })] });
    const deliveries = new Map<number, number>();
    // closed while a stop or suspend is asked for: messages are provably in flight then
    let gate: Promise<void> | undefined;
    let open = (): void => undefined;
    engine.addRoutes(
      from<{ seq: number }>(`amqp:queue:${src}?prefetch=10&bodyType=json`)
        .routeId('flow')
        .maxInflight(4)
        .process(async (msg) => {
          if (gate) await gate;
          return msg;
        })
        .process((msg) => {
          deliveries.set(msg.body.seq, (deliveries.get(msg.body.seq) ?? 0) + 1);
          return msg;
        })
        .to('mock:out'),
    );
    await engine.start();
    const m = await fx.serve(engine, { token: 'ctl' });
    const BATCH = 40;
    let published = 0;
    const publish = async (): Promise<void> => {
      for (let i = 0; i < BATCH; i++) await engine.send(`amqp:queue:${src}`, { seq: published++ });
    };
    const completed = (): number => engine.routeStats('flow').completed;
    const api = async (op: string): Promise<string> => {
      const r = await call(m, 'POST', `/api/v1/routes/flow/${op}`, {}, 'ctl');
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      return r.body.state as string;
    };
    const cli = async (op: string): Promise<string> => {
      const r = await cliRoute(m.url, op, 'flow');
      expect(r.code, r.out).to.equal(0);
      return (JSON.parse(r.out) as { state: string }).state;
    };
    const cycle = (how: (op: string) => Promise<string>): Array<[string, (op: string) => Promise<string>, string]> => [
      ['suspend', how, 'suspended'],
      ['resume', how, 'started'],
      ['stop', how, 'stopped'],
      ['start', how, 'started'],
    ];
    // (the CLI's start-up costs a second or more on a loaded machine: one round of it)
    for (const [op, how, state] of [...cycle(api), ...cycle(cli), ...cycle(api)]) {
      // each operation lands while messages are queued (and, when running, in flight)
      const running = engine.describeRoute('flow').state === 'started';
      if (running && state !== 'started') {
        gate = new Promise<void>((r) => (open = r));
        await publish();
        await waitFor(() => engine.routeStats('flow').inflight >= 4, 20_000, `messages in flight before ${op}`);
        const asked = how(op);
        // the route no longer takes messages: let those in flight finish (the drain must wait for them)
        await waitFor(() => engine.describeRoute('flow').state !== 'started', 20_000, `${op} under way`);
        gate = undefined;
        open();
        expect(await asked, `${op} (${how === api ? 'API' : 'CLI'})`).to.equal(state);
      } else {
        await publish();
        if (running) await waitFor(() => completed() >= published - BATCH + 10, 20_000, `progress before ${op}`);
        expect(await how(op), `${op} (${how === api ? 'API' : 'CLI'})`).to.equal(state);
      }
      if (state !== 'started') expect(engine.routeStats('flow').inflight, `${op} drained the route`).to.equal(0);
    }
    await publish();
    const N = published;
    await waitFor(() => deliveries.size === N, 60_000, `all ${N} messages delivered (have ${deliveries.size})`);
    await waitFor(() => engine.routeStats('flow').inflight === 0, 10_000, 'nothing in flight');
    const twice = [...deliveries].filter(([, n]) => n > 1).map(([seq]) => seq);
    expect(twice, 'delivered more than once').to.deep.equal([]);
    expect([...Array(N).keys()].filter((s) => !deliveries.has(s)), 'lost').to.deep.equal([]);
    expect(engine.mock('mock:out').received).to.have.length(N);
    // every message was acked once: stopped (channel closed, unacked ones would be requeued), the queue is empty
    expect(await api('stop')).to.equal('stopped');
    await waitFor(async () => (await broker.queueCount(src)).consumerCount === 0, 10_000, 'consumer gone');
    expect(await broker.queueCount(src)).to.deep.include({ messageCount: 0 });
    expect(engine.routeStats('flow')).to.include({ received: N, completed: N, failed: 0, redelivered: 0 });
    // a double ack (unknown delivery tag) would have closed the channel: the broker said nothing
    expect(lines.map((l) => `${l.msg} ${String(l.err ?? '')}`)).to.deep.equal([]);
  });
});
