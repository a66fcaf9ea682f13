import { expect } from 'chai';
import { Engine, from } from '../../lib/index.js';
import { latch, testLogger } from '../helpers.js';
import { TestSource } from './source-adapter.js';

describe('delivery contract', () => {
  let engine: Engine;
  afterEach(async () => {
    await engine.stop({ timeoutMs: 2000 });
  });

  it('acks the source only after the last output completed', async () => {
    const src = new TestSource();
    engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    engine.addRoutes(
      from<number>('src:in')
        .to('mock:first?delayMs=20')
        .to('mock:last?delayMs=50'),
    );
    engine.mock('mock:first').whenReceived((m) => void src.log.push(`first ${String(m.body)}`));
    engine.mock('mock:last').whenReceived(async (m) => {
      await new Promise((r) => setTimeout(r, 30));
      src.log.push(`last done ${String(m.body)}`);
    });
    await engine.start();
    const outcome = await src.push(7);
    expect(outcome).to.equal('ack');
    expect(src.log).to.deep.equal(['first 7', 'last done 7', 'ack 7']);
  });

  it('nacks when a step fails and there is no dead-letter endpoint', async () => {
    const src = new TestSource();
    engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    engine.addRoutes(
      from<number>('src:in')
        .transform((n) => {
          if (n === 2) throw new Error('cannot handle 2');
          return n;
        })
        .to('mock:out'),
    );
    await engine.start();
    expect(await src.push(1)).to.equal('ack');
    expect(await src.push(2)).to.equal('nack');
    expect(engine.mock('mock:out').bodies).to.deep.equal([1]);
    const s = engine.stats().routes['route-1']!;
    expect(s).to.include({ received: 2, completed: 1, failed: 1, inflight: 0 });
  });

  it('nacks when an output fails after earlier outputs succeeded', async () => {
    const src = new TestSource();
    engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    engine.addRoutes(from<number>('src:in').to('mock:a').to('mock:b'));
    engine.mock('mock:b').whenReceived(() => {
      throw new Error('b is down');
    });
    await engine.start();
    expect(await src.push(1)).to.equal('nack');
    expect(engine.mock('mock:a').received).to.have.length(1);
  });

  it('acks a failed message once it is safely in the dead-letter endpoint', async () => {
    const src = new TestSource();
    engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    engine.addRoutes(from<number>('src:in').deadLetter('mock:dlq').transform(() => { throw new Error('nope'); }));
    await engine.start();
    expect(await src.push(1)).to.equal('ack');
    expect(engine.mock('mock:dlq').received[0]!.headers['busbar.error.message']).to.contain('nope');
    expect(engine.stats().routes['route-1']!.deadLettered).to.equal(1);
  });

  it('nacks when the dead-letter endpoint itself fails', async () => {
    const src = new TestSource();
    engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    engine.addRoutes(from<number>('src:in').deadLetter('mock:dlq').transform(() => { throw new Error('nope'); }));
    engine.mock('mock:dlq').whenReceived(() => { throw new Error('dlq down'); });
    await engine.start();
    expect(await src.push(1)).to.equal('nack');
  });

  it('bounds messages in flight: a full route makes the source wait', async () => {
    const src = new TestSource();
    engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    const { wait: gate, open: release } = latch();
    let peak = 0;
    let current = 0;
    engine.addRoutes(
      from<number>('src:in').maxInflight(3).process(async (m) => {
        current++;
        peak = Math.max(peak, current);
        await gate;
        current--;
        return m;
      }),
    );
    await engine.start();
    const pushes = Array.from({ length: 10 }, (_, i) => src.push(i));
    await new Promise((r) => setImmediate(r));
    expect(engine.stats().routes['route-1']!.inflight).to.equal(3);
    expect(src.ctx!.available()).to.equal(0);
    release();
    expect(await Promise.all(pushes)).to.deep.equal(Array(10).fill('ack'));
    expect(peak).to.equal(3);
  });

  it('does not lose a wake-up when a source waits for a slot and then takes none', async () => {
    const src = new TestSource();
    engine = new Engine({ logger: testLogger(), adapters: [src.adapter()] });
    const { wait: gate, open: release } = latch();
    engine.addRoutes(from<number>('src:in').maxInflight(1).process(async (m) => {
      if (m.body === 1) await gate;
      return m;
    }));
    await engine.start();
    const first = src.push(1); // holds the only slot
    const poller = src.ctx!.whenAvailable(); // a poller waits for a slot, will take none
    const second = src.push(2); // queued behind the full route
    release();
    await poller;
    expect(await Promise.all([first, second])).to.deep.equal(['ack', 'ack']);
  });

  it('keeps memory bounded while 1,000,000 messages are pushed at a slow route', async function () {
    this.timeout(120_000);
    engine = new Engine({ logger: testLogger() });
    let processed = 0;
    engine.addRoutes(
      from<number>('queue:firehose?size=100')
        .maxInflight(8)
        .process(async (m) => {
          // slow: every message yields to the event loop
          await new Promise((r) => setImmediate(r));
          processed++;
          return m;
        }),
    );
    await engine.start();
    const total = 1_000_000;
    // retained heap (after a full GC), so garbage left by other tests does not count
    const retained = (): number => {
      global.gc!();
      return process.memoryUsage().heapUsed;
    };
    expect(global.gc, 'run mocha with --expose-gc (see .mocharc.json)').to.be.a('function');
    const base = retained();
    let peak = base;
    for (let i = 0; i < total; i++) {
      await engine.send('queue:firehose', { n: i, payload: 'x'.repeat(64) });
      if (i % 100_000 === 50_000) peak = Math.max(peak, retained());
    }
    const deadline = Date.now() + 60_000;
    while (processed < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(processed).to.equal(total);
    // 1M messages of ~100 bytes held at once would be well over 150 MB; bounded means a few MB
    expect((peak - base) / 1048576).to.be.lessThan(64);
  });
});
