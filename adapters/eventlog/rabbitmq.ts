import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { Logger } from 'pino';
import { BusbarError } from '../../lib/errors.js';
import type { LogBackend, PartitionSource } from './backend.js';
import { partitionOf, type LogRecord, type RecordInput, type ValueKind } from './record.js';

/**
 * The RabbitMQ backend of the event log, for scale-out: a topic of N partitions is N stream
 * queues `<prefix><topic>.<p>` (`x-queue-type: stream`), read over AMQP 0-9-1 with amqplib
 * (Debian's RabbitMQ 3.10 has no server-side offset tracking for 0-9-1 clients, so group
 * offsets stay in busbar's group store). A stream consumer needs a prefetch and manual acks
 * (the ack only returns credit; nothing is removed); it attaches with `x-stream-offset` at the
 * start of the chunk holding that offset, so records before the asked offset are delivered
 * again and dropped here, as are any at or below what was already handed out (after a
 * reconnection or a seek). Records carry their key, value kind, headers and the producer's
 * append time (ms) as AMQP headers.
 */

export interface RabbitSettings {
  url: string;
  /** Prepended to `<topic>.<partition>` to name the stream queues. */
  prefix: string;
}

const H_KEY = 'busbar-key';
const H_KIND = 'busbar-kind';
const H_TS = 'busbar-ts';
const H_HEADERS = 'busbar-headers';
const H_NULL = 'busbar-null';
const KINDS = new Set<ValueKind>(['buffer', 'string', 'json']);

export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:***@');
}

export function streamName(s: RabbitSettings, topic: string, partition: number): string {
  return `${s.prefix}${topic}.${partition}`;
}

