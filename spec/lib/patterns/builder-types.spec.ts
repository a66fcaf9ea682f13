import { expect } from 'chai';
import { from, type RouteBuilder } from '../../../lib/index.js';
import { patternSteps } from '../../../lib/steps/patterns/index.js';
import { testEngine } from '../../../lib/testing.js';

interface Order { id: string; lines: Array<{ sku: string; qty: number }> }

/** Compile-time checks: `npm run typecheck` fails if a body type does not flow as stated. */
function typeFlow(): Array<RouteBuilder<unknown, never>> {
  const split = from<Order>('direct:orders')
    .split((o) => o.lines) // body: { sku, qty }
    .transform((l) => l.qty * 2) // body: number
    .aggregate<number>({ fromSplit: true, combine: (qs) => qs.reduce((a, b) => a + b, 0) })
    .transform((total) => total.toFixed(2)); // body: string
  const arr = from<string[]>('direct:x').split().transform((s) => s.toUpperCase());
  const mr = from<string>('direct:text').mapReduce<number>({ tokenize: '\n', map: (line) => [[String(line), 1]], reduce: 'sum' }).transform((counts) => Object.keys(counts));
  const retried = from<number>('direct:n').retry({ maxAttempts: 2 }, (b) => b.transform((n) => String(n))).transform((s) => s.length);
  // @ts-expect-error: after split the body is an order line, not an Order
  from<Order>('direct:bad').split((o) => o.lines).transform((o: Order) => o.id);
  // @ts-expect-error: an aggregate of numbers is number[], not a string
  from<number>('direct:bad2').aggregate({ size: 2 }).transform((s: string) => s.trim());
  return [split, arr, mr, retried] as unknown as Array<RouteBuilder<unknown, never>>;
}

const samples: Record<string, unknown> = {
  split: true,
  aggregate: { size: 2 },
  resequence: { by: 'seq' },
  recipientList: ['mock:a'],
  multicast: { branches: [[{ to: 'mock:a' }]] },
  scatterGather: { recipients: ['mock:a'] },
  wireTap: 'mock:tap',
  routingSlip: 'slip',
  dynamicRouter: 'next',
  loadBalance: { targets: ['mock:a', 'mock:b'] },
  throttle: { max: 10, periodMs: 1000 },
  delay: 10,
  enrich: 'mock:lookup',
  claimCheck: 'checkIn',
  idempotent: 'id',
  retry: { maxAttempts: 2, steps: [{ to: 'mock:a' }] },
  timeout: { ms: 100, steps: [{ to: 'mock:a' }] },
  circuitBreaker: { steps: [{ to: 'mock:a' }] },
  mapReduce: { tokenize: '\n', map: { fn: 'f' }, reduce: 'sum' },
  awaitReply: { uri: 'queue:answers', send: 'mock:a', timeoutMs: 1000 },
};

describe('patterns: builder types and config forms', () => {
  it('the typed builder produces routes the engine accepts', () => {
    const { engine } = testEngine();
    expect(() => engine.addRoutes(typeFlow().slice(0, 4))).to.not.throw();
    expect(engine.routeIds()).to.have.length(4);
  });

  it('every pattern step kind has a config form (a sample of each is valid) and rejects unknown keys with a path', () => {
    const { engine } = testEngine({ functions: { f: () => [] } });
    const names = patternSteps.map((k) => k.name).sort();
    expect(names).to.deep.equal(Object.keys(samples).sort());
    for (const [name, value] of Object.entries(samples)) {
      const problems = engine.check({ routes: [{ id: `r-${name}`, from: `direct:${name}`, steps: [{ [name]: value }] }] });
      expect(problems, name).to.deep.equal([]);
    }
    const bad = engine.check({ routes: [{ id: 'bad', from: 'direct:bad', steps: [{ throttle: { max: 1, periodMs: 10, burst: 3 } }] }] });
    expect(bad[0]!.path).to.match(/^\/routes\/0\/steps\/0\/throttle/);
    expect(bad[0]!.message).to.match(/burst/);
    for (const k of patternSteps) expect(k.description.length, k.name).to.be.greaterThan(20);
  });

  it('nested steps of a pattern are checked with their path', () => {
    const { engine } = testEngine();
    const problems = engine.check({ routes: [{ id: 'n', from: 'direct:n', steps: [{ multicast: { branches: [[{ to: 'mock:a' }], [{ tranform: '$' }]] } }] }] });
    expect(problems.map((p) => p.path)).to.include('/routes/0/steps/0/multicast/branches/1/0/tranform');
    expect(problems[0]!.suggestion).to.match(/transform/);
  });
});
