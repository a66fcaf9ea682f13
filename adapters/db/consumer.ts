import { randomUUID } from 'node:crypto';
import { incomingTraceHeaders, W3C } from '../../lib/tracing/context.js';
import { hostname } from 'node:os';
import { shouldAck, type Consumer, type ConsumerContext } from '../../lib/adapter.js';
import { sleep } from '../../lib/clock.js';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import { createMessage, deserializeMessage, withHeaders, type Message, type SerializedMessage } from '../../lib/message.js';
import type { Database, Row, Session, Transaction } from './database.js';
import type { DbOptions } from './options.js';
import { ensureOutboxTable } from './outbox-table.js';
import { bindValues, compileStatement, identifier, type CompiledStatement, type Dialect } from './sql.js';

/** Headers a polled message carries. */
export const DB_HEADERS = {
  table: 'busbar.db.table',
  key: 'busbar.db.key',
  count: 'busbar.db.count',
  retries: 'busbar.db.retries',
  outboxTopic: 'busbar.outbox.topic',
  outboxId: 'busbar.outbox.id',
} as const;

const KEYWORDS = new Set(['delete', 'mark', 'none', 'retry']);

export interface ConsumerPlan {
  dialect: Dialect;
  label: string;
  /** Connections of the pool (PostgreSQL), to keep lock-mode batches from taking them all. */
  poolSize?: number | undefined;
  acquire(): Database;
  release(db: Database): Promise<void>;
}

interface Outcome {
  row: Row;
  msg: Message;
  error?: BusbarError | undefined;
}

type Claim = 'lock' | 'update' | 'none';

/** Positional parameter builder for SQL this adapter writes itself. */
class Params {
  readonly values: unknown[] = [];
  constructor(readonly dialect: Dialect) {}
  add(v: unknown): string {
    this.values.push(v);
    return this.dialect === 'postgres' ? `$${this.values.length}` : `?${this.values.length}`;
  }
  /** `col IN (list)` as one bound parameter: an array on PostgreSQL, JSON on SQLite. */
  inList(col: string, keys: unknown[]): string {
    return this.dialect === 'postgres' ? `${col} = ANY(${this.add(keys)})` : `${col} IN (SELECT value FROM json_each(${this.add(JSON.stringify(keys))}))`;
  }
}

/**
 * The polling consumer. Each poll claims up to `batchSize` rows (fewer when the route is
 * nearly full), hands one message per row (or per batch) to the route, and acknowledges
 * each row (`onConsume` / `onConsumeFailed`) only after the route settled it.
 */
export class DbPollingConsumer implements Consumer {
  readonly #o: DbOptions;
  readonly #ctx: ConsumerContext;
  readonly #plan: ConsumerPlan;
  readonly #claim: Claim;
  readonly #table: string | undefined;
  readonly #key: string;
  readonly #outbox: boolean;
  readonly #owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  readonly #onConsume: CompiledStatement | string;
  readonly #onFailed: CompiledStatement | string;
  readonly #query: CompiledStatement | undefined;
  #db: Database | undefined;
  #hasErrorColumn = false;
  /** The schema was checked (at start, or at the first poll that reached the database). */
  #verified = false;
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  readonly #batches = new Set<Promise<void>>();
  readonly #openTx = new Set<Transaction>();
  /** Rows held under this consumer's open lock-mode transactions (taken off its backlog). */
  #locked = 0;

