import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import type { Dialect } from './sql.js';

export type Row = Record<string, unknown>;

export interface QueryResult {
  rows: Row[];
  rowCount: number;
}

/** Something statements run on: the database itself (autocommit) or an open transaction. */
export interface Session {
  readonly dialect: Dialect;
  query(sql: string, params?: readonly unknown[]): Promise<QueryResult>;
}

/** A transaction held open across awaits (PostgreSQL row locks live as long as it does). */
export interface Transaction extends Session {
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

export interface Database extends Session {
  /** Shown in logs and errors: `sqlite:<file>` or `postgres:<connection name>`, never credentials. */
  readonly label: string;
  open(): Promise<void>;
  /** Run `fn` in one transaction; commit when it resolves, roll back when it throws. */
  transaction<T>(fn: (tx: Session) => Promise<T>): Promise<T>;
  begin(): Promise<Transaction>;
  /** Column names of a table (lower-cased), or undefined when the table does not exist. */
  columns(table: string): Promise<Set<string> | undefined>;
  close(): Promise<void>;
}

export interface SqliteSpec {
  engine: 'sqlite';
  file: string;
  busyTimeoutMs?: number;
}

export interface PostgresSpec {
  engine: 'postgres';
  /** The connection's name (what logs and errors show). */
  name: string;
  url: string;
  poolSize?: number;
  connectTimeoutMs?: number;
  /** How bigint/int8 columns (and count(*)) arrive: 'number' (default; beyond 2^53 the query fails), 'bigint' or 'string'. */
  int64?: 'number' | 'bigint' | 'string';
}

export type DatabaseSpec = SqliteSpec | PostgresSpec;

export function specKey(spec: DatabaseSpec): string {
  return spec.engine === 'sqlite' ? `sqlite:${spec.file === ':memory:' ? spec.file : resolve(spec.file)}` : `postgres:${spec.name}`;
}

export function specLabel(spec: DatabaseSpec): string {
  return spec.engine === 'sqlite' ? `sqlite:${spec.file}` : `postgres:${spec.name}`;
}

// SQLSTATE classes that mean "the connection, not the statement, is the problem".
const PG_CONNECTION_STATES = /^(08|57P0[123]|53300)/;
const PG_RETRYABLE_STATES = new Set(['40001', '40P01', '55P03']);
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Translate a driver error into the catalogue: missing tables and columns become
 * DB_SCHEMA naming them, lost connections DB_CONNECTION (retryable), the rest DB_QUERY.
 */
export function dbError(err: unknown, label: string, sql?: string): BusbarError {
  if (isBusbarError(err)) return err;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : String(err);
  const details: Record<string, unknown> = { database: label };
  if (code) details.sqlState = code;
  if (sql) details.statement = sql;
  const table = /no such table: ([\w.]+)/.exec(message)?.[1] ?? /relation "([^"]+)" does not exist/.exec(message)?.[1];
  if (table || code === '42P01') {
    if (table) details.table = table;
    return new BusbarError('DB_SCHEMA', `${label}: table "${table ?? '?'}" does not exist`, { cause: err, details });
  }
  const column = /no such column: ([\w.]+)/.exec(message)?.[1] ?? /column "([^"]+)"(?: of relation "[^"]+")? does not exist/.exec(message)?.[1] ?? /has no column named (\w+)/.exec(message)?.[1];
  if (column || code === '42703') {
    if (column) details.column = column;
    return new BusbarError('DB_SCHEMA', `${label}: column "${column ?? '?'}" does not exist`, { cause: err, details });
  }
  if ((code && (PG_CONNECTION_STATES.test(code) || NET_CODES.has(code))) || /Connection terminated|connection timeout|Client has encountered a connection error|not queryable|Connection ended/i.test(message)) {
    return new BusbarError('DB_CONNECTION', `${label}: connection failed: ${message}`, { cause: err, details });
  }
  const retryable = code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || (code !== undefined && PG_RETRYABLE_STATES.has(code));
  return new BusbarError('DB_QUERY', `${label}: ${message}`, { cause: err, details, retryable });
}

async function loadDriver<T>(name: 'better-sqlite3' | 'pg'): Promise<T> {
  try {
    const mod = (await import(name)) as { default?: T };
    return (mod.default ?? mod) as T;
  } catch (err) {
    throw new BusbarError('DB_DRIVER', `the db: adapter needs the "${name}" package: npm install ${name}`, { cause: err, details: { driver: name } });
  }
}

