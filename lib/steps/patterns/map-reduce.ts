import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isAbsolute, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { BusbarError } from '../../errors.js';
import { withBody, type Message } from '../../message.js';
import { isPromise, then, type CompileContext, type MaybePromise, type StepKind } from '../../step.js';
import { computedFromConfig, computedSchema, evaluator, type Computed } from '../core.js';
import { tokenizeChunks } from './split.js';

export type KeyValue = readonly [string, unknown];
export type MapFn = (item: unknown) => MaybePromise<Iterable<KeyValue>>;
export type ReduceFn = (a: unknown, b: unknown, key: string) => unknown;
export type NamedReduce = 'sum' | 'count' | 'min' | 'max';

export interface MapReduceArgs {
  /** The items (default: the body): an array, iterable or async iterable, read as a stream. */
  items?: Computed | undefined;
  /** Split text (string, Buffer, stream of chunks) into items on this delimiter. */
  tokenize?: string | undefined;
  /** Item -> [key, value] pairs. Not needed when `workers.module` exports `map`. */
  map?: MapFn | undefined;
  /**
   * Combines two values of a key. Must be associative and commutative: it is applied as
   * values arrive (and inside workers), so memory is bounded by the number of keys.
   */
  reduce?: ReduceFn | NamedReduce | undefined;
  /** Map (and pre-reduce) in worker threads: `module` exports `map` (and `reduce` unless a named reduce is given). */
  workers?: { module: string | URL; threads?: number | undefined; batchSize?: number | undefined } | undefined;
  /** `object` (default): `{ key: value }`; `entries`: `[key, value][]` sorted by value, largest first. */
  output?: 'object' | 'entries' | undefined;
}

export const namedReducers: Record<NamedReduce, ReduceFn> = {
  sum: (a, b) => Number(a) + Number(b),
  count: (a, b) => Number(a) + Number(b),
  min: (a, b) => ((a as number) <= (b as number) ? a : b),
  max: (a, b) => ((a as number) >= (b as number) ? a : b),
};

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

function itemsOf(value: unknown, tokenize: string | undefined, ctx: CompileContext): AsyncIterable<unknown> | Iterable<unknown> {
  if (tokenize !== undefined) {
    if (typeof value === 'string' || Buffer.isBuffer(value)) return tokenizeChunks([value], tokenize);
    if (isAsyncIterable(value) || (value !== null && typeof value === 'object' && Symbol.iterator in value)) return tokenizeChunks(value as AsyncIterable<unknown>, tokenize);
  } else if (Array.isArray(value) || isAsyncIterable(value) || (value !== null && typeof value === 'object' && Symbol.iterator in value)) {
    return value as Iterable<unknown>;
  }
  throw new BusbarError('SPLIT_INPUT', `route "${ctx.routeId}", step ${ctx.path} (mapReduce): cannot read items from a ${value === null ? 'null' : typeof value}`, { details: { routeId: ctx.routeId, step: ctx.path } });
}

/**
 * A worker running map-reduce-worker next to this module. Built (.js) it is loaded as is;
 * run from source (.ts under tsx) the worker registers tsx first, because loader hooks of
 * the main thread do not reach worker threads.
 */
