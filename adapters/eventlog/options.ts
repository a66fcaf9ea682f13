import { Type, type Static } from '@sinclair/typebox';

const START_PATTERN = '^(earliest|latest|[0-9]+|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2}))$';

/** Options of an `eventlog:<topic>` endpoint (the single source of truth for docs and validation). */
export const eventlogOptions = Type.Object(
  {
    dir: Type.Optional(Type.String({ minLength: 1, description: 'Directory holding the topics (default: the adapter\'s `dir`, `./data/eventlog`). The topic is the directory `<dir>/<topic>`.' })),
    partitions: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'Partitions of a topic created by this endpoint (default 1). Fixed once the topic exists; a different number fails with EVENTLOG_CONFIG.' })),
    // ---- producer
    key: Type.Optional(Type.String({ description: 'Producer: the record key, a template (`{body.customerId}`, `{header.account}`). Records with one key go to one partition (FNV-1a hash), in order; without a key, partitions take turns.' })),
    fsync: Type.Union([Type.Literal('batch'), Type.Literal('interval'), Type.Literal('none')], {
      default: 'batch',
      description: 'Producer: durability point. `batch`: fdatasync after each group of appends, a send resolves after it. `interval`: one fdatasync every `fsyncIntervalMs`, a send resolves after the next one. `none`: a send resolves once written to the OS (a power loss can take the last records; a process crash cannot).',
    }),
    fsyncIntervalMs: Type.Integer({ minimum: 1, default: 100, description: 'Producer, fsync=interval: milliseconds between syncs.' }),
    inlineSyncMs: Type.Number({ minimum: 0, default: 1, description: 'Producer: syncs (fsync=batch or interval) run on the event loop while they take under this many ms on average, which saves the thread-pool round trip; slower ones (on average, or one over 10 times this) send syncs to the thread pool for 5 s. 0: always in the thread pool (the loop never waits on the disk).' }),
    segmentBytes: Type.Integer({ minimum: 1024, default: 64 * 1024 * 1024, description: 'Producer: a segment file is closed and a new one started past this size (retention and compaction work on closed segments).' }),
    indexIntervalBytes: Type.Integer({ minimum: 1, default: 4096, description: 'Producer: bytes of log between two entries of the sparse offset and time indexes.' }),
    maxBatchRecords: Type.Integer({ minimum: 1, default: 5000, description: 'Producer: most records written (and synced) together; concurrent sends join one group up to this.' }),
    retentionMs: Type.Optional(Type.Integer({ minimum: 1, description: 'Producer: closed segments whose newest record is older than this are deleted (whole segments).' })),
    retentionBytes: Type.Optional(Type.Integer({ minimum: 1, description: 'Producer: oldest closed segments are deleted while a partition is larger than this.' })),
    compact: Type.Boolean({ default: false, description: 'Producer: compact closed segments, keeping the latest record of each key (tombstones, null bodies, only for `tombstoneRetentionMs`).' }),
    tombstoneRetentionMs: Type.Integer({ minimum: 0, default: 86_400_000, description: 'Producer, compact: how long a tombstone stays so readers can see the delete.' }),
    maintenanceIntervalMs: Type.Integer({ minimum: 10, default: 60_000, description: 'Producer: how often retention and compaction run.' }),
    // ---- consumer
    group: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]+$', description: 'Consumer: consumer group. Members (routes, processes) share the partitions, each partition has one owner at a time, offsets are committed. Without a group the route reads every partition from `start`, committing nothing.' })),
    start: Type.String({ pattern: START_PATTERN, default: 'earliest', description: 'Consumer: where a partition with no committed offset starts: `earliest`, `latest`, an offset, or an ISO time (the first record appended at or after it).' }),
    delivery: Type.Union([Type.Literal('at-least-once'), Type.Literal('at-most-once'), Type.Literal('effectively-once')], {
      default: 'at-least-once',
      description:
        'Consumer: `at-least-once`: offsets committed after the route finished (a crash redelivers what was in flight). `at-most-once`: committed before the route runs (a crash loses what was in flight, never repeats). `effectively-once`: the offset is committed by the db sink in the transaction of its rows (`offsetsIn`, a db destination with `eventlogOffsets`); records of a partition run one at a time.',
    }),
    offsetsIn: Type.Optional(Type.String({ pattern: '^db:', description: 'Consumer, effectively-once: the db endpoint (`db:sqlite:./out.db`, `db:postgres:main`) holding the offsets table; the same database the route writes to.' })),
    offsetsTable: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', default: 'busbar_eventlog_offsets', description: 'Consumer, effectively-once: the offsets table (created if missing); the db destination names it in `eventlogOffsets`.' }),
    batchSize: Type.Integer({ minimum: 1, maximum: 100_000, default: 500, description: 'Consumer: most records read from a partition at once (also bounded by the route\'s free in-flight slots).' }),
    pollMs: Type.Integer({ minimum: 1, default: 50, description: 'Consumer: at the end of a partition, how often to look for new records written by other processes (appends in the same engine wake it at once).' }),
    heartbeatMs: Type.Integer({ minimum: 10, default: 200, description: 'Consumer with a group: heartbeat period; also how soon a rebalance is seen.' }),
    sessionTimeoutMs: Type.Integer({ minimum: 50, default: 3000, description: 'Consumer with a group: a member not heard from for this long loses its partitions (a member whose process died on this machine loses them at the next heartbeat).' }),
    commitIntervalMs: Type.Integer({ minimum: 1, default: 1000, description: 'Consumer, at-least-once: how often finished offsets are committed (and always on stop).' }),
    errorDelay: Type.Integer({ minimum: 0, default: 1000, description: 'Consumer: after a record failed (not dead-lettered), wait this long before reading the partition again from it; doubles up to 30 s.' }),
    bodyType: Type.Union([Type.Literal('auto'), Type.Literal('string'), Type.Literal('buffer'), Type.Literal('json')], { default: 'auto', description: 'Consumer: body as written (`auto`: JSON values, strings and Buffers come back as they were sent), or always `string`, `buffer`, `json`.' }),
  },
  { additionalProperties: false },
);
export type EventlogOptions = Static<typeof eventlogOptions>;

