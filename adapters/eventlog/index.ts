import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Adapter, AdapterContext, Endpoint } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import { EventlogConsumer } from './consumer.js';
import { seekGroupOffsets, readGroup, groupPaths } from './group.js';
import { Hub } from './hub.js';
import { readTopicMeta } from './log.js';
import { eventlogOptions, type EventlogConfig, type EventlogOptions } from './options.js';
import { EventlogProducer, RabbitEventlogProducer } from './producer.js';
import { FileBackend } from './backend.js';
import { RabbitAppender, RabbitBackend, streamArguments, type RabbitSettings } from './rabbitmq.js';
import { earliestOffset, latestOffset, offsetForTime } from './reader.js';
import { writeFileDurable } from './segment.js';

export { eventlogOptions, eventlogConfigSchema, EVENTLOG_HEADERS, type EventlogOptions, type EventlogConfig } from './options.js';
export { EventLog, DEFAULT_LOG_SETTINGS, readTopicMeta, type LogSettings, type FsyncPolicy } from './log.js';
export { PartitionReader, earliestOffset, latestOffset, offsetForTime } from './reader.js';
export { GroupCoordinator, type GroupState } from './group.js';
export { encodeBatch, parseRecord, partitionOf, type LogRecord, type RecordInput } from './record.js';
export { EventlogProducer, RabbitEventlogProducer } from './producer.js';
export { FileBackend, type LogBackend, type PartitionSource } from './backend.js';
export { RabbitBackend, streamName, type RabbitSettings } from './rabbitmq.js';
export { EventlogConsumer } from './consumer.js';
export { decodeValue } from './codec.js';

const DEFAULT_DIR = './data/eventlog';

function topicOf(endpoint: Endpoint<EventlogOptions>): string {
  const t = endpoint.path;
  if (!/^[A-Za-z0-9._-]+$/.test(t) || t === '.' || t === '..') {
    throw new BusbarError('INVALID_URI', `endpoint "${endpoint.uri}": an eventlog endpoint is eventlog:<topic>, the topic made of letters, digits, ".", "_" and "-"`, { details: { uri: endpoint.uri, path: t } });
  }
  return t;
}

function noCompaction(endpoint: Endpoint<EventlogOptions>): void {
  if (endpoint.options.compact) throw new BusbarError('EVENTLOG_CONFIG', `endpoint "${endpoint.uri}": compact=true is not available on the RabbitMQ backend (streams have no compaction); retention by time and size is`, { details: { uri: endpoint.uri, option: 'compact' } });
}

function hub(ctx: AdapterContext): Hub {
  return ctx.state('hub', () => new Hub());
}

/**
 * The `eventlog:` adapter: a replayable, partitioned, append-only log in local segment files
 * (no server). `eventlog:orders?key={body.customer}&partitions=6` appends;
 * `from('eventlog:orders?group=billing')` consumes as a member of a consumer group.
 */
