import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import { BusbarError } from '../../lib/errors.js';
import { lazy } from '../../lib/lazy.js';
import { deserialize } from 'node:v8';
import type { FnContext, FnHandler, FunctionDef } from './options.js';
import type { ErrorInfo, Outcome, Task, WorkerBoot } from './worker.js';

type PiscinaModule = typeof import('piscina');
type Pool = InstanceType<PiscinaModule['Piscina']>;
/** The balancer's view of a worker (piscina's PiscinaWorker, the fields used here). */
interface WorkerView {
  readonly id: number;
  readonly currentUsage: number;
  readonly terminating: boolean;
  readonly destroyed: boolean;
}

const piscina = lazy<PiscinaModule>('piscina');

/** Usage of one function, the serverless bill: what ran, for how long, on how many workers. */
export interface FunctionStats {
  /** Deployments of this name so far (1 = as first registered). */
  version: number;
  isolation: 'worker' | 'in-process';
  /** Invocations that reached the function (completed + failed + timedOut + crashed). */
  invocations: number;
  completed: number;
  /** The function threw or its module failed to load. */
  failed: number;
  timedOut: number;
  /** Its worker died under it. */
  crashed: number;
  /** Refused before running: the pool's queue was full. */
  rejected: number;
  /** Total CPU time of all invocations (ms). */
  cpuMs: number;
  /** Total wall time inside the function (ms), queueing excluded. */
  wallMs: number;
  /** Total time calls waited for a worker (ms), cold starts included. */
  waitMs: number;
  maxWallMs: number;
  lastCpuMs: number;
  lastWallMs: number;
  /** Worker threads started (each one a cold start: thread + module load). */
  coldStarts: number;
  /** Cold starts as calls saw them (ms): the wait of the first call on each new thread (thread start, module load, hand-over). */
  coldStartMs: { count: number; total: number; max: number; last: number };
  /** Of that, loading the function's module in the worker (ms). */
  moduleLoadMs: { max: number; last: number };
  /** Worker threads now, the most at once, the pool's bounds, calls queued now. */
  workers: number;
  peakWorkers: number;
  minWorkers: number;
  maxWorkers: number;
  queued: number;
  /** Workers stopped on purpose: after maxInvocationsPerWorker, over maxHeapMb, or after a timeout. */
  recycled: number;
}

export function emptyStats(def: FunctionDef): FunctionStats {
  return {
    version: 1,
    isolation: def.isolation,
    invocations: 0,
    completed: 0,
    failed: 0,
    timedOut: 0,
    crashed: 0,
    rejected: 0,
    cpuMs: 0,
    wallMs: 0,
    waitMs: 0,
    maxWallMs: 0,
    lastCpuMs: 0,
    lastWallMs: 0,
    coldStarts: 0,
    coldStartMs: { count: 0, total: 0, max: 0, last: 0 },
    moduleLoadMs: { max: 0, last: 0 },
    workers: 0,
    peakWorkers: 0,
    minWorkers: def.minWorkers,
    maxWorkers: def.maxWorkers,
    queued: 0,
    recycled: 0,
  };
}

export function moduleUrl(m: string): string {
  if (m.startsWith('file:')) return m;
  return pathToFileURL(isAbsolute(m) ? m : resolve(m)).href;
}

const TS = /\.[mc]?tsx?$/;
/** Whether this process already runs with tsx's loader (inherited by worker threads through execArgv). */
function underTsx(): boolean {
  return process.execArgv.some((a) => a.includes('tsx'));
}

/**
 * The worker file next to this module. Built (.js) it loads as is; run from source (.ts)
 * the worker needs tsx too, which it gets through the process's execArgv when the process
 * runs under `--import tsx`, or here.
 */
function workerFile(): { filename: string; execArgv?: string[] } {
  const ts = new URL('./worker.ts', import.meta.url);
  if (import.meta.url.endsWith('.ts') && existsSync(fileURLToPath(ts))) {
    // tsx's require hook alone: its import hooks cost a second per worker start and do not
    // reach worker threads anyway (a TypeScript function registers them in its worker); the
    // process's other flags are not all valid for workers (--expose-gc is not)
    return { filename: fileURLToPath(ts), execArgv: [`--require=${createRequire(import.meta.url).resolve('tsx/cjs')}`] };
  }
  return { filename: fileURLToPath(new URL('./worker.js', import.meta.url)) };
}

