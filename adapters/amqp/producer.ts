import { randomUUID } from 'node:crypto';
import type { Channel, ChannelModel, ConfirmChannel, Message as AmqpMessage } from 'amqplib';
import type { Producer, ProducerContext, RequestOptions } from '../../lib/adapter.js';
import type { TimerHandle } from '../../lib/clock.js';
import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';
import { renderTemplate } from '../../lib/template.js';
import type { HeaderPolicy } from '../../lib/header-policy.js';
import type { AmqpClient, ClientStatus } from './client.js';
import { decode, encode, WIRE, type BodyType } from './mapping.js';
import { closeQuietly, ensureQueue, exchangeExists, replyCode } from './topology.js';

export interface Target {
  kind: 'queue' | 'exchange';
  name: string;
}

export interface ProducerSettings {
  target: Target;
  routingKey: string | undefined;
  persistent: boolean;
  mandatory: boolean;
  confirmWindow: number;
  publishTimeoutMs: number;
  replyTimeoutMs: number;
  bodyType: BodyType;
  /** Which headers are published, and taken from replies (the `headers` allow-list). */
  headers: HeaderPolicy;
  /** Create the target queue if the broker does not have it (it is not in the topology). */
  declareQueue: boolean;
  /** The target exchange is declared in the topology (no need to check it exists). */
  managedExchange: boolean;
}

interface Pending {
  exchange: string;
  routingKey: string;
  content: Buffer;
  options: Parameters<ConfirmChannel['publish']>[3] & object;
  messageId: string;
  deadline: number;
  resolve: (v: undefined) => void;
  reject: (e: unknown) => void;
  channel: ConfirmChannel | undefined;
  returned: string | undefined;
  done: boolean;
}

interface PendingReply {
  timer: TimerHandle;
  resolve: (m: Message) => void;
  reject: (e: unknown) => void;
}

const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

/**
 * Publishes with publisher confirms, pipelined: up to `confirmWindow` messages are out
 * unconfirmed at once, each `send` resolving when the broker confirmed its message (so a
 * route acknowledges its source only once its output is safe). Respects the channel's
 * `drain`. Mandatory messages that come back are failures (AMQP_UNROUTABLE). When the
 * channel or connection is lost, unconfirmed messages are published again on the next
 * channel (at-least-once: a message confirmed just before the loss may be sent twice).
 */
export class AmqpProducer implements Producer {
  readonly #client: AmqpClient;
  readonly #ctx: ProducerContext;
  readonly #s: ProducerSettings;
  #ch: ConfirmChannel | undefined;
  #writable = true;
  readonly #unconfirmed = new Set<Pending>();
  /** Lost with a channel: published again first, in their original order. */
  #resend: Pending[] = [];
  #backlog: Pending[] = [];
  #channelError: unknown;
  #sweep: TimerHandle | undefined;
  #reopen: TimerHandle | undefined;
  #unlisten: (() => void) | undefined;
  #stopping = false;
  #started = false;
  #idle: Array<() => void> = [];
  #rpc: Promise<Channel> | undefined;
  #opening: Promise<void> | undefined;
  readonly #replies = new Map<string, PendingReply>();

  constructor(client: AmqpClient, ctx: ProducerContext, settings: ProducerSettings) {
    this.#client = client;
    this.#ctx = ctx;
    this.#s = settings;
  }

