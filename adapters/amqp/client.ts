import type { ChannelModel } from 'amqplib';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import { redactUrl, type ResolvedAmqpConfig } from './config.js';
import { coalesceWrites } from './coalesce.js';
import { assertTopology } from './topology.js';

export type ClientStatus = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'backing-off';

/** What a consumer or producer hears from its connection. */
export interface ClientListener {
  /** A new connection after a loss: open channels again, resubscribe, resend. */
  reconnected?(conn: ChannelModel): Promise<void> | void;
  status?(status: ClientStatus, error?: unknown): void;
}

/**
 * One AMQP connection shared by the consumers (or by the producers) of an adapter in one
 * engine. It connects on first use, asserts the topology on every (re)connection, and
 * after a loss reconnects with exponential backoff on the engine's clock, forever, until
 * the last user releases it. Consumers and producers use separate clients so a broker
 * that blocks publishers (memory alarm) never stalls the acknowledgements of consumers.
 */
export class AmqpClient {
  readonly #config: ResolvedAmqpConfig;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #role: 'consumer' | 'producer';
  readonly #listeners = new Set<ClientListener>();
  #users = 0;
  #conn: ChannelModel | undefined;
  #status: ClientStatus = 'idle';
  #statusSince = Date.now();
  #statusError: unknown;
  #connecting: Promise<ChannelModel> | undefined;
  #timer: TimerHandle | undefined;
  #attempt = 0;
  #closed = true;
  #waiters: Array<{ resolve: (c: ChannelModel) => void; reject: (e: unknown) => void }> = [];

  constructor(config: ResolvedAmqpConfig, role: 'consumer' | 'producer', logger: Logger, clock: Clock) {
    this.#config = config;
    this.#role = role;
    this.#logger = logger;
    this.#clock = clock;
  }

  get status(): ClientStatus {
    return this.#status;
  }