// ------------------------------------------------------------------ SQLite
interface SqliteStatement {
  reader: boolean;
  all(...params: unknown[]): Row[];
  run(...params: unknown[]): { changes: number };
}
interface SqliteDb {
  prepare(sql: string): SqliteStatement;
  pragma(p: string): unknown;
  exec(sql: string): unknown;
  close(): void;
  readonly inTransaction: boolean;
}
type SqliteCtor = new (file: string, opts?: { timeout?: number }) => SqliteDb;

/** SQLite wants numbers, strings, bigints, Buffers or null. */
function sqliteValue(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v) || typeof v === 'number' || typeof v === 'string' || typeof v === 'bigint') return v;
  return JSON.stringify(v);
}

/**
 * One better-sqlite3 connection per file per engine. Its calls are synchronous, so a
 * transaction that awaits in between must keep every other caller out: a FIFO lock does
 * that (other processes are kept out by SQLite's own file lock and busy timeout).
 */
export class SqliteDatabase implements Database {
  readonly dialect = 'sqlite' as const;
  readonly label: string;
  readonly #spec: SqliteSpec;
  #db: SqliteDb | undefined;
  #opening: Promise<void> | undefined;
  readonly #cache = new Map<string, SqliteStatement>();
  #lock: Promise<void> = Promise.resolve();

  constructor(spec: SqliteSpec) {
    this.#spec = spec;
    this.label = specLabel(spec);
  }

  open(): Promise<void> {
    if (this.#db) return Promise.resolve();
    this.#opening ??= (async () => {
      const Ctor = await loadDriver<SqliteCtor>('better-sqlite3');
      try {
        const db = new Ctor(this.#spec.file, { timeout: this.#spec.busyTimeoutMs ?? 5000 });
        if (this.#spec.file !== ':memory:') db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        this.#db = db;
      } catch (err) {
        throw new BusbarError('DB_CONNECTION', `${this.label}: cannot open: ${(err as Error).message}`, { cause: err, details: { database: this.label } });
      }
    })().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  #stmt(sql: string): SqliteStatement {
    let s = this.#cache.get(sql);
    if (!s) {
      if (!this.#db) throw new BusbarError('DB_CONNECTION', `${this.label}: not open`, { details: { database: this.label } });
      s = this.#db.prepare(sql);
      if (this.#cache.size >= 500) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(sql, s);
    }
    return s;
  }

  /** Whether a statement uses numbered parameters (`?1`), known per SQL text (the statements are cached too). */
  readonly #numberedSql = new Map<string, boolean>();
  #numbered(sql: string): boolean {
    let n = this.#numberedSql.get(sql);
    if (n === undefined) {
      n = /\?\d/.test(sql);
      if (this.#numberedSql.size >= 500) this.#numberedSql.clear();
      this.#numberedSql.set(sql, n);
    }
    return n;
  }

  #run(sql: string, params: readonly unknown[]): QueryResult {
    try {
      const s = this.#stmt(sql);
      // better-sqlite3 binds numbered parameters (?1, ?2: what compiled statements use) from an object
      let values: unknown[];
      if (params.length === 0) values = params as unknown[];
      else if (this.#numbered(sql)) {
        const named: Record<number, unknown> = {};
        for (let i = 0; i < params.length; i++) named[i + 1] = sqliteValue(params[i]);
        values = [named];
      } else values = params.map(sqliteValue);
      if (s.reader) {
        const rows = s.all(...values);
        return { rows, rowCount: rows.length };
      }
      return { rows: [], rowCount: s.run(...values).changes };
    } catch (err) {
      throw dbError(err, this.label, sql);
    }
  }

  async #locked<T>(fn: () => Promise<T> | T): Promise<T> {
    const prev = this.#lock;
    let release!: () => void;
    this.#lock = new Promise((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  async query(sql: string, params: readonly unknown[] = []): Promise<QueryResult> {
    await this.open();
    return this.#locked(() => this.#run(sql, params));
  }

  async transaction<T>(fn: (tx: Session) => Promise<T>): Promise<T> {
    await this.open();
    return this.#locked(async () => {
      this.#run('BEGIN IMMEDIATE', []);
      const session: Session = { dialect: 'sqlite', query: async (sql, params = []) => this.#run(sql, params) };
      try {
        const r = await fn(session);
        this.#run('COMMIT', []);
        return r;
      } catch (err) {
        if (this.#db?.inTransaction) this.#db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  async begin(): Promise<Transaction> {
    await this.open();
    let release!: () => void;
    const prev = this.#lock;
    this.#lock = new Promise((r) => (release = r));
    await prev;
    try {
      this.#run('BEGIN IMMEDIATE', []);
    } catch (err) {
      release();
      throw err;
    }
    let done = false;
    const end = (sql: string): void => {
      if (done) return;
      done = true;
      try {
        if (this.#db?.inTransaction) this.#run(sql, []);
      } finally {
        release();
      }
    };
    return {
      dialect: 'sqlite',
      query: async (sql, params = []) => this.#run(sql, params),
      commit: async () => end('COMMIT'),
      rollback: async () => end('ROLLBACK'),
    };
  }

  async columns(table: string): Promise<Set<string> | undefined> {
    const [schema, name] = table.includes('.') ? table.split('.') : ['main', table];
    const r = await this.query(`SELECT name FROM pragma_table_info(?1, ?2)`, [name, schema]);
    return r.rows.length ? new Set(r.rows.map((x) => String(x.name).toLowerCase())) : undefined;
  }

  async close(): Promise<void> {
    await this.#opening?.catch(() => undefined);
    await this.#locked(() => {
      this.#cache.clear();
      this.#db?.close();
      this.#db = undefined;
    });
  }
}

// ------------------------------------------------------------------ PostgreSQL
interface PgClient {
  query(sql: string, params?: unknown[]): Promise<{ rows: Row[]; rowCount: number | null }>;
  release(err?: Error | boolean): void;
  on(ev: 'error', fn: (err: Error) => void): unknown;
  removeListener(ev: 'error', fn: (err: Error) => void): unknown;
}
interface PgPool {
  query(sql: string, params?: unknown[]): Promise<{ rows: Row[]; rowCount: number | null }>;
  connect(): Promise<PgClient>;
  end(): Promise<void>;
  on(ev: 'error', fn: (err: Error) => void): unknown;
}
type PgModule = { Pool: new (cfg: Record<string, unknown>) => PgPool; types: { getTypeParser(oid: number, format?: string): unknown } };

/** The oid of int8 (bigint, count(*), sum of integers is numeric, not this). */
const INT8_OID = 20;

/** Rows of an int64: 'number' query: a value beyond 2^53 came as a bigint and fails the query rather than lose digits. */
function unsafeInt64(rows: readonly Row[], label: string, sql: string): BusbarError | undefined {
  for (const row of rows) {
    for (const [column, v] of Object.entries(row)) {
      if (typeof v === 'bigint') {
        return new BusbarError('DB_QUERY', `${label}: column "${column}" holds ${v}, beyond Number.MAX_SAFE_INTEGER: set the connection's int64 to 'bigint' or 'string'`, { details: { database: label, column, sql } });
      }
    }
  }
  return undefined;
}

function pgValue(v: unknown): unknown {
  if (v === undefined) return null;
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof Date)) return JSON.stringify(v);
  return v;
}

/** A pg Pool per named connection per engine. */
export class PostgresDatabase implements Database {
  readonly dialect = 'postgres' as const;
  readonly label: string;
  readonly #spec: PostgresSpec;
  readonly #logger: Logger;
  #pool: PgPool | undefined;
  #opening: Promise<void> | undefined;

