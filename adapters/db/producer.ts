import type { Producer, ProducerContext } from '../../lib/adapter.js';
import { outgoingTrace, W3C } from '../../lib/tracing/context.js';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import { merged, serializeMessage, withBody, withHeaders, type Message } from '../../lib/message.js';
import { renderTemplate } from '../../lib/template.js';
import type { ConsumerPlan } from './consumer.js';
import type { Database, QueryResult, Session } from './database.js';
import type { DbOptions } from './options.js';
import { commitEventlogOffset } from './eventlog-offsets.js';
import { ensureOutboxTable } from './outbox-table.js';
import { dbDeadLetterStore, type DbDeadLetterStore } from './dead-letters.js';
import { bindValues, compileStatement, identifier, isIdentifier, splitStatements, type CompiledStatement } from './sql.js';

export const ROW_COUNT_HEADER = 'busbar.db.rowCount';

interface Pending {
  msg: Message;
  resolve: (m: Message | undefined) => void;
  reject: (e: unknown) => void;
}

/**
 * The db destination: statements with named parameters, table writes from the body's
 * fields, queries whose rows are the reply, and the outbox row, all in one transaction per
 * message (or per group of messages with `groupCommit`).
 */
export class DbProducer implements Producer {
  readonly #o: DbOptions;
  readonly #ctx: ProducerContext;
  readonly #plan: ConsumerPlan;
  readonly #uri: string;
  readonly #statements: CompiledStatement[];
  readonly #query: CompiledStatement | undefined;
  readonly #table: string | undefined;
  readonly #keys: string[];
  readonly #outbox: string | undefined;
  readonly #outputType: 'rows' | 'first' | 'count' | 'none';
  readonly #tableSql = new Map<string, { text: string; cols: string[] }>();
  #columns: Set<string> | undefined;
  #db: Database | undefined;
  #queue: Pending[] = [];
  #flushing = false;

  constructor(o: DbOptions, ctx: ProducerContext, plan: ConsumerPlan, uri: string) {
    this.#o = o;
    this.#ctx = ctx;
    this.#plan = plan;
    this.#uri = uri;
    const where = `endpoint "${uri}"`;
    const modes = [o.statement !== undefined, o.query !== undefined, o.operation !== undefined].filter(Boolean).length;
    if (modes > 1) throw new BusbarError('DB_CONFIG', `${where}: give one of statement, query or operation`, { details: { uri } });
    if (modes === 0 && o.outbox === undefined) {
      throw new BusbarError('DB_CONFIG', `${where}: a db destination needs statement=<SQL>, query=<SELECT>, operation=insert|upsert|update|delete with table=, or outbox=<table>`, { details: { uri, option: 'statement' } });
    }
    this.#statements = o.statement !== undefined ? splitStatements(o.statement).map((s) => compileStatement(s, plan.dialect, `${where}, statement`)) : [];
    this.#query = o.query !== undefined ? compileStatement(o.query, plan.dialect, `${where}, query`) : undefined;
    if (o.operation !== undefined && o.table === undefined) throw new BusbarError('DB_CONFIG', `${where}: operation=${o.operation} needs table=`, { details: { uri, option: 'table' } });
    this.#table = o.table !== undefined && o.operation !== undefined ? identifier(o.table, 'table') : undefined;
    this.#keys = (o.keyColumns ?? o.keyColumn).split(',').map((k) => identifier(k.trim(), 'key column'));
    this.#outbox = o.outbox !== undefined ? identifier(o.outbox, 'outbox table') : undefined;
    const returning = this.#statements.some((s) => /\breturning\b/i.test(s.text));
    this.#outputType = o.outputType ?? (this.#query || returning ? 'rows' : 'none');
  }

  async start(): Promise<void> {
    const db = this.#plan.acquire();
    this.#db = db;
    try {
      await db.open();
      await this.#verify(db);
    } catch (err) {
      if (!isBusbarError(err, 'DB_CONNECTION')) {
        this.#db = undefined;
        await this.#plan.release(db);
        throw err;
      }
      // sends fail with a retryable DB_CONNECTION until the server is back (redelivery applies)
      this.#ctx.logger.warn({ database: db.label, err: { code: err.code, message: err.message } }, 'database not reachable at start');
    }
  }