function errorOf(name: string, e: ErrorInfo, kind: 'failed' | 'load'): BusbarError {
  if (kind === 'load') return new BusbarError('FN_LOAD', `function "${name}": module failed to load: ${e.message}`, { details: { fn: name, error: e } });
  return new BusbarError('FN_FAILED', `function "${name}" threw: ${e.message}`, { details: { fn: name, error: e } });
}

/**
 * One function's pool of worker threads (piscina): it grows by one worker whenever a call
 * finds every worker busy (the queue is the load signal), up to `maxWorkers`, and shrinks
 * back to `minWorkers` after `idleTimeoutMs`. Each worker runs one invocation at a time, so
 * a throw, a timeout or a crash concerns exactly one message.
 */
export class FunctionPool {
  readonly name: string;
  readonly def: FunctionDef;
  readonly stats: FunctionStats;
  readonly #logger: Logger;
  readonly #clock: Clock;
  #pool: Pool | undefined;
  #inProcess: Promise<FnHandler> | undefined;
  /** Invocations handed to each worker (by thread id), for maxInvocationsPerWorker. */
  readonly #assigned = new Map<number, number>();
  /** Workers that get no more invocations and are stopped once idle. */
  readonly #retiring = new Set<number>();
  /** Workers stopped here and not yet gone from piscina's list: never pick them again. */
  readonly #stopped = new Set<number>();
  #views: readonly WorkerView[] = [];
  #closed = false;

  constructor(name: string, def: FunctionDef, stats: FunctionStats, logger: Logger, clock: Clock) {
    this.name = name;
    this.def = def;
    this.stats = stats;
    this.#logger = logger;
    this.#clock = clock;
  }

