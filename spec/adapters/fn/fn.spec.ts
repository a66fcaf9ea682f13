import { expect } from 'chai';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { createFnAdapter, functionUrl, type FnAdapter, type FunctionInput, type FunctionStats } from '../../../adapters/fn/index.js';
import { createHttpAdapter } from '../../../adapters/http/index.js';
import { Engine, from } from '../../../lib/index.js';
import { rejection, testLogger, waitFor } from '../../helpers.js';
import { TestSource } from '../../lib/source-adapter.js';

const FIXTURES = resolve('spec/fixtures/fn/functions.mjs');
const fn = (exportName: string, more: Partial<FunctionInput> = {}): FunctionInput => ({ module: FIXTURES, export: exportName, idleTimeoutMs: 200, ...more });

function statsOf(engine: Engine, name: string): FunctionStats {
  const f = engine.stats().adapters?.fn?.functions as Record<string, FunctionStats> | undefined;
  return f![name]!;
}

describe('fn adapter: functions on worker threads', function () {
  this.timeout(20_000);
  let engine: Engine | undefined;
  afterEach(async () => {
    await engine?.stop({ timeoutMs: 2000 });
    engine = undefined;
  });

  async function start(fns: FnAdapter, ...routes: Parameters<Engine['addRoutes']>): Promise<Engine> {
    engine = new Engine({ logger: testLogger(), adapters: [fns, createHttpAdapter()] });
    engine.addRoutes(...routes);
    await engine.start();
    return engine;
  }

  it('runs a TypeScript module on a worker thread and replies with its result', async () => {
    const fns = createFnAdapter({ functions: { total: { module: resolve('spec/fixtures/fn/typed.ts') }, headers: fn('headers') } });
    const e = await start(fns, from('direct:total').to('fn:total'), from('direct:headers').to('fn:headers'));
    expect(await e.request('direct:total', { items: [{ price: 2.5, qty: 4 }, { price: 1, qty: 3 }] })).to.deep.equal({ total: 13 });
    const r = await e.request<{ fn: string; tenant: string; body: unknown }>('direct:headers', { a: 1 }, { tenant: 'acme' });
    expect(r).to.include({ fn: 'headers', tenant: 'acme' });
    expect(r.body).to.deep.equal({ a: 1 });
    expect(statsOf(e, 'total')).to.include({ invocations: 1, completed: 1, coldStarts: 1 });
    expect(statsOf(e, 'total').coldStartMs.count).to.equal(1);
    expect(statsOf(e, 'total').coldStartMs.last).to.be.greaterThan(0);
  });

  it('scales from 0 to maxWorkers under a burst and back to 0 when idle; with minWorkers 1 back to 1', async () => {
    const fns = createFnAdapter({ functions: { zero: fn('sleep', { maxWorkers: 4, idleTimeoutMs: 150 }), one: fn('sleep', { minWorkers: 1, maxWorkers: 3, idleTimeoutMs: 150 }) } });
    const e = await start(fns, from('direct:zero').to('fn:zero'), from('direct:one').to('fn:one'));
    expect(statsOf(e, 'zero').workers).to.equal(0);
    const burst = await Promise.all(Array.from({ length: 12 }, () => e.request<{ threadId: number }>('direct:zero', { ms: 150 })));
    const s = statsOf(e, 'zero');
    expect(new Set(burst.map((b) => b.threadId)).size).to.equal(4);
    expect(s.peakWorkers).to.equal(4);
    expect(s.coldStarts).to.equal(4);
    expect(s.completed).to.equal(12);
    await waitFor(() => statsOf(e, 'zero').workers === 0, 5000, 'the pool to scale back to 0');
    // a call after scaling to zero is a cold start again
    await e.request('direct:zero', { ms: 1 });
    expect(statsOf(e, 'zero').coldStarts).to.equal(5);

    await waitFor(() => statsOf(e, 'one').workers === 1, 5000, 'minWorkers started');
    await Promise.all(Array.from({ length: 9 }, () => e.request('direct:one', { ms: 400 })));
    expect(statsOf(e, 'one').peakWorkers).to.equal(3);
    await waitFor(() => statsOf(e, 'one').workers === 1, 5000, 'the pool to scale back to minWorkers');
    await new Promise((r) => setTimeout(r, 300));
    expect(statsOf(e, 'one').workers).to.equal(1);
  });

  it('a throwing, looping or crashing function fails only its own message; the others and the engine carry on', async () => {
    const fns = createFnAdapter({ functions: { fail: fn('fail'), loop: fn('loop', { timeoutMs: 300, maxWorkers: 1 }), exit: fn('exit'), ok: fn('double') } });
    const e = await start(
      fns,
      from('direct:fail').to('fn:fail'),
      from('direct:loop').to('fn:loop'),
      from('direct:exit').to('fn:exit'),
      from('direct:ok').to('fn:ok'),
    );
    const [thrown, looped, crashed, fine] = await Promise.allSettled([e.request('direct:fail', { x: 1 }), e.request('direct:loop', {}), e.request('direct:exit', {}), e.request('direct:ok', { n: 4 })]);
    expect((thrown as PromiseRejectedResult).reason.code).to.equal('BUSBAR_ERR_FN_FAILED');
    expect((thrown as PromiseRejectedResult).reason.details.error).to.include({ name: 'RangeError', message: 'bad input {"x":1}' });
    expect((looped as PromiseRejectedResult).reason.code).to.equal('BUSBAR_ERR_TIMEOUT');
    expect((crashed as PromiseRejectedResult).reason.code).to.equal('BUSBAR_ERR_FN_CRASHED');
    expect((fine as PromiseFulfilledResult<unknown>).value).to.deep.equal({ n: 8 });
    // the looping function's worker was stopped: the single-worker pool serves the next call
    expect((await rejection(e.request('direct:loop', {}))).code).to.equal('BUSBAR_ERR_TIMEOUT');
    expect(await e.request('direct:ok', { n: 5 })).to.deep.equal({ n: 10 });
    expect(statsOf(e, 'loop')).to.include({ invocations: 2, timedOut: 2 });
    expect(statsOf(e, 'exit')).to.include({ invocations: 1, crashed: 1 });
    expect(statsOf(e, 'fail')).to.include({ invocations: 1, failed: 1 });
    expect(e.state).to.equal('started');
  });

  it('the error policy applies: a failed function call is retried, then dead-lettered with its code; the source acks after the function returned', async () => {
    const src = new TestSource();
    const fns = createFnAdapter({ functions: { flaky: fn('slowOrFail') } });
    engine = new Engine({ logger: testLogger(), adapters: [fns, src.adapter()] });
    engine.addRoutes(from('src:in').routeId('r').onError('BUSBAR_ERR_FN_FAILED', { redelivery: { maxAttempts: 3, delayMs: 1 }, deadLetter: 'mock:dead' }).to('fn:flaky').to('mock:out'));
    await engine.start();
    const t0 = Date.now();
    expect(await src.push({ ms: 150 })).to.equal('ack');
    expect(Date.now() - t0).to.be.at.least(150);
    expect(await src.push({ fail: true })).to.equal('ack');
    expect(engine.mock('mock:out').received.map((m) => m.body)).to.deep.equal([{ ms: 150 }]);
    const dead = engine.mock('mock:dead').received;
    expect(dead).to.have.length(1);
    expect(dead[0]!.headers['busbar.error.code']).to.equal('BUSBAR_ERR_FN_FAILED');
    expect(statsOf(engine, 'flaky')).to.include({ invocations: 4, completed: 1, failed: 3 });
  });

  it('meters a known workload exactly: counts, CPU time and wall time per invocation', async () => {
    const fns = createFnAdapter({ functions: { burn: fn('burn', { maxWorkers: 2 }), sleep: fn('sleep', { maxWorkers: 2 }), fail: fn('fail') } });
    const e = await start(fns, from('direct:burn').to('fn:burn'), from('direct:sleep').to('fn:sleep'), from('direct:fail').to('fn:fail'));
    for (let i = 0; i < 5; i++) await e.request('direct:burn', { cpuMs: 40 });
    for (let i = 0; i < 3; i++) await e.request('direct:sleep', { ms: 60 });
    for (let i = 0; i < 2; i++) await rejection(e.request('direct:fail', {}));
    const burn = statsOf(e, 'burn');
    expect(burn).to.include({ invocations: 5, completed: 5, failed: 0, timedOut: 0, crashed: 0 });
    // 5 x 40 ms of the thread's own CPU, plus the loop's last check and the meter's reads
    expect(burn.cpuMs).to.be.within(200, 225);
    expect(burn.lastCpuMs).to.be.within(40, 45);
    // wall and thread CPU are read by different clocks at slightly different points: wall covers the burned time
    expect(burn.wallMs).to.be.at.least(200);
    const sleep = statsOf(e, 'sleep');
    expect(sleep).to.include({ invocations: 3, completed: 3 });
    expect(sleep.wallMs).to.be.at.least(180);
    expect(sleep.cpuMs).to.be.below(30);
    expect(statsOf(e, 'fail')).to.include({ invocations: 2, completed: 0, failed: 2 });
  });

  it('recycles a worker after maxInvocationsPerWorker, and one whose heap grew past maxHeapMb', async () => {
    const fns = createFnAdapter({ functions: { who: fn('whoami', { maxWorkers: 1, maxInvocationsPerWorker: 3 }), leak: fn('leak', { maxWorkers: 1, maxHeapMb: 40 }) } });
    const e = await start(fns, from('direct:who').to('fn:who'), from('direct:leak').to('fn:leak'));
    const seen: Array<{ threadId: number; served: number }> = [];
    for (let i = 0; i < 7; i++) seen.push(await e.request('direct:who', {}));
    expect(seen.map((s) => s.served)).to.deep.equal([1, 2, 3, 1, 2, 3, 1]);
    expect(new Set(seen.map((s) => s.threadId)).size).to.equal(3);
    expect(statsOf(e, 'who')).to.include({ recycled: 2, coldStarts: 3, completed: 7 });
    // each call keeps 16 MB more: the worker is replaced once it holds over 40 MB
    const held: number[] = [];
    for (let i = 0; i < 6; i++) held.push((await e.request<{ held: number }>('direct:leak', { mb: 16 })).held);
    expect(held).to.deep.equal([1, 2, 3, 1, 2, 3]);
    expect(statsOf(e, 'leak').recycled).to.equal(2);
  });

  it('queued calls behind a recycled single worker still run', async () => {
    const fns = createFnAdapter({ functions: { who: fn('whoami', { maxWorkers: 1, maxInvocationsPerWorker: 2 }) } });
    const e = await start(fns, from('direct:who').to('fn:who'));
    const all = await Promise.all(Array.from({ length: 9 }, () => e.request<{ served: number }>('direct:who', {})));
    expect(all.map((a) => a.served).sort()).to.deep.equal([1, 1, 1, 1, 1, 2, 2, 2, 2]);
  });

  it('refuses unknown functions, bad settings and unloadable modules with coded errors', async () => {
    expect(() => createFnAdapter({ functions: { x: { module: FIXTURES, maxWorkers: 0 } } })).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
    expect(() => createFnAdapter({ functions: { x: { module: FIXTURES, minWorkers: 3, maxWorkers: 2 } } })).to.throw(/minWorkers/);
    expect(() => createFnAdapter({ functions: { 'Bad Name': { module: FIXTURES } } })).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
    const fns = createFnAdapter({ functions: { double: fn('double'), missing: { module: resolve('spec/fixtures/fn/nope.mjs') }, noexport: fn('nothing') } });
    const e = await start(fns, from('direct:a').to('fn:doubel'), from('direct:m').to('fn:missing'), from('direct:n').to('fn:noexport'));
    const nf = await rejection(e.request('direct:a', { n: 1 }));
    expect(nf.code).to.equal('BUSBAR_ERR_FN_NOT_FOUND');
    expect(nf.message).to.include('did you mean "double"');
    expect((await rejection(e.request('direct:m', {}))).code).to.equal('BUSBAR_ERR_FN_LOAD');
    const ne = await rejection(e.request('direct:n', {}));
    expect(ne.code).to.equal('BUSBAR_ERR_FN_LOAD');
    expect(ne.message).to.include('exports no function "nothing"');
    expect(() => new Engine({ logger: testLogger(), adapters: [fns] }).addRoutes(from('direct:x').to('fn:double?maxWorkers=3'))).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
  });

  it('a result that cannot leave the worker fails that message with FN_FAILED', async () => {
    const fns = createFnAdapter({ functions: { bad: fn('unclonable') } });
    const e = await start(fns, from('direct:bad').to('fn:bad'));
    expect((await rejection(e.request('direct:bad', {}))).code).to.equal('BUSBAR_ERR_FN_FAILED');
  });

  it('runs in-process when asked, metered the same way', async () => {
    const fns = createFnAdapter({ functions: { double: fn('double', { isolation: 'in-process' }) } });
    const e = await start(fns, from('direct:d').to('fn:double'));
    expect(await e.request('direct:d', { n: 2 })).to.deep.equal({ n: 4 });
    expect(statsOf(e, 'double')).to.include({ invocations: 1, completed: 1, coldStarts: 1, workers: 0, isolation: 'in-process' });
  });

  it('exposes a function over HTTP (a function URL)', async () => {
    const fns = createFnAdapter({ functions: { double: fn('double'), fail: fn('fail'), loop: fn('loop', { timeoutMs: 200 }) } });
    const e = await start(fns, functionUrl('double', { port: 0 }), functionUrl('fail', { port: 0 }));
    const { boundPort } = await import('../../../adapters/http/index.js');
    const port = boundPort(e, 0)!;
    const post = (path: string, body: unknown): Promise<{ status: number; body: unknown }> =>
      new Promise((res, rej) => {
        const data = JSON.stringify(body);
        const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => res({ status: r.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
        });
        req.on('error', rej);
        req.end(data);
      });
    expect(await post('/fn/double', { n: 21 })).to.deep.equal({ status: 200, body: { n: 42 } });
    const failed = await post('/fn/fail', { n: 1 });
    expect(failed.status).to.equal(500);
    expect((failed.body as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_FN_FAILED');
  });
});
