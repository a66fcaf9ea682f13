import type { Adapter, AdapterContext, Endpoint } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import { createAjv, formatProblem, toProblems } from '../../lib/schema.js';
import { DbPollingConsumer, type ConsumerPlan } from './consumer.js';
import { DatabaseRegistry, specLabel, type DatabaseSpec } from './database.js';
import { dbConfigSchema, dbOptions, type DbConfig, type DbConfigInput, type DbOptions } from './options.js';
import { DbProducer } from './producer.js';

export { dbOptions, dbConfigSchema, type DbOptions, type DbConfig, type DbConfigInput } from './options.js';
export { DB_HEADERS, DbPollingConsumer } from './consumer.js';
export { DbProducer, ROW_COUNT_HEADER } from './producer.js';
export { openDatabase, type Database, type DatabaseSpec, type Session, type Transaction, type Row, type QueryResult, type SqliteSpec, type PostgresSpec } from './database.js';
export { compileStatement, splitStatements, bindValues, type CompiledStatement, type ParamRef, type Dialect } from './sql.js';
export { SqlIdempotentRepository, SqlAggregationStore, SqlClaimCheckStore, type SqlStoreOptions } from './stores.js';
export { outboxStep, dbSteps, type OutboxArgs } from './outbox-step.js';

/** Resolve `sqlite:<file>`, `postgres:<name>` or `<name>` to a database spec (no I/O). */
export function resolveDatabase(path: string, config: DbConfig, uri = path): DatabaseSpec {
  const known = Object.keys(config.connections);
  const named = (name: string, engine?: 'postgres' | 'sqlite'): DatabaseSpec => {
    const c = config.connections[name];
    if (!c || (engine && c.engine !== engine)) {
      throw new BusbarError('DB_CONFIG', `endpoint "${uri}": no ${engine ?? 'database'} connection named "${name}" in the db adapter's configuration (known: ${known.join(', ') || 'none'})`, {
        details: { uri, connection: name, known },
      });
    }
    return c.engine === 'postgres' ? { engine: 'postgres', name, url: c.url, poolSize: c.poolSize, connectTimeoutMs: c.connectTimeoutMs, ...(c.int64 ? { int64: c.int64 } : {}) } : { engine: 'sqlite', file: c.file, busyTimeoutMs: c.busyTimeoutMs };
  };
  if (path.startsWith('sqlite:')) {
    const file = path.slice('sqlite:'.length);
    if (!file) throw new BusbarError('DB_CONFIG', `endpoint "${uri}": db:sqlite: needs a file path, e.g. db:sqlite:./data/app.db`, { details: { uri } });
    return { engine: 'sqlite', file, busyTimeoutMs: config.sqliteBusyTimeoutMs };
  }
  if (path.startsWith('postgres:') || path.startsWith('postgresql:')) {
    const name = path.slice(path.indexOf(':') + 1);
    if (name.startsWith('//')) {
      // a URL here would put credentials into route ids, logs and stats
      throw new BusbarError('DB_CONFIG', `endpoint "db:postgres:<url>": put connection URLs in the db adapter's configuration and refer to them by name (db:postgres:<name>)`, { details: { connection: 'url' } });
    }
    return named(name, 'postgres');
  }
  return named(path);
}

/** Compiled once, on first use (not per adapter made). */
let configValidator: ReturnType<ReturnType<typeof createAjv>['compile']> | undefined;

function validateConfig(input: DbConfigInput | undefined): DbConfig {
  const config = structuredClone(input ?? {}) as Record<string, unknown>;
  const validate = (configValidator ??= createAjv().compile(dbConfigSchema));
  if (!validate(config)) {
    const problems = toProblems(validate.errors, dbConfigSchema, '', 'option');
    throw new BusbarError('DB_CONFIG', `db adapter configuration: ${problems.map((p) => formatProblem(p)).join('; ')}`, { details: { problems } });
  }
  return config as unknown as DbConfig;
}

/** Options of a db: URI that hold SQL (or a piece of it). */
const SQL_OPTIONS = ['statement', 'query', 'onConsume', 'onConsumeFailed', 'where', 'orderBy'];

/**
 * In a URI query `+` means a space, so `statement=UPDATE t SET n = n + 1` runs as
 * `n = n   1` (a syntax error at best, another statement at worst). Refuse a raw `+` in SQL
 * options when the route is created (`busbar validate` reports it), pointing to the forms
 * that keep the SQL as written: options as data, `endpointUri()`, or `%2B`.
 */
function checkSqlInUri(uri: string): void {
  const q = uri.indexOf('?');
  if (q === -1) return;
  for (const pair of uri.slice(q + 1).split('&')) {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    if (eq !== -1 && SQL_OPTIONS.includes(name) && pair.includes('+', eq)) {
      throw new BusbarError(
        'DB_CONFIG',
        `endpoint "${uri}": option ${name}: a "+" in a URI query is read as a space, so the SQL would change ("n + 1" becomes "n   1"). Give the SQL as data instead: in a config file { "uri": "${uri.slice(0, q)}", "options": { "${name}": "..." } }, in code endpointUri('${uri.slice(0, q)}', { ${name}: '...' }); or write "%2B" for each plus sign`,
        { details: { uri, option: name } },
      );
    }
  }
}

function plan(endpoint: Endpoint<DbOptions>, ctx: AdapterContext, config: DbConfig): ConsumerPlan {
  checkSqlInUri(endpoint.uri);
  const spec = resolveDatabase(endpoint.path, config, endpoint.uri);
  const registry = (): DatabaseRegistry => ctx.state('databases', () => new DatabaseRegistry());
  return {
    dialect: spec.engine,
    label: specLabel(spec),
    poolSize: spec.engine === 'postgres' ? (spec.poolSize ?? 10) : undefined,
    acquire: () => registry().acquire(spec, ctx.logger),
    release: (db) => registry().release(db),
  };
}

/**
 * The `db:` adapter for a configuration of named connections:
 * `createDbAdapter({ connections: { main: { engine: 'postgres', url } } })`, then
 * `db:postgres:main?table=orders` or `db:sqlite:./data/app.db?table=orders`.
 */
export function createDbAdapter(config?: DbConfigInput): Adapter<DbOptions> {
  const cfg = validateConfig(config);
  return {
    scheme: 'db',
    description: 'Shared database (SQLite file or PostgreSQL): poll a table with claiming so competing processes never take a row twice; write rows with bound named parameters; query for enrichment; transactional outbox.',
    optionsSchema: dbOptions,
    createConsumer(endpoint, ctx) {
      return new DbPollingConsumer(endpoint.options, ctx, plan(endpoint, ctx, cfg), endpoint.uri);
    },
    createProducer(endpoint, ctx) {
      return new DbProducer(endpoint.options, ctx, plan(endpoint, ctx, cfg), endpoint.uri);
    },
  };
}

/** The default `db:` adapter: SQLite files named in the URI, no named connections. */
export const dbAdapter: Adapter<DbOptions> = createDbAdapter();

export default dbAdapter;