  constructor(spec: PostgresSpec, logger: Logger) {
    this.#spec = spec;
    this.#logger = logger;
    this.label = specLabel(spec);
  }

  open(): Promise<void> {
    if (this.#pool) return Promise.resolve();
    this.#opening ??= (async () => {
      const pg = await loadDriver<PgModule>('pg');
      const int64 = this.#spec.int64 ?? 'number';
      // pg gives int8 as a string; per pool (not pg's global type table) so connections differ
      const int8 = int64 === 'bigint' ? (v: string) => BigInt(v) : int64 === 'number' ? (v: string) => (Math.abs(Number(v)) <= Number.MAX_SAFE_INTEGER ? Number(v) : BigInt(v)) : undefined;
      const pool = new pg.Pool({
        connectionString: this.#spec.url,
        max: this.#spec.poolSize ?? 10,
        connectionTimeoutMillis: this.#spec.connectTimeoutMs ?? 5000,
        application_name: 'busbar',
        ...(int8 ? { types: { getTypeParser: (oid: number, format?: string) => (oid === INT8_OID && format !== 'binary' ? int8 : pg.types.getTypeParser(oid, format)) } } : {}),
      });
      // An idle client whose server went away emits 'error'; unhandled, that would kill the process.
      pool.on('error', (err) => this.#logger.warn({ database: this.label, err: { message: err.message } }, 'idle database connection lost'));
      this.#pool = pool;
    })().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  #pool_(): PgPool {
    if (!this.#pool) throw new BusbarError('DB_CONNECTION', `${this.label}: not open`, { details: { database: this.label } });
    return this.#pool;
  }

  async query(sql: string, params: readonly unknown[] = []): Promise<QueryResult> {
    await this.open();
    try {
      const r = await this.#pool_().query(sql, params.map(pgValue));
      const unsafe = (this.#spec.int64 ?? 'number') === 'number' ? unsafeInt64(r.rows, this.label, sql) : undefined;
      if (unsafe) throw unsafe;
      return { rows: r.rows, rowCount: r.rowCount ?? r.rows.length };
    } catch (err) {
      if (err instanceof BusbarError) throw err;
      throw dbError(err, this.label, sql);
    }
  }

  async #connect(): Promise<{ client: PgClient; lost: () => Error | undefined; done: (err?: Error) => void }> {
    await this.open();
    let client: PgClient;
    try {
      client = await this.#pool_().connect();
    } catch (err) {
      throw dbError(err, this.label);
    }
    let lostErr: Error | undefined;
    // A checked-out client that loses its server emits 'error' too.
    const onError = (err: Error): void => {
      lostErr = err;
    };
    client.on('error', onError);
    return {
      client,
      lost: () => lostErr,
      done: (err) => {
        client.removeListener('error', onError);
        client.release(err ?? lostErr);
      },
    };
  }

  async transaction<T>(fn: (tx: Session) => Promise<T>): Promise<T> {
    const tx = await this.begin();
    try {
      const r = await fn(tx);
      await tx.commit();
      return r;
    } catch (err) {
      await tx.rollback().catch(() => undefined);
      throw err;
    }
  }

  async begin(): Promise<Transaction> {
    const { client, done } = await this.#connect();
    const run = async (sql: string, params: readonly unknown[] = []): Promise<QueryResult> => {
      try {
        const r = await client.query(sql, params.map(pgValue));
        return { rows: r.rows, rowCount: r.rowCount ?? r.rows.length };
      } catch (err) {
        throw dbError(err, this.label, sql);
      }
    };
    try {
      await run('BEGIN');
    } catch (err) {
      done(err as Error);
      throw err;
    }
    let finished = false;
    return {
      dialect: 'postgres',
      query: run,
      commit: async () => {
        if (finished) return;
        finished = true;
        try {
          await run('COMMIT');
          done();
        } catch (err) {
          done(err as Error);
          throw err;
        }
      },
      rollback: async () => {
        if (finished) return;
        finished = true;
        try {
          await run('ROLLBACK');
          done();
        } catch (err) {
          done(err as Error);
          throw err;
        }
      },
    };
  }

  async columns(table: string): Promise<Set<string> | undefined> {
    const r = await this.query(
      `SELECT a.attname AS name FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
      [table],
    );
    if (!r.rows.length) {
      const exists = await this.query('SELECT to_regclass($1) IS NOT NULL AS ok', [table]);
      return exists.rows[0]?.ok ? new Set() : undefined;
    }
    return new Set(r.rows.map((x) => String(x.name).toLowerCase()));
  }

  async close(): Promise<void> {
    await this.#opening?.catch(() => undefined);
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.end();
  }
}

export function createDatabase(spec: DatabaseSpec, logger: Logger): Database {
  return spec.engine === 'sqlite' ? new SqliteDatabase(spec) : new PostgresDatabase(spec, logger);
}

/**
 * Databases shared by the endpoints and stores of one engine, reference-counted:
 * the first user opens, the last one closes.
 */
export class DatabaseRegistry {
  readonly #entries = new Map<string, { db: Database; refs: number }>();

  acquire(spec: DatabaseSpec, logger: Logger): Database {
    const key = specKey(spec);
    let e = this.#entries.get(key);
    if (!e) this.#entries.set(key, (e = { db: createDatabase(spec, logger), refs: 0 }));
    e.refs++;
    return e.db;
  }

  async release(db: Database): Promise<void> {
    for (const [key, e] of this.#entries) {
      if (e.db !== db) continue;
      if (--e.refs <= 0) {
        this.#entries.delete(key);
        await db.close();
      }
      return;
    }
  }
}

/**
 * A database handle of your own, for stores used outside an engine's endpoints:
 * `openDatabase({ engine: 'sqlite', file: './data/stores.db' })`. Opened on first use.
 */
export function openDatabase(spec: SqliteSpec | (Omit<PostgresSpec, 'name'> & { name?: string }), logger?: Logger): Database {
  if (spec.engine === 'sqlite') return new SqliteDatabase(spec);
  const silent = logger ?? ({ warn: () => undefined } as unknown as Logger);
  return new PostgresDatabase({ ...spec, name: spec.name ?? 'store' }, silent);
}
