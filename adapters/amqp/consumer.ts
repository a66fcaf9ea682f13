import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { shouldAck, type Consumer, type ConsumerContext, type Processor } from '../../lib/adapter.js';
import type { TimerHandle } from '../../lib/clock.js';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import type { HeaderPolicy } from '../../lib/header-policy.js';
import { withHeaders, type Message } from '../../lib/message.js';
import { isPromise, type MaybePromise } from '../../lib/step.js';
import { deadLetterHeaders } from '../../lib/route.js';
import type { AmqpClient, ClientStatus } from './client.js';
import { AckBatcher } from './acks.js';
import { decode, deliveryCount, encode, WIRE, type BodyType } from './mapping.js';
import { closeQuietly, ensureQueue } from './topology.js';

export interface ConsumerSettings {
  source: { kind: 'queue' | 'exchange'; name: string };
  /** For exchange sources: binding keys of the consumer's queue. */
  bindingKeys: string[];
  /** For exchange sources: a named, shared queue instead of a private one per consumer. */
  queue: string | undefined;
  prefetch: number;
  maxDeliveries: number;
  deadLetter: string | undefined;
  bodyType: BodyType;
  declareQueue: boolean;
  /** How long `stop` waits for messages already handed to the route. */
  drainTimeoutMs: number;
  /** Which headers are taken off the wire, and written onto replies (the `headers` allow-list). */
  headers: HeaderPolicy;
  /** Set when the source is a stream queue: where the first subscription starts reading. */
  stream: { start: StreamStart } | undefined;
}

/** Where to read a stream from: `x-stream-offset` as RabbitMQ takes it. */
export type StreamStart = 'first' | 'last' | 'next' | number | Date;

/**
 * Offsets of one stream subscription (one channel), in delivery order: `resumeAt` is the
 * offset after the last one that finished with all before it.
 */
class StreamProgress {
  #offsets: number[] = [];
  #head = 0;
  readonly #done = new Set<number>();
  resumeAt: number | undefined;

  delivered(offset: number): void {
    this.#offsets.push(offset);
  }

  finished(offset: number): void {
    this.#done.add(offset);
    const o = this.#offsets;
    let h = this.#head;
    while (h < o.length && this.#done.has(o[h]!)) {
      this.#done.delete(o[h]!);
      this.resumeAt = o[h]! + 1;
      h++;
    }
    if (h > 1024 && h * 2 > o.length) {
      this.#offsets = o.slice(h);
      h = 0;
    }
    this.#head = h;
  }
}

/**
 * Consumes with manual acknowledgement: a delivery is acked only after `ctx.process`
 * resolved (the route and all its outputs finished). A failure the error policy settled
 * (dead-lettered, handled) is acked too; any other failure puts the message back with its
 * delivery count raised (republished with `x-busbar-deliveries`, then acked once the broker
 * confirmed the copy), so classic queues count deliveries like quorum queues do. A message
 * delivered more than `maxDeliveries` times is not processed again: it goes to `deadLetter`
 * with the reason, or is rejected to the queue's dead-letter exchange, and is logged.
 * Prefetch is the route's in-flight bound, so the broker never hands over more than the
 * route can hold.
 */
export class AmqpConsumer implements Consumer {
  readonly #client: AmqpClient;
  readonly #ctx: ConsumerContext;
  /** The route's entry points, read per delivery (see ConsumerContext.processor). */
  readonly #route: Processor;
  readonly #s: ConsumerSettings;
  #ch: ConfirmChannel | undefined;
  #tag: string | undefined;
  #queue: string | undefined;
  #inflight = 0;
  #idle: Array<() => void> = [];
  #stopping = true;
  #unlisten: (() => void) | undefined;
  #retry: TimerHandle | undefined;
  #retries = 0;
  #subscribing: Promise<void> | undefined;
  readonly #acks = new WeakMap<ConfirmChannel, AckBatcher>();
  /** Per subscription (channel) of a stream source; a new one starts at `#streamResume`. */
  readonly #streams = new WeakMap<ConfirmChannel, StreamProgress>();
  #streamResume: number | undefined;

