// Where the example keeps things, and the sale events: shared by every layer.
import { join } from 'node:path';
import { createEventlogAdapter, latestOffset } from '../../adapters/eventlog/index.js';
import type { Engine } from '../../lib/index.js';
import type { Sale } from './sum-map.js';

export const TOPIC = 'sales';
export const PARTITIONS = 3;

export interface Layout {
  /** The event log's directory (topic `sales` under it). */
  logDir: string;
  /** The SQLite file holding the batch view, the batch's offsets and the Kappa view. */
  db: string;
}

export function layout(dir: string): Layout {
  return { logDir: join(dir, 'log'), db: join(dir, 'views.db') };
}

export const logAdapter = (l: Layout) => createEventlogAdapter({ dir: l.logDir });

/** Append sale events to the log (keyed by user: one user's sales stay in order in one partition). */
export async function appendSales(engine: Engine, sales: readonly Sale[]): Promise<void> {
  // sends issued together are written and fdatasynced together (group commit)
  for (let i = 0; i < sales.length; i += 200) {
    await Promise.all(sales.slice(i, i + 200).map((s) => engine.send(`eventlog:${TOPIC}?partitions=${PARTITIONS}&key={body.user}`, s)));
  }
}

/** Sales at random: `n` events over `users` users, amounts in cents. */
export function randomSales(n: number, users = 20): Sale[] {
  return Array.from({ length: n }, () => ({ user: `u${Math.floor(Math.random() * users)}`, amount: 1 + Math.floor(Math.random() * 10_000) }));
}

/** Per partition, the offset after the last record in the log now. */
export function logEnds(l: Layout): number[] {
  return Array.from({ length: PARTITIONS }, (_, p) => latestOffset(join(l.logDir, TOPIC, String(p))));
}
