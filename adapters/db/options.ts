import { Type, type Static } from '@sinclair/typebox';

const claimModes = Type.Union([Type.Literal('auto'), Type.Literal('lock'), Type.Literal('update'), Type.Literal('none')]);

/**
 * Endpoint options of `db:`. One schema for sources (polling) and destinations
 * (statements, table writes, queries); each option's description says which side uses it.
 */
export const dbOptions = Type.Object(
  {
    // ---- source: what to poll
    table: Type.Optional(Type.String({ minLength: 1, description: 'Source: the table to poll. Destination: the table `operation` writes to.' })),
    where: Type.Optional(Type.String({ minLength: 1, description: 'Source: SQL condition selecting rows to consume (route configuration, not message data), e.g. `status = \'new\'`.' })),
    orderBy: Type.Optional(Type.String({ minLength: 1, description: 'Source: ORDER BY of the poll (default: the key column).' })),
    keyColumn: Type.String({ minLength: 1, default: 'id', description: 'Column that identifies a row (used to mark, delete and release rows; default key of upserts).' }),
    batchSize: Type.Integer({ minimum: 1, maximum: 10000, default: 100, description: 'Source: most rows taken per poll (also bounded by the route\'s free in-flight slots). Destination: most messages written in one transaction when `groupCommit` is on.' }),
    perBatch: Type.Boolean({ default: false, description: 'Source: one message per poll whose body is the array of rows, instead of one message per row.' }),
    delay: Type.Integer({ minimum: 0, default: 500, description: 'Source: milliseconds between polls when the last poll returned fewer rows than asked (a full batch polls again at once).' }),
    maxIdleDelay: Type.Integer({ minimum: 0, default: 5000, description: 'Source: when polls find nothing, the delay doubles up to this many milliseconds.' }),
    errorDelay: Type.Integer({ minimum: 0, default: 1000, description: 'Source: first backoff in milliseconds after a failed poll (lost connection); doubles up to `maxErrorDelay`.' }),
    maxErrorDelay: Type.Integer({ minimum: 0, default: 30000, description: 'Source: longest backoff after failed polls.' }),
    claim: Type.Union([Type.Literal('auto'), Type.Literal('lock'), Type.Literal('update'), Type.Literal('none')], {
      default: 'auto',
      description:
        'Source: how rows are claimed so competing processes never take the same row. `lock`: SELECT ... FOR UPDATE SKIP LOCKED in a transaction held until the batch is acknowledged (PostgreSQL). `update`: an UPDATE sets `claimColumn`/`claimExpiresColumn`; a crashed owner\'s claims expire after `claimTimeout`. `none`: single consumer only. `auto`: lock on PostgreSQL, update on SQLite.',
    }),
    claimColumn: Type.String({ minLength: 1, default: 'claimed_by', description: 'Source, claim=update: column holding the claiming process\'s id (TEXT).' }),
    claimExpiresColumn: Type.String({ minLength: 1, default: 'claimed_until', description: 'Source, claim=update: column holding when the claim expires, epoch milliseconds (INTEGER / BIGINT).' }),
    claimTimeout: Type.Integer({ minimum: 1, default: 60000, description: 'Source, claim=update: milliseconds after which a claim of a crashed process expires and the row is polled again.' }),
    onConsume: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Source: what happens to a row after its route succeeded (or dead-lettered it): `delete` (default with table=), `mark` (set `statusColumn` to `doneValue`), `none` (default with query=), or an UPDATE/DELETE/INSERT statement with parameters from the row (`:body.id`).',
      }),
    ),
    onConsumeFailed: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Source: what happens to a row whose route failed without dead-lettering: `retry` (default with table=: add 1 to `retryColumn` and release it; after `maxRetries` it is no longer polled), `mark` (set `statusColumn` to `failedValue` and `errorColumn` to the error, if the table has it), `none` (default with query=: leave it, polled again after the claim expiry or at the next poll), or a statement (`:body.id`, `:error.code`, `:error.message`).',
      }),
    ),
    statusColumn: Type.String({ minLength: 1, default: 'status', description: 'Source: column that `mark` sets.' }),
    doneValue: Type.String({ default: 'done', description: 'Source: status of a consumed row (onConsume=mark).' }),
    failedValue: Type.String({ default: 'failed', description: 'Source: status of a failed row (onConsumeFailed=mark).' }),
    errorColumn: Type.String({ minLength: 1, default: 'error', description: 'Source: column receiving the failure reason when marking failed (used only if the table has it).' }),
    retryColumn: Type.String({ minLength: 1, default: 'retries', description: 'Source: INTEGER column counting failed attempts (onConsumeFailed=retry).' }),
    maxRetries: Type.Integer({ minimum: 1, default: 5, description: 'Source: rows that failed this many times are no longer polled (they stay in the table for inspection).' }),
    parallelBatches: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Source: polled batches in flight at once (each holds a connection with claim=lock).' }),
    stopTimeout: Type.Integer({ minimum: 0, default: 10000, description: 'Source: on stop, how long to wait for the batches in flight before their claims are released unacknowledged (they will be polled again).' }),
    // ---- destination
    statement: Type.Optional(Type.String({ minLength: 1, description: 'Destination: SQL to run per message, with named parameters bound from it (`:body.id`, `:header.customer`, `:id`). Several statements separated by `;` run in one transaction.' })),
    operation: Type.Optional(Type.Union([Type.Literal('insert'), Type.Literal('upsert'), Type.Literal('update'), Type.Literal('delete')], { description: 'Destination: write the body\'s fields as a row of `table`; its keys must be columns of the table.' })),
    keyColumns: Type.Optional(Type.String({ minLength: 1, description: 'Destination: comma-separated key columns for upsert/update/delete (default: `keyColumn`).' })),
    query: Type.Optional(Type.String({ minLength: 1, description: 'Source: a full SELECT to poll instead of `table` (no claiming: one consumer only). Destination: a SELECT with named parameters whose rows become the reply (content enricher).' })),
    outputType: Type.Optional(Type.Union([Type.Literal('rows'), Type.Literal('first'), Type.Literal('count'), Type.Literal('none')], { description: 'Destination: the reply: all rows, the first row (or null), the row count, or none (the message goes on unchanged). Default: rows for `query` and statements with RETURNING, none otherwise.' })),
    mergeInto: Type.Optional(Type.String({ minLength: 1, description: 'Destination: instead of replacing the body, put the result into this property of the (object) body.' })),
    batch: Type.Boolean({ default: true, description: 'Destination: an array body writes one row per element, all in one transaction.' }),
    groupCommit: Type.Boolean({ default: false, description: 'Destination: messages sent concurrently are written together in one transaction (up to `batchSize`); each send still resolves only once its transaction committed.' }),
    outbox: Type.Optional(Type.String({ minLength: 1, description: 'Destination: also write the message into this outbox table in the same transaction (created if missing). Source: relay the messages of this outbox table.' })),
    outboxTopic: Type.Optional(Type.String({ description: 'Destination: topic stored with the outbox row, a `{template}` (`{header.type}`); the relay puts it in header `busbar.outbox.topic`.' })),
    eventlogOffsets: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'Destination: for messages from an `eventlog:` source with delivery=effectively-once, commit the record\'s offset in this table (the source\'s `offsetsTable`) in the same transaction as the rows; a fenced or repeated record rolls back with EVENTLOG_FENCED.' })),
  },
  { additionalProperties: false },
);
export type DbOptions = Static<typeof dbOptions>;
export type ClaimMode = Static<typeof claimModes>;

