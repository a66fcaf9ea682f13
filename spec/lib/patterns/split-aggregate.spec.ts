import { expect } from 'chai';
import { from } from '../../../lib/index.js';
import { FakeClock, testEngine, settle } from '../../../lib/testing.js';
import { SPLIT_HEADERS, AGGREGATE_HEADERS } from '../../../lib/steps/patterns/common.js';
import { MemoryAggregationStore } from '../../../lib/stores-memory.js';

async function* slowNumbers(n: number, pulled: { count: number }): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) {
    pulled.count++;
    await new Promise((r) => setImmediate(r));
    yield i;
  }
}

describe('patterns: splitter', () => {
  it('splits an array into parts that carry index, size and a last flag, and completes the parent after all parts', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<number[]>('direct:in').split().transform((n) => n * 10).to('mock:parts'));
    await engine.start();
    await engine.send('direct:in', [1, 2, 3]);
    const parts = engine.mock('mock:parts').received;
    expect(parts.map((m) => m.body)).to.deep.equal([10, 20, 30]);
    expect(parts.map((m) => m.headers[SPLIT_HEADERS.index])).to.deep.equal([0, 1, 2]);
    expect(parts.map((m) => m.headers[SPLIT_HEADERS.size])).to.deep.equal([3, 3, 3]);
    expect(parts.map((m) => m.headers[SPLIT_HEADERS.last])).to.deep.equal([false, false, true]);
    // parts are new messages of the same conversation
    expect(new Set(parts.map((m) => m.id)).size).to.equal(3);
    expect(new Set(parts.map((m) => m.correlationId)).size).to.equal(1);
    await engine.stop();
  });

  it('streams an async iterable: pulls one item ahead of the part in flight, last flag without a size', async () => {
    const { engine } = testEngine();
    const pulled = { count: 0 };
    const seenWhenProcessed: number[] = [];
    engine.addRoutes(
      from<number>('direct:in')
        .split((n) => slowNumbers(n, pulled))
        .process((m) => {
          seenWhenProcessed.push(pulled.count);
          return m;
        })
        .to('mock:parts'),
    );
    await engine.start();
    await engine.send('direct:in', 5);
    const parts = engine.mock('mock:parts').received;
    expect(parts.map((m) => m.body)).to.deep.equal([0, 1, 2, 3, 4]);
    expect(parts.map((m) => m.headers[SPLIT_HEADERS.size])).to.deep.equal([undefined, undefined, undefined, undefined, undefined]);
    expect(parts.map((m) => m.headers[SPLIT_HEADERS.last])).to.deep.equal([false, false, false, false, true]);
    // never more than one item read ahead of the part being processed
    seenWhenProcessed.forEach((count, i) => expect(count).to.be.at.most(i + 2));
    await engine.stop();
  });

  it('bounds parts in flight with parallel', async () => {
    const { engine } = testEngine();
    let active = 0;
    let peak = 0;
    engine.addRoutes(
      from<number[]>('direct:in')
        .split({ parallel: 3 })
        .process(async (m) => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setImmediate(r));
          active--;
          return m;
        })
        .to('mock:parts'),
    );
    await engine.start();
    await engine.send('direct:in', Array.from({ length: 20 }, (_, i) => i));
    expect(engine.mock('mock:parts').received).to.have.length(20);
    expect(peak).to.equal(3);
    await engine.stop();
  });

  it('tokenizes text and a stream of Buffer chunks into lines', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<unknown>('direct:in').tokenize('\n').to('mock:lines'));
    await engine.start();
    await engine.send('direct:in', 'a\nb\nc\n');
    async function* chunks(): AsyncGenerator<Buffer> {
      yield Buffer.from('he');
      yield Buffer.from('llo\nwor');
      yield Buffer.from('ld\nlast');
    }
    await engine.send('direct:in', chunks());
    expect(engine.mock('mock:lines').bodies).to.deep.equal(['a', 'b', 'c', 'hello', 'world', 'last']);
    await engine.stop();
  });

  it('fails with SPLIT_INPUT (to the dead letter, original body) when the body cannot be split', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').deadLetter('mock:dlq').split().to('mock:parts'));
    await engine.start();
    const err = await engine.send('direct:in', 42).then(() => undefined, (e: unknown) => e);
    expect(err).to.have.property('code', 'BUSBAR_ERR_SPLIT_INPUT');
    const dead = engine.mock('mock:dlq').received;
    expect(dead).to.have.length(1);
    expect(dead[0]!.body).to.equal(42);
    expect(dead[0]!.headers['busbar.error.code']).to.equal('BUSBAR_ERR_SPLIT_INPUT');
    await engine.stop();
  });

  it('a failing part fails the whole message with its index; the dead letter gets the original (unsplit) body', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<number[]>('direct:in')
        .routeId('r')
        .deadLetter('mock:dlq')
        .split()
        .transform((n) => {
          if (n === 2) throw new TypeError('two is bad');
          return n;
        })
        .to('mock:parts'),
    );
    await engine.start();
    const err = (await engine.send('direct:in', [1, 2, 3]).then(() => undefined, (e: unknown) => e)) as { code: string; details: Record<string, unknown>; cause: unknown };
    expect(err.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(err.details.splitIndex).to.equal(1);
    expect(err.details.routeId).to.equal('r');
    expect(err.cause).to.be.instanceOf(TypeError);
    expect(engine.mock('mock:parts').bodies).to.deep.equal([1]);
    expect(engine.mock('mock:dlq').received[0]!.body).to.deep.equal([1, 2, 3]);
    await engine.stop();
  });

  it('with partDeadLetter, a failing part goes there with the reason and the others go on', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<number[]>('direct:in')
        .split({ partDeadLetter: 'mock:bad-parts' })
        .filter((n) => {
          if (n === 2) throw new Error('boom');
          return true;
        })
        .to('mock:parts'),
    );
    await engine.start();
    await engine.send('direct:in', [1, 2, 3]);
    expect(engine.mock('mock:parts').bodies).to.deep.equal([1, 3]);
    const bad = engine.mock('mock:bad-parts').received;
    expect(bad.map((m) => m.body)).to.deep.equal([2]);
    expect(bad[0]!.headers['busbar.error.code']).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(bad[0]!.headers[SPLIT_HEADERS.index]).to.equal(1);
    await engine.stop();
  });

  it('closes a stream it stops reading after a failure', async () => {
    const { engine } = testEngine();
    let closed = false;
    async function* gen(): AsyncGenerator<number> {
      try {
        for (let i = 0; i < 1000; i++) yield i;
      } finally {
        closed = true;
      }
    }
    engine.addRoutes(
      from('direct:in')
        .split(() => gen())
        .process((m) => {
          if (m.body === 3) throw new Error('stop here');
          return m;
        })
        .to('mock:parts'),
    );
    await engine.start();
    const err = await engine.send('direct:in', null).then(() => undefined, (e: unknown) => e);
    expect(err).to.have.property('code', 'BUSBAR_ERR_STEP_FAILED');
    expect(closed).to.equal(true);
    expect(engine.mock('mock:parts').received.length).to.be.at.most(4);
    await engine.stop();
  });
});

