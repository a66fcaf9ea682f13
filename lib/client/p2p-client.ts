/**
 * `connect('p2p://...')`: a thin client of a hub (or bus) whose channels are bound to the p2p
 * transport. The client is a peer itself (brokerless: there is nobody else to talk to), but
 * one without routes: it joins through the seeds in the URL, calls `direct:`/`queue:` channels
 * on their providers, publishes to and subscribes on `topic:` channels, and serves `queue:`
 * subscriptions as a competing consumer.
 */
import type { Logger } from 'pino';
import { BusbarError } from '../errors.js';
import { createMessage, merged, type Message } from '../message.js';
import { TIMEOUT_HEADER } from '../rpc.js';
import type { BusClient, ChannelMap, Subscription } from './connect.js';

/** `config.joinTimeoutMs`: how long `connect` waits to hear from a first member (default 5 s). */
/** `p2p://[SECRET@]host:port[,host:port...][?name=NAME&listen=host:port]`: the seeds, the cluster secret (or `config.secret`). */
export function parseP2pUrl(url: string, config: Record<string, unknown>): Record<string, unknown> {
  const m = /^p2p:\/\/(?:([^@/]*)@)?([^/?]*)\/?(?:\?(.*))?$/.exec(url);
  const seeds = m?.[2] ? m[2].split(',').filter(Boolean) : [];
  if (!m || !seeds.length) throw new BusbarError('INVALID_URI', `connect(): "${url.replace(/\/\/[^/@]*@/, '//***@')}": a p2p URL is p2p://host:port[,host:port...] (the seeds)`, { details: {} });
  const q = new URLSearchParams(m[3] ?? '');
  const out: Record<string, unknown> = { listen: '127.0.0.1:0', ...config, seeds };
  if (m[1]) out.secret = decodeURIComponent(m[1]);
  for (const k of ['name', 'listen']) {
    const v = q.get(k);
    if (v) out[k] = v;
  }
  return out;
}

function channelOf(channel: string, what: string): { kind: 'direct' | 'queue' | 'topic'; name: string } {
  const m = /^(direct|queue|topic):(.+)$/.exec(channel);
  if (!m) throw new BusbarError('INVALID_URI', `${what}("${channel}"): a channel is direct:<name>, queue:<name> or topic:<name>`, { details: { channel } });
  return { kind: m[1] as 'direct' | 'queue' | 'topic', name: m[2]! };
}

export async function connectP2p<C extends ChannelMap>(url: string, config: Record<string, unknown>, logger: Logger): Promise<BusClient<C>> {
  const { createP2pNode } = await import('../../adapters/p2p/index.js');
  const { joinTimeoutMs, ...rest } = config as { joinTimeoutMs?: number };
  const settings = parseP2pUrl(url, rest);
  const node = createP2pNode(settings as Parameters<typeof createP2pNode>[0], logger);
  await node.acquire();
  // the first members arrive through the seeds; calls before that would find no provider
  const deadline = Date.now() + (typeof joinTimeoutMs === 'number' ? joinTimeoutMs : 5000);
  while (!node.members().some((m) => m.state === 'alive') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const timeoutMs = node.settings.requestTimeoutMs;
  const subs = new Set<() => void>();
  let closed = false;
  const open = (): void => {
    if (closed) throw new BusbarError('ENGINE_STATE', 'this busbar client is closed', { details: {} });
  };
  return {
    async send(channel, body, headers) {
      open();
      const c = channelOf(channel, 'send');
      const msg = createMessage(body, { headers: { ...headers } });
      if (c.kind === 'topic') await node.publish(c.name, msg, false);
      else await node.request(`${c.kind}:${c.name}`, msg, { inOut: false, idempotent: false, timeoutMs });
    },
    async request(channel, body, o = {}) {
      open();
      const c = channelOf(channel, 'request');
      if (c.kind === 'topic') throw new BusbarError('REPLY_UNSUPPORTED', `request("${channel}"): a topic has no single answer; request a direct: or queue: channel`, { details: { channel } });
      const t = o.timeoutMs ?? timeoutMs;
      const reply = await node.request(`${c.kind}:${c.name}`, createMessage(body, { headers: merged(o.headers ?? {}, { [TIMEOUT_HEADER]: t }) }), { inOut: true, idempotent: false, timeoutMs: t });
      return reply?.body as never;
    },
    async subscribe(channel, handler) {
      open();
      const c = channelOf(channel, 'subscribe');
      if (c.kind === 'direct') throw new BusbarError('INVALID_URI', `subscribe("${channel}"): subscribe to a topic: pattern or a queue: channel`, { details: { channel } });
      // the handler finishing is the acknowledgement the publisher (or caller) waits for
      const h = async (m: Message): Promise<Message> => {
        await handler(m.body as never, m as never);
        return m;
      };
      const off = c.kind === 'topic' ? node.subscribe(c.name, h) : node.provide(`queue:${c.name}`, h);
      subs.add(off);
      const sub: Subscription = {
        close: async () => {
          if (subs.delete(off)) off();
        },
      };
      return sub;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const off of subs) off();
      subs.clear();
      await node.release();
    },
  };
}
