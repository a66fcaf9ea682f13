import { expect } from 'chai';
import { BusbarError, Engine, from, type EngineEvent } from '../../lib/index.js';
import { latch, testLogger } from '../helpers.js';
import { TestSource } from './source-adapter.js';

describe('engine lifecycle', () => {
  it('starts and stops idempotently, with explicit states', async () => {
    const engine = new Engine({ logger: testLogger() });
    engine.addRoutes(from('queue:a').to('mock:a'));
    expect(engine.state).to.equal('new');
    await Promise.all([engine.start(), engine.start()]);
    expect(engine.state).to.equal('started');
    await engine.start();
    const [r1, r2] = await Promise.all([engine.stop(), engine.stop()]);
    expect(r1).to.deep.equal({ timedOut: false, inflight: {} });
    expect(r2).to.deep.equal(r1);
    expect(engine.state).to.equal('stopped');
    await engine.stop();
    await engine.start();
    await engine.send('queue:a', 1);
    await engine.mock('mock:a').expectCount(1).satisfied({ timeoutMs: 1000 });
    await engine.stop();
  });

  it('refuses to send before start and to add routes while running', async () => {
    const engine = new Engine({ logger: testLogger() });
    const err = (await engine.send('queue:a', 1).catch((e: unknown) => e)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_ENGINE_STATE');
    await engine.start();
    expect(() => engine.addRoutes(from('queue:a').to('mock:a'))).to.throw(BusbarError).with.property('code', 'BUSBAR_ERR_ENGINE_STATE');
    await engine.stop();
  });

  it('rejects duplicate route ids', () => {
    const engine = new Engine({ logger: testLogger() });
    engine.addRoutes(from('queue:a').routeId('x').to('mock:a'));
    expect(() => engine.addRoutes(from('queue:b').routeId('x').to('mock:b'))).to.throw(BusbarError).with.property('code', 'BUSBAR_ERR_DUPLICATE_ROUTE');
  });

  it('stops the routes already started when a later route fails to start, and says which', async () => {
    const src = new TestSource();
    src.failStart = new Error('connection refused');
    const engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    const events: EngineEvent[] = [];
    engine.events$.subscribe((e) => events.push(e));
    engine.addRoutes(from('queue:first').routeId('first').to('mock:a'), from('src:x').routeId('broken').to('mock:b'));
    const err = (await engine.start().catch((e: unknown) => e)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_ROUTE_START_FAILED');
    expect(err.details.routeId).to.equal('broken');
    expect((err.cause as Error).message).to.equal('connection refused');
    expect(engine.state).to.equal('failed');
    expect(engine.stats().routes.first!.state).to.equal('stopped');
    expect(events.map((e) => e.type)).to.include.members(['route.started', 'route.failed']);
    // a fixed source starts on retry
    src.failStart = undefined;
    await engine.start();
    expect(engine.state).to.equal('started');
    await engine.stop();
  });

  it('drains in-flight messages on stop, and stops taking new ones first', async () => {
    const src = new TestSource();
    const engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    engine.addRoutes(from<number>('src:in').process(async (m) => {
      await new Promise((r) => setTimeout(r, 100));
      return m;
    }).to('mock:out'));
    await engine.start();
    const pushes = [src.push(1), src.push(2), src.push(3)];
    const report = await engine.stop({ timeoutMs: 5000 });
    expect(src.stopped).to.equal(1);
    expect(report).to.deep.equal({ timedOut: false, inflight: {} });
    expect(await Promise.all(pushes)).to.deep.equal(['ack', 'ack', 'ack']);
    expect(engine.mock('mock:out').received).to.have.length(3);
  });

  it('gives up after the stop timeout and reports what is still in flight', async () => {
    const src = new TestSource();
    const engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    const { wait: never, open: release } = latch();
    engine.addRoutes(from<number>('src:in').routeId('stuck').process(async (m) => {
      await never;
      return m;
    }));
    await engine.start();
    void src.push(1);
    void src.push(2);
    const report = await engine.stop({ timeoutMs: 100 });
    expect(report).to.deep.equal({ timedOut: true, inflight: { stuck: 2 } });
    release();
  });

  it('stops a route as soon as its last message in flight finished, not at the stop timeout', async () => {
    const src = new TestSource();
    const engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    const { wait, open: release } = latch();
    engine.addRoutes(from<number>('src:in').routeId('slow').process(async (m) => {
      await wait;
      return m;
    }).to('mock:out'));
    await engine.start();
    const pushed = [src.push(1), src.push(2)];
    let report: unknown;
    // a minute: the test's own timeout (20 s) fails it if the stop waits for the timer
    const stopped = engine.stopRoute('slow', { timeoutMs: 60_000 }).then((r) => (report = r));
    await new Promise((r) => setImmediate(r));
    expect(report, 'stopped while two messages were in flight').to.equal(undefined);
    release();
    await stopped;
    expect(report).to.deep.equal({ timedOut: false, inflight: {} });
    expect(await Promise.all(pushed)).to.deep.equal(['ack', 'ack']);
    expect(engine.mock('mock:out').received).to.have.length(2);
    await engine.stop();
  });

  it('emits lifecycle and message events and counts per route', async () => {
    const engine = new Engine({ logger: testLogger() });
    const events: EngineEvent[] = [];
    const sub = engine.events$.subscribe((e) => events.push(e));
    engine.addRoutes(from<number>('direct:in').routeId('calc').transform((n) => {
      if (n < 0) throw new Error('negative');
      return n;
    }));
    await engine.start();
    await engine.send('direct:in', 1);
    await engine.send('direct:in', -1).catch(() => undefined);
    await engine.stop();
    sub.unsubscribe();
    const types = events.map((e) => e.type);
    expect(types).to.deep.equal(['route.started', 'engine.started', 'message.completed', 'message.failed', 'engine.stopping', 'route.stopped', 'engine.stopped']);
    const failed = events.find((e) => e.type === 'message.failed');
    expect(failed).to.include({ routeId: 'calc', code: 'BUSBAR_ERR_STEP_FAILED', deadLettered: false });
    expect(engine.stats().routes.calc).to.include({ received: 2, completed: 1, failed: 1, inflight: 0 });
  });

  it('redelivers with backoff, carrying the attempt number in a header', async () => {
    const engine = new Engine({ logger: testLogger() });
    const attempts: unknown[] = [];
    engine.addRoutes(
      from<number>('direct:in')
        .redelivery({ maxAttempts: 3, delayMs: 5 })
        .deadLetter('mock:dlq')
        .process((m) => {
          attempts.push(m.headers['busbar.attempt']);
          if (attempts.length < 3) throw new Error('flaky');
          return m;
        })
        .to('mock:out'),
    );
    await engine.start();
    await engine.send('direct:in', 1);
    expect(attempts).to.deep.equal([undefined, 2, 3]);
    expect(engine.mock('mock:out').received).to.have.length(1);
    expect(engine.mock('mock:dlq').received).to.have.length(0);
    expect(engine.stats().routes['route-1']!.redelivered).to.equal(2);
    await engine.stop();
  });

  it('dead-letters the original message, not the half-transformed one', async () => {
    const engine = new Engine({ logger: testLogger() });
    engine.addRoutes(
      from<{ n: number }>('direct:in')
        .deadLetter('mock:dlq')
        .transform((b) => ({ ...b, changed: true }))
        .transform(() => {
          throw new Error('late failure');
        }),
    );
    await engine.start();
    await engine.send('direct:in', { n: 1 }).catch(() => undefined);
    const dead = engine.mock('mock:dlq').received[0]!;
    expect(dead.body).to.deep.equal({ n: 1 });
    expect(dead.headers).to.include({ 'busbar.error.step': '/steps/1 (transform)', 'busbar.error.code': 'BUSBAR_ERR_STEP_FAILED' });
    await engine.stop();
  });

  it('keeps the table of producers for computed URIs bounded', async () => {
    const engine = new Engine({ logger: testLogger() });
    engine.addRoutes(from<number>('direct:in').to('mock:fixed'));
    await engine.start();
    for (let i = 0; i < 4200; i++) await engine.send(`mock:computed-${i}`, i);
    expect(engine.stats().producers).to.be.at.most(4096 + 2);
    // an evicted endpoint works again when used
    await engine.send('mock:computed-0', 'again');
    expect(engine.mock('mock:computed-0').bodies).to.deep.equal([0, 'again']);
    await engine.send('direct:in', 1);
    expect(engine.mock('mock:fixed').bodies).to.deep.equal([1]);
    await engine.stop();
  });
});