describe('patterns: aggregator', () => {
  it('split -> transform -> aggregate back with fromSplit completion', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<number[]>('direct:in')
        .split()
        .transform((n) => n * 2)
        .aggregate<number>({ fromSplit: true, combine: (bodies) => bodies.reduce((a, b) => a + b, 0) })
        .to('mock:out'),
    );
    await engine.start();
    await engine.send('direct:in', [1, 2, 3, 4]);
    await engine.send('direct:in', [10]);
    const out = engine.mock('mock:out');
    await out.expectCount(2).satisfied();
    expect(out.bodies).to.deep.equal([20, 20]);
    expect(out.received[0]!.headers[AGGREGATE_HEADERS.completedBy]).to.equal('split');
    expect(out.received[0]!.headers[AGGREGATE_HEADERS.size]).to.equal(4);
    expect(out.received[0]!.headers[SPLIT_HEADERS.index]).to.equal(undefined);
    await engine.stop();
  });

  it('completes a streamed split (size unknown) on the last-part flag, parts out of order', async () => {
    const { engine } = testEngine();
    async function* items(): AsyncGenerator<string> {
      yield 'a';
      yield 'b';
      yield 'c';
    }
    engine.addRoutes(
      from('direct:in')
        .split(() => items(), { parallel: 3 })
        .process(async (m) => {
          // the first part is the slowest: the last part arrives before it
          if (m.headers[SPLIT_HEADERS.index] === 0) for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
          return m;
        })
        .aggregate({ fromSplit: true, strategy: 'concat' })
        .to('mock:out'),
    );
    await engine.start();
    await engine.send('direct:in', null);
    const out = engine.mock('mock:out');
    await out.expectCount(1).satisfied();
    expect((out.bodies[0] as string).split('').sort().join('')).to.equal('abc');
    await engine.stop();
  });

  it('completes by size per correlation key', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<{ k: string; v: number }>('direct:in')
        .aggregate<number[]>({ correlate: (b) => b.k, size: 2, combine: (bodies) => bodies.map((b) => b.v) })
        .to('mock:out'),
    );
    await engine.start();
    for (const [k, v] of [['a', 1], ['b', 2], ['a', 3], ['b', 4], ['a', 5]] as const) await engine.send('direct:in', { k, v });
    const out = engine.mock('mock:out');
    await out.expectCount(2).satisfied();
    expect(out.bodies).to.deep.equal([[1, 3], [2, 4]]);
    expect(out.received.map((m) => m.headers[AGGREGATE_HEADERS.key])).to.deep.equal(['a', 'b']);
    expect(out.received.map((m) => m.headers[AGGREGATE_HEADERS.completedBy])).to.deep.equal(['size', 'size']);
    // the open group 'a' (with 5) is completed when the route stops
    await engine.stop();
    expect(out.bodies).to.deep.equal([[1, 3], [2, 4], [5]]);
    expect(out.received[2]!.headers[AGGREGATE_HEADERS.completedBy]).to.equal('stop');
  });

  it('completes by predicate', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<number>('direct:in').aggregate({ correlate: () => 'all', predicate: (bodies) => bodies.reduce((a, b) => a + b, 0) >= 10 }).to('mock:out'));
    await engine.start();
    for (const n of [3, 4, 5, 1]) await engine.send('direct:in', n);
    const out = engine.mock('mock:out');
    await out.expectCount(1).satisfied();
    expect(out.bodies).to.deep.equal([[3, 4, 5]]);
    expect(out.received[0]!.headers[AGGREGATE_HEADERS.completedBy]).to.equal('predicate');
    await engine.stop();
  });

  it('completes an idle group on its inactivity timeout (fake time)', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from<string>('direct:in').aggregate({ correlate: (b) => b[0]!, timeoutMs: 1000 }).to('mock:out'));
    await engine.start();
    await engine.send('direct:in', 'a1');
    await clock.tickAsync(600);
    await engine.send('direct:in', 'a2'); // resets a's timer
    await engine.send('direct:in', 'b1');
    await clock.tickAsync(600);
    const out = engine.mock('mock:out');
    expect(out.received).to.have.length(0);
    await clock.tickAsync(500);
    await settle();
    expect(out.bodies).to.deep.equal([['a1', 'a2'], ['b1']]);
    expect(out.received.map((m) => m.headers[AGGREGATE_HEADERS.completedBy])).to.deep.equal(['timeout', 'timeout']);
    await engine.stop();
  });

  it('completes all groups on an interval (fake time) and not on stop when completeOnStop is false', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    const store = new MemoryAggregationStore();
    engine.addRoutes(from<string>('direct:in').routeId('agg').aggregate({ correlate: (b) => b, intervalMs: 5000, completeOnStop: false, store }).to('mock:out'));
    await engine.start();
    await engine.send('direct:in', 'x');
    await engine.send('direct:in', 'y');
    await clock.tickAsync(5000);
    await settle();
    const out = engine.mock('mock:out');
    expect(out.bodies).to.deep.equal([['x'], ['y']]);
    expect(out.received[0]!.headers[AGGREGATE_HEADERS.completedBy]).to.equal('interval');
    await engine.send('direct:in', 'z');
    await engine.stop();
    expect(out.received).to.have.length(2);
    // the group stays in the store for the next run
    expect((await store.groups('agg/steps/0')).map((g) => g.key)).to.deep.equal(['z']);
  });

  it('bounds open groups: beyond maxGroups the oldest group completes with reason capacity', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<string>('direct:in').aggregate({ correlate: (b) => b[0]!, size: 10, maxGroups: 2 }).to('mock:out'));
    await engine.start();
    for (const b of ['a1', 'b1', 'a2', 'c1']) await engine.send('direct:in', b);
    const out = engine.mock('mock:out');
    await out.expectCount(1).satisfied();
    expect(out.bodies).to.deep.equal([['a1', 'a2']]);
    expect(out.received[0]!.headers[AGGREGATE_HEADERS.completedBy]).to.equal('capacity');
    await engine.stop();
    expect(out.bodies.slice(1)).to.deep.equal([['b1'], ['c1']]);
  });

  it('a message without a correlation key fails with CORRELATION_KEY', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<{ k?: string }>('direct:in').deadLetter('mock:dlq').aggregate({ correlate: (b) => b.k as string, size: 2 }).to('mock:out'));
    await engine.start();
    await engine.send('direct:in', {}).catch(() => undefined);
    expect(engine.mock('mock:dlq').received[0]!.headers['busbar.error.code']).to.equal('BUSBAR_ERR_CORRELATION_KEY');
    await engine.stop();
  });

  it('an aggregator without a completion rule is rejected when the route is added', () => {
    const { engine } = testEngine();
    expect(() => engine.addRoutes(from('direct:in').aggregate({}).to('mock:out'))).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_ROUTE');
  });

  it('a failing combine goes to the route\'s dead letter with the group bodies', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<number>('direct:in')
        .deadLetter('mock:dlq')
        .aggregate({ correlate: () => 'k', size: 2, combine: () => { throw new Error('cannot combine'); } })
        .to('mock:out'),
    );
    await engine.start();
    await engine.send('direct:in', 1);
    await engine.send('direct:in', 2);
    const dlq = engine.mock('mock:dlq');
    await dlq.expectCount(1).satisfied();
    expect(dlq.bodies[0]).to.deep.equal([1, 2]);
    expect(engine.mock('mock:out').received).to.have.length(0);
    await engine.stop();
  });

  it('config form: split with an expression and aggregate with a JSONata combine', async () => {
    const { engine } = testEngine();
    engine.addRoutes({
      routes: [{ id: 'cfg', from: 'direct:in', steps: [{ split: 'items' }, { aggregate: { fromSplit: true, combine: '$sum($.price)' } }, { to: 'mock:out' }] }],
    });
    await engine.start();
    await engine.send('direct:in', { items: [{ price: 2 }, { price: 5 }] });
    const out = engine.mock('mock:out');
    await out.expectCount(1).satisfied();
    expect(out.bodies).to.deep.equal([7]);
    await engine.stop();
  });

  it('config form reports a missing completion rule with its path', () => {
    const { engine } = testEngine();
    const problems = engine.check({ routes: [{ id: 'x', from: 'direct:in', steps: [{ aggregate: { strategy: 'sum' } }] }] });
    expect(problems.map((p) => p.path)).to.include('/routes/0/steps/0/aggregate');
  });
});

