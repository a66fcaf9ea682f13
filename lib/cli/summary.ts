import type { Engine } from '../engine.js';

/** How often `busbar run` prints its per-route summary unless told (`--summary-interval`, `--quiet`). */
export const DEFAULT_SUMMARY_INTERVAL = 60_000;

/** One line per route: what `busbar run` prints while the hub runs. */
export function summaryLines(engine: Engine): string[] {
  return Object.entries(engine.stats().routes).map(
    ([id, s]) =>
      `  ${id.padEnd(14)} ${s.state.padEnd(9)} received ${s.received}, completed ${s.completed}, failed ${s.failed}, dead-lettered ${s.deadLettered}, redelivered ${s.redelivered}, in flight ${s.inflight}   ${s.source.uri}`,
  );
}

/** The totals over every route, one line. */
export function totalsLine(engine: Engine): string {
  const t = { received: 0, completed: 0, failed: 0, deadLettered: 0, redelivered: 0, inflight: 0 };
  for (const s of Object.values(engine.stats().routes)) for (const k of Object.keys(t) as Array<keyof typeof t>) t[k] += s[k];
  return `received ${t.received}, completed ${t.completed}, failed ${t.failed}, dead-lettered ${t.deadLettered}, redelivered ${t.redelivered}, in flight ${t.inflight}`;
}

/**
 * Print the summary every `everyMs`; the returned function stops it and prints the final
 * one (every route, then the totals line).
 */
export function startSummary(engine: Engine, everyMs: number, write: (text: string) => void): () => void {
  const print = (head: string): void => write(`${head} ${new Date().toISOString().slice(11, 19)}:\n${summaryLines(engine).join('\n')}\n`);
  const timer = setInterval(() => print('routes at'), everyMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    print('routes at stop,');
    write(`busbar stopped: ${totalsLine(engine)}\n`);
  };
}

/** While the engine drains on stop, a progress line every `everyMs` with what is still in flight per route. */
export function drainProgress(engine: Engine, write: (text: string) => void, everyMs = 1000): () => void {
  const started = Date.now();
  const timer = setInterval(() => {
    const busy = Object.entries(engine.stats().routes).filter(([, s]) => s.inflight > 0);
    if (busy.length === 0) return;
    const left = busy.reduce((n, [, s]) => n + s.inflight, 0);
    write(`stopping: draining ${left} in flight (${busy.map(([id, s]) => `${id} ${s.inflight}`).join(', ')}), ${Math.round((Date.now() - started) / 1000)}s\n`);
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
