// The batch layer: recompute the view from the whole log (everything up to the log's end when
// the batch starts) with busbar's mapReduce across worker threads, and store it in SQLite
// together with the offsets it read up to, in one transaction: the speed layer covers what
// comes after those offsets.
import { join } from 'node:path';
import { pino } from 'pino';
import { openDatabase, type Session } from '../../adapters/db/index.js';
import { decodeValue, PartitionReader } from '../../adapters/eventlog/index.js';
import { Engine, from } from '../../lib/index.js';
import { logEnds, PARTITIONS, TOPIC, type Layout } from './layout.js';
import type { Sale } from './sum-map.js';

export interface BatchResult {
  /** Per partition, the offset after the last record the batch read. */
  offsets: number[];
  totals: Record<string, number>;
}

/** Every record of every partition below `ends[p]`, as sale events, streamed. */
async function* snapshot(topicDir: string, ends: readonly number[]): AsyncGenerator<Sale> {
  for (let p = 0; p < ends.length; p++) {
    const reader = new PartitionReader(topicDir, p, 0);
    try {
      while (reader.position < ends[p]!) {
        const records = await reader.read(Math.min(1000, ends[p]! - reader.position));
        if (records.length === 0) break;
        for (const r of records) if (r.offset < ends[p]!) yield decodeValue(r.value, r.kind, 'json') as Sale;
      }
    } finally {
      reader.close();
    }
  }
}

export async function ensureViewTables(db: Session): Promise<void> {
  await db.query('CREATE TABLE IF NOT EXISTS batch_view (user TEXT PRIMARY KEY, total INTEGER NOT NULL)');
  await db.query('CREATE TABLE IF NOT EXISTS batch_offsets (part INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL)');
}

/** The batch's offsets as stored (0 everywhere before the first batch). */
export async function batchOffsets(db: Session): Promise<number[]> {
  await ensureViewTables(db);
  const offsets = Array.from({ length: PARTITIONS }, () => 0);
  for (const r of (await db.query('SELECT part, next_offset FROM batch_offsets')).rows) offsets[Number(r.part)] = Number(r.next_offset);
  return offsets;
}

export async function runBatch(l: Layout, threads = 2): Promise<BatchResult> {
  const topicDir = join(l.logDir, TOPIC);
  const ends = logEnds(l);
  const engine = new Engine({ logger: pino({ level: 'warn' }) });
  engine.addRoutes(
    from<number[]>('direct:batch')
      .routeId('batch-layer')
      .mapReduce<number>({ items: (e: number[]) => snapshot(topicDir, e), reduce: 'sum', workers: { module: new URL('./sum-map.ts', import.meta.url), threads, batchSize: 500 } }),
  );
  await engine.start();
  let totals: Record<string, number>;
  try {
    totals = await engine.request<Record<string, number>>('direct:batch', ends);
  } finally {
    await engine.stop();
  }
  const db = openDatabase({ engine: 'sqlite', file: l.db });
  try {
    await ensureViewTables(db);
    // the view and the offsets it covers change together: a reader never sees one without the other
    await db.transaction(async (tx) => {
      await tx.query('DELETE FROM batch_view');
      for (const [user, total] of Object.entries(totals)) await tx.query('INSERT INTO batch_view (user, total) VALUES (?, ?)', [user, total]);
      for (let p = 0; p < PARTITIONS; p++) await tx.query('INSERT INTO batch_offsets (part, next_offset) VALUES (?, ?) ON CONFLICT (part) DO UPDATE SET next_offset = excluded.next_offset', [p, ends[p]]);
    });
  } finally {
    await db.close();
  }
  return { offsets: ends, totals };
}