export function createEventlogAdapter(config: EventlogConfig = {}): Adapter<EventlogOptions> {
  const rootOf = (o: EventlogOptions): string => resolve(o.dir ?? config.dir ?? DEFAULT_DIR);
  const rabbit: RabbitSettings | undefined = config.rabbitmq ? { url: config.rabbitmq.url, prefix: config.rabbitmq.prefix ?? 'eventlog.' } : undefined;
  const rabbitPrefetch = config.rabbitmq?.prefetch ?? 1000;
  return {
    scheme: 'eventlog',
    description: 'Replayable event log (embedded, no server): partitioned segment files with offset and time indexes, CRC per record, consumer groups with fenced partition ownership, at-most/at-least/effectively-once per route, retention and compaction.',
    optionsSchema: eventlogOptions,
    createConsumer(endpoint, ctx) {
      const o = endpoint.options;
      const topic = topicOf(endpoint);
      const root = rootOf(o);
      const topicDir = join(root, topic);
      if (rabbit) {
        noCompaction(endpoint);
        const backend = new RabbitBackend({ s: rabbit, topic, prefetch: rabbitPrefetch, args: streamArguments(o), logger: ctx.logger });
        return new EventlogConsumer({ topic, topicDir, partitions: o.partitions ?? 1, backend, o }, ctx);
      }
      let meta = readTopicMeta(topicDir);
      if (!meta) {
        // the consumer may start before any producer: it creates the topic (same partition count rule)
        meta = { partitions: o.partitions ?? 1 };
        try {
          mkdirSync(topicDir, { recursive: true });
          writeFileDurable(join(topicDir, 'meta.json'), Buffer.from(JSON.stringify(meta)));
        } catch (err) {
          throw new BusbarError('EVENTLOG_IO', `endpoint "${endpoint.uri}": cannot create ${topicDir}: ${(err as Error).message}`, { cause: err, details: { uri: endpoint.uri, path: topicDir } });
        }
      } else if (o.partitions !== undefined && o.partitions !== meta.partitions) {
        throw new BusbarError('EVENTLOG_CONFIG', `endpoint "${endpoint.uri}": topic "${topic}" has ${meta.partitions} partitions; the endpoint asks for ${o.partitions}`, { details: { uri: endpoint.uri, partitions: meta.partitions, asked: o.partitions } });
      }
      return new EventlogConsumer({ topic, topicDir, partitions: meta.partitions, backend: new FileBackend(topicDir, hub(ctx)), o }, ctx);
    },
    createProducer(endpoint, ctx) {
      const o = endpoint.options;
      if (rabbit) {
        noCompaction(endpoint);
        const topic = topicOf(endpoint);
        const appender = new RabbitAppender({ s: rabbit, topic, partitions: o.partitions ?? 1, args: streamArguments(o), logger: ctx.logger });
        return new RabbitEventlogProducer(appender, topic, o);
      }
      return new EventlogProducer(hub(ctx), rootOf(o), topicOf(endpoint), o, ctx);
    },
  };
}

/** The adapter with topics under `./data/eventlog`. */
export const eventlogAdapter: Adapter<EventlogOptions> = createEventlogAdapter();
export default eventlogAdapter;

/** Where `seekGroup` moves a group: the same position in every partition, or one offset per partition. */
export type SeekTarget = 'earliest' | 'latest' | number | Date | readonly number[];

/**
 * Move a consumer group to a position in every partition (replay for recomputation, or skip
 * ahead): earliest, latest, an offset, or a time (the first record appended at or after it).
 * Running members restart their partitions from there; their in-flight commits are fenced.
 */
export function seekGroup(opts: { dir?: string; topic: string; group: string; to: SeekTarget }): number[] {
  const topicDir = join(resolve(opts.dir ?? DEFAULT_DIR), opts.topic);
  const meta = readTopicMeta(topicDir);
  if (!meta) throw new BusbarError('EVENTLOG_CONFIG', `event log topic "${opts.topic}" does not exist in ${topicDir}`, { details: { topic: opts.topic } });
  const offsets: number[] = [];
  if (Array.isArray(opts.to) && opts.to.length !== meta.partitions) {
    throw new BusbarError('EVENTLOG_CONFIG', `seekGroup: topic "${opts.topic}" has ${meta.partitions} partitions; ${opts.to.length} offsets were given`, { details: { topic: opts.topic, partitions: meta.partitions, given: opts.to.length } });
  }
  for (let p = 0; p < meta.partitions; p++) {
    const d = join(topicDir, String(p));
    const t = opts.to;
    offsets.push(t === 'earliest' ? earliestOffset(d) : t === 'latest' ? latestOffset(d) : t instanceof Date ? offsetForTime(d, t.getTime()) : typeof t === 'number' ? t : Number((t as readonly number[])[p]));
  }
  seekGroupOffsets(topicDir, opts.group, offsets);
  return offsets;
}

/** Committed offset, log end and lag per partition of a group (from any process). */
export function groupLag(opts: { dir?: string; topic: string; group: string }): Record<string, { committed: number | undefined; end: number; lag: number; owner: string | undefined }> {
  const topicDir = join(resolve(opts.dir ?? DEFAULT_DIR), opts.topic);
  const meta = readTopicMeta(topicDir);
  const state = readGroup(groupPaths(topicDir, opts.group).file);
  const out: Record<string, { committed: number | undefined; end: number; lag: number; owner: string | undefined }> = {};
  for (let p = 0; p < (meta?.partitions ?? 0); p++) {
    const d = join(topicDir, String(p));
    const end = latestOffset(d);
    const committed = state?.offsets[p];
    out[p] = { committed, end, lag: end - (committed ?? earliestOffset(d)), owner: state?.assignment[p]?.member };
  }
  return out;
}