function startWorker(workerData: unknown): Worker {
  const ts = new URL('./map-reduce-worker.ts', import.meta.url);
  if (import.meta.url.endsWith('.ts') && existsSync(fileURLToPath(ts))) {
    const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); })`;
    return new Worker(boot, { eval: true, workerData });
  }
  return new Worker(new URL('./map-reduce-worker.js', import.meta.url), { workerData });
}

function moduleUrl(m: string | URL): string {
  if (m instanceof URL) return m.href;
  if (m.startsWith('file:')) return m;
  return pathToFileURL(isAbsolute(m) ? m : resolve(m)).href;
}

interface Pending {
  resolve: (entries: Array<[string, unknown]>) => void;
  reject: (e: unknown) => void;
}

/** A small pool: each worker maps and pre-reduces a batch of items, returning the batch's [key, value] entries. */
class WorkerPool {
  readonly #workers: Array<{ worker: Worker; pending: Map<number, Pending>; load: number }> = [];
  #seq = 0;
  #failed: BusbarError | undefined;

  constructor(module: string, reduce: NamedReduce | undefined, threads: number) {
    for (let i = 0; i < threads; i++) {
      const worker = startWorker({ module, reduce });
      const slot = { worker, pending: new Map<number, Pending>(), load: 0 };
      worker.on('message', (m: { id: number; entries?: Array<[string, unknown]>; error?: string; fatal?: boolean }) => {
        const p = slot.pending.get(m.id);
        if (!p) return;
        slot.pending.delete(m.id);
        slot.load--;
        if (m.error !== undefined) p.reject(new BusbarError(m.fatal ? 'WORKER_FAILED' : 'STEP_FAILED', `map/reduce worker: ${m.error}`, { details: { module } }));
        else p.resolve(m.entries ?? []);
      });
      const fail = (e: unknown): void => {
        this.#failed = new BusbarError('WORKER_FAILED', `map/reduce worker for ${module} failed: ${(e as Error)?.message ?? String(e)}`, { cause: e, details: { module } });
        for (const p of slot.pending.values()) p.reject(this.#failed);
        slot.pending.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => {
        if (slot.pending.size) fail(new Error(`worker exited with code ${code}`));
      });
      this.#workers.push(slot);
    }
  }

  run(items: unknown[]): Promise<Array<[string, unknown]>> {
    if (this.#failed) return Promise.reject(this.#failed);
    let slot = this.#workers[0]!;
    for (const w of this.#workers) if (w.load < slot.load) slot = w;
    const id = ++this.#seq;
    slot.load++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, items });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.worker.terminate()));
  }
}

/**
 * Map/reduce over the items of a message: split -> map (in process, or across worker
 * threads for CPU-heavy maps) -> group by key -> reduce -> the result replaces the body.
 * Items are streamed; batches in flight to workers are bounded (2 per thread).
 */
export const mapReduceStep: StepKind<MapReduceArgs> = {
  name: 'mapReduce',
  description: 'Map/reduce over the items of a message (array, iterable, async iterable or text lines): map each item to [key, value] pairs (in process or in worker threads), reduce values per key, and the result ({ key: value } or sorted entries) becomes the body.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      items: { ...computedSchema, description: 'JSONata expression or { fn } giving the items (default: the body)' },
      tokenize: { type: 'string', minLength: 1, description: 'split text into items on this delimiter' },
      map: { type: 'object', additionalProperties: false, required: ['fn'], properties: { fn: { type: 'string' } }, description: '{ fn }: registered function item -> [[key, value], ...]' },
      reduce: {
        oneOf: [{ enum: ['sum', 'count', 'min', 'max'] }, { type: 'object', additionalProperties: false, required: ['fn'], properties: { fn: { type: 'string' } } }],
        description: 'sum | count | min | max, or { fn } called with ([a, b])',
      },
      workers: {
        type: 'object',
        additionalProperties: false,
        required: ['module'],
        properties: {
          module: { type: 'string', minLength: 1, description: 'path of a module exporting map (and reduce)' },
          threads: { type: 'integer', minimum: 1, maximum: 64, description: 'worker threads (default 2)' },
          batchSize: { type: 'integer', minimum: 1, description: 'items per batch sent to a worker (default 1000)' },
        },
      },
      output: { enum: ['object', 'entries'], default: 'object' },
    },
  },
  fromConfig(value, ctx) {
    const v = value as { items?: unknown; tokenize?: string; map?: { fn: string }; reduce?: NamedReduce | { fn: string }; workers?: MapReduceArgs['workers']; output?: 'object' | 'entries' };
    const args: MapReduceArgs = { tokenize: v.tokenize, workers: v.workers, output: v.output };
    if (v.items !== undefined) args.items = computedFromConfig(v.items, ctx, `${ctx.path}/items`);
    if (v.map) {
      const f = ctx.fn(v.map.fn, `${ctx.path}/map/fn`);
      if (f) args.map = (item) => f(item, undefined as never) as Iterable<KeyValue>;
    } else if (!v.workers) ctx.problem({ path: ctx.path, message: 'mapReduce needs map ({ fn }) or workers.module' });
    if (typeof v.reduce === 'string') args.reduce = v.reduce;
    else if (v.reduce) {
      const f = ctx.fn(v.reduce.fn, `${ctx.path}/reduce/fn`);
      if (f) args.reduce = (a, b) => f([a, b], undefined as never);
    }
    return args;
  },
  compile(args, next, ctx) {
    const items = args.items ? evaluator(args.items) : (m: Message) => m.body;
    const output = args.output ?? 'object';
    const named = typeof args.reduce === 'string' ? args.reduce : undefined;
    let reduce: ReduceFn | undefined = typeof args.reduce === 'function' ? args.reduce : named ? namedReducers[named] : undefined;
    const w = args.workers;
    if (!w && !args.map) throw new BusbarError('INVALID_ROUTE', 'mapReduce needs a map function or workers.module');
    if (!w && !reduce) throw new BusbarError('INVALID_ROUTE', 'mapReduce needs a reduce function (or sum, count, min, max)');
    const threads = w?.threads ?? 2;
    const batchSize = w?.batchSize ?? 1000;
    const mod = w ? moduleUrl(w.module) : undefined;
    let pool: WorkerPool | undefined;
    ctx.onStop(async () => {
      await pool?.close();
      pool = undefined;
    });

    const fold = (acc: Map<string, unknown>, key: string, value: unknown): void => {
      acc.set(key, acc.has(key) ? reduce!(acc.get(key), value, key) : value);
    };
    const result = (acc: Map<string, unknown>): unknown =>
      output === 'entries' ? [...acc.entries()].sort((a, b) => (Number(b[1]) - Number(a[1])) || (a[0] < b[0] ? -1 : 1)) : Object.fromEntries(acc);

    const inProcess = async (src: AsyncIterable<unknown> | Iterable<unknown>): Promise<Map<string, unknown>> => {
      const acc = new Map<string, unknown>();
      const map = args.map!;
      for await (const item of src as AsyncIterable<unknown>) {
        const pairs = map(item);
        for (const [k, v] of isPromise(pairs) ? await pairs : pairs) fold(acc, k, v);
      }
      return acc;
    };

    const inWorkers = async (src: AsyncIterable<unknown> | Iterable<unknown>): Promise<Map<string, unknown>> => {
      if (!reduce) {
        const m = (await import(mod!)) as { reduce?: ReduceFn };
        if (typeof m.reduce !== 'function') throw new BusbarError('WORKER_FAILED', `${mod} exports no reduce function and no named reduce was given`, { details: { module: mod } });
        reduce = m.reduce;
      }
      pool ??= new WorkerPool(mod!, named, threads);
      const p = pool;
      const acc = new Map<string, unknown>();
      const active = new Set<Promise<void>>();
      let failure: { e: unknown } | undefined;
      const dispatch = (batch: unknown[]): void => {
        const t: Promise<void> = p.run(batch).then(
          (entries) => {
            active.delete(t);
            // reduce is user code, run in this callback: a throw fails the message, never goes unobserved
            try {
              for (const [k, v] of entries) fold(acc, k, v);
            } catch (e) {
              failure ??= { e };
            }
          },
          (e: unknown) => {
            active.delete(t);
            failure ??= { e };
          },
        );
        active.add(t);
      };
      let batch: unknown[] = [];
      for await (const item of src as AsyncIterable<unknown>) {
        batch.push(item);
        if (batch.length >= batchSize) {
          dispatch(batch);
          batch = [];
          while (active.size >= threads * 2) await Promise.race(active);
          if (failure) break;
        }
      }
      if (batch.length && !failure) dispatch(batch);
      await Promise.all(active);
      if (failure) throw failure.e;
      return acc;
    };

    return (msg) => then(items(msg), async (value) => next(withBody(msg, result(await (w ? inWorkers : inProcess)(itemsOf(value, args.tokenize, ctx))))));
  },
};

export const mapReduceSteps = [mapReduceStep];
