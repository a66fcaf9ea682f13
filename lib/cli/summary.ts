import type { Engine } from '../engine.js';

/** One line per route: what `busbar run --summary` prints while the hub runs. */
export function summaryLines(engine: Engine): string[] {
  return Object.entries(engine.stats().routes).map(([id, s]) => {
    const extra = [s.deadLettered ? `${s.deadLettered} dead-lettered` : '', s.inflight ? `${s.inflight} in flight` : ''].filter(Boolean).join(', ');
    return `  ${id.padEnd(14)} ${s.state.padEnd(9)} ${String(s.received).padStart(5)} in ${String(s.completed).padStart(5)} done ${String(s.failed).padStart(4)} failed${extra ? `  (${extra})` : ''}   ${s.source.uri}`;
  });
}

/** Print the summary every `everyMs` (and once more when `stop` is called); returns the stop function. */
export function startSummary(engine: Engine, everyMs: number, write: (text: string) => void): () => void {
  const print = (): void => write(`routes at ${new Date().toISOString().slice(11, 19)}:\n${summaryLines(engine).join('\n')}\n`);
  const timer = setInterval(print, everyMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    print();
  };
}
