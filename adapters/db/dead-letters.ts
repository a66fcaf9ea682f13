import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { deserializeMessage, type Message, type SerializedMessage } from '../../lib/message.js';
import type { Database } from './database.js';

/** How long a replay's claim on a row holds when its process dies mid-replay (then the row is replayable again). */
const REPLAY_CLAIM_MS = 10 * 60_000;

export interface DbDeadLetterStore {
  list(): Promise<Array<{ id: string; msg: Message }>>;
  /** Claim the row for this replay; false when another replay holds it (it is skipped). */
  hold(s: { id: string }): Promise<boolean>;
  /** The replay settled (done, or dead-lettered again as a new row): the row goes. */
  drop(s: { id: string }): Promise<void>;
  /** The replay failed: the claim is released, the row stays as it was. */
  restore(s: { id: string }): Promise<void>;
}

/**
 * A db dead-letter endpoint written with `outbox=<table>` read back as a dead-letter store.
 * Each row's `message` column is the whole message as JSON (id, headers with `busbar.error.*`,
 * body), so the reason is there. The row is never deleted before its replay settled: `hold`
 * only claims it (claimed_by / claimed_until, the columns the outbox relay uses), so a crash
 * mid-replay leaves it in the table, replayable again once the claim expires.
 */
export function dbDeadLetterStore(db: Database, table: string, now: () => number, limit = 10_000): DbDeadLetterStore {
  const owner = `replay:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const p = (i: number): string => (db.dialect === 'postgres' ? `$${i}` : `?${i}`);
  return {
    async list() {
      const r = await db.query(`SELECT id, message FROM ${table} ORDER BY id LIMIT ${Math.floor(limit)}`);
      return r.rows.map((row) => ({ id: String(row.id), msg: deserializeMessage(JSON.parse(String(row.message)) as SerializedMessage) }));
    },
    async hold(s) {
      const t = now();
      const r = await db.query(
        `UPDATE ${table} SET claimed_by = ${p(1)}, claimed_until = ${p(2)} WHERE id = ${p(3)} AND (claimed_by IS NULL OR claimed_until IS NULL OR claimed_until < ${p(4)})`,
        [owner, t + REPLAY_CLAIM_MS, Number(s.id), t],
      );
      return r.rowCount > 0;
    },
    async drop(s) {
      await db.query(`DELETE FROM ${table} WHERE id = ${p(1)} AND claimed_by = ${p(2)}`, [Number(s.id), owner]);
    },
    async restore(s) {
      await db.query(`UPDATE ${table} SET claimed_by = NULL, claimed_until = NULL WHERE id = ${p(1)} AND claimed_by = ${p(2)}`, [Number(s.id), owner]);
    },
  };
}