  async #verify(db: Database): Promise<void> {
    if (this.#outbox) await ensureOutboxTable(db, this.#outbox);
    if (this.#table) {
      const cols = await db.columns(this.#table);
      if (!cols) throw new BusbarError('DB_SCHEMA', `${db.label}: table "${this.#table}" does not exist (endpoint "${this.#uri}")`, { details: { database: db.label, table: this.#table, uri: this.#uri } });
      for (const k of this.#keys) {
        if (this.#o.operation !== 'insert' && !cols.has(k.toLowerCase())) {
          throw new BusbarError('DB_SCHEMA', `${db.label}: table "${this.#table}" has no key column "${k}" (endpoint "${this.#uri}")`, { details: { database: db.label, table: this.#table, column: k } });
        }
      }
      this.#columns = cols;
    }
  }

  async stop(): Promise<void> {
    const db = this.#db;
    this.#db = undefined;
    this.#columns = undefined;
    if (db) await this.#plan.release(db);
  }

  /**
   * Read this endpoint's outbox table as a dead-letter store (the management API lists and
   * replays from it): only `outbox=<table>` keeps the whole message with its `busbar.error.*`
   * reason; other db destinations keep just what their statements wrote.
   */
  deadLetterStore(): DbDeadLetterStore | undefined {
    if (!this.#outbox || !this.#db) return undefined;
    return dbDeadLetterStore(this.#db, this.#outbox, () => this.#ctx.clock.now());
  }

  /** A statement always has a result (rows, a count): the answer of a request. */
  request(msg: Message): Promise<Message> {
    return this.send(msg).then((r) => r ?? msg);
  }

  send(msg: Message): Promise<Message | undefined> {
    if (!this.#o.groupCommit) return this.#sendOne(msg);
    return new Promise((resolve, reject) => {
      this.#queue.push({ msg, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        // let the sends of this tick join the group
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length) {
        const group = this.#queue.splice(0, this.#o.batchSize);
        try {
          const replies = await this.#database().transaction(async (s) => {
            const out: Array<Message | undefined> = [];
            for (const p of group) out.push(await this.#write(s, p.msg));
            return out;
          });
          group.forEach((p, i) => p.resolve(replies[i]));
        } catch {
          // one bad message must not fail its neighbours: write each on its own
          for (const p of group) this.#sendOne(p.msg).then(p.resolve, p.reject);
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  #database(): Database {
    if (!this.#db) throw new BusbarError('DB_CONNECTION', `endpoint "${this.#uri}": not started`, { details: { uri: this.#uri } });
    return this.#db;
  }

  async #sendOne(msg: Message): Promise<Message | undefined> {
    const db = this.#database();
    const single = !this.#outbox && this.#o.eventlogOffsets === undefined && this.#statements.length <= 1 && !(this.#o.batch && Array.isArray(msg.body));
    if (single) return this.#write(db, msg);
    return db.transaction((s) => this.#write(s, msg));
  }

  async #write(s: Session, msg: Message): Promise<Message | undefined> {
    if (this.#table && !this.#columns) await this.#verify(this.#database());
    const items = this.#o.batch && Array.isArray(msg.body) ? (msg.body as unknown[]) : [msg.body];
    let result: QueryResult = { rows: [], rowCount: 0 };
    const add = (r: QueryResult): void => {
      result = { rows: result.rows.concat(r.rows), rowCount: result.rowCount + r.rowCount };
    };
    for (const body of items) {
      if (this.#query) add(await s.query(this.#query.text, bindValues(this.#query, msg, body)));
      for (const st of this.#statements) add(await s.query(st.text, bindValues(st, msg, body)));
      if (this.#table) {
        const row = this.#withTrace(body, msg);
        const { text, cols } = this.#tableStatement(row, s.dialect);
        add(await s.query(text, cols.map((c) => row[c])));
      }
    }
    if (this.#outbox) {
      const topic = this.#o.outboxTopic === undefined ? null : renderTemplate(this.#o.outboxTopic, msg);
      const ph = s.dialect === 'postgres' ? ['$1', '$2', '$3'] : ['?1', '?2', '?3'];
      await s.query(`INSERT INTO ${this.#outbox} (topic, message, created_at) VALUES (${ph.join(', ')})`, [topic, JSON.stringify(serializeMessage(msg)), this.#ctx.clock.now()]);
    }
    if (this.#o.eventlogOffsets !== undefined) await commitEventlogOffset(s, this.#o.eventlogOffsets, msg);
    return this.#reply(msg, result);
  }

  /**
   * A row written by insert/upsert gets the message's trace context in the table's
   * `traceparent` (and `tracestate`) column when the table has one and the body does not
   * set it: the db consumer of that table continues the trace (docs/tracing.md).
   */
  #withTrace(body: unknown, msg: Message): Record<string, unknown> {
    const row = body as Record<string, unknown>;
    const op = this.#o.operation;
    if ((op !== 'insert' && op !== 'upsert') || body === null || typeof body !== 'object' || Array.isArray(body) || !this.#columns?.has(W3C.traceparent)) return row;
    const trace = outgoingTrace(msg);
    if (trace === undefined || row[W3C.traceparent] !== undefined) return row;
    const out: Record<string, unknown> = merged(row, { [W3C.traceparent]: trace.traceparent });
    if (trace.tracestate !== undefined && this.#columns.has(W3C.tracestate) && row[W3C.tracestate] === undefined) out[W3C.tracestate] = trace.tracestate;
    return out;
  }

  #reply(msg: Message, r: QueryResult): Message {
    let value: unknown;
    switch (this.#outputType) {
      case 'none':
        return withHeaders(msg, { [ROW_COUNT_HEADER]: r.rowCount });
      case 'rows':
        value = r.rows;
        break;
      case 'first':
        value = r.rows[0] ?? null;
        break;
      case 'count':
        value = r.rowCount;
        break;
    }
    const out = withHeaders(msg, { [ROW_COUNT_HEADER]: r.rowCount });
    if (this.#o.mergeInto === undefined) return withBody(out, value);
    const body = msg.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new BusbarError('DB_QUERY', `endpoint "${this.#uri}": mergeInto needs an object body, got ${Array.isArray(body) ? 'an array' : typeof body}`, { details: { uri: this.#uri } });
    }
    return withBody(out, { ...(body as Record<string, unknown>), [this.#o.mergeInto]: value });
  }

  /** INSERT / upsert / UPDATE / DELETE for the body's fields; cached per set of fields. */
  #tableStatement(body: unknown, dialect: 'sqlite' | 'postgres'): { text: string; cols: string[] } {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new BusbarError('DB_QUERY', `endpoint "${this.#uri}": operation=${this.#o.operation} needs an object body (or an array of them), got ${body === null ? 'null' : typeof body}`, { details: { uri: this.#uri } });
    }
    const fields = Object.keys(body).filter((k) => (body as Record<string, unknown>)[k] !== undefined);
    const sig = fields.join('\u0000');
    const cached = this.#tableSql.get(sig);
    if (cached) return cached;
    const t = this.#table!;
    for (const f of fields) {
      // field names become SQL identifiers: only the table's real columns are accepted
      if (!isIdentifier(f) || !this.#columns?.has(f.toLowerCase())) {
        throw new BusbarError('DB_SCHEMA', `table "${t}" has no column "${f}" (field of the message body, endpoint "${this.#uri}")`, { details: { table: t, column: f, uri: this.#uri } });
      }
    }
    const ph = (i: number): string => (dialect === 'postgres' ? `$${i + 1}` : `?${i + 1}`);
    const keys = this.#keys;
    const op = this.#o.operation!;
    let text: string;
    let cols: string[];
    if (op === 'insert' || op === 'upsert') {
      cols = fields;
      text = `INSERT INTO ${t} (${cols.join(', ')}) VALUES (${cols.map((_, i) => ph(i)).join(', ')})`;
      if (op === 'upsert') {
        const missing = keys.filter((k) => !fields.includes(k));
        if (missing.length) throw new BusbarError('DB_QUERY', `endpoint "${this.#uri}": upsert needs key field(s) ${missing.join(', ')} in the body`, { details: { uri: this.#uri, missing } });
        const rest = cols.filter((c) => !keys.includes(c));
        text += ` ON CONFLICT (${keys.join(', ')}) ${rest.length ? `DO UPDATE SET ${rest.map((c) => `${c} = excluded.${c}`).join(', ')}` : 'DO NOTHING'}`;
      }
    } else {
      const missing = keys.filter((k) => !fields.includes(k));
      if (missing.length) throw new BusbarError('DB_QUERY', `endpoint "${this.#uri}": ${op} needs key field(s) ${missing.join(', ')} in the body`, { details: { uri: this.#uri, missing } });
      const set = fields.filter((c) => !keys.includes(c));
      cols = op === 'update' ? [...set, ...keys] : [...keys];
      const whereSql = keys.map((k, i) => `${k} = ${ph((op === 'update' ? set.length : 0) + i)}`).join(' AND ');
      if (op === 'update') {
        if (!set.length) throw new BusbarError('DB_QUERY', `endpoint "${this.#uri}": update has no fields to set besides the key`, { details: { uri: this.#uri } });
        text = `UPDATE ${t} SET ${set.map((c, i) => `${c} = ${ph(i)}`).join(', ')} WHERE ${whereSql}`;
      } else text = `DELETE FROM ${t} WHERE ${whereSql}`;
    }
    const entry = { text, cols };
    if (this.#tableSql.size < 100) this.#tableSql.set(sig, entry);
    return entry;
  }
}
