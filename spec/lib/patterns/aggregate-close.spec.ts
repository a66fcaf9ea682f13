import { expect } from 'chai';
import { from } from '../../../lib/index.js';
import { FakeClock, settle, testEngine } from '../../../lib/testing.js';
import { AGGREGATE_HEADERS } from '../../../lib/steps/patterns/common.js';
import { AGGREGATE_LATE_HEADER } from '../../../lib/steps/patterns/aggregate.js';

interface Part {
  k: string;
  v: number;
}

describe('patterns: aggregator closes a key on completion', () => {
  it('a late arrival for a closed key is discarded and counted; it does not open a new group', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<Part>('direct:in').routeId('agg').aggregate({ correlate: (p) => p.k, size: 2, close: true, combine: (ps) => ps.map((p) => p.v) }).to('mock:out'));
    await engine.start();
    for (const v of [1, 2, 3]) await engine.send('direct:in', { k: 'a', v });
    await engine.send('direct:in', { k: 'b', v: 4 });
    await engine.send('direct:in', { k: 'b', v: 5 });
    expect(engine.mock('mock:out').bodies).to.deep.equal([[1, 2], [4, 5]]);
    expect(engine.routeStats('agg').steps!['/steps/0']).to.deep.equal({ lateArrivals: 1, closedKeys: 2 });
    // the late message ended at the aggregator: a stop does not flush it as a group of its own
    await engine.stop();
    expect(engine.mock('mock:out').bodies).to.have.length(2);
  });

  it('late arrivals go to a named endpoint (lateArrivals) with busbar.aggregate.late', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<Part>('direct:in').routeId('agg').aggregate({ correlate: (p) => p.k, size: 2, close: true, lateArrivals: 'mock:late' }).to('mock:out'));
    await engine.start();
    for (const v of [1, 2, 3, 4]) await engine.send('direct:in', { k: 'a', v });
    expect(engine.mock('mock:out').received).to.have.length(1);
    const late = engine.mock('mock:late').received;
    expect(late.map((m) => (m.body as Part).v)).to.deep.equal([3, 4]);
    expect(late[0]!.headers[AGGREGATE_LATE_HEADER]).to.equal(true);
    expect(late[0]!.headers[AGGREGATE_HEADERS.key]).to.equal('a');
    expect(engine.routeStats('agg').steps!['/steps/0']!.lateArrivals).to.equal(2);
    await engine.stop();
  });

  it('closed keys are remembered for a bounded count and time (no unbounded memory)', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from<Part>('direct:in').routeId('agg').aggregate({ correlate: (p) => p.k, size: 1, close: { maxKeys: 2, ttlMs: 60_000 } }).to('mock:out'));
    await engine.start();
    for (const k of ['a', 'b', 'c']) await engine.send('direct:in', { k, v: 1 });
    const stats = (): Record<string, number> => engine.routeStats('agg').steps!['/steps/0']!;
    expect(stats().closedKeys).to.equal(2);
    // `a` was forgotten (oldest beyond maxKeys): it opens a group again; `c` is still closed
    await engine.send('direct:in', { k: 'a', v: 2 });
    await engine.send('direct:in', { k: 'c', v: 2 });
    expect(engine.mock('mock:out').received.map((m) => m.headers[AGGREGATE_HEADERS.key])).to.deep.equal(['a', 'b', 'c', 'a']);
    expect(stats().lateArrivals).to.equal(1);
    // after ttlMs every closed key is forgotten
    await clock.tickAsync(60_001);
    await engine.send('direct:in', { k: 'c', v: 3 });
    expect(engine.mock('mock:out').received).to.have.length(5);
    expect(stats().closedKeys).to.equal(1);
    await engine.stop();
  });

  it('without close, a message after completion starts a new group (the old behaviour, still the default)', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<Part>('direct:in').aggregate({ correlate: (p) => p.k, size: 2 }).to('mock:out'));
    await engine.start();
    for (const v of [1, 2, 3, 4]) await engine.send('direct:in', { k: 'a', v });
    expect(engine.mock('mock:out').received).to.have.length(2);
    await engine.stop();
  });
});

