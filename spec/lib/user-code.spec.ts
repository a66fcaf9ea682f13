import { expect } from 'chai';
import { Engine, from, pipe, type RouteBuilder } from '../../lib/index.js';
import { testLogger, waitFor } from '../helpers.js';

/**
 * No user callback can take the process down: every step kind that calls user code is
 * made to throw, on each of its code paths (synchronously, by rejecting, from a timer), and
 * the message must fail with STEP_FAILED through the route's error policy (here: to the
 * dead-letter endpoint) while the process, and the next message, go on. An exception that
 * escaped (an uncaught exception or an unhandled rejection) fails the test under mocha.
 */
const boom = (): never => {
  throw new Error('user code failed');
};
const reject = (): Promise<never> => Promise.reject(new Error('user code failed'));

type Case = { name: string; route: (b: RouteBuilder<unknown, unknown>) => RouteBuilder<unknown, unknown>; body?: unknown; spawned?: boolean; /** The failure this path ends in, when not STEP_FAILED itself. */ code?: string };

const ANY = (b: RouteBuilder<unknown, unknown>): RouteBuilder<number[], unknown> => b as unknown as RouteBuilder<number[], unknown>;

const cases: Case[] = [
  { name: 'transform (sync)', route: (b) => b.transform(boom) },
  { name: 'transform (async)', route: (b) => b.transform(reject) },
  { name: 'process (sync)', route: (b) => b.process(boom) },
  { name: 'process (async)', route: (b) => b.process(reject) },
  { name: 'filter (sync)', route: (b) => b.filter(boom) },
  { name: 'filter (async)', route: (b) => b.filter(reject) },
  { name: 'choice predicate (sync)', route: (b) => b.choice((c) => c.when(boom, (x) => x.to('mock:never')).otherwise((x) => x)) },
  { name: 'choice predicate (async)', route: (b) => b.choice((c) => c.when(reject, (x) => x.to('mock:never')).otherwise((x) => x)) },
  { name: 'setHeader computed (sync)', route: (b) => b.setHeader('h', boom) },
  { name: 'setHeader computed (async)', route: (b) => b.setHeader('h', reject) },
  { name: 'setHeaders (one async, one sync throwing)', route: (b) => b.setHeaders({ a: reject, b: boom }) },
  { name: 'template over a body that throws', route: (b) => b.setHeaderTemplate('h', '{body.x}'), body: { get x(): never { return boom(); } } },
  { name: 'split items (sync)', route: (b) => b.split(boom) },
  { name: 'split items (async)', route: (b) => b.split(reject) },
  {
    name: 'split: an async iterable failing half-way (parallel parts)',
    route: (b) =>
      b.split(async function* () {
        yield 1;
        throw new Error('user code failed');
      }, { parallel: 2 }),
  },
  { name: 'aggregate correlate (sync)', route: (b) => b.aggregate({ correlate: boom, size: 1 }) },
  { name: 'aggregate correlate (async)', route: (b) => b.aggregate({ correlate: reject, size: 1 }) },
  { name: 'aggregate combine on size (sync)', route: (b) => b.aggregate({ size: 1, combine: boom }), spawned: true },
  { name: 'aggregate combine on size (async)', route: (b) => b.aggregate({ size: 1, combine: reject }), spawned: true },
  { name: 'aggregate combine on timeout (timer)', route: (b) => b.aggregate({ timeoutMs: 10, combine: boom }), spawned: true },
  { name: 'aggregate combine on interval (timer)', route: (b) => b.aggregate({ intervalMs: 10, combine: boom }), spawned: true },
  { name: 'aggregate predicate (sync)', route: (b) => b.aggregate({ predicate: boom }) },
  { name: 'aggregate predicate (async)', route: (b) => b.aggregate({ predicate: reject }) },
  { name: 'resequence by (sync)', route: (b) => b.resequence({ by: boom }) },
  { name: 'resequence by (async, stream)', route: (b) => b.resequence({ by: reject, mode: 'stream' }) },
  { name: 'resequence batch flush on timeout with keys that cannot be compared (timer)', route: (b) => b.resequence({ by: () => Symbol('x') as unknown as number, batchSize: 2, timeoutMs: 10 }), spawned: true },
  { name: 'recipientList compute (sync)', route: (b) => b.recipientList(boom) },
  { name: 'recipientList compute (async)', route: (b) => b.recipientList(reject) },
  { name: 'recipientList strategy (sync)', route: (b) => b.recipientList(['mock:r1'], { strategy: boom }) },
  { name: 'recipientList strategy (async)', route: (b) => b.recipientList(['mock:r1'], { strategy: reject, parallel: true }) },
  { name: 'multicast strategy (sync)', route: (b) => b.multicast([(x) => x], { strategy: boom }) },
  { name: 'multicast strategy (async)', route: (b) => b.multicast([(x) => x], { strategy: reject }) },
  { name: 'scatterGather strategy when all settled (sync)', route: (b) => b.scatterGather({ recipients: ['mock:s1'], strategy: boom }) },
  { name: 'scatterGather strategy when all settled (async)', route: (b) => b.scatterGather({ recipients: ['mock:s1'], strategy: reject }) },
  { name: 'scatterGather strategy on timeout (timer)', route: (b) => b.scatterGather({ recipients: ['mock:s1', 'mock:slow?delayMs=5000'], timeoutMs: 20, strategy: boom }) },
  { name: 'scatterGather branch (sync): the gather has no reply left', route: (b) => b.scatterGather({ branches: [(x) => x.transform(boom)], minReplies: 1 }), code: 'BUSBAR_ERR_NO_REPLIES' },
  { name: 'enrich request (sync)', route: (b) => b.enrich('mock:e', { request: boom }) },
  { name: 'enrich merge (sync)', route: (b) => b.enrich('mock:e', { merge: boom }) },
  { name: 'enrich merge (async)', route: (b) => b.enrich('mock:e', { merge: reject }) },
  { name: 'claimCheck key (sync)', route: (b) => b.claimCheckIn({ key: boom }) },
  { name: 'claimCheck key (async)', route: (b) => b.claimCheckIn({ key: reject }) },
  { name: 'idempotent key (sync)', route: (b) => b.idempotent({ key: boom }) },
  { name: 'idempotent key (async)', route: (b) => b.idempotent({ key: reject }) },
  { name: 'routingSlip compute (sync)', route: (b) => b.routingSlip(boom) },
  { name: 'dynamicRouter compute (async)', route: (b) => b.dynamicRouter(reject) },
  { name: 'delay compute (sync)', route: (b) => b.delay(boom) },
  { name: 'delay compute (async)', route: (b) => b.delay(reject) },
  { name: 'mapReduce items (sync)', route: (b) => ANY(b).mapReduce({ items: boom, map: () => [], reduce: 'sum' }) },
  { name: 'mapReduce map (sync)', route: (b) => ANY(b).mapReduce({ map: boom, reduce: 'sum' }), body: [1, 2] },
  { name: 'mapReduce map (async)', route: (b) => ANY(b).mapReduce({ map: reject, reduce: 'sum' }), body: [1, 2] },
  { name: 'mapReduce reduce', route: (b) => ANY(b).mapReduce<number>({ map: () => [['k', 1] as const], reduce: boom }), body: [1, 2] },
  { name: 'timeout: user code failing after the time limit passed (timer)', route: (b) => b.timeout(10, (x) => x.delay(40).transform(boom)), code: 'BUSBAR_ERR_TIMEOUT' },
  { name: 'retry around user code', route: (b) => b.retry({ maxAttempts: 2 }, (x) => x.transform(boom)) },
  { name: 'circuitBreaker around user code', route: (b) => b.circuitBreaker({ minimumCalls: 100 }, (x) => x.transform(boom)) },
  { name: 'wireTap branch user code (spawned)', route: (b) => b.wireTap('direct:tap-boom'), spawned: true },
];

