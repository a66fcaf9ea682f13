import type { Database } from './database.js';
import { dbError } from './database.js';

/** Columns of an outbox table (created by busbar; claim columns so competing relays work on SQLite too). */
export async function ensureOutboxTable(db: Database, table: string): Promise<void> {
  const ddl =
    db.dialect === 'postgres'
      ? `CREATE TABLE IF NOT EXISTS ${table} (id BIGSERIAL PRIMARY KEY, topic TEXT, message TEXT NOT NULL, created_at BIGINT NOT NULL, claimed_by TEXT, claimed_until BIGINT, retries INTEGER NOT NULL DEFAULT 0)`
      : `CREATE TABLE IF NOT EXISTS ${table} (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT, message TEXT NOT NULL, created_at INTEGER NOT NULL, claimed_by TEXT, claimed_until INTEGER, retries INTEGER NOT NULL DEFAULT 0)`;
  await createIfMissing(db, table, ddl);
}

/**
 * CREATE TABLE IF NOT EXISTS races on PostgreSQL when several processes start together
 * (a unique violation on the catalog); the loser just checks that the table is there.
 */
export async function createIfMissing(db: Database, table: string, ...ddl: string[]): Promise<void> {
  if (await db.columns(table)) return;
  try {
    for (const d of ddl) await db.query(d);
  } catch (err) {
    if (!(await db.columns(table).catch(() => undefined))) throw dbError(err, db.label);
  }
}
