import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Piscina } from 'piscina';
import { createFnAdapter, type FunctionStats } from '../../dist/adapters/fn/index.js';
import { Engine, from } from '../../dist/lib/index.js';
import { bestOf, round, type BenchCase } from '../harness.js';

const MODULE = fileURLToPath(new URL('../children/fn-cpu-work.mjs', import.meta.url));

/** Run `count` calls with at most `window` in flight. */
async function windowed(count: number, window: number, call: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await call(next++);
  };
  await Promise.all(Array.from({ length: window }, lane));
}

const bench: BenchCase = {
  name: 'fn-cpu',
  description: 'a CPU-heavy function (40k steps of arithmetic) over 10,000 messages: busbar fn: pool (warm, one worker per core) vs a hand-written piscina loop (baseline) vs in-process; cold start of a pool scaled to zero',
  async run({ quick }) {
    const n = quick ? 2_000 : 10_000;
    const cores = availableParallelism();
    const window = cores * 4;
    const work = ((await import(MODULE)) as { default: (b: { seed: number }) => { x: number } }).default;

    // in-process: the same function on the main thread, one call after the other
    const inProcessPerS = await bestOf(1, n, () => {
      for (let i = 0; i < n; i++) work({ seed: i });
    });

    // baseline: piscina by hand, the same pool size, the same number in flight
    const pool = new Piscina({ filename: MODULE, minThreads: cores, maxThreads: cores, idleTimeout: 60_000 });
    const baselinePerS = await bestOf(2, n, () => windowed(n, window, (i) => pool.run({ seed: i })));
    await pool.destroy();

    // busbar: a route to fn:work on a warm pool of the same size
    const fns = createFnAdapter({ functions: { work: { module: MODULE, minWorkers: cores, maxWorkers: cores, idleTimeoutMs: 60_000 }, cold: { module: MODULE, minWorkers: 0, maxWorkers: 1 } } });
    const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [fns], maxInflight: window });
    engine.addRoutes(from('direct:work').to('fn:work'), from('direct:cold').to('fn:cold'));
    await engine.start();
    const busbarPerS = await bestOf(2, n, () => windowed(n, window, (i) => engine.request('direct:work', { seed: i })));

    // cold start: the first call on a pool at zero (busbar's figure), and piscina's own
    await engine.request('direct:cold', { seed: 1 });
    const stats = (engine.stats().adapters.fn!.functions as Record<string, FunctionStats>);
    const cold = stats.cold!;
    const fw = stats.work!;
    await engine.stop();
    const coldPool = new Piscina({ filename: MODULE, minThreads: 0, maxThreads: 1 });
    const t0 = performance.now();
    await coldPool.run({ seed: 1 });
    const piscinaColdMs = performance.now() - t0;
    await coldPool.destroy();

    return {
      busbar_per_s: busbarPerS,
      baseline_per_s: baselinePerS,
      in_process_per_s: round(inProcessPerS),
      busbar_vs_in_process: round(busbarPerS / inProcessPerS, 2),
      workers: cores,
      cold_start_ms: round(cold.coldStartMs.last, 1),
      cold_module_load_ms: round(cold.moduleLoadMs.last, 1),
      piscina_cold_start_ms: round(piscinaColdMs, 1),
      metered_invocations: fw.invocations,
      metered_cpu_ms_per_call: round(fw.cpuMs / fw.invocations, 3),
      metered_wall_ms_per_call: round(fw.wallMs / fw.invocations, 3),
    };
  },
};
export default bench;