/** Adapter-level configuration (`"adapters": { "eventlog": { "dir": "./data/log" } }` in a routes file). */
export const eventlogConfigSchema = Type.Object(
  {
    dir: Type.Optional(Type.String({ minLength: 1, description: 'Directory of the topics (default `./data/eventlog`); with `rabbitmq`, of the consumer groups\' files.' })),
    rabbitmq: Type.Optional(
      Type.Object(
        {
          url: Type.String({ pattern: '^amqps?://', description: 'The RabbitMQ to keep the topics on (`amqp://user:pass@host:5672/vhost`): a topic of N partitions is N stream queues.' }),
          prefix: Type.String({ default: 'eventlog.', description: 'Prepended to `<topic>.<partition>` to name the stream queues.' }),
          prefetch: Type.Integer({ minimum: 1, maximum: 65535, default: 1000, description: 'Consumer prefetch per partition (a stream consumer must have one).' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
/** The adapter's configuration as given (defaults filled in by the adapter). */
export interface EventlogConfig {
  dir?: string;
  rabbitmq?: { url: string; prefix?: string; prefetch?: number };
}

/** Headers a consumed record carries. */
export const EVENTLOG_HEADERS = {
  topic: 'eventlog.topic',
  partition: 'eventlog.partition',
  offset: 'eventlog.offset',
  timestamp: 'eventlog.timestamp',
  key: 'eventlog.key',
  group: 'eventlog.group',
  epoch: 'eventlog.epoch',
  /** effectively-once: the partition's committed offset the sink must find (compare-and-set). */
  expected: 'eventlog.expected',
} as const;
