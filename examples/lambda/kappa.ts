// The Kappa form of the same view: no batch layer, only the log and one stream job. To
// recompute, drop the view and replay the log from the start into a fresh one. The job runs
// effectively-once: each record's row change and the group's offset commit in one SQLite
// transaction, so even a job killed halfway and restarted counts every sale exactly once.
import { pino } from 'pino';
import { createDbAdapter, openDatabase } from '../../adapters/db/index.js';
import { Engine, from, withBody, type Message } from '../../lib/index.js';
import { logAdapter, logEnds, PARTITIONS, TOPIC, type Layout } from './layout.js';
import type { Sale } from './sum-map.js';

export const KAPPA_GROUP = 'kappa';
const OFFSETS = 'busbar_eventlog_offsets';

/** Drop the Kappa view and its offsets, replay the whole log into it, return it once it covers the log's end. */
export async function rebuildKappa(l: Layout, timeoutMs = 60_000): Promise<Record<string, number>> {
  const db = openDatabase({ engine: 'sqlite', file: l.db });
  const ends = logEnds(l);
  try {
    await db.query('DROP TABLE IF EXISTS kappa_view');
    await db.query('CREATE TABLE kappa_view (user TEXT PRIMARY KEY, total INTEGER NOT NULL)');
    await db.query(`CREATE TABLE IF NOT EXISTS ${OFFSETS} (grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset BIGINT NOT NULL, gen BIGINT NOT NULL, PRIMARY KEY (grp, topic, part))`);
    // forget where the job was: with no offset row, each partition starts at `start=earliest`
    await db.query(`DELETE FROM ${OFFSETS} WHERE grp = ?`, [KAPPA_GROUP]);
    const sink = `db:sqlite:${l.db}`;
    const upsert = encodeURIComponent('INSERT INTO kappa_view (user, total) VALUES (:body.user, :body.amount) ON CONFLICT (user) DO UPDATE SET total = total + excluded.total');
    const engine = new Engine({ logger: pino({ level: 'warn' }), adapters: [logAdapter(l), createDbAdapter()] });
    engine.addRoutes(
      from(`eventlog:${TOPIC}?group=${KAPPA_GROUP}&partitions=${PARTITIONS}&start=earliest&delivery=effectively-once&offsetsIn=${sink}&offsetsTable=${OFFSETS}&pollMs=10`)
        .routeId('kappa-view')
        .process((m: Message) => withBody(m, m.body as Sale))
        .to(`${sink}?statement=${upsert}&eventlogOffsets=${OFFSETS}`),
    );
    await engine.start();
    try {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rows = (await db.query(`SELECT part, next_offset FROM ${OFFSETS} WHERE grp = ? AND topic = ?`, [KAPPA_GROUP, TOPIC])).rows;
        const at = Array.from({ length: PARTITIONS }, (_, p) => Number(rows.find((r) => Number(r.part) === p)?.next_offset ?? -1));
        if (at.every((o, p) => o >= ends[p]!)) break;
        if (Date.now() > deadline) throw new Error(`the Kappa replay did not reach the log's end in ${timeoutMs} ms: at ${at.join(',')} of ${ends.join(',')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await engine.stop();
    }
    const view: Record<string, number> = {};
    for (const r of (await db.query('SELECT user, total FROM kappa_view')).rows) view[String(r.user)] = Number(r.total);
    return view;
  } finally {
    await db.close();
  }
}
