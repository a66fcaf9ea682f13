/**
 * The thin client of a hub (or a bus): `connect('amqp://...')` gives an application typed
 * `send`, `request` and `subscribe` on the channels of routes that run elsewhere, with the
 * same channel names the routes use (`direct:quote`, `queue:orders`, `topic:orders.*`) and
 * the same binding rules as an engine with `channels: { transport }` (docs/topologies.md).
 * It is an engine without routes underneath (one per subscription), so it has the engine's
 * delivery contract: a subscription's handler finishing is what acknowledges the message.
 */
import { pino, type Logger } from 'pino';
import type { Adapter } from '../adapter.js';
import { from } from '../builder.js';
import { Engine } from '../engine.js';
import { BusbarError } from '../errors.js';
import { merged, type Headers, type Message } from '../message.js';

/** What travels on a channel: `in` is what is sent (or published), `out` a request's reply. */
export interface ChannelType {
  in: unknown;
  out?: unknown;
}

/** Channel name -> its types; `connect<{ 'direct:quote': { in: QuoteRequest; out: Quote } }>(url)`. */
export type ChannelMap = Record<string, ChannelType>;

export interface Subscription {
  /** Stop taking messages; those being handled finish first. */
  close(): Promise<void>;
}

export interface BusClient<C extends ChannelMap = ChannelMap> {
  /** One-way: resolves once the transport has the message (confirmed by the broker). */
  send<K extends keyof C & string>(channel: K, body: C[K]['in'], headers?: Headers): Promise<void>;
  /** Request-reply on a `direct:` (or `queue:`) channel: resolves with the reply's body. */
  request<K extends keyof C & string>(channel: K, body: C[K]['in'], opts?: { headers?: Headers; timeoutMs?: number }): Promise<C[K] extends { out: infer R } ? R : unknown>;
  /**
   * Handle the messages of a `topic:` pattern (every subscription its own copy) or a `queue:`
   * (competing consumers). A handler that throws fails the message: it is redelivered
   * (`maxDeliveries`, then dead-lettered as the transport does), never lost.
   */
  subscribe<K extends keyof C & string>(channel: K, handler: (body: C[K]['in'], msg: Message<C[K]['in']>) => void | Promise<void>, opts?: { maxInflight?: number }): Promise<Subscription>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** First part of transport-side names; must match the hub's `channels.prefix` (default `busbar`). */
  prefix?: string;
  logger?: Logger;
  /** Adapter configuration beyond the URL (amqp: heartbeat, reconnect...). */
  config?: Record<string, unknown>;
}

/** Transports a client can use, loaded when connecting (the core loads none of them). */
const transports: Record<string, (url: string, config: Record<string, unknown>) => Promise<Adapter>> = {
  amqp: async (url, config) => (await import('../../adapters/amqp/index.js')).createAmqpAdapter({ ...config, url }) as unknown as Adapter,
  amqps: async (url, config) => (await import('../../adapters/amqp/index.js')).createAmqpAdapter({ ...config, url }) as unknown as Adapter,
};

export async function connect<C extends ChannelMap = ChannelMap>(url: string, opts: ConnectOptions = {}): Promise<BusClient<C>> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//.exec(url)?.[1];
  if (scheme === 'p2p') return (await import('./p2p-client.js')).connectP2p<C>(url, opts.config ?? {}, opts.logger ?? pino({ level: 'silent' }));
  const make = scheme ? transports[scheme] : undefined;
  if (!make) {
    throw new BusbarError('INVALID_URI', `connect(): "${url.replace(/\/\/[^/@]*@/, '//***@')}" is not a transport URL busbar can connect to (known: ${[...Object.keys(transports), 'p2p'].map((s) => `${s}://`).join(', ')})`, { details: { scheme } });
  }
  const logger = opts.logger ?? pino({ level: 'silent' });
  const transport = scheme === 'amqps' ? 'amqp' : scheme!;
  const engineFor = async (name: string): Promise<Engine> => {
    const adapter = await make(url, opts.config ?? {});
    return new Engine({ name, logger, adapters: [adapter], channels: { transport, ...(opts.prefix ? { prefix: opts.prefix } : {}) } });
  };
  const main = await engineFor('busbar-client');
  await main.start();
  const subs = new Set<Engine>();
  let closed = false;
  const open = (): void => {
    if (closed) throw new BusbarError('ENGINE_STATE', 'this busbar client is closed', { details: {} });
  };
  return {
    async send(channel, body, headers) {
      open();
      await main.send(channel, body, headers);
    },
    async request(channel, body, o = {}) {
      open();
      const headers = merged(o.headers ?? {}, o.timeoutMs ? { 'busbar.timeoutMs': o.timeoutMs } : {});
      return main.request(channel, body, headers);
    },
    async subscribe(channel, handler, o = {}) {
      open();
      if (!/^(topic|queue):/.test(channel)) throw new BusbarError('INVALID_URI', `subscribe("${channel}"): subscribe to a topic: pattern or a queue: channel`, { details: { channel } });
      const e = await engineFor(`busbar-client:${channel}`);
      e.addRoutes(
        from<C[typeof channel]['in']>(channel)
          .maxInflight(o.maxInflight ?? 64)
          .process(async (m) => {
            await handler(m.body, m);
            return m;
          }),
      );
      await e.start();
      subs.add(e);
      return {
        close: async () => {
          subs.delete(e);
          await e.stop();
        },
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const e of subs) await e.stop();
      subs.clear();
      await main.stop();
    },
  };
}