function lost(s: RabbitSettings, what: string, err: unknown): BusbarError {
  return new BusbarError('AMQP_CONNECTION', `event log on RabbitMQ ${redact(s.url)}: ${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err, details: { url: redact(s.url) } });
}

/** Stream arguments from the log's retention settings (RabbitMQ applies them per segment, like the embedded log). */
export function streamArguments(o: { retentionMs?: number | undefined; retentionBytes?: number | undefined; segmentBytes?: number | undefined }): Record<string, unknown> {
  const args: Record<string, unknown> = { 'x-queue-type': 'stream' };
  if (o.retentionMs !== undefined) args['x-max-age'] = `${Math.max(1, Math.ceil(o.retentionMs / 1000))}s`;
  if (o.retentionBytes !== undefined) args['x-max-length-bytes'] = o.retentionBytes;
  if (o.segmentBytes !== undefined) args['x-stream-max-segment-size-bytes'] = o.segmentBytes;
  return args;
}

/** One connection, opened when first needed and again after it was lost (amqplib loaded then). */
class Connection {
  readonly #s: RabbitSettings;
  readonly #logger: Logger;
  #conn: Promise<ChannelModel> | undefined;
  #closed = false;

  constructor(s: RabbitSettings, logger: Logger) {
    this.#s = s;
    this.#logger = logger;
  }

  get(): Promise<ChannelModel> {
    this.#closed = false;
    if (!this.#conn) {
      const p = (async () => {
        const amqp = await import('amqplib');
        try {
          const c = await amqp.connect(this.#s.url, { clientProperties: { connection_name: 'busbar eventlog' } });
          c.on('error', (err: Error) => this.#logger.warn({ err: err.message, url: redact(this.#s.url) }, 'event log: RabbitMQ connection error'));
          c.on('close', () => {
            if (this.#conn === p) this.#conn = undefined;
          });
          return c;
        } catch (err) {
          throw lost(this.#s, 'cannot connect', err);
        }
      })();
      this.#conn = p;
      p.catch(() => {
        if (this.#conn === p) this.#conn = undefined;
      });
    }
    return this.#conn;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const p = this.#conn;
    this.#conn = undefined;
    if (p) await p.then((c) => c.close(), () => undefined).catch(() => undefined);
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/** An existing stream is used as it is (retention set by whoever created it); a missing one is created with `args`. */
async function assertStream(conn: ChannelModel, s: RabbitSettings, name: string, args: Record<string, unknown>): Promise<void> {
  const probe = await conn.createChannel();
  probe.on('error', () => undefined);
  const exists = await probe.checkQueue(name).then(
    () => true,
    () => false,
  );
  if (exists) {
    await probe.close().catch(() => undefined);
    return;
  }
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  try {
    await ch.assertQueue(name, { durable: true, arguments: args });
  } catch (err) {
    throw new BusbarError('AMQP_TOPOLOGY_CONFLICT', `event log on RabbitMQ ${redact(s.url)}: stream queue "${name}" exists with other arguments: ${(err as Error).message}`, { cause: err, details: { queue: name } });
  } finally {
    await ch.close().catch(() => undefined);
  }
}

function toLogRecord(m: ConsumeMessage, offset: number): LogRecord {
  const h = (m.properties.headers ?? {}) as Record<string, unknown>;
  const rawKey = h[H_KEY];
  const kind = h[H_KIND] as ValueKind;
  let headers: Record<string, unknown> = {};
  if (typeof h[H_HEADERS] === 'string') headers = JSON.parse(h[H_HEADERS]) as Record<string, unknown>;
  return {
    offset,
    timestamp: Number(h[H_TS] ?? 0),
    key: rawKey === undefined || rawKey === null ? null : Buffer.from(String(rawKey)),
    value: h[H_NULL] === true ? null : m.content,
    kind: KINDS.has(kind) ? kind : 'buffer',
    headers,
    size: m.content.length,
  };
}

/** A stream consumer of one partition from an offset; holds at most `prefetch` unacked records. */
class StreamReader implements PartitionSource {
  readonly #conn: Connection;
  readonly #s: RabbitSettings;
  readonly #queue: string;
  readonly #prefetch: number;
  readonly #args: Record<string, unknown>;
  readonly #wake: () => void;
  readonly #seen: (offset: number) => void;
  #next: number;
  #asked: number;
  #ch: Channel | undefined;
  #opening: Promise<void> | undefined;
  #buf: Array<{ m: ConsumeMessage; offset: number }> = [];
  #error: unknown;
  #closed = false;
  #gen = 0;
  skipped: [number, number] | undefined;

  constructor(o: { conn: Connection; s: RabbitSettings; queue: string; offset: number; prefetch: number; args: Record<string, unknown>; wake: () => void; seen: (offset: number) => void }) {
    this.#conn = o.conn;
    this.#s = o.s;
    this.#queue = o.queue;
    this.#next = o.offset;
    this.#asked = o.offset;
    this.#prefetch = o.prefetch;
    this.#args = o.args;
    this.#wake = o.wake;
    this.#seen = o.seen;
  }

  get position(): number {
    return this.#next;
  }

  async #open(): Promise<void> {
    const gen = ++this.#gen;
    const conn = await this.#conn.get();
    await assertStream(conn, this.#s, this.#queue, this.#args);
    const ch = await conn.createChannel();
    if (gen !== this.#gen || this.#closed) {
      await ch.close().catch(() => undefined);
      return;
    }
    const fail = (err: unknown): void => {
      if (this.#ch !== ch) return;
      this.#ch = undefined;
      this.#error = lost(this.#s, `stream "${this.#queue}" consumer lost`, err ?? new Error('channel closed'));
      this.#wake();
    };
    ch.on('error', fail);
    ch.on('close', () => fail(undefined));
    await ch.prefetch(this.#prefetch);
    this.#ch = ch;
    this.#asked = this.#next;
    await ch.consume(
      this.#queue,
      (m) => {
        if (!m) return fail(new Error('consumer cancelled by the broker'));
        if (this.#ch !== ch) return;
        const offset = Number((m.properties.headers as Record<string, unknown> | undefined)?.['x-stream-offset']);
        this.#seen(offset);
        // the chunk holding the asked offset starts earlier; what was handed out already is not repeated
        if (!(offset >= this.#next) || (this.#buf.length && offset <= this.#buf[this.#buf.length - 1]!.offset)) {
          ch.ack(m);
          return;
        }
        if (this.#buf.length === 0 && offset > this.#asked && this.#asked === this.#next) this.skipped = [this.#next, offset];
        this.#buf.push({ m, offset });
        this.#wake();
      },
      { noAck: false, arguments: { 'x-stream-offset': this.#next } },
    );
  }

  async read(max: number): Promise<LogRecord[]> {
    if (this.#closed) return [];
    if (this.#error) {
      const err = this.#error;
      this.#error = undefined;
      throw err;
    }
    if (!this.#ch) {
      this.#opening ??= this.#open().finally(() => (this.#opening = undefined));
      await this.#opening;
    }
    const ch = this.#ch;
    const out: LogRecord[] = [];
    while (out.length < max && this.#buf.length) {
      const { m, offset } = this.#buf.shift()!;
      ch?.ack(m);
      if (offset < this.#next) continue;
      try {
        out.push(toLogRecord(m, offset));
      } catch {
        out.push({ offset, timestamp: 0, key: null, value: m.content, kind: 'buffer', headers: {}, size: m.content.length });
      }
      this.#next = offset + 1;
    }
    return out;
  }

  seek(offset: number): void {
    this.#next = offset;
    this.#drop();
  }

  #drop(): void {
    this.#gen++;
    const ch = this.#ch;
    this.#ch = undefined;
    this.#buf = [];
    this.#error = undefined;
    if (ch) void ch.close().catch(() => undefined);
  }

  close(): void {
    this.#closed = true;
    this.#drop();
  }
}

/** A topic's partitions on RabbitMQ streams, for the consumer. */
export class RabbitBackend implements LogBackend {
  readonly #conn: Connection;
  readonly #s: RabbitSettings;
  readonly #topic: string;
  readonly #prefetch: number;
  readonly #args: Record<string, unknown>;
  readonly #ends = new Map<number, number>();
  readonly #wakers = new Set<(p: number) => void>();
  readonly #quietMs: number;

  constructor(o: { s: RabbitSettings; topic: string; prefetch: number; args: Record<string, unknown>; logger: Logger; quietMs?: number }) {
    this.#s = o.s;
    this.#topic = o.topic;
    this.#prefetch = o.prefetch;
    this.#args = o.args;
    this.#conn = new Connection(o.s, o.logger);
    this.#quietMs = o.quietMs ?? 150;
  }

  #saw(p: number, offset: number): void {
    if (offset + 1 > (this.#ends.get(p) ?? 0)) this.#ends.set(p, offset + 1);
  }

  reader(partition: number, offset: number): PartitionSource {
    return new StreamReader({
      conn: this.#conn,
      s: this.#s,
      queue: streamName(this.#s, this.#topic, partition),
      offset,
      prefetch: this.#prefetch,
      args: this.#args,
      wake: () => {
        for (const w of this.#wakers) w(partition);
      },
      seen: (o) => this.#saw(partition, o),
    });
  }

  /**
   * `latest` and a time need a look at the stream: a short-lived consumer attached at `last`
   * (the last chunk) or at the time's second, reading until the stream is quiet for a moment.
   * A time resolves to the first record whose append time is at or after it.
   */
  async resolveStart(partition: number, start: string): Promise<number> {
    if (start === 'earliest') return 0;
    if (/^[0-9]+$/.test(start)) return Number(start);
    const at = start === 'latest' ? undefined : Date.parse(start);
    const conn = await this.#conn.get();
    const queue = streamName(this.#s, this.#topic, partition);
    await assertStream(conn, this.#s, queue, this.#args);
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      await ch.prefetch(1000);
      let end = 0;
      let found: number | undefined;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        const quiet = (): void => {
          clearTimeout(timer);
          timer = setTimeout(resolve, this.#quietMs);
        };
        quiet();
        // a little before the time's second: chunk timestamps are the broker's, in seconds
        const from = at === undefined ? 'last' : { '!': 'timestamp', value: Math.max(0, Math.floor(at / 1000) - 1) };
        void ch.consume(
          queue,
          (m) => {
            if (!m) return;
            ch.ack(m);
            const offset = Number((m.properties.headers as Record<string, unknown> | undefined)?.['x-stream-offset']);
            end = Math.max(end, offset + 1);
            this.#saw(partition, offset);
            if (at !== undefined && found === undefined && Number((m.properties.headers as Record<string, unknown>)[H_TS]) >= at) {
              found = offset;
              clearTimeout(timer);
              resolve();
              return;
            }
            quiet();
          },
          { noAck: false, arguments: { 'x-stream-offset': from } },
        ).catch(() => resolve());
      });
      clearTimeout(timer);
      return found ?? end;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  end(partition: number): number {
    return this.#ends.get(partition) ?? 0;
  }

  onAppend(fn: (partition: number) => void): () => void {
    this.#wakers.add(fn);
    return () => this.#wakers.delete(fn);
  }

  close(): Promise<void> {
    return this.#conn.close();
  }
}

/**
 * Appends to the stream queues with publisher confirms: a send resolves when RabbitMQ
 * confirmed it (persisted on the stream's members).
 */
export class RabbitAppender {
  readonly #conn: Connection;
  readonly #s: RabbitSettings;
  readonly #topic: string;
  readonly #partitions: number;
  readonly #args: Record<string, unknown>;
  #ch: Promise<ConfirmChannel> | undefined;
  #rr = 0;

  constructor(o: { s: RabbitSettings; topic: string; partitions: number; args: Record<string, unknown>; logger: Logger }) {
    this.#s = o.s;
    this.#topic = o.topic;
    this.#partitions = o.partitions;
    this.#args = o.args;
    this.#conn = new Connection(o.s, o.logger);
  }

  partitionFor(key: Buffer | null): number {
    if (key === null) return this.#rr++ % this.#partitions;
    return partitionOf(key, this.#partitions);
  }

  #channel(): Promise<ConfirmChannel> {
    if (!this.#ch) {
      const p = (async () => {
        const conn = await this.#conn.get();
        for (let q = 0; q < this.#partitions; q++) await assertStream(conn, this.#s, streamName(this.#s, this.#topic, q), this.#args);
        // a topic with more partitions than asked would send some keys elsewhere than other producers
        const probe = await conn.createChannel();
        probe.on('error', () => undefined);
        const more = await probe.checkQueue(streamName(this.#s, this.#topic, this.#partitions)).then(
          () => true,
          () => false,
        );
        if (more) {
          await probe.close().catch(() => undefined);
          throw new BusbarError('EVENTLOG_CONFIG', `event log topic "${this.#topic}" on RabbitMQ has more than ${this.#partitions} partitions (stream ${streamName(this.#s, this.#topic, this.#partitions)} exists)`, { details: { topic: this.#topic, partitions: this.#partitions } });
        }
        const ch = await conn.createConfirmChannel();
        ch.on('error', () => undefined);
        ch.on('close', () => {
          if (this.#ch === p) this.#ch = undefined;
        });
        return ch;
      })();
      this.#ch = p;
      p.catch(() => {
        if (this.#ch === p) this.#ch = undefined;
      });
    }
    return this.#ch;
  }

  /** Resolves once RabbitMQ confirmed the record (offsets are assigned by the stream, not known here). */
  async append(partition: number, r: RecordInput, timestamp: number): Promise<void> {
    const ch = await this.#channel();
    const headers: Record<string, unknown> = { [H_KIND]: r.kind, [H_TS]: timestamp, [H_HEADERS]: JSON.stringify(r.headers) };
    if (r.key !== null) headers[H_KEY] = r.key.toString('utf8');
    if (r.value === null) headers[H_NULL] = true;
    const opts: Options.Publish = { headers, persistent: true, timestamp: Math.floor(timestamp / 1000) };
    await new Promise<void>((resolve, reject) => {
      try {
        ch.sendToQueue(streamName(this.#s, this.#topic, partition), r.value ?? Buffer.alloc(0), opts, (err) => (err ? reject(new BusbarError('AMQP_NACKED', `event log on RabbitMQ: stream ${streamName(this.#s, this.#topic, partition)} refused a record`, { cause: err, details: { topic: this.#topic, partition } })) : resolve()));
      } catch (err) {
        reject(lost(this.#s, 'publish failed', err));
      }
    });
  }

  close(): Promise<void> {
    this.#ch = undefined;
    return this.#conn.close();
  }
}
