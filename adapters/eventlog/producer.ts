import type { Producer, ProducerContext } from '../../lib/adapter.js';
import { withHeaders, type Message } from '../../lib/message.js';
import { renderTemplate } from '../../lib/template.js';
import { toRecord } from './codec.js';
import type { Hub } from './hub.js';
import type { EventLog, LogSettings } from './log.js';
import { EVENTLOG_HEADERS as H, type EventlogOptions } from './options.js';
import type { RabbitAppender } from './rabbitmq.js';

/**
 * Appends each message as a record (key from the `key` template), to the partition of its
 * key. Sends arriving together are written and synced together (group commit); each resolves
 * once its record is durable by the fsync policy, with the record's partition and offset as
 * headers of the reply.
 */
export class EventlogProducer implements Producer {
  readonly #hub: Hub;
  readonly #root: string;
  readonly #topic: string;
  readonly #o: EventlogOptions;
  readonly #ctx: ProducerContext;
  #log: EventLog | undefined;

  constructor(hub: Hub, root: string, topic: string, o: EventlogOptions, ctx: ProducerContext) {
    this.#hub = hub;
    this.#root = root;
    this.#topic = topic;
    this.#o = o;
    this.#ctx = ctx;
  }

  async start(): Promise<void> {
    const o = this.#o;
    const settings: Partial<LogSettings> = {
      segmentBytes: o.segmentBytes,
      indexIntervalBytes: o.indexIntervalBytes,
      fsync: o.fsync,
      fsyncIntervalMs: o.fsyncIntervalMs,
      inlineSyncMs: o.inlineSyncMs,
      maxBatchRecords: o.maxBatchRecords,
      retentionMs: o.retentionMs,
      retentionBytes: o.retentionBytes,
      compact: o.compact,
      tombstoneRetentionMs: o.tombstoneRetentionMs,
      maintenanceIntervalMs: o.maintenanceIntervalMs,
    };
    if (o.partitions !== undefined) settings.partitions = o.partitions;
    this.#log = this.#hub.acquire(this.#root, this.#topic, settings, this.#ctx.logger);
  }

  async stop(): Promise<void> {
    const log = this.#log;
    this.#log = undefined;
    if (log) await this.#hub.release(log);
  }

  /** The topic this producer writes (for tools and tests: retention, compaction, offsets). */
  get log(): EventLog | undefined {
    return this.#log;
  }

  async send(msg: Message): Promise<Message | undefined> {
    if (!this.#log) await this.start();
    const log = this.#log!;
    const key = this.#o.key === undefined ? undefined : renderTemplate(this.#o.key, msg);
    const rec = toRecord(msg, key);
    const partition = log.partitionFor(rec.key);
    const offset = await log.append(partition, [rec]);
    return withHeaders(msg, { [H.topic]: this.#topic, [H.partition]: partition, [H.offset]: offset });
  }
}

/**
 * The RabbitMQ backend's producer: each message is published to its partition's stream queue
 * with publisher confirms; a send resolves once RabbitMQ confirmed it. The reply carries the
 * partition (a stream assigns the offset; AMQP 0-9-1 does not tell the publisher).
 */
export class RabbitEventlogProducer implements Producer {
  readonly #appender: RabbitAppender;
  readonly #topic: string;
  readonly #o: EventlogOptions;

  constructor(appender: RabbitAppender, topic: string, o: EventlogOptions) {
    this.#appender = appender;
    this.#topic = topic;
    this.#o = o;
  }

  async start(): Promise<void> {
    // connects on the first send (and again after a lost connection)
  }

  async stop(): Promise<void> {
    await this.#appender.close();
  }

  async send(msg: Message): Promise<Message | undefined> {
    const key = this.#o.key === undefined ? undefined : renderTemplate(this.#o.key, msg);
    const rec = toRecord(msg, key);
    const partition = this.#appender.partitionFor(rec.key);
    await this.#appender.append(partition, rec, Date.now());
    return withHeaders(msg, { [H.topic]: this.#topic, [H.partition]: partition });
  }
}
