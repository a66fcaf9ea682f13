import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';
import { valueAt } from '../../lib/template.js';

export type Dialect = 'sqlite' | 'postgres';

/** Where a named parameter's value comes from: `:body.id`, `:header.customer`, `:error.message`... */
export interface ParamRef {
  readonly name: string;
  readonly root: 'body' | 'header' | 'id' | 'correlationId' | 'timestamp' | 'error';
  readonly path: readonly string[];
}

/** A statement with its named parameters replaced by the dialect's positional ones. */
export interface CompiledStatement {
  readonly source: string;
  readonly text: string;
  readonly params: readonly ParamRef[];
}

const ROOTS: Record<string, ParamRef['root']> = {
  body: 'body',
  header: 'header',
  headers: 'header',
  id: 'id',
  correlationId: 'correlationId',
  timestamp: 'timestamp',
  error: 'error',
};

/**
 * Scan SQL the way the database will (strings, quoted identifiers, comments, PostgreSQL
 * dollar quotes and `::` casts are left alone) and call `onParam` for each `:name` or
 * `onSemicolon` for each top-level `;`. A scanner, not a regex, so a `:x` inside a string
 * literal stays text.
 */
function scan(sql: string, onParam: (start: number, end: number, name: string) => void, onSemicolon?: (at: number) => void): void {
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === '`') {
      i++;
      while (i < n) {
        if (sql[i] === c) {
          if (sql[i + 1] === c) i += 2;
          else break;
        } else i++;
      }
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === '$' && /^\$[A-Za-z_]*\$/.test(sql.slice(i, i + 64))) {
      const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i, i + 64))![0];
      const end = sql.indexOf(tag, i + tag.length);
      i = end < 0 ? n : end + tag.length;
    } else if (c === ':' && sql[i + 1] === ':') {
      i += 2;
    } else if (c === ':' && /[A-Za-z_]/.test(sql[i + 1] ?? '') && sql[i - 1] !== ':') {
      const m = /^:([A-Za-z_]\w*(?:\.[\w-]*\w)*)/.exec(sql.slice(i))!;
      onParam(i, i + m[0].length, m[1]!);
      i += m[0].length;
    } else if (c === ';') {
      onSemicolon?.(i);
      i++;
    } else i++;
  }
}

/** Split a script into statements at top-level `;` (not inside strings or comments). */
export function splitStatements(sql: string): string[] {
  const cuts: number[] = [];
  scan(sql, () => undefined, (at) => cuts.push(at));
  const out: string[] = [];
  let from = 0;
  for (const c of [...cuts, sql.length]) {
    const s = sql.slice(from, c).trim();
    if (s && !/^(--[^\n]*\n?\s*)*$/.test(s)) out.push(s);
    from = c + 1;
  }
  return out;
}

/**
 * Replace `:body.id`, `:header.customer`, ... by positional parameters (`$1` on PostgreSQL,
 * `?1` on SQLite; a name used twice is bound once). Values are always bound by the driver,
 * never written into the SQL text: that is what makes a header like `'); DROP TABLE x; --`
 * plain data.
 */
export function compileStatement(source: string, dialect: Dialect, where = 'statement'): CompiledStatement {
  const params: ParamRef[] = [];
  const index = new Map<string, number>();
  let text = '';
  let last = 0;
  scan(source, (start, end, name) => {
    const [head, ...rest] = name.split('.');
    const root = ROOTS[head!];
    if (!root) {
      throw new BusbarError('DB_CONFIG', `${where}: unknown parameter ":${name}" (parameters start with :body, :header, :id, :correlationId, :timestamp or :error)`, {
        details: { parameter: name, statement: source },
      });
    }
    if (root === 'header' && rest.length === 0) {
      throw new BusbarError('DB_CONFIG', `${where}: parameter ":${name}" needs a header name, e.g. :header.customer`, { details: { parameter: name, statement: source } });
    }
    let k = index.get(name);
    if (k === undefined) {
      params.push({ name, root, path: root === 'header' ? [rest.join('.')] : rest });
      k = params.length;
      index.set(name, k);
    }
    text += source.slice(last, start) + (dialect === 'postgres' ? `$${k}` : `?${k}`);
    last = end;
  });
  text += source.slice(last);
  return { source, text, params };
}

export interface BindContext {
  error?: { code?: string; message?: string } | undefined;
}

/** The values of a compiled statement's parameters for one message (and body, for array elements). */
export function bindValues(stmt: CompiledStatement, msg: Message, body: unknown = msg.body, extra: BindContext = {}): unknown[] {
  return stmt.params.map((p) => {
    switch (p.root) {
      case 'body':
        return valueAt(body, p.path);
      case 'header':
        return msg.headers[p.path[0]!];
      case 'id':
        return msg.id;
      case 'correlationId':
        return msg.correlationId;
      case 'timestamp':
        return msg.timestamp;
      case 'error':
        return valueAt(extra.error, p.path);
    }
  });
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

/**
 * Table and column names cannot be bound as parameters, so they are checked against a
 * strict pattern instead (letters, digits, underscore, one optional `schema.` prefix).
 */
export function identifier(name: string, what: string): string {
  if (!IDENT.test(name)) {
    throw new BusbarError('DB_CONFIG', `${what} "${name}" is not a plain SQL identifier (letters, digits, _; optionally schema.name)`, { details: { identifier: name } });
  }
  return name;
}

export function isIdentifier(name: string): boolean {
  return IDENT.test(name);
}
