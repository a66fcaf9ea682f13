import { Type } from '@sinclair/typebox';
import { Session } from 'node:inspector/promises';
import type { Adapter } from '../dist/lib/adapter.js';

/**
 * Benchmark harness. Cases measure the compiled package (dist/, what users run; `npm run
 * bench` builds it first), not the sources through a TypeScript loader, whose helpers would
 * be counted as busbar's cost. A case runs busbar and a hand-written baseline doing the same
 * work in the same run; `npm run bench` prints one JSON line per case:
 * {"case":"<name>","busbar_per_s":N,"baseline_per_s":N,"ratio":R, ...extras}
 * (ratio = busbar / baseline, higher is better).
 */
export interface BenchResult {
  busbar_per_s: number;
  baseline_per_s: number;
  /** Extra figures: memory, counts, percentiles. */
  [extra: string]: number | string | boolean;
}

export interface BenchCase {
  name: string;
  description: string;
  /** Servers the case needs (started by scripts/*.sh before it runs) and tools (installed by them when missing, as root). */
  requires?: Array<'rabbitmq' | 'rabbitmq2' | 'postgres' | 'valgrind'>;
  run(opts: { quick: boolean }): Promise<BenchResult>;
}

/** Run `fn` and return operations per second for `count` operations. */
export async function perSecond(count: number, fn: () => Promise<void> | void): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  const ns = Number(process.hrtime.bigint() - t0);
  return count / (ns / 1e9);
}

/** Best of `rounds` runs (after one warm-up run), to dampen a noisy 2-core machine. */
export async function bestOf(rounds: number, count: number, fn: () => Promise<void> | void): Promise<number> {
  await fn();
  let best = 0;
  for (let i = 0; i < rounds; i++) best = Math.max(best, await perSecond(count, fn));
  return best;
}

/**
 * The in-process schedule: one warm-up run of each side, then three rounds alternating which
 * side goes first (a load spike on a shared machine then hits both sides, not one), each
 * side's best round; and the heap growth over busbar's runs (MB, one decimal).
 */
export async function sideBySide(count: number, baseline: () => Promise<void> | void, busbar: () => Promise<void> | void): Promise<{ baselinePerS: number; busbarPerS: number; heapGrowthMb: number }> {
  await baseline();
  await busbar();
  let baselinePerS = 0;
  let busbarPerS = 0;
  let heapGrowth = 0;
  const runBusbar = async (): Promise<void> => {
    const before = process.memoryUsage().heapUsed;
    busbarPerS = Math.max(busbarPerS, await perSecond(count, busbar));
    heapGrowth += process.memoryUsage().heapUsed - before;
  };
  const runBaseline = async (): Promise<void> => {
    baselinePerS = Math.max(baselinePerS, await perSecond(count, baseline));
  };
  for (let r = 0; r < 3; r++) {
    if (r % 2 === 0) {
      await runBaseline();
      await runBusbar();
    } else {
      await runBusbar();
      await runBaseline();
    }
  }
  return { baselinePerS, busbarPerS, heapGrowthMb: round(heapGrowth / 1048576, 1) };
}

/** Messages a side handles while its allocations are counted. */
export const ALLOC_SAMPLE = 20_000;

/**
 * Bytes allocated per message while `side` handles ALLOC_SAMPLE messages (or `upTo`, when
 * fewer): V8's sampling heap profiler
 * with every object counted, collected ones too (one sample per 256 bytes on average; runs of
 * different lengths agree to a few percent, as the optimizing compiler removes some
 * allocations only once it has seen enough messages). Unlike time, it does not move with what
 * else the machine is doing, so it shows a change too small to see in a ratio of times on a
 * shared machine.
 */
export async function allocatedPerMessage(side: (count: number) => Promise<void> | void, upTo: number): Promise<number> {
  const count = Math.min(upTo, ALLOC_SAMPLE);
  const session = new Session();
  session.connect();
  try {
    await session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
    await side(count);
    const { profile } = await session.post('HeapProfiler.stopSampling');
    let total = 0;
    const todo = [profile.head];
    for (let node = todo.pop(); node !== undefined; node = todo.pop()) {
      total += node.selfSize;
      todo.push(...node.children);
    }
    return Math.round(total / count);
  } finally {
    session.disconnect();
  }
}

export function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * Deliveries counted per name, and the last body delivered: what the `count:` sink does for
 * busbar and what a case's hand-written (and rxjs) side calls for its outputs, so every side
 * pays the same for the sink and a ratio measures only what lies before it.
 */
export class Tally {
  readonly counts: Map<string, number>;
  last: unknown;
  constructor(counts: Map<string, number> = new Map()) {
    this.counts = counts;
  }
  add(name: string, body: unknown): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    this.last = body;
  }
  get(name: string): number {
    return this.counts.get(name) ?? 0;
  }
}

/**
 * `count:<name>`: a bench sink that counts deliveries per endpoint name and keeps the last
 * body (a Tally), recording nothing else, so memory stays flat however many messages pass.
 */
export function countingAdapter(counts: Map<string, number> | Tally): Adapter {
  const tally = counts instanceof Tally ? counts : new Tally(counts);
  return {
    scheme: 'count',
    description: 'bench sink',
    optionsSchema: Type.Object({}, { additionalProperties: false }),
    createProducer(endpoint) {
      const name = endpoint.path;
      tally.counts.set(name, 0);
      return {
        send(msg) {
          tally.add(name, msg.body);
          // done on return, like any in-memory sink (Producer.send may then skip the promise)
          return undefined;
        },
      };
    },
  };
}

/**
 * One discarded run of each side (neither gets a pristine broker or a cold JIT), then
 * `rounds` runs alternating which side goes first; `afterWarmup` resets the figures.
 */
export async function alternateRounds(rounds: number, runBaseline: () => Promise<void>, runBusbar: () => Promise<void>, afterWarmup: () => void): Promise<void> {
  await runBaseline();
  await runBusbar();
  afterWarmup();
  for (let r = 0; r < rounds; r++) {
    const [first, second] = r % 2 === 0 ? [runBaseline, runBusbar] : [runBusbar, runBaseline];
    await first();
    await second();
  }
}

/** Microseconds per message on the busbar side, and what busbar adds over the baseline. */
export function perMessageFigures(busbarPerS: number, baselinePerS: number, digits = 3): { busbar_us_per_msg: number; overhead_us_per_msg: number } {
  return { busbar_us_per_msg: round(1e6 / busbarPerS, digits), overhead_us_per_msg: round(1e6 / busbarPerS - 1e6 / baselinePerS, digits) };
}