  constructor(client: AmqpClient, ctx: ConsumerContext, settings: ConsumerSettings) {
    this.#client = client;
    this.#ctx = ctx;
    this.#route = ctx.processor;
    this.#s = settings;
  }

  /** The queue actually consumed (server-named for private exchange subscriptions). */
  get queue(): string | undefined {
    return this.#queue;
  }

  async start(): Promise<void> {
    this.#stopping = false;
    this.#ctx.setStatus('connecting');
    let conn: ChannelModel;
    try {
      conn = await this.#client.acquire();
    } catch (err) {
      this.#ctx.setStatus('disconnected', err);
      throw err;
    }
    this.#unlisten = this.#client.listen({
      status: (s, err) => this.#onStatus(s, err),
      reconnected: (c) => this.#subscribe(c),
    });
    try {
      await this.#subscribe(conn);
    } catch (err) {
      this.#stopping = true;
      this.#unlisten();
      await this.#client.release();
      this.#ctx.setStatus('disconnected', err);
      throw err;
    }
  }

  /** Ready messages in the queue (consumer lag), read on a metrics scrape. */
  async backlog(): Promise<number | undefined> {
    const ch = this.#ch;
    if (!ch || !this.#queue) return undefined;
    const q = await ch.checkQueue(this.#queue);
    return q.messageCount;
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#retry) this.#ctx.clock.clearTimeout(this.#retry);
    await this.#subscribing?.catch(() => undefined);
    const ch = this.#ch;
    if (ch && this.#tag) await ch.cancel(this.#tag).catch(() => undefined);
    // messages already in the route still need their ack on this channel
    if (this.#inflight > 0) {
      await new Promise<void>((resolve) => {
        const t = this.#ctx.clock.setTimeout(resolve, this.#s.drainTimeoutMs);
        this.#idle.push(() => {
          this.#ctx.clock.clearTimeout(t);
          resolve();
        });
      });
    }
    this.#unlisten?.();
    this.#ch = undefined;
    if (ch) this.#acks.get(ch)?.flush();
    await closeQuietly(ch);
    await this.#client.release();
    this.#ctx.setStatus('idle');
  }

  #onStatus(s: ClientStatus, err: unknown): void {
    if (this.#stopping) return;
    // 'connected' is reported once this consumer has resubscribed, not when the socket is up
    if (s !== 'connected' && s !== 'idle') this.#ctx.setStatus(s, err);
  }

  /**
   * Subscriptions run one at a time, and one that finds a live channel does nothing: a
   * reconnection and a channel retry can ask at about the same moment, and two channels
   * would mean two consumers for one route.
   */
  #subscribe(conn: ChannelModel): Promise<void> {
    const prev = this.#subscribing ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.#doSubscribe(conn));
    const tracked = run.finally(() => {
      if (this.#subscribing === tracked) this.#subscribing = undefined;
    });
    this.#subscribing = tracked;
    tracked.catch(() => undefined);
    return run;
  }

  async #doSubscribe(conn: ChannelModel): Promise<void> {
    {
      if (this.#stopping || this.#ch || this.#client.connection !== conn) return;
      const s = this.#s;
      const ch = await conn.createConfirmChannel();
      this.#acks.set(ch, new AckBatcher(ch));
      ch.on('error', (err: Error) => this.#ctx.logger.warn({ err: err.message, queue: this.#queue }, 'amqp consumer channel closed by the broker'));
      ch.on('close', () => {
        if (this.#ch !== ch) return;
        this.#ch = undefined;
        this.#tag = undefined;
        if (this.#stopping) return;
        this.#ctx.setStatus('disconnected', new Error('channel closed'));
        if (this.#client.connection) this.#scheduleRetry();
      });
      try {
        await ch.prefetch(s.prefetch);
        let queue: string;
        if (s.source.kind === 'queue') {
          queue = s.source.name;
          if (s.declareQueue) await ensureQueue(conn, queue);
        } else {
          const q = s.queue !== undefined ? await ch.assertQueue(s.queue, { durable: true }) : await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
          queue = q.queue;
          for (const key of s.bindingKeys) await ch.bindQueue(queue, s.source.name, key);
        }
        this.#queue = queue;
        this.#ch = ch;
        const ok = await ch.consume(queue, (m) => this.#onMessage(ch, m), { noAck: false, arguments: this.#consumeArguments(ch) });
        if (this.#ch === ch) this.#tag = ok.consumerTag;
      } catch (err) {
        if (this.#ch === ch) this.#ch = undefined;
        await closeQuietly(ch);
        throw err;
      }
      if (this.#stopping) return;
      this.#retries = 0;
      this.#ctx.setStatus('connected');
      this.#ctx.logger.debug({ queue: this.#queue, prefetch: s.prefetch }, 'amqp consumer subscribed');
    }
  }

  /** A stream starts where configured, and after a reconnection right after the last offset the route finished. */
  #consumeArguments(ch: ConfirmChannel): Record<string, unknown> | undefined {
    if (!this.#s.stream) return undefined;
    this.#streams.set(ch, new StreamProgress());
    const at = this.#streamResume ?? this.#s.stream.start;
    return { 'x-stream-offset': at instanceof Date ? { '!': 'timestamp', value: Math.floor(at.getTime() / 1000) } : at };
  }

  /** The channel died (queue deleted, consumer cancelled) while the connection lives: subscribe again later. */
  #scheduleRetry(): void {
    if (this.#retry || this.#stopping) return;
    this.#retries++;
    const delay = Math.min(5000, 100 * 2 ** Math.min(this.#retries, 6));
    this.#ctx.setStatus('backing-off');
    this.#retry = this.#ctx.clock.setTimeout(() => {
      this.#retry = undefined;
      const conn = this.#client.connection;
      if (!conn || this.#stopping || this.#ch) return;
      this.#subscribe(conn).catch((err: unknown) => {
        this.#ctx.logger.warn({ err: (err as Error).message, code: (err as BusbarError).code, queue: this.#queue }, 'amqp consumer could not subscribe again');
        this.#ctx.setStatus('disconnected', err);
        this.#scheduleRetry();
      });
    }, delay);
  }

  #onMessage(ch: ConfirmChannel, m: ConsumeMessage | null): void {
    if (m === null) {
      // the broker cancelled us (queue deleted or failed over)
      this.#ctx.logger.warn({ queue: this.#queue }, 'amqp consumer cancelled by the broker; subscribing again');
      if (this.#ch === ch) {
        this.#ch = undefined;
        this.#tag = undefined;
        void closeQuietly(ch);
        if (!this.#stopping) this.#scheduleRetry();
      }
      return;
    }
    this.#inflight++;
    this.#acks.get(ch)!.delivered(m.fields.deliveryTag);
    this.#streams.get(ch)?.delivered(streamOffsetOf(m));
    let msg: Message;
    try {
      msg = decode(m, this.#s.bodyType, this.#s.headers);
    } catch (err) {
      this.#poison(ch, m, decode(m, 'buffer', this.#s.headers), err as BusbarError);
      return;
    }
    const n = deliveryCount(m);
    if (n > this.#s.maxDeliveries) {
      this.#poison(ch, m, msg, new BusbarError('AMQP_POISON', `message ${msg.id} from queue "${this.#queue}" was delivered ${n} times (maxDeliveries ${this.#s.maxDeliveries}); not processing it again`, { details: { queue: this.#queue, deliveries: n, maxDeliveries: this.#s.maxDeliveries } }));
      return;
    }
    let r: MaybePromise<Message>;
    try {
      r = this.#route.processNow(msg);
    } catch (err) {
      r = Promise.reject(err);
    }
    // a route that finished at once is acknowledged at once: no promise, handlers or microtask per delivery
    if (isPromise(r)) this.#whenProcessed(r, ch, m, msg);
    else this.#processed(ch, m, r);
  }

  // apart from #onMessage: a function that makes closures gives every call a context for them
  #whenProcessed(r: Promise<Message>, ch: ConfirmChannel, m: ConsumeMessage, msg: Message): void {
    r.then(
      (reply) => this.#processed(ch, m, reply),
      (err: unknown) => {
        if (shouldAck(err)) {
          if (m.properties.replyTo) this.#reply(ch, m, undefined, err);
          this.#ack(ch, m);
        } else {
          this.#requeue(ch, m, msg, err);
        }
      },
    );
  }

  #processed(ch: ConfirmChannel, m: ConsumeMessage, reply: Message): void {
    if (m.properties.replyTo) this.#reply(ch, m, reply, undefined);
    this.#ack(ch, m);
  }

  #done(): void {
    this.#inflight--;
    if (this.#inflight === 0 && this.#idle.length) for (const r of this.#idle.splice(0)) r();
  }

  #ack(ch: ConfirmChannel, m: ConsumeMessage): void {
    const progress = this.#streams.get(ch);
    if (progress) {
      progress.finished(streamOffsetOf(m));
      // what any subscription finished, with all before it, need not be read again
      if (progress.resumeAt !== undefined && (this.#streamResume === undefined || progress.resumeAt > this.#streamResume)) this.#streamResume = progress.resumeAt;
    }
    try {
      this.#acks.get(ch)!.ack(m.fields.deliveryTag);
    } catch {
      // the channel is gone; the broker has put the message back and delivers it again
    } finally {
      this.#done();
    }
  }

  #nack(ch: ConfirmChannel, m: ConsumeMessage, requeue: boolean): void {
    if (this.#s.stream) {
      // a stream cannot take a message back (nor dead-letter it): the reader moves on; the
      // message stays in the stream at its offset, to be read again from there if wanted
      this.#ctx.logger.error({ messageId: m.properties.messageId, queue: this.#queue, streamOffset: streamOffsetOf(m) }, `amqp stream message not processed and skipped; it stays in the stream at offset ${streamOffsetOf(m)}`);
      this.#ack(ch, m);
      return;
    }
    try {
      this.#acks.get(ch)!.nack(m.fields.deliveryTag, requeue);
    } catch {
      // the channel is gone; the broker delivers it again
    } finally {
      this.#done();
    }
  }

  /** Back to the queue with the delivery count raised, acked only once the broker has the copy. */
  #requeue(ch: ConfirmChannel, m: ConsumeMessage, msg: Message, err: unknown): void {
    if (this.#s.stream) {
      // republishing would append a copy to the stream for every reader: skip it instead (logged with its offset)
      this.#ctx.logger.warn({ messageId: msg.id, code: (err as BusbarError).code, err: (err as Error).message }, 'amqp stream message failed');
      this.#nack(ch, m, false);
      return;
    }
    const n = deliveryCount(m);
    this.#ctx.logger.warn({ messageId: msg.id, deliveries: n, maxDeliveries: this.#s.maxDeliveries, code: (err as BusbarError).code, err: (err as Error).message }, 'amqp message failed; putting it back on the queue');
    const headers: Record<string, unknown> = { ...((m.properties.headers ?? {}) as Record<string, unknown>), [WIRE.deliveries]: n };
    delete headers['x-delivery-count'];
    const p = m.properties;
    const options: Parameters<ConfirmChannel['publish']>[3] & object = { headers, persistent: p.deliveryMode === 2 };
    for (const k of ['contentType', 'contentEncoding', 'priority', 'correlationId', 'replyTo', 'expiration', 'messageId', 'timestamp', 'type', 'appId'] as const) {
      const v = (p as unknown as Record<string, unknown>)[k];
      if (v !== undefined && v !== null) (options as Record<string, unknown>)[k] = v;
    }
    try {
      ch.publish('', this.#queue!, m.content, options, (e: Error | null) => {
        if (e) this.#nack(ch, m, true);
        else this.#ack(ch, m);
      });
    } catch {
      this.#done(); // channel gone: redelivered by the broker anyway
    }
  }

  /**
   * A message not to run through the route (past `maxDeliveries`, or undecodable): to the
   * endpoint's own `deadLetter` if it has one, else through the route's error policy (its
   * dead-letter endpoint, with the reason); acked once there. With neither, it is rejected
   * without requeue, to the queue's dead-letter exchange if the queue has one.
   */
  #poison(ch: ConfirmChannel, m: ConsumeMessage, msg: Message, reason: BusbarError): void {
    reason.details.attempts = deliveryCount(m);
    reason.details.step = 'amqp consumer';
    const dl = this.#s.deadLetter;
    const settled = dl
      ? this.#ctx.send(dl, withHeaders(msg, deadLetterHeaders(reason, this.#ctx.routeId, deliveryCount(m), this.#ctx.clock.now()))).then(() => {
          this.#ctx.logger.warn({ messageId: msg.id, code: reason.code, deadLetter: dl }, `amqp poison message dead-lettered: ${reason.message}`);
        })
      : this.#ctx.reject(msg, reason);
    settled.then(
      () => {
        if (m.properties.replyTo) this.#reply(ch, m, undefined, reason);
        this.#ack(ch, m);
      },
      (err: unknown) => {
        if (!dl && err === reason) {
          // nowhere of ours to put it: the queue's own dead-letter exchange takes it (if it has one); the log keeps a trace
          this.#ctx.logger.error({ messageId: msg.id, code: reason.code, queue: this.#queue, headers: msg.headers, body: Buffer.isBuffer(msg.body) ? msg.body.toString('base64') : msg.body }, `amqp poison message rejected (to the queue's dead-letter exchange, if any): ${reason.message}`);
          if (m.properties.replyTo) this.#reply(ch, m, undefined, reason);
          this.#nack(ch, m, false);
          return;
        }
        this.#ctx.logger.error({ err, messageId: msg.id, deadLetter: dl }, 'amqp poison message could not be dead-lettered; putting it back for a later try');
        // wait a little so a broken dead-letter endpoint does not turn into a hot loop
        this.#ctx.clock.setTimeout(() => this.#nack(ch, m, true), 1000);
      },
    );
  }

  #reply(ch: ConfirmChannel, m: ConsumeMessage, reply: Message | undefined, err: unknown): void {
    const to = String(m.properties.replyTo);
    try {
      if (reply) {
        const { content, options } = encode(reply, { persistent: false, mandatory: false, policy: this.#s.headers });
        options.correlationId = m.properties.correlationId;
        options.headers = { ...(options.headers as Record<string, unknown> | undefined), [WIRE.correlation]: reply.correlationId };
        ch.publish('', to, content, options);
      } else {
        const code = isBusbarError(err) ? err.code : 'BUSBAR_ERR_STEP_FAILED';
        const text = err instanceof Error ? err.message : String(err);
        ch.publish('', to, Buffer.from(JSON.stringify({ code, message: text })), {
          contentType: 'application/json',
          correlationId: m.properties.correlationId,
          headers: { [WIRE.errorCode]: code, [WIRE.errorMessage]: text },
        });
      }
    } catch (e) {
      this.#ctx.logger.warn({ err: (e as Error).message, replyTo: to }, 'amqp reply could not be sent (channel closed)');
    }
  }
}

/** The offset RabbitMQ gives a message delivered from a stream (`x-stream-offset` header). */
function streamOffsetOf(m: ConsumeMessage): number {
  return Number((m.properties.headers as Record<string, unknown> | undefined)?.['x-stream-offset'] ?? -1);
}