  async start(): Promise<void> {
    this.#stopping = false;
    const conn = await this.#client.acquire();
    try {
      this.#unlisten = this.#client.listen({ reconnected: (c) => this.#open(c) });
      await this.#open(conn, true);
    } catch (err) {
      this.#unlisten?.();
      await this.#client.release();
      throw err;
    }
    this.#started = true;
    const every = Math.max(10, Math.min(1000, Math.floor(this.#s.publishTimeoutMs / 4)));
    this.#sweep = this.#ctx.clock.setInterval(() => this.#expire(), every);
    (this.#sweep as { unref?: () => void }).unref?.();
  }

  /**
   * Read this queue as a dead-letter store (the management API lists and replays from it).
   * `list` takes every message off the queue unacknowledged on a channel of its own; each is
   * then acknowledged (`drop`: replayed or dead-lettered again) or put back (`restore`), and
   * `close` puts back whatever is left, so listing changes nothing and nothing is lost.
   */
  deadLetterStore(limit = 10_000): { list(): Promise<Array<{ id: string; msg: Message }>>; hold(s: { id: string }): Promise<void>; drop(s: { id: string }): Promise<void>; restore(s: { id: string }): Promise<void>; close(): Promise<void> } | undefined {
    if (this.#s.target.kind !== 'queue') return undefined;
    const queue = this.#s.target.name;
    let ch: Channel | undefined;
    const held = new Map<string, AmqpMessage>();
    const client = this.#client;
    let acquired = false;
    return {
      list: async () => {
        const conn = await client.acquire();
        acquired = true;
        ch = await conn.createChannel();
        const out: Array<{ id: string; msg: Message }> = [];
        while (out.length < limit) {
          const m = await ch.get(queue, { noAck: false });
          if (m === false) break;
          const id = `${m.fields.deliveryTag}`;
          held.set(id, m);
          out.push({ id: String(m.properties.messageId ?? id), msg: decode(m, this.#s.bodyType, this.#s.headers) });
          // the store refers to it by the id it showed
          if (out[out.length - 1]!.id !== id) {
            held.delete(id);
            held.set(out[out.length - 1]!.id, m);
          }
        }
        return out;
      },
      hold: async () => {},
      drop: async (s) => {
        const m = held.get(s.id);
        if (m && ch) ch.ack(m);
        held.delete(s.id);
      },
      restore: async (s) => {
        const m = held.get(s.id);
        if (m && ch) ch.nack(m, false, true);
        held.delete(s.id);
      },
      close: async () => {
        if (ch) {
          // put back what was only looked at, in one go
          if (held.size) ch.nackAll(true);
          held.clear();
          await closeQuietly(ch);
          ch = undefined;
        }
        if (acquired) await client.release();
        acquired = false;
      },
    };
  }

  /** The connection's status while started (readiness). */
  status(): { status: ClientStatus; error?: string; since?: number } {
    if (!this.#started) return { status: 'idle' };
    return { status: this.#client.status, ...this.#client.statusChange };
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#stopping = true;
    // what was accepted gets its confirm (or its timeout), then the channel goes
    if (this.#pendingCount() > 0) await new Promise<void>((r) => this.#idle.push(r));
    this.#failReplies(new BusbarError('AMQP_CONNECTION', 'amqp producer stopped before the reply arrived', { details: { target: this.#s.target } }));
    if (this.#sweep) this.#ctx.clock.clearInterval(this.#sweep);
    if (this.#reopen) this.#ctx.clock.clearTimeout(this.#reopen);
    this.#unlisten?.();
    const ch = this.#ch;
    this.#ch = undefined;
    await closeQuietly(ch);
    const rpc = this.#rpc;
    this.#rpc = undefined;
    if (rpc) await closeQuietly(await rpc.catch(() => undefined));
    await this.#client.release();
  }

  /** One-way: resolves (with nothing) once the broker confirmed the message. */
  send(msg: Message): Promise<Message | undefined> {
    if (this.#stopping) return Promise.reject(new BusbarError('ENGINE_STATE', `amqp producer ${this.#describe()} is stopping`, { details: { target: this.#s.target } }));
    const { content, options } = encode(msg, { persistent: this.#s.persistent, mandatory: this.#s.mandatory, policy: this.#s.headers });
    return new Promise((resolve, reject) => {
      const p: Pending = {
        exchange: this.#s.target.kind === 'exchange' ? this.#s.target.name : '',
        routingKey: this.#routingKey(msg),
        content,
        options,
        messageId: msg.id,
        deadline: this.#ctx.clock.now() + this.#s.publishTimeoutMs,
        resolve,
        reject,
        channel: undefined,
        returned: undefined,
        done: false,
      };
      this.#backlog.push(p);
      this.#pump();
    });
  }

  #describe(): string {
    return `${this.#s.target.kind}:${this.#s.target.name}`;
  }

  #routingKey(msg: Message): string {
    const k = this.#s.routingKey;
    if (k === undefined) return this.#s.target.kind === 'queue' ? this.#s.target.name : '';
    return k.includes('{') ? renderTemplate(k, msg) : k;
  }

  #pendingCount(): number {
    return this.#unconfirmed.size + this.#resend.length + this.#backlog.length;
  }

  /** One channel at a time: a reconnection and a channel reopen may both ask for one. */
  #open(conn: ChannelModel, first = false): Promise<void> {
    const prev = this.#opening ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.#doOpen(conn, first));
    const tracked = run.finally(() => {
      if (this.#opening === tracked) this.#opening = undefined;
    });
    this.#opening = tracked;
    tracked.catch(() => undefined);
    return run;
  }

  async #doOpen(conn: ChannelModel, first: boolean): Promise<void> {
    if (this.#ch || this.#client.connection !== conn) return;
    const t = this.#s.target;
    if (t.kind === 'queue' && this.#s.declareQueue) await ensureQueue(conn, t.name);
    if (t.kind === 'exchange' && !this.#s.managedExchange && !(await exchangeExists(conn, t.name))) {
      throw new BusbarError('AMQP_CONFIG', `amqp:exchange:${t.name}: the exchange does not exist on the broker; declare it in the adapter's topology`, { details: { exchange: t.name } });
    }
    const ch = await conn.createConfirmChannel();
    ch.on('error', (err: Error) => {
      this.#channelError = err;
      this.#ctx.logger.warn({ err: err.message, target: this.#describe() }, 'amqp publish channel closed by the broker');
    });
    ch.on('close', () => this.#closed(ch));
    ch.on('drain', () => {
      if (this.#ch !== ch) return;
      this.#writable = true;
      this.#pump();
    });
    ch.on('return', (m: AmqpMessage) => this.#returned(ch, m));
    if (!first && this.#stopping && this.#pendingCount() === 0) {
      await closeQuietly(ch);
      return;
    }
    this.#ch = ch;
    this.#writable = true;
    this.#channelError = undefined;
    this.#pump();
  }

  #closed(ch: ConfirmChannel): void {
    if (this.#ch !== ch) return;
    this.#ch = undefined;
    const err = this.#channelError;
    // a channel the broker closed over one publish (e.g. 404: exchange deleted) fails what was on it;
    // a lost connection only delays it
    const fatal = replyCode(err) !== undefined && replyCode(err) !== 320;
    for (const p of this.#unconfirmed) {
      if (p.channel !== ch || p.done) continue;
      p.channel = undefined;
      if (fatal) this.#settle(p, new BusbarError('AMQP_CONNECTION', `amqp publish to ${this.#describe()} failed: ${(err as Error).message}`, { cause: err, retryable: replyCode(err) !== 404, details: { target: this.#s.target } }));
      else this.#resend.push(p);
    }
    this.#unconfirmed.clear();
    // the connection is still up: only this channel died, open another one
    if (!this.#stopping || this.#pendingCount() > 0) {
      const conn = this.#client.connection;
      if (conn && !this.#reopen) {
        this.#reopen = this.#ctx.clock.setTimeout(() => {
          this.#reopen = undefined;
          const c = this.#client.connection;
          if (c && !this.#ch) this.#open(c).catch((e: unknown) => this.#ctx.logger.warn({ err: (e as Error).message }, 'amqp publish channel could not be reopened'));
        }, 100);
      }
    }
    this.#checkIdle();
  }

  #pump(): void {
    const ch = this.#ch;
    while (ch && this.#ch === ch && this.#writable && this.#unconfirmed.size < this.#s.confirmWindow) {
      const p = this.#resend.length ? this.#resend.shift() : this.#backlog.shift();
      if (!p) break;
      if (p.done) continue;
      this.#publish(ch, p);
    }
  }

  #publish(ch: ConfirmChannel, p: Pending): void {
    p.channel = ch;
    p.returned = undefined;
    this.#unconfirmed.add(p);
    let ok: boolean;
    try {
      ok = ch.publish(p.exchange, p.routingKey, p.content, p.options, (err: Error | null) => this.#confirmed(ch, p, err));
    } catch (err) {
      // the channel closed under us: try again on the next one
      this.#unconfirmed.delete(p);
      p.channel = undefined;
      if (err instanceof RangeError) {
        this.#settle(p, new BusbarError('LIMIT_EXCEEDED', `amqp publish to ${this.#describe()}: ${err.message}`, { cause: err, details: { target: this.#s.target } }));
        return;
      }
      this.#resend.unshift(p);
      if (this.#ch === ch) this.#ch = undefined;
      return;
    }
    if (!ok) this.#writable = false;
  }

  #confirmed(ch: ConfirmChannel, p: Pending, err: Error | null): void {
    if (p.channel !== ch || p.done) return;
    if (err && err.message === 'channel closed') return; // #closed decides: resend or fail
    this.#unconfirmed.delete(p);
    if (err === null && p.returned === undefined) this.#settle(p, undefined);
    else if (err === null) {
      this.#settle(p, new BusbarError('AMQP_UNROUTABLE', `amqp message ${p.messageId} to ${this.#describe()} (routing key "${p.routingKey}") was returned: ${p.returned}`, { details: { target: this.#s.target, routingKey: p.routingKey, messageId: p.messageId } }));
    } else {
      this.#settle(p, new BusbarError('AMQP_NACKED', `amqp broker refused message ${p.messageId} to ${this.#describe()}`, { details: { target: this.#s.target, messageId: p.messageId } }));
    }
    this.#pump();
  }

  #returned(ch: ConfirmChannel, m: AmqpMessage): void {
    const id = String(m.properties.messageId);
    // returns are rare: a scan of the (bounded) window beats indexing every publish
    let p: Pending | undefined;
    for (const x of this.#unconfirmed) {
      if (x.channel === ch && x.returned === undefined && x.messageId === id) {
        p = x;
        break;
      }
    }
    if (p) p.returned = `${returnText(m)}`;
    else this.#ctx.logger.warn({ messageId: id, replyText: returnText(m) }, 'amqp returned a message that is no longer waited for');
  }

  #settle(p: Pending, err: unknown): void {
    if (p.done) return;
    p.done = true;
    if (err === undefined) p.resolve(undefined);
    else p.reject(err);
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#idle.length && this.#pendingCount() === 0) for (const r of this.#idle.splice(0)) r();
  }

  /** Fail what waited longer than its time limit (the broker gone for too long). */
  #expire(): void {
    const now = this.#ctx.clock.now();
    const timeout = (p: Pending): boolean => {
      if (p.done || p.deadline > now) return false;
      this.#settle(p, new BusbarError('TIMEOUT', `amqp publish to ${this.#describe()} not confirmed within ${this.#s.publishTimeoutMs} ms${this.#ch ? '' : ' (not connected)'}`, { details: { target: this.#s.target, messageId: p.messageId, timeoutMs: this.#s.publishTimeoutMs } }));
      return true;
    };
    for (const p of this.#unconfirmed) if (timeout(p)) this.#unconfirmed.delete(p);
    if (this.#resend.some((p) => p.deadline <= now)) this.#resend = this.#resend.filter((p) => !timeout(p));
    if (this.#backlog.length && this.#backlog[0]!.deadline <= now) this.#backlog = this.#backlog.filter((p) => !timeout(p));
    this.#checkIdle();
    this.#pump();
  }

  // ---------------------------------------------------------------- request-reply

  #rpcChannel(): Promise<Channel> {
    this.#rpc ??= (async () => {
      const conn = await this.#client.whenConnected(this.#s.replyTimeoutMs);
      const ch = await conn.createChannel();
      ch.on('error', (err: Error) => this.#ctx.logger.warn({ err: err.message }, 'amqp reply channel closed by the broker'));
      ch.on('close', () => {
        this.#rpc = undefined;
        this.#failReplies(new BusbarError('AMQP_CONNECTION', `amqp channel lost while waiting for a reply from ${this.#describe()}`, { details: { target: this.#s.target } }));
      });
      ch.on('return', (m: AmqpMessage) => {
        const key = String(m.properties.correlationId);
        const r = this.#takeReply(key);
        r?.reject(new BusbarError('AMQP_UNROUTABLE', `amqp request to ${this.#describe()} was returned: ${returnText(m)}`, { details: { target: this.#s.target } }));
      });
      // direct reply-to: replies come straight to this channel's consumer, no queue to declare or clean up
      await ch.consume(DIRECT_REPLY_TO, (m) => m && this.#reply(m), { noAck: true });
      return ch;
    })().catch((err: unknown) => {
      this.#rpc = undefined;
      throw err;
    });
    return this.#rpc;
  }

  /**
   * Request-reply over direct reply-to. The request carries an AMQP `expiration` equal to
   * the time the caller waits (`opts.timeoutMs`, else `replyTimeoutMs`): a request still
   * queued when nobody waits for its answer any more is dropped by the broker, not
   * processed late (and, for a retried call, twice).
   */
  async request(msg: Message, opts: RequestOptions = {}): Promise<Message> {
    if (this.#stopping) throw new BusbarError('ENGINE_STATE', `amqp producer ${this.#describe()} is stopping`, { details: { target: this.#s.target } });
    const timeoutMs = opts.timeoutMs !== undefined && opts.timeoutMs > 0 ? Math.ceil(opts.timeoutMs) : this.#s.replyTimeoutMs;
    const ch = await this.#rpcChannel();
    const { content, options } = encode(msg, { persistent: this.#s.persistent, mandatory: true, policy: this.#s.headers });
    const key = randomUUID();
    options.replyTo = DIRECT_REPLY_TO;
    options.correlationId = key;
    options.expiration = String(timeoutMs);
    options.headers = { ...(options.headers as Record<string, unknown> | undefined), [WIRE.correlation]: msg.correlationId };
    const exchange = this.#s.target.kind === 'exchange' ? this.#s.target.name : '';
    return new Promise<Message>((resolve, reject) => {
      const timer = this.#ctx.clock.setTimeout(() => {
        if (!this.#takeReply(key)) return;
        reject(new BusbarError('TIMEOUT', `no reply from ${this.#describe()} within ${timeoutMs} ms`, { details: { target: this.#s.target, timeoutMs } }));
      }, timeoutMs);
      (timer as { unref?: () => void }).unref?.();
      this.#replies.set(key, { timer, resolve, reject });
      try {
        ch.publish(exchange, this.#routingKey(msg), content, options);
      } catch (err) {
        this.#takeReply(key);
        reject(new BusbarError('AMQP_CONNECTION', `amqp request to ${this.#describe()} could not be published: ${(err as Error).message}`, { cause: err, details: { target: this.#s.target } }));
      }
    });
  }

  /** The waiting request under `key`, no longer waiting (its timer cleared). */
  #takeReply(key: string): PendingReply | undefined {
    const r = this.#replies.get(key);
    if (!r) return undefined;
    this.#replies.delete(key);
    this.#ctx.clock.clearTimeout(r.timer);
    return r;
  }

  #failReplies(err: BusbarError): void {
    for (const key of [...this.#replies.keys()]) this.#takeReply(key)?.reject(err);
  }

  #reply(m: AmqpMessage): void {
    const key = String(m.properties.correlationId);
    const r = this.#takeReply(key);
    if (!r) return; // timed out already
    const h = (m.properties.headers ?? {}) as Record<string, unknown>;
    if (h[WIRE.errorCode] !== undefined) {
      r.reject(new BusbarError('AMQP_REMOTE_ERROR', `amqp request to ${this.#describe()} failed remotely: ${String(h[WIRE.errorCode])}: ${String(h[WIRE.errorMessage] ?? '')}`, { details: { target: this.#s.target, remoteCode: String(h[WIRE.errorCode]), remoteMessage: String(h[WIRE.errorMessage] ?? '') } }));
      return;
    }
    try {
      r.resolve(decode(m, this.#s.bodyType, this.#s.headers));
    } catch (err) {
      r.reject(err);
    }
  }
}

function returnText(m: AmqpMessage): string {
  const f = m.fields as unknown as { replyCode?: number; replyText?: string };
  return `${f.replyCode ?? '?'} ${f.replyText ?? ''}`.trim();
}
