import type { Logger } from 'pino';
import { EventLog, type LogSettings } from './log.js';

/**
 * Per-engine registry of the topics this engine writes (one EventLog per topic directory,
 * shared by its producers, closed with the last of them) and of readers to wake when this
 * engine appends (readers of other processes poll).
 */
export class Hub {
  readonly #logs = new Map<string, { log: EventLog; refs: number }>();
  readonly #wakers = new Map<string, Set<(partition: number) => void>>();

  acquire(root: string, topic: string, settings: Partial<LogSettings>, logger: Logger): EventLog {
    const key = `${root}\u0000${topic}`;
    const had = this.#logs.get(key);
    if (had) {
      had.refs++;
      return had.log;
    }
    const log = EventLog.open(root, topic, settings, logger);
    log.onAppend((p) => {
      for (const w of this.#wakers.get(log.dir) ?? []) w(p);
    });
    this.#logs.set(key, { log, refs: 1 });
    return log;
  }

  async release(log: EventLog): Promise<void> {
    for (const [k, e] of this.#logs) {
      if (e.log !== log) continue;
      if (--e.refs === 0) {
        this.#logs.delete(k);
        await log.close();
      }
      return;
    }
  }

  onAppend(topicDir: string, fn: (partition: number) => void): () => void {
    let set = this.#wakers.get(topicDir);
    if (!set) this.#wakers.set(topicDir, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }
}