// no defaults inside the union's branches: ajv would apply one branch's defaults to the other's data
const postgresConnection = Type.Object(
  {
    engine: Type.Literal('postgres'),
    url: Type.String({ minLength: 1, description: 'postgres://user:password@host:port/database (never logged).' }),
    poolSize: Type.Optional(Type.Integer({ minimum: 1, description: 'Most connections of the pool (default 10).' })),
    connectTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: 'Give up a connection attempt after this many milliseconds (default 5000).' })),
    int64: Type.Optional(
      Type.Union([Type.Literal('number'), Type.Literal('bigint'), Type.Literal('string')], {
        description: "64-bit integers (bigint, count(*)): 'number' (default; a value beyond Number.MAX_SAFE_INTEGER fails the query with DB_QUERY), 'bigint', or 'string' (pg's own default).",
      }),
    ),
  },
  { additionalProperties: false },
);
const sqliteConnection = Type.Object(
  {
    engine: Type.Literal('sqlite'),
    file: Type.String({ minLength: 1, description: 'Database file (created if missing), or `:memory:`.' }),
    busyTimeoutMs: Type.Optional(Type.Integer({ minimum: 0, description: 'How long a write waits for another process\'s lock, in milliseconds (default 5000).' })),
  },
  { additionalProperties: false },
);

/** Adapter-level configuration: named connections (`db:postgres:<name>`, `db:<name>`). */
export const dbConfigSchema = Type.Object(
  {
    connections: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]+$' }), Type.Union([postgresConnection, sqliteConnection]), {
      default: {},
      description: 'Named connections; endpoints refer to them as `db:postgres:<name>` or `db:<name>`.',
    }),
    sqliteBusyTimeoutMs: Type.Integer({ minimum: 0, default: 5000, description: 'Busy timeout of SQLite files named directly in URIs (`db:sqlite:<file>`).' }),
  },
  { additionalProperties: false },
);
export type DbConfig = Static<typeof dbConfigSchema>;
export type DbConfigInput = Partial<DbConfig> & { connections?: Record<string, { engine: 'postgres'; url: string; poolSize?: number; connectTimeoutMs?: number } | { engine: 'sqlite'; file: string; busyTimeoutMs?: number }> };