  constructor(o: DbOptions, ctx: ConsumerContext, plan: ConsumerPlan, uri: string) {
    this.#o = o;
    this.#ctx = ctx;
    this.#plan = plan;
    this.#outbox = o.outbox !== undefined;
    const where = `endpoint "${uri}"`;
    if (this.#outbox && (o.table || o.query)) throw new BusbarError('DB_CONFIG', `${where}: outbox relays its own table; drop table/query`, { details: { uri } });
    if (!this.#outbox && !o.table && !o.query) throw new BusbarError('DB_CONFIG', `${where}: a db source needs table=<name> (or query=<SELECT>, or outbox=<table>)`, { details: { uri, option: 'table' } });
    if (o.table && o.query) throw new BusbarError('DB_CONFIG', `${where}: give table or query, not both`, { details: { uri } });
    this.#table = o.outbox !== undefined ? identifier(o.outbox, 'outbox table') : o.table !== undefined ? identifier(o.table, 'table') : undefined;
    this.#key = this.#outbox ? 'id' : identifier(o.keyColumn, 'keyColumn');
    for (const c of ['claimColumn', 'claimExpiresColumn', 'statusColumn', 'errorColumn', 'retryColumn'] as const) identifier(o[c], c);
    if (o.orderBy !== undefined && !/^[A-Za-z_][\w.]*( (ASC|DESC|asc|desc))?(\s*,\s*[A-Za-z_][\w.]*( (ASC|DESC|asc|desc))?)*$/.test(o.orderBy)) {
      throw new BusbarError('DB_CONFIG', `${where}: orderBy "${o.orderBy}" must be columns with optional ASC/DESC`, { details: { uri, option: 'orderBy' } });
    }
    const claim = o.claim === 'auto' ? (plan.dialect === 'postgres' ? 'lock' : 'update') : o.claim;
    if (o.query && claim !== 'none' && o.claim !== 'auto') throw new BusbarError('DB_CONFIG', `${where}: claim=${o.claim} needs table=; a query source is for a single consumer`, { details: { uri, option: 'claim' } });
    this.#claim = o.query ? 'none' : claim;
    if (this.#claim === 'lock' && plan.dialect === 'sqlite') {
      throw new BusbarError('DB_CONFIG', `${where}: claim=lock needs PostgreSQL (SELECT ... FOR UPDATE SKIP LOCKED); use claim=update on SQLite`, { details: { uri, option: 'claim' } });
    }
    if (this.#claim === 'lock' && plan.poolSize !== undefined && o.parallelBatches >= plan.poolSize) {
      // each batch holds a connection until acknowledged; the route's own writes need one too
      throw new BusbarError('DB_CONFIG', `${where}: parallelBatches=${o.parallelBatches} must be below the pool size (${plan.poolSize}) of ${plan.label}`, { details: { uri, option: 'parallelBatches' } });
    }
    const stmt = (v: string, option: string): CompiledStatement | string => {
      if (KEYWORDS.has(v)) {
        if (o.query && v !== 'none') throw new BusbarError('DB_CONFIG', `${where}: ${option}=${v} needs table=; with query= use none or a statement`, { details: { uri, option } });
        return v;
      }
      if (!/^\s*(update|delete|insert|with)\s/i.test(v)) throw new BusbarError('DB_CONFIG', `${where}: ${option} must be delete, mark, none${option === 'onConsumeFailed' ? ', retry' : ''} or an UPDATE/DELETE/INSERT statement`, { details: { uri, option } });
      return compileStatement(v, plan.dialect, `${where}, ${option}`);
    };
    this.#onConsume = stmt(o.onConsume ?? (o.query ? 'none' : 'delete'), 'onConsume');
    if (this.#onConsume === 'retry') throw new BusbarError('DB_CONFIG', `${where}: onConsume=retry is only for onConsumeFailed`, { details: { uri, option: 'onConsume' } });
    this.#onFailed = stmt(o.onConsumeFailed ?? (o.query ? 'none' : 'retry'), 'onConsumeFailed');
    this.#query = o.query !== undefined ? compileStatement(o.query, plan.dialect, `${where}, query`) : undefined;
    if (this.#query?.params.length) throw new BusbarError('DB_CONFIG', `${where}: a polling query has no message to bind :parameters from`, { details: { uri, option: 'query' } });
  }

  async start(): Promise<void> {
    const db = this.#plan.acquire();
    this.#db = db;
    this.#verified = false;
    this.#ctx.setStatus('connecting');
    try {
      await db.open();
      await this.#verify(db);
      this.#verified = true;
      this.#ctx.setStatus('connected');
    } catch (err) {
      // a server that is down now may be up later: the loop retries; a wrong schema will not fix itself
      if (!isBusbarError(err, 'DB_CONNECTION')) {
        this.#db = undefined;
        await this.#plan.release(db);
        throw err;
      }
      this.#ctx.setStatus('disconnected', err);
      this.#ctx.logger.warn({ database: db.label, err: { code: err.code, message: err.message } }, 'database not reachable at start; polling will retry');
    }
    this.#abort = new AbortController();
    this.#loop = this.#run(this.#abort.signal);
  }

  async #verify(db: Database): Promise<void> {
    if (!this.#table) return;
    if (this.#outbox) await ensureOutboxTable(db, this.#table);
    const cols = await db.columns(this.#table);
    if (!cols) {
      throw new BusbarError('DB_SCHEMA', `${db.label}: table "${this.#table}" does not exist (source of route "${this.#ctx.routeId}")`, { details: { database: db.label, table: this.#table, routeId: this.#ctx.routeId } });
    }
    const need: Array<[string, string]> = [];
    const o = this.#o;
    if (this.#onConsume !== 'none' || this.#onFailed !== 'none' || this.#claim === 'update') need.push([this.#key, 'keyColumn']);
    if (this.#claim === 'update') need.push([o.claimColumn, 'claimColumn'], [o.claimExpiresColumn, 'claimExpiresColumn']);
    if (this.#onConsume === 'mark' || this.#onFailed === 'mark') need.push([o.statusColumn, 'statusColumn']);
    if (this.#onFailed === 'retry') need.push([o.retryColumn, 'retryColumn']);
    for (const [col, option] of need) {
      if (!cols.has(col.toLowerCase())) {
        const hint = option === 'claimColumn' || option === 'claimExpiresColumn' ? ' (claim=update needs a TEXT claim column and an INTEGER expiry column, or set claim=none for a single consumer)' : option === 'retryColumn' ? ' (add an INTEGER column, or choose another onConsumeFailed)' : '';
        throw new BusbarError('DB_SCHEMA', `${db.label}: table "${this.#table}" has no column "${col}" (option ${option})${hint}`, {
          details: { database: db.label, table: this.#table, column: col, option, routeId: this.#ctx.routeId },
        });
      }
    }
    this.#hasErrorColumn = cols.has(o.errorColumn.toLowerCase());
  }

  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
    this.#loop = undefined;
    if (this.#batches.size) {
      // real time, like the engine's own stop timeout: a stop must end even under a fake clock
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        Promise.allSettled([...this.#batches]).then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.#o.stopTimeout))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        this.#ctx.logger.warn({ batches: this.#batches.size }, 'stop: batches still in flight; releasing their rows unacknowledged (they will be polled again)');
        for (const tx of this.#openTx) await tx.rollback().catch(() => undefined);
        this.#openTx.clear();
      }
    }
    const db = this.#db;
    this.#db = undefined;
    if (db) await this.#plan.release(db);
    this.#ctx.setStatus('idle');
  }

  // ------------------------------------------------------------------ polling loop
  async #run(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    let idle = o.delay;
    let errorDelay = o.errorDelay;
    const pause = async (ms: number): Promise<boolean> => {
      try {
        await sleep(this.#ctx.clock, ms, signal);
        return true;
      } catch {
        return false;
      }
    };
    while (!signal.aborted) {
      await this.#ctx.whenAvailable();
      const parallel = this.#claim === 'none' ? 1 : o.parallelBatches;
      while (this.#batches.size >= parallel && !signal.aborted) await Promise.race(this.#batches);
      if (signal.aborted) break;
      const want = Math.max(1, Math.min(o.batchSize, this.#ctx.available()));
      let got: number;
      try {
        const db = this.#db!;
        if (!this.#verified) {
          await this.#verify(db);
          this.#verified = true;
        }
        got = await this.#poll(want);
        if (errorDelay !== o.errorDelay) {
          this.#ctx.logger.info({ database: db.label }, 'polling again after errors');
          this.#ctx.setStatus('connected');
        }
        errorDelay = o.errorDelay;
      } catch (err) {
        const e = isBusbarError(err) ? err : new BusbarError('DB_QUERY', String((err as Error)?.message ?? err), { cause: err });
        this.#ctx.setStatus(isBusbarError(e, 'DB_CONNECTION') ? 'disconnected' : 'backing-off', e);
        this.#ctx.logger.warn({ code: e.code, err: { message: e.message }, retryInMs: errorDelay }, 'poll failed; backing off');
        if (!(await pause(errorDelay))) break;
        errorDelay = Math.min(Math.max(errorDelay * 2, 1), o.maxErrorDelay);
        continue;
      }
      if (got === 0) {
        if (!(await pause(idle))) break;
        idle = Math.min(Math.max(idle * 2, 1), Math.max(o.maxIdleDelay, o.delay));
      } else {
        idle = o.delay;
        if (got < want && !(await pause(o.delay))) break;
      }
    }
  }

  /** What makes a row pending: the source's own condition, not done or failed for good. */
  #pendingConds(p: Params): string[] {
    const o = this.#o;
    const conds: string[] = [];
    if (o.where) conds.push(`(${o.where})`);
    if (this.#onConsume === 'mark' || this.#onFailed === 'mark') conds.push(`(${o.statusColumn} IS NULL OR ${o.statusColumn} NOT IN (${p.add(o.doneValue)}, ${p.add(o.failedValue)}))`);
    if (this.#onFailed === 'retry') conds.push(`COALESCE(${o.retryColumn}, 0) < ${p.add(o.maxRetries)}`);
    return conds;
  }

  /**
   * Consumer lag: rows pending that no consumer holds now (read on a metrics scrape). Rows a
   * claim=update consumer claimed are not counted; with claim=lock, rows locked by this
   * consumer are taken off (rows another process has locked still count: they are pending to
   * whoever reads the table). Unknown for query= sources.
   */
  async backlog(): Promise<number | undefined> {
    const db = this.#db;
    if (!db || this.#query || !this.#table) return undefined;
    const o = this.#o;
    const p = new Params(db.dialect);
    const conds = this.#pendingConds(p);
    if (this.#claim === 'update') conds.push(`(${o.claimColumn} IS NULL OR ${o.claimExpiresColumn} < ${p.add(this.#ctx.clock.now())})`);
    const r = await db.query(`SELECT COUNT(*) AS n FROM ${this.#table}${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''}`, p.values);
    const n = Number(r.rows[0]?.n ?? 0);
    return Math.max(0, n - (this.#claim === 'lock' ? this.#locked : 0));
  }

  #pollSql(p: Params, limit: number): string {
    const o = this.#o;
    const t = this.#table!;
    const conds = this.#pendingConds(p);
    const order = o.orderBy ?? this.#key;
    if (this.#claim === 'update') {
      const now = this.#ctx.clock.now();
      const owner = p.add(this.#owner);
      const until = p.add(now + o.claimTimeout);
      conds.push(`(${o.claimColumn} IS NULL OR ${o.claimExpiresColumn} < ${p.add(now)})`);
      const lock = p.dialect === 'postgres' ? ' FOR UPDATE SKIP LOCKED' : '';
      return `UPDATE ${t} SET ${o.claimColumn} = ${owner}, ${o.claimExpiresColumn} = ${until} WHERE ${this.#key} IN (SELECT ${this.#key} FROM ${t} WHERE ${conds.join(' AND ')} ORDER BY ${order} LIMIT ${p.add(limit)}${lock}) RETURNING *`;
    }
    const lock = this.#claim === 'lock' ? ' FOR UPDATE SKIP LOCKED' : '';
    return `SELECT * FROM ${t}${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''} ORDER BY ${order} LIMIT ${p.add(limit)}${lock}`;
  }

  /** One poll: claim rows and start their batch; resolves with the number of rows taken. */
  async #poll(limit: number): Promise<number> {
    const db = this.#db;
    if (!db) throw new BusbarError('DB_CONNECTION', 'not started');
    let rows: Row[];
    let tx: Transaction | undefined;
    if (this.#query) {
      rows = (await db.query(this.#query.text)).rows.slice(0, limit);
    } else {
      const p = new Params(db.dialect);
      const sql = this.#pollSql(p, limit);
      if (this.#claim === 'lock') {
        tx = await db.begin();
        try {
          rows = (await tx.query(sql, p.values)).rows;
        } catch (err) {
          await tx.rollback().catch(() => undefined);
          throw err;
        }
        if (!rows.length) {
          await tx.commit();
          return 0;
        }
        this.#openTx.add(tx);
        this.#locked += rows.length;
      } else {
        rows = (await db.query(sql, p.values)).rows;
        if (this.#claim === 'update' && rows.length > 1 && orderIsKey(this.#o)) rows.sort((a, b) => compareKeys(this.#keyOf(a), this.#keyOf(b)));
      }
    }
    if (!rows.length) return 0;
    const batch = this.#handle(rows, tx).finally(() => {
      this.#batches.delete(batch);
      if (tx) {
        this.#openTx.delete(tx);
        this.#locked -= rows.length;
      }
    });
    this.#batches.add(batch);
    // without claims the next poll would see these rows again: wait for their acknowledgement
    if (this.#claim === 'none') await batch;
    return rows.length;
  }

  #keyOf(row: Row): unknown {
    const k = this.#key;
    return k in row ? row[k] : row[k.toLowerCase()];
  }

  #toMessage(row: Row): Message {
    if (this.#outbox) {
      const stored = deserializeMessage(JSON.parse(String(row.message)) as SerializedMessage);
      return withHeaders(stored, { [DB_HEADERS.outboxTopic]: (row.topic as string | null) ?? null, [DB_HEADERS.outboxId]: String(row.id) });
    }
    const headers: Record<string, string | number | null> = {};
    if (this.#table) headers[DB_HEADERS.table] = this.#table;
    const key = this.#keyOf(row);
    if (key !== undefined) headers[DB_HEADERS.key] = key === null ? null : String(key);
    // a row written with a trace context (a `traceparent` column) continues that trace
    if (this.#ctx.tracing) Object.assign(headers, incomingTraceHeaders(row[W3C.traceparent], row[W3C.tracestate]));
    return createMessage(row, { headers });
  }

  async #handle(rows: Row[], tx: Transaction | undefined): Promise<void> {
    const outcomes: Outcome[] = [];
    const settle = async (msg: Message): Promise<BusbarError | undefined> => {
      try {
        await this.#ctx.process(msg);
        return undefined;
      } catch (err) {
        if (shouldAck(err)) return undefined;
        return isBusbarError(err) ? err : new BusbarError('STEP_FAILED', String((err as Error)?.message ?? err), { cause: err });
      }
    };
    try {
      if (this.#o.perBatch) {
        const msg = createMessage(rows, { headers: { [DB_HEADERS.count]: rows.length, ...(this.#table ? { [DB_HEADERS.table]: this.#table } : {}) } });
        const error = await settle(msg);
        for (const row of rows) outcomes.push({ row, msg: createMessage(row), error });
      } else {
        const msgs = rows.map((r) => this.#toMessage(r));
        const errors = await Promise.all(msgs.map(settle));
        msgs.forEach((msg, i) => outcomes.push({ row: rows[i]!, msg, error: errors[i] }));
      }
    } catch (err) {
      // process() itself never throws synchronously; this is a safety net so a claim is never leaked
      this.#ctx.logger.error({ err }, 'batch dispatch failed');
    }
    for (const oc of outcomes) {
      if (oc.error) this.#ctx.logger.error({ key: this.#keyOf(oc.row), code: oc.error.code, err: { message: oc.error.message }, onConsumeFailed: typeof this.#onFailed === 'string' ? this.#onFailed : 'statement' }, 'row failed');
    }
    const db = this.#db;
    try {
      if (tx) {
        if (!this.#openTx.has(tx)) return; // rolled back by a stop that timed out
        await this.#acknowledge(tx, outcomes);
        await tx.commit();
      } else if (db) {
        const needsTx = typeof this.#onConsume !== 'string' || typeof this.#onFailed !== 'string' || this.#onFailed === 'mark';
        if (needsTx) await db.transaction((s) => this.#acknowledge(s, outcomes));
        else await this.#acknowledge(db, outcomes);
      }
    } catch (err) {
      if (tx) await tx.rollback().catch(() => undefined);
      this.#ctx.logger.warn({ code: (err as BusbarError).code, err: { message: (err as Error).message }, rows: rows.length }, 'could not acknowledge rows; they will be polled again (at-least-once)');
    }
  }

  /** Apply onConsume to succeeded rows and onConsumeFailed to failed ones. */
  async #acknowledge(s: Session, outcomes: Outcome[]): Promise<void> {
    const o = this.#o;
    const t = this.#table;
    const ok = outcomes.filter((x) => !x.error);
    const failed = outcomes.filter((x) => x.error);
    const release = this.#claim === 'update' ? `, ${o.claimColumn} = NULL, ${o.claimExpiresColumn} = NULL` : '';
    const mine = (p: Params): string => (this.#claim === 'update' ? ` AND ${o.claimColumn} = ${p.add(this.#owner)}` : '');
    if (ok.length) {
      const action = this.#onConsume;
      if (typeof action !== 'string') {
        for (const x of ok) await s.query(action.text, bindValues(action, x.msg, x.row));
      } else if (action !== 'none' && t) {
        const p = new Params(s.dialect);
        const keys = ok.map((x) => this.#keyOf(x.row));
        const inList = p.inList(this.#key, keys);
        if (action === 'delete') await s.query(`DELETE FROM ${t} WHERE ${inList}${mine(p)}`, p.values);
        else await s.query(`UPDATE ${t} SET ${o.statusColumn} = ${p.add(o.doneValue)}${release} WHERE ${inList}${mine(p)}`, p.values);
      }
    }
    if (failed.length) {
      const action = this.#onFailed;
      if (typeof action !== 'string') {
        for (const x of failed) await s.query(action.text, bindValues(action, x.msg, x.row, { error: { code: x.error!.code, message: x.error!.message } }));
      } else if (action === 'retry' && t) {
        const p = new Params(s.dialect);
        const inList = p.inList(this.#key, failed.map((x) => this.#keyOf(x.row)));
        await s.query(`UPDATE ${t} SET ${o.retryColumn} = COALESCE(${o.retryColumn}, 0) + 1${release} WHERE ${inList}${mine(p)}`, p.values);
      } else if (action === 'mark' && t) {
        for (const x of failed) {
          const p = new Params(s.dialect);
          const err = this.#hasErrorColumn ? `, ${o.errorColumn} = ${p.add(`${x.error!.code}: ${x.error!.message}`)}` : '';
          const status = p.add(o.failedValue);
          await s.query(`UPDATE ${t} SET ${o.statusColumn} = ${status}${err}${release} WHERE ${this.#key} = ${p.add(this.#keyOf(x.row))}${mine(p)}`, p.values);
        }
      } else if (action === 'delete' && t) {
        const p = new Params(s.dialect);
        await s.query(`DELETE FROM ${t} WHERE ${p.inList(this.#key, failed.map((x) => this.#keyOf(x.row)))}${mine(p)}`, p.values);
      }
    }
  }
}

function orderIsKey(o: DbOptions): boolean {
  return o.orderBy === undefined;
}

function compareKeys(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  if (/^\d+$/.test(sa) && /^\d+$/.test(sb) && sa.length !== sb.length) return sa.length - sb.length;
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}