describe('user code never takes the process down', function () {
  this.timeout(20_000);

  it(`every step kind calling user code fails the message with STEP_FAILED via the error policy (${cases.length} code paths)`, async () => {
    const engine = new Engine({ logger: testLogger(), stopTimeoutMs: 2000 });
    const unexpected: unknown[] = [];
    const onUncaught = (e: unknown): void => void unexpected.push(e);
    process.on('unhandledRejection', onUncaught);
    try {
      cases.forEach((c, i) => engine.addRoutes(c.route(from<unknown>(`direct:case-${i}`).routeId(`case-${i}`).deadLetter(`mock:dlq-${i}`))));
      engine.addRoutes(from('direct:tap-boom').routeId('tap').deadLetter('mock:dlq-tap').transform(boom));
      await engine.start();
      const failures: Record<string, string> = {};
      await Promise.all(
        cases.map(async (c, i) => {
          // resequence batches and interval aggregates need a second message or a tick
          const sent = [engine.send(`direct:case-${i}`, c.body ?? { n: i })];
          if (c.name.startsWith('resequence batch')) sent.push(engine.send(`direct:case-${i}`, { n: i }));
          const outcome = await Promise.all(sent).then(
            () => 'ok',
            (e: { code?: string }) => e.code ?? 'uncoded',
          );
          const want = c.code ?? 'BUSBAR_ERR_STEP_FAILED';
          if (!c.spawned && outcome !== want) failures[c.name] = `send: ${outcome}`;
          const dlq = engine.mock(c.name.startsWith('wireTap') ? 'mock:dlq-tap' : `mock:dlq-${i}`);
          await waitFor(() => dlq.received.length > 0, 5000, `${c.name}: dead letter`).catch(() => (failures[c.name] = 'nothing dead-lettered'));
          const code = dlq.received[0]?.headers['busbar.error.code'];
          if (code !== undefined && code !== want) failures[c.name] = `dead-lettered with ${String(code)}`;
        }),
      );
      expect(failures).to.deep.equal({});
      expect(unexpected).to.deep.equal([]);
    } finally {
      process.off('unhandledRejection', onUncaught);
      await engine.stop();
    }
  });

  it('a scatter-gather strategy that throws on timeout does not stop other messages of the route', async () => {
    const engine = new Engine({ logger: testLogger() });
    let calls = 0;
    engine.addRoutes(
      from<number>('direct:sg')
        .deadLetter('mock:dlq')
        .scatterGather({
          recipients: ['mock:quick', 'mock:slow?delayMs=3000'],
          timeoutMs: 20,
          strategy: (replies) => {
            if (++calls === 1) throw new Error('first gather fails');
            return replies.length;
          },
        }),
      from<number>('direct:ok').transform((n) => n + 1),
    );
    await engine.start();
    const first = await engine.request('direct:sg', 1).catch((e: { code?: string }) => e.code);
    expect(first).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(await engine.request('direct:sg', 2)).to.equal(1);
    expect(await engine.request('direct:ok', 1)).to.equal(2);
    expect(engine.mock('mock:dlq').received).to.have.length(1);
    await engine.stop({ timeoutMs: 100 });
  });

  it('pipe() fragments with user code are isolated too (a branch of a multicast)', async () => {
    const engine = new Engine({ logger: testLogger() });
    engine.addRoutes(from<number>('direct:m').deadLetter('mock:dlq').multicast([pipe<number>().transform(boom), pipe<number>()], { parallel: true }));
    await engine.start();
    const code = await engine.send('direct:m', 1).catch((e: { code?: string }) => e.code);
    expect(code).to.equal('BUSBAR_ERR_STEP_FAILED');
    await engine.stop();
  });
});