describe('patterns: aggregator completion deadline', () => {
  it('completes a group completionDeadlineMs after its first message, although messages keep the inactivity timeout from firing', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from<Part>('direct:in').aggregate({ correlate: (p) => p.k, timeoutMs: 500, completionDeadlineMs: 1000, close: true }).to('mock:out'));
    await engine.start();
    const out = engine.mock('mock:out');
    for (let v = 0; v < 6; v++) {
      await engine.send('direct:in', { k: 'a', v });
      await clock.tickAsync(400);
      await settle();
    }
    // first message at 0; the deadline fired at 1000 with the three that came by then
    expect(out.received).to.have.length(1);
    expect(out.received[0]!.headers[AGGREGATE_HEADERS.completedBy]).to.equal('deadline');
    expect((out.received[0]!.body as Part[]).map((p) => p.v)).to.deep.equal([0, 1, 2]);
    await engine.stop();
  });

  it('the deadline alone is a completion rule; a new group gets its own deadline', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from<Part>('direct:in').aggregate({ correlate: (p) => p.k, completionDeadlineMs: 1000 }).to('mock:out'));
    await engine.start();
    await engine.send('direct:in', { k: 'a', v: 1 });
    await clock.tickAsync(999);
    await settle();
    expect(engine.mock('mock:out').received).to.have.length(0);
    await clock.tickAsync(1);
    await settle();
    await engine.send('direct:in', { k: 'a', v: 2 });
    await clock.tickAsync(1000);
    await settle();
    expect(engine.mock('mock:out').received.map((m) => [m.headers[AGGREGATE_HEADERS.completedBy], (m.body as Part[]).length])).to.deep.equal([
      ['deadline', 1],
      ['deadline', 1],
    ]);
    await engine.stop();
  });
});

describe('patterns: aggregator close / deadline in config files', () => {
  it('accepts close, lateArrivals and completionDeadlineMs, and runs them', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes({
      routes: [
        {
          id: 'cfg',
          from: 'direct:in',
          steps: [{ aggregate: { correlate: 'k', size: 2, completionDeadlineMs: 1000, close: { ttlMs: 10000, maxKeys: 100 }, lateArrivals: 'mock:late', strategy: 'count' } }, { to: 'mock:out' }],
        },
      ],
    });
    await engine.start();
    for (const v of [1, 2, 3]) await engine.send('direct:in', { k: 'a', v });
    await engine.send('direct:in', { k: 'b', v: 1 });
    await clock.tickAsync(1000);
    await settle();
    expect(engine.mock('mock:out').received.map((m) => [m.body, m.headers[AGGREGATE_HEADERS.completedBy]])).to.deep.equal([
      [2, 'size'],
      [1, 'deadline'],
    ]);
    expect(engine.mock('mock:late').bodies).to.deep.equal([{ k: 'a', v: 3 }]);
    await engine.stop();
  });

  it('reports lateArrivals without close, and wrong close options, as problems with their paths', () => {
    const { engine } = testEngine();
    const problems = engine.check({
      routes: [
        { id: 'x', from: 'direct:x', steps: [{ aggregate: { size: 2, lateArrivals: 'mock:late' } }] },
        { id: 'y', from: 'direct:y', steps: [{ aggregate: { size: 2, close: { ttl: 5 } } }] },
        { id: 'z', from: 'direct:z', steps: [{ aggregate: { completionDeadlineMs: 0 } }] },
      ],
    });
    const paths = problems.map((p) => p.path);
    expect(paths).to.include('/routes/0/steps/0/aggregate/lateArrivals');
    expect(paths.some((p) => p.startsWith('/routes/1/steps/0/aggregate/close'))).to.equal(true, JSON.stringify(problems));
    expect(paths.some((p) => p.startsWith('/routes/2/steps/0/aggregate'))).to.equal(true, JSON.stringify(problems));
  });
});
