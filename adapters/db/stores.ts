import { deserializeMessage, serializeMessage, type Message, type SerializedMessage } from '../../lib/message.js';
import type { AggregationGroup, AggregationStore, ClaimCheckStore, IdempotentRepository } from '../../lib/stores.js';
import type { Database, Row } from './database.js';
import { createIfMissing } from './outbox-table.js';
import { identifier } from './sql.js';

export interface SqlStoreOptions {
  /** Table name (created on first use if missing). */
  table?: string;
  /** Close the database when the store is closed (default true: the store owns it). */
  closeDatabase?: boolean;
}

/** Shared plumbing: the table is created once, lazily (no I/O in constructors). */
abstract class SqlStore {
  protected readonly db: Database;
  protected readonly table: string;
  readonly #closeDb: boolean;
  #ready: Promise<void> | undefined;

  constructor(db: Database, defaultTable: string, opts: SqlStoreOptions) {
    this.db = db;
    this.table = identifier(opts.table ?? defaultTable, 'store table');
    this.#closeDb = opts.closeDatabase ?? true;
  }

  protected abstract ddl(): string[];

  protected ready(): Promise<void> {
    this.#ready ??= createIfMissing(this.db, this.table, ...this.ddl()).catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  protected p(i: number): string {
    return this.db.dialect === 'postgres' ? `$${i}` : `?${i}`;
  }

  async close(): Promise<void> {
    if (this.#closeDb) await this.db.close();
  }
}

/**
 * Idempotent-consumer repository: the primary key (scope, key) makes `add` atomic across
 * processes, so of two competing consumers exactly one gets `true`.
 */
export class SqlIdempotentRepository extends SqlStore implements IdempotentRepository {
  constructor(db: Database, opts: SqlStoreOptions = {}) {
    super(db, 'busbar_idempotent', opts);
  }

  protected ddl(): string[] {
    return [`CREATE TABLE IF NOT EXISTS ${this.table} (scope TEXT NOT NULL, key TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (scope, key))`];
  }

  async add(scope: string, key: string): Promise<boolean> {
    await this.ready();
    const r = await this.db.query(`INSERT INTO ${this.table} (scope, key, created_at) VALUES (${this.p(1)}, ${this.p(2)}, ${this.p(3)}) ON CONFLICT (scope, key) DO NOTHING`, [scope, key, Date.now()]);
    return r.rowCount === 1;
  }

  async contains(scope: string, key: string): Promise<boolean> {
    await this.ready();
    const r = await this.db.query(`SELECT 1 AS x FROM ${this.table} WHERE scope = ${this.p(1)} AND key = ${this.p(2)}`, [scope, key]);
    return r.rows.length > 0;
  }

  async remove(scope: string, key: string): Promise<void> {
    await this.ready();
    await this.db.query(`DELETE FROM ${this.table} WHERE scope = ${this.p(1)} AND key = ${this.p(2)}`, [scope, key]);
  }
}

/** Aggregation groups, one row per message: survives restarts; `take` is an atomic DELETE ... RETURNING. */
export class SqlAggregationStore extends SqlStore implements AggregationStore {
  constructor(db: Database, opts: SqlStoreOptions = {}) {
    super(db, 'busbar_aggregation', opts);
  }

  protected ddl(): string[] {
    const seq = this.db.dialect === 'postgres' ? 'seq BIGSERIAL PRIMARY KEY' : 'seq INTEGER PRIMARY KEY AUTOINCREMENT';
    return [
      `CREATE TABLE IF NOT EXISTS ${this.table} (${seq}, scope TEXT NOT NULL, key TEXT NOT NULL, message TEXT NOT NULL, created_at BIGINT NOT NULL)`,
      `CREATE INDEX IF NOT EXISTS ${this.table.replace('.', '_')}_group ON ${this.table} (scope, key)`,
    ];
  }

