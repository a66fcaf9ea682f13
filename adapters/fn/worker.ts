/**
 * A worker thread of a function's pool (piscina loads this file and calls its default
 * export once per task). It loads the user's module once, when the thread starts, so a
 * cold start is thread start + module load, measured here and reported with the thread's
 * first answer. Failures of the function come back as values, never as rejections: a
 * rejection of the task means the worker itself failed (crashed, was stopped), which the
 * pool reports differently.
 */
import { openSync, readSync } from 'node:fs';
import { getHeapStatistics, serialize } from 'node:v8';
import { threadId, workerData } from 'node:worker_threads';
import type { FnContext, FnHandler } from './options.js';

export interface WorkerBoot {
  module: string;
  exportName: string;
  /** Register tsx first (a .ts module, and the process does not already run under tsx). */
  tsx: boolean;
  meterCpu: boolean;
  meterHeap: boolean;
}

export interface Task {
  body?: unknown;
  ctx?: FnContext;
  /** Does nothing: makes the pool look at its queue again (after a recycled worker left). */
  kick?: true;
}

export interface ErrorInfo {
  name: string;
  message: string;
  stack?: string;
  code?: string;
}

export type Outcome =
  | { kind: 'kick' }
  | ({ kind: 'ok'; /** The result, v8-serialized in the worker. */ value: Uint8Array } & Metered)
  | ({ kind: 'error'; error: ErrorInfo } & Metered)
  | ({ kind: 'load-error'; error: ErrorInfo } & Metered);

export interface Metered {
  cpuMs: number;
  wallMs: number;
  threadId: number;
  /** Invocations this thread has run, this one included. */
  served: number;
  heapMb?: number;
  /** On a thread's first answer: ms from the thread's Node environment being set up until the module was loaded. */
  loadMs?: number;
}

function info(e: unknown): ErrorInfo {
  if (e instanceof Error) {
    const out: ErrorInfo = { name: e.name, message: e.message };
    if (e.stack) out.stack = e.stack;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code;
    return out;
  }
  return { name: 'Error', message: String(e) };
}

const boot = workerData as WorkerBoot;
let handler: FnHandler | undefined;
let loadError: ErrorInfo | undefined;
let readyMs = 0;
let served = 0;
let lastCpu = 0;
// loaded when the thread starts, awaited by the first task; no top-level await, so that run
// from source this file also loads through tsx's require hook (its import hooks do not
// reach worker threads on Node 20: a TypeScript module registers tsx here, for this thread)
const ready: Promise<void> = (async () => {
  try {
    if (boot.tsx) {
      const api = (await import('tsx/esm/api')) as { register(): unknown };
      api.register();
    }
    const mod = (await import(boot.module)) as Record<string, unknown>;
    const h = mod[boot.exportName] ?? (boot.exportName === 'default' ? mod.handler : undefined);
    if (typeof h === 'function') handler = h as FnHandler;
    else loadError = { name: 'TypeError', message: `${boot.module} exports no function "${boot.exportName}"${boot.exportName === 'default' ? ' (nor "handler")' : ''}` };
  } catch (e) {
    loadError = info(e);
  }
  readyMs = performance.now();
  lastCpu = cpuNs();
})();

// this thread's own CPU time (sum_exec_runtime, ns) on Linux; the process's elsewhere
let statFd = -1;
if (boot.meterCpu) {
  try {
    statFd = openSync('/proc/thread-self/schedstat', 'r');
  } catch {
    statFd = -1;
  }
}
const statBuf = Buffer.alloc(64);
function cpuNs(): number {
  if (!boot.meterCpu) return 0;
  if (statFd >= 0) {
    const n = readSync(statFd, statBuf, 0, 64, 0);
    const s = statBuf.toString('latin1', 0, n);
    return Number(s.slice(0, s.indexOf(' ')));
  }
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}


export default async function run(task: Task): Promise<Outcome> {
  if (task.kick) return { kind: 'kick' };
  await ready;
  served++;
  // one read per invocation: the thread sleeps between tasks (piscina's Atomics.wait), so the
  // time since the previous reading is this invocation's, plus a few microseconds of hand-over
  const c0 = lastCpu;
  const t0 = performance.now();
  let out: { kind: 'ok'; value: Uint8Array } | { kind: 'error'; error: ErrorInfo } | { kind: 'load-error'; error: ErrorInfo };
  if (!handler) out = { kind: 'load-error', error: loadError ?? { name: 'Error', message: 'no handler' } };
  else {
    let value: unknown;
    try {
      value = await handler(task.body, task.ctx!);
      // serialized here so that a result that cannot cross threads fails this message, not
      // the worker (piscina's own postMessage failure kills the thread and loses the reason)
      try {
        out = { kind: 'ok', value: serialize(value) };
      } catch (e) {
        out = { kind: 'error', error: { ...info(e), message: `the result cannot be passed back from the worker (${info(e).message}); return plain data` } };
      }
    } catch (e) {
      out = { kind: 'error', error: info(e) };
    }
  }
  const wallMs = performance.now() - t0;
  lastCpu = cpuNs();
  const metered: Metered = { cpuMs: (lastCpu - c0) / 1e6, wallMs, threadId, served };
  // performance.now() of a worker counts from the process's origin, like nodeTiming's marks
  if (served === 1) metered.loadMs = readyMs - performance.nodeTiming.environment;
  if (boot.meterHeap) metered.heapMb = getHeapStatistics().used_heap_size / 1048576;
  return { ...out, ...metered };
}

/** The no-op task the pool sends to make piscina look at its queue again. */
export function kick(): Outcome {
  return { kind: 'kick' };
}