  /** The last status change: when (ms since the epoch) and the error with it (for readiness). */
  get statusChange(): { since: number; error?: string } {
    const e = this.#statusError;
    return e === undefined ? { since: this.#statusSince } : { since: this.#statusSince, error: e instanceof Error ? e.message : String(e) };
  }

  get connection(): ChannelModel | undefined {
    return this.#conn;
  }

  listen(l: ClientListener): () => void {
    this.#listeners.add(l);
    l.status?.(this.#status, this.#statusError);
    return () => this.#listeners.delete(l);
  }

  /** Join the users of this connection; the first one connects (failing after `startAttempts`). */
  async acquire(): Promise<ChannelModel> {
    this.#users++;
    try {
      if (this.#conn) return this.#conn;
      // others hold it and it is between connections: the reconnection loop brings it back
      if (!this.#closed && !this.#connecting && this.#users > 1) return await this.whenConnected(this.#config.connectTimeoutMs * this.#config.reconnect.startAttempts + this.#config.reconnect.maxDelayMs);
      this.#closed = false;
      this.#connecting ??= this.#connectWithRetries(this.#config.reconnect.startAttempts).finally(() => {
        this.#connecting = undefined;
      });
      return await this.#connecting;
    } catch (err) {
      this.#users--;
      if (this.#users === 0) this.#closed = true;
      throw err;
    }
  }

  /** Leave; the last user closes the connection and stops reconnecting. */
  async release(): Promise<void> {
    this.#users = Math.max(0, this.#users - 1);
    if (this.#users > 0) return;
    this.#closed = true;
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const conn = this.#conn;
    this.#conn = undefined;
    for (const w of this.#waiters.splice(0)) w.reject(new BusbarError('AMQP_CONNECTION', 'amqp connection closed', { details: { url: redactUrl(this.#config.url) } }));
    this.#setStatus('idle');
    if (conn) await conn.close().catch(() => undefined);
  }

  /** The live connection, waiting (bounded by `timeoutMs`) through a reconnection. */
  whenConnected(timeoutMs: number): Promise<ChannelModel> {
    if (this.#conn) return Promise.resolve(this.#conn);
    if (this.#closed) return Promise.reject(new BusbarError('AMQP_CONNECTION', 'amqp connection is closed', { details: { url: redactUrl(this.#config.url) } }));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (c: ChannelModel) => {
          this.#clock.clearTimeout(t);
          resolve(c);
        },
        reject: (e: unknown) => {
          this.#clock.clearTimeout(t);
          reject(e);
        },
      };
      const t = this.#clock.setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        reject(new BusbarError('TIMEOUT', `no amqp connection to ${redactUrl(this.#config.url)} within ${timeoutMs} ms`, { details: { timeoutMs } }));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  #setStatus(s: ClientStatus, error?: unknown): void {
    if (s !== this.#status) this.#statusSince = Date.now();
    this.#status = s;
    this.#statusError = error;
    for (const l of this.#listeners) l.status?.(s, error);
  }

  async #connectOnce(): Promise<ChannelModel> {
    const amqp = await import('amqplib');
    this.#setStatus('connecting');
    let conn: ChannelModel;
    try {
      conn = await amqp.connect(withHeartbeat(this.#config.url, this.#config.heartbeatSeconds), { timeout: this.#config.connectTimeoutMs, clientProperties: { connection_name: `busbar ${this.#role}` } });
    } catch (err) {
      throw new BusbarError('AMQP_CONNECTION', `cannot connect to ${redactUrl(this.#config.url)}: ${(err as Error).message}`, { cause: err, details: { url: redactUrl(this.#config.url) } });
    }
    coalesceWrites(conn);
    conn.on('error', (err: Error) => this.#logger.warn({ err: err.message, url: redactUrl(this.#config.url) }, 'amqp connection error'));
    conn.on('blocked', (reason: string) => this.#logger.warn({ reason }, 'amqp connection blocked by the broker (resource alarm); publishes wait'));
    conn.on('unblocked', () => this.#logger.info('amqp connection unblocked'));
    try {
      const topology = this.#role === 'producer' ? { ...this.#config.topology, queues: this.#config.topology.queues.filter((q) => !q.exclusive) } : this.#config.topology;
      await assertTopology(conn, topology);
    } catch (err) {
      await conn.close().catch(() => undefined);
      throw err;
    }
    conn.on('close', (err?: Error) => this.#lost(conn, err));
    return conn;
  }

  async #connectWithRetries(attempts: number): Promise<ChannelModel> {
    let last: unknown;
    for (let i = 1; i <= attempts; i++) {
      try {
        const conn = await this.#connectOnce();
        this.#connected(conn);
        return conn;
      } catch (err) {
        last = err;
        // a conflicting declaration will not go away by retrying
        if (isBusbarError(err, 'AMQP_TOPOLOGY_CONFLICT') || this.#closed) break;
        if (i < attempts) {
          this.#setStatus('backing-off', err);
          await new Promise<void>((r) => this.#clock.setTimeout(r, this.#delay(i)));
        }
      }
    }
    this.#setStatus('disconnected', last);
    throw last;
  }

  #connected(conn: ChannelModel): void {
    if (this.#closed) {
      void conn.close().catch(() => undefined);
      return;
    }
    this.#conn = conn;
    this.#attempt = 0;
    this.#setStatus('connected');
    for (const w of this.#waiters.splice(0)) w.resolve(conn);
  }

  #delay(attempt: number): number {
    const r = this.#config.reconnect;
    const base = Math.min(r.maxDelayMs, r.initialDelayMs * Math.pow(r.factor, attempt - 1));
    return Math.max(1, Math.round(base * (1 + r.jitter * (Math.random() - 0.5))));
  }

  #lost(conn: ChannelModel, err?: Error): void {
    if (this.#conn !== conn) return;
    this.#conn = undefined;
    if (this.#closed) return;
    this.#logger.warn({ err: err?.message, url: redactUrl(this.#config.url) }, 'amqp connection lost; reconnecting');
    this.#setStatus('disconnected', err ?? new Error('connection closed'));
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed || this.#timer) return;
    this.#attempt++;
    const delay = this.#delay(this.#attempt);
    this.#setStatus('backing-off', this.#statusError);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#reconnect();
    }, delay);
  }

  async #reconnect(): Promise<void> {
    if (this.#closed) return;
    let conn: ChannelModel;
    try {
      conn = await this.#connectOnce();
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message, code: (err as BusbarError).code, attempt: this.#attempt }, 'amqp reconnection failed');
      this.#statusError = err;
      this.#schedule();
      return;
    }
    this.#connected(conn);
    if (this.#conn !== conn) return;
    this.#logger.info({ url: redactUrl(this.#config.url), attempts: this.#attempt }, 'amqp reconnected');
    for (const l of [...this.#listeners]) {
      try {
        await l.reconnected?.(conn);
      } catch (err) {
        // the connection may have dropped again; its close handler schedules the next attempt
        this.#logger.warn({ err: (err as Error).message }, 'amqp re-subscription failed');
      }
    }
  }
}

/** The heartbeat goes in the URL (amqplib reads it there), unless the URL already sets one. */
export function withHeartbeat(url: string, seconds: number): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(seconds));
  return u.toString();
}