  #group(key: string, rows: Row[]): AggregationGroup | undefined {
    if (!rows.length) return undefined;
    rows.sort((a, b) => Number(a.seq) - Number(b.seq));
    const times = rows.map((r) => Number(r.created_at));
    return {
      key,
      messages: rows.map((r) => deserializeMessage(JSON.parse(String(r.message)) as SerializedMessage)),
      createdAt: Math.min(...times),
      updatedAt: Math.max(...times),
    };
  }

  async append(scope: string, key: string, msg: Message, now: number): Promise<AggregationGroup> {
    await this.ready();
    return this.db.transaction(async (s) => {
      await s.query(`INSERT INTO ${this.table} (scope, key, message, created_at) VALUES (${this.p(1)}, ${this.p(2)}, ${this.p(3)}, ${this.p(4)})`, [scope, key, JSON.stringify(serializeMessage(msg)), now]);
      const r = await s.query(`SELECT seq, message, created_at FROM ${this.table} WHERE scope = ${this.p(1)} AND key = ${this.p(2)} ORDER BY seq`, [scope, key]);
      return this.#group(key, r.rows)!;
    });
  }

  async get(scope: string, key: string): Promise<AggregationGroup | undefined> {
    await this.ready();
    const r = await this.db.query(`SELECT seq, message, created_at FROM ${this.table} WHERE scope = ${this.p(1)} AND key = ${this.p(2)} ORDER BY seq`, [scope, key]);
    return this.#group(key, r.rows);
  }

  async take(scope: string, key: string): Promise<AggregationGroup | undefined> {
    await this.ready();
    const r = await this.db.query(`DELETE FROM ${this.table} WHERE scope = ${this.p(1)} AND key = ${this.p(2)} RETURNING seq, message, created_at`, [scope, key]);
    return this.#group(key, r.rows);
  }

  async groups(scope: string): Promise<AggregationGroup[]> {
    await this.ready();
    const r = await this.db.query(`SELECT seq, key, message, created_at FROM ${this.table} WHERE scope = ${this.p(1)} ORDER BY key, seq`, [scope]);
    const byKey = new Map<string, Row[]>();
    for (const row of r.rows) {
      const k = String(row.key);
      let list = byKey.get(k);
      if (!list) byKey.set(k, (list = []));
      list.push(row);
    }
    return [...byKey].map(([k, rows]) => this.#group(k, rows)!);
  }
}

/** Claim-check store: bodies as JSON (Buffers as base64), keyed by the claim key. */
export class SqlClaimCheckStore extends SqlStore implements ClaimCheckStore {
  constructor(db: Database, opts: SqlStoreOptions = {}) {
    super(db, 'busbar_claim_check', opts);
  }

  protected ddl(): string[] {
    return [`CREATE TABLE IF NOT EXISTS ${this.table} (key TEXT PRIMARY KEY, body TEXT, encoding TEXT, created_at BIGINT NOT NULL)`];
  }

  async put(key: string, body: unknown): Promise<void> {
    await this.ready();
    const bytes = Buffer.isBuffer(body);
    const text = bytes ? body.toString('base64') : JSON.stringify(body === undefined ? null : body);
    await this.db.query(
      `INSERT INTO ${this.table} (key, body, encoding, created_at) VALUES (${this.p(1)}, ${this.p(2)}, ${this.p(3)}, ${this.p(4)}) ON CONFLICT (key) DO UPDATE SET body = excluded.body, encoding = excluded.encoding, created_at = excluded.created_at`,
      [key, text, bytes ? 'base64' : 'json', Date.now()],
    );
  }

  /** The stored body, or undefined when nothing is stored under `key`. */
  async get(key: string): Promise<unknown> {
    await this.ready();
    const r = await this.db.query(`SELECT body, encoding FROM ${this.table} WHERE key = ${this.p(1)}`, [key]);
    const row = r.rows[0];
    if (!row) return undefined;
    return row.encoding === 'base64' ? Buffer.from(String(row.body), 'base64') : (JSON.parse(String(row.body)) as unknown);
  }

  async delete(key: string): Promise<void> {
    await this.ready();
    await this.db.query(`DELETE FROM ${this.table} WHERE key = ${this.p(1)}`, [key]);
  }
}