  /** Creates the pool (no thread yet unless `minWorkers` > 0). */
  start(): void {
    if (this.def.isolation === 'in-process' || this.#pool) return;
    const { Piscina } = piscina();
    const url = moduleUrl(this.def.module);
    const boot: WorkerBoot = {
      module: url,
      exportName: this.def.export,
      // always for TypeScript: the process's tsx import hooks do not reach worker threads
      tsx: TS.test(url),
      meterCpu: this.def.meterCpu,
      meterHeap: this.def.maxHeapMb !== undefined,
    };
    const wf = workerFile();
    const pool = new Piscina({
      filename: wf.filename,
      ...(wf.execArgv ? { execArgv: wf.execArgv } : {}),
      name: 'default',
      minThreads: this.def.minWorkers,
      maxThreads: Math.max(this.def.maxWorkers, this.def.minWorkers),
      idleTimeout: this.def.idleTimeoutMs,
      maxQueue: this.def.maxQueue,
      concurrentTasksPerWorker: 1,
      workerData: boot,
      ...(this.def.maxOldGenerationMb ? { resourceLimits: { maxOldGenerationSizeMb: this.def.maxOldGenerationMb } } : {}),
      loadBalancer: (task, workers) => this.#pick(task as { name: string }, workers as unknown as readonly WorkerView[]) as never,
    });
    pool.on('workerCreate', () => {
      this.stats.coldStarts++;
      this.stats.peakWorkers = Math.max(this.stats.peakWorkers, pool.threads.length);
    });
    pool.on('workerDestroy', () => {
      // a worker left (idle, recycled, timed out): calls queued behind it need the pool to
      // look again, which piscina only does when a call comes in or a worker gets free
      queueMicrotask(() => this.#kick());
    });
    pool.on('error', (err: unknown) => this.#logger.warn({ err, fn: this.name }, 'function worker failed outside an invocation'));
    this.#pool = pool;
  }

  /** The least busy worker that is not retiring; counts invocations towards recycling. */
  #pick(task: { name: string }, workers: readonly WorkerView[]): WorkerView | null {
    this.#views = workers;
    if (this.#stopped.size > workers.length) for (const id of this.#stopped) if (!workers.some((w) => w.id === id)) this.#stopped.delete(id);
    for (const w of workers) {
      if (w.currentUsage !== 0 || w.terminating || w.destroyed || this.#retiring.has(w.id) || this.#stopped.has(w.id)) continue;
      if (task.name === 'default' && this.def.maxInvocationsPerWorker !== undefined) {
        const n = (this.#assigned.get(w.id) ?? 0) + 1;
        this.#assigned.set(w.id, n);
        if (n >= this.def.maxInvocationsPerWorker) this.#retiring.add(w.id);
      }
      return w;
    }
    return null;
  }

  #kick(): void {
    const pool = this.#pool;
    if (!pool || this.#closed || pool.queueSize === 0) return;
    pool.run({ kick: true } satisfies Task, { name: 'kick' }).catch(() => undefined);
  }

  /** Stop retiring workers that have finished their last invocation. */
  #sweep(): void {
    const pool = this.#pool;
    if (!pool || this.#retiring.size === 0) return;
    for (const id of [...this.#retiring]) {
      const view = this.#views.find((v) => v.id === id);
      if (view && view.currentUsage !== 0) continue;
      this.#retiring.delete(id);
      this.#assigned.delete(id);
      const thread = pool.threads.find((t) => t.threadId === id);
      if (!thread) continue;
      this.#stopped.add(id);
      this.stats.recycled++;
      this.#logger.debug({ fn: this.name, threadId: id }, 'recycling function worker');
      void thread.terminate();
    }
  }

  /** Run the function on `body`; resolves with its result. Errors: FN_FAILED, FN_LOAD, FN_CRASHED, TIMEOUT, LIMIT_EXCEEDED. */
  async call(body: unknown, ctx: FnContext, timeoutMs: number): Promise<unknown> {
    if (this.def.isolation === 'in-process') return this.#callInProcess(body, ctx);
    const pool = this.#pool;
    if (!pool || this.#closed) throw new BusbarError('ENGINE_STATE', `function "${this.name}" is not running`, { details: { fn: this.name } });
    if (pool.queueSize >= this.def.maxQueue && this.def.maxQueue > 0) {
      this.stats.rejected++;
      throw new BusbarError('LIMIT_EXCEEDED', `function "${this.name}": ${pool.queueSize} calls are waiting (maxQueue ${this.def.maxQueue})`, { retryable: true, details: { fn: this.name, maxQueue: this.def.maxQueue } });
    }
    const ac = new AbortController();
    let timedOut = false;
    const timer = this.#clock.setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, timeoutMs);
    const t0 = performance.now();
    let out: Outcome;
    try {
      out = (await pool.run({ body, ctx } satisfies Task, { signal: ac.signal })) as Outcome;
    } catch (e) {
      const s = this.stats;
      s.invocations++;
      s.waitMs += performance.now() - t0;
      if (timedOut) {
        s.timedOut++;
        s.recycled++;
        throw new BusbarError('TIMEOUT', `function "${this.name}" did not return within ${timeoutMs} ms (its worker was stopped)`, { details: { fn: this.name, timeoutMs } });
      }
      // errors from a dying worker may arrive as plain objects (cloned across the thread boundary)
      const o = (typeof e === 'object' && e !== null ? e : {}) as { name?: unknown; message?: unknown };
      const text = typeof o.message === 'string' ? `${typeof o.name === 'string' ? `${o.name}: ` : ''}${o.message}` : String(e);
      if (/queue is at limit/i.test(text)) {
        s.invocations--;
        s.rejected++;
        throw new BusbarError('LIMIT_EXCEEDED', `function "${this.name}": the queue is full (maxQueue ${this.def.maxQueue})`, { retryable: true, cause: e, details: { fn: this.name } });
      }
      if (/DataCloneError|could not be cloned/i.test(text)) {
        s.failed++;
        throw new BusbarError('FN_FAILED', `function "${this.name}": its result cannot be passed back from the worker (${text}); return plain data`, { cause: e, details: { fn: this.name } });
      }
      s.crashed++;
      throw new BusbarError('FN_CRASHED', `function "${this.name}": its worker died: ${text}`, { cause: e, details: { fn: this.name, reason: text } });
    } finally {
      this.#clock.clearTimeout(timer);
    }
    if (out.kind === 'kick') throw new BusbarError('FN_FAILED', `function "${this.name}": unexpected answer`, { details: { fn: this.name } });
    const s = this.stats;
    s.invocations++;
    s.cpuMs += out.cpuMs;
    s.wallMs += out.wallMs;
    const waited = Math.max(0, performance.now() - t0 - out.wallMs);
    s.waitMs += waited;
    s.lastCpuMs = out.cpuMs;
    s.lastWallMs = out.wallMs;
    if (out.wallMs > s.maxWallMs) s.maxWallMs = out.wallMs;
    if (out.loadMs !== undefined) {
      // the first call on a new thread: what it waited is the cold start as a caller sees it
      // (thread start, module load, and the hop), whereas loadMs is the module load alone
      const c = s.coldStartMs;
      c.count++;
      c.total += waited;
      c.last = waited;
      if (waited > c.max) c.max = waited;
      s.moduleLoadMs.last = out.loadMs;
      s.moduleLoadMs.max = Math.max(s.moduleLoadMs.max, out.loadMs);
    }
    if (this.def.maxHeapMb !== undefined && out.heapMb !== undefined && out.heapMb > this.def.maxHeapMb) this.#retiring.add(out.threadId);
    this.#sweep();
    if (out.kind === 'ok') {
      s.completed++;
      return deserialize(out.value);
    }
    s.failed++;
    throw errorOf(this.name, out.error, out.kind === 'load-error' ? 'load' : 'failed');
  }

  async #callInProcess(body: unknown, ctx: FnContext): Promise<unknown> {
    const s = this.stats;
    let handler: FnHandler;
    try {
      handler = await (this.#inProcess ??= this.#load());
    } catch (e) {
      s.invocations++;
      s.failed++;
      throw e;
    }
    const c0 = this.def.meterCpu ? process.cpuUsage() : undefined;
    const t0 = performance.now();
    s.invocations++;
    try {
      const v = await handler(body, ctx);
      s.completed++;
      return v;
    } catch (e) {
      s.failed++;
      throw errorOf(this.name, e instanceof Error ? { name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) } : { name: 'Error', message: String(e) }, 'failed');
    } finally {
      const wall = performance.now() - t0;
      const c = c0 ? process.cpuUsage(c0) : undefined;
      const cpu = c ? (c.user + c.system) / 1000 : 0;
      s.cpuMs += cpu;
      s.wallMs += wall;
      s.lastCpuMs = cpu;
      s.lastWallMs = wall;
      if (wall > s.maxWallMs) s.maxWallMs = wall;
    }
  }

  async #load(): Promise<FnHandler> {
    const t0 = performance.now();
    const url = moduleUrl(this.def.module);
    try {
      if (TS.test(url) && !underTsx()) ((await import('tsx/esm/api')) as { register(): unknown }).register();
      const mod = (await import(url)) as Record<string, unknown>;
      const h = mod[this.def.export] ?? (this.def.export === 'default' ? mod.handler : undefined);
      if (typeof h !== 'function') throw new TypeError(`${url} exports no function "${this.def.export}"`);
      const ms = performance.now() - t0;
      const c = this.stats.coldStartMs;
      this.stats.coldStarts++;
      c.count++;
      c.total += ms;
      c.last = ms;
      c.max = Math.max(c.max, ms);
      return h as FnHandler;
    } catch (e) {
      this.#inProcess = undefined;
      throw new BusbarError('FN_LOAD', `function "${this.name}": module failed to load: ${(e as Error).message}`, { cause: e, details: { fn: this.name, module: url } });
    }
  }

  /** Figures with the pool's live numbers filled in. */
  snapshot(): FunctionStats {
    const pool = this.#pool;
    return { ...this.stats, coldStartMs: { ...this.stats.coldStartMs }, moduleLoadMs: { ...this.stats.moduleLoadMs }, workers: pool && !this.#closed ? pool.threads.length : 0, queued: pool && !this.#closed ? pool.queueSize : 0 };
  }

  /** Finish running invocations (up to `timeoutMs`), then stop every worker. */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pool = this.#pool;
    if (!pool) return;
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    await Promise.race([
      pool.close().catch(() => undefined),
      new Promise<void>((res) => {
        timer = this.#clock.setTimeout(res, timeoutMs);
        timer.unref?.();
      }),
    ]);
    if (timer) this.#clock.clearTimeout(timer);
    await pool.destroy().catch(() => undefined);
  }
}
