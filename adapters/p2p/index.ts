import { Type, type Static } from '@sinclair/typebox';
import type { Adapter, AdapterContext, Consumer, ConsumerContext, Endpoint, Producer, RequestOptions } from '../../lib/adapter.js';
import type { Logger } from 'pino';
import type { Message } from '../../lib/message.js';
import { BusbarError } from '../../lib/errors.js';
import { createAjv, toProblems } from '../../lib/schema.js';
import { P2pNode, SEED, type MemberView, type P2pSettings, type P2pStats } from './node.js';

export type { MemberView, P2pStats } from './node.js';

const address = Type.String({ pattern: '^[0-9.]+:[0-9]{1,5}$', description: '`host:port` (IPv4)' });

export const p2pConfigSchema = Type.Object(
  {
    secret: Type.String({ minLength: 16, description: 'Cluster secret shared by every peer (at least 16 characters). It keys the libp2p private network: a peer without it cannot connect, join or inject messages. Required.' }),
    name: Type.Optional(Type.String({ minLength: 1, pattern: '^[A-Za-z0-9_.-]+$', description: 'This peer\'s name (also fixes its peer id, so a restarted peer comes back as itself). Default: host-pid.' })),
    listen: Type.String({ ...address, default: '127.0.0.1:0', description: 'Where this peer listens (`host:port`; port 0 picks a free one). Loopback unless told otherwise.' }),
    seeds: Type.Array(Type.String({ pattern: SEED.source, description: '`host:port`: an IPv4 address or a host name' }), { default: [], description: 'Peers to join through (`host:port`, the host an IPv4 address or a name, looked up again at every attempt); any live one is enough. Tried again until one answers.' }),
    probeIntervalMs: Type.Integer({ minimum: 10, default: 200, description: 'SWIM: one member probed per period.' }),
    probeTimeoutMs: Type.Integer({ minimum: 5, default: 150, description: 'SWIM: time for a direct ack before asking `indirectProbes` others to probe.' }),
    indirectProbes: Type.Integer({ minimum: 0, default: 3, description: 'SWIM: members asked to probe a member that missed its direct ack.' }),
    suspectTimeoutMs: Type.Integer({ minimum: 10, default: 1500, description: 'SWIM: how long a suspect member has to refute before it is declared dead (grows with log10 of the cluster size).' }),
    requestTimeoutMs: Type.Integer({ minimum: 1, default: 10000, description: 'Default time limit of a request or a delivery to a peer.' }),
    durableTimeoutMs: Type.Integer({ minimum: 1, default: 30000, description: 'Durable publishing: how long a delivery to a peer that is down is retried.' }),
    maxFrameBytes: Type.Integer({ minimum: 1024, default: 16777216, description: 'Largest frame a peer accepts.' }),
    relay: Type.Boolean({ default: false, description: 'Super-peer: forward frames for peers that cannot reach each other (a peer that cannot dial another goes through a live relay it can reach).' }),
    advertise: Type.Boolean({ default: true, description: 'Announce this peer\'s listen addresses. `false` for a peer others cannot dial (behind NAT or a firewall): it dials out to its seeds, and the others reach it through a relay.' }),
  },
  { additionalProperties: false },
);
export type P2pConfig = Partial<Static<typeof p2pConfigSchema>> & { secret: string };

export const p2pOptions = Type.Object(
  {
    delivery: Type.Union([Type.Literal('best-effort'), Type.Literal('durable')], { default: 'best-effort', description: 'Producer of `topic:`: a subscriber that is down or fails is counted as dropped (`best-effort`) or retried until it answers, bounded by `durableTimeoutMs` (`durable`).' }),
    idempotent: Type.Boolean({ default: false, description: 'Producer of `queue:`/`direct:`: the call may run twice, so when its provider dies mid-call it is retried on another provider instead of failing with P2P_PEER_LOST.' }),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: 'Producer: time limit of a call or delivery (default: the adapter\'s requestTimeoutMs).' })),
  },
  { additionalProperties: false },
);
export type P2pOptions = Static<typeof p2pOptions>;

/** Compiled once, on first use (not per adapter made). */
let configValidator: ReturnType<ReturnType<typeof createAjv>['compile']> | undefined;

function resolve(config: P2pConfig): P2pSettings {
  const c = structuredClone(config) as Record<string, unknown>;
  const validate = (configValidator ??= createAjv().compile(p2pConfigSchema));
  if (!validate(c)) {
    const problems = toProblems(validate.errors, p2pConfigSchema, '', 'p2p setting');
    throw new BusbarError('P2P_CONFIG', `p2p adapter configuration: ${problems.map((p) => `${p.path || '/'}: ${p.message}`).join('; ')}`, { details: { problems } });
  }
  const v = c as Static<typeof p2pConfigSchema>;
  const addr = (s: string): { host: string; port: number } => {
    const [host, port] = s.split(':');
    return { host: host!, port: Number(port) };
  };
  return {
    name: v.name ?? `peer-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    listen: addr(v.listen),
    seeds: v.seeds.map(addr),
    secret: v.secret,
    probeIntervalMs: v.probeIntervalMs,
    probeTimeoutMs: v.probeTimeoutMs,
    indirectProbes: v.indirectProbes,
    suspectTimeoutMs: v.suspectTimeoutMs,
    requestTimeoutMs: v.requestTimeoutMs,
    durableTimeoutMs: v.durableTimeoutMs,
    maxFrameBytes: v.maxFrameBytes,
    relay: v.relay,
    advertise: v.advertise,
  };
}

interface Holder {
  node?: P2pNode;
}

function target(endpoint: Endpoint<P2pOptions>): { kind: 'topic' | 'queue' | 'direct'; name: string } {
  const m = /^(topic|queue|direct):(.+)$/.exec(endpoint.path);
  if (!m) throw new BusbarError('INVALID_URI', `endpoint "${endpoint.uri}": a p2p endpoint is p2p:topic:<name or pattern>, p2p:queue:<name> or p2p:direct:<name>`, { details: { uri: endpoint.uri } });
  return { kind: m[1] as 'topic' | 'queue' | 'direct', name: m[2]! };
}

/**
 * `p2p:` — the brokerless bus. Every engine with this adapter is a peer; peers join through
 * seeds, keep a SWIM membership view, and exchange pub/sub (`p2p:topic:orders.*`), request-reply
 * (`p2p:direct:quote`) and competing-consumer calls (`p2p:queue:billing`) directly. libp2p and its
 * modules load when the first endpoint starts.
 */
export function createP2pAdapter(config: P2pConfig): Adapter<P2pOptions> {
  const settings = resolve(config);
  const nodeOf = (ctx: AdapterContext): P2pNode => {
    const h = ctx.state<Holder>('holder', () => ({}));
    return (h.node ??= new P2pNode(settings, ctx.logger.child({ adapter: 'p2p', peer: settings.name })));
  };
  return {
    scheme: 'p2p',
    description: 'Peer-to-peer bus on libp2p (TCP, private network keyed by a cluster secret, Noise, Yamux): SWIM membership, pub/sub with wildcards, request-reply and competing consumers, no broker.',
    optionsSchema: p2pOptions,
    createConsumer(endpoint, ctx: ConsumerContext): Consumer {
      const t = target(endpoint);
      let off: (() => void) | undefined;
      return {
        async start() {
          const node = nodeOf(ctx);
          await node.acquire();
          const handler = (msg: Parameters<ConsumerContext['process']>[0]) => ctx.process(msg);
          off = t.kind === 'topic' ? node.subscribe(t.name, handler) : node.provide(`${t.kind}:${t.name}`, handler);
          ctx.setStatus('connected');
        },
        async stop() {
          off?.();
          off = undefined;
          await nodeOf(ctx).release();
        },
      };
    },
    createProducer(endpoint, ctx): Producer {
      const t = target(endpoint);
      const o = endpoint.options;
      const node = (): P2pNode => nodeOf(ctx);
      return {
        start: () => node().acquire(),
        stop: () => node().release(),
        async send(msg) {
          if (t.kind === 'topic') {
            await node().publish(t.name, msg, o.delivery === 'durable');
            return undefined;
          }
          // one-way: request-reply belongs to the step that asks for it (request below)
          await node().request(`${t.kind}:${t.name}`, msg, { inOut: false, idempotent: o.idempotent, timeoutMs: o.timeoutMs ?? settings.requestTimeoutMs });
          return undefined;
        },
        ...(t.kind === 'topic'
          ? {}
          : {
              async request(msg: Message, opts: RequestOptions): Promise<Message> {
                const reply = await node().request(`${t.kind}:${t.name}`, msg, { inOut: true, idempotent: o.idempotent, timeoutMs: o.timeoutMs ?? opts.timeoutMs ?? settings.requestTimeoutMs });
                return reply ?? msg;
              },
            }),
      };
    },
  };
}

/** The peer of an engine (membership view, stats), once one of its p2p endpoints started. */
export function p2pPeer(engine: { adapterState<T>(scheme: string, key: string, init: () => T): T }, scheme = 'p2p'): P2pNode | undefined {
  return engine.adapterState<Holder>(scheme, 'holder', () => ({})).node;
}

/**
 * The p2p adapter of a routes file that does not configure one (`busbar run` registers every
 * configurable adapter): it exists so `p2p:` URIs are known, and each endpoint fails with
 * P2P_CONFIG saying what to configure, because a peer cannot run without the cluster secret.
 */
export function unconfiguredP2pAdapter(): Adapter<P2pOptions> {
  const fail = (endpoint: Endpoint<P2pOptions>): never => {
    throw new BusbarError('P2P_CONFIG', `endpoint "${endpoint.uri}": the p2p adapter is not configured; give "adapters": { "p2p": { "secret": "...", "seeds": [...] } } in the routes file`, { details: { uri: endpoint.uri } });
  };
  return { scheme: 'p2p', description: 'Peer-to-peer bus (not configured: needs a cluster secret)', optionsSchema: p2pOptions, createConsumer: fail, createProducer: fail };
}

/** A peer without an engine (the `connect('p2p://...')` client): the same settings, checked the same way. */
export function createP2pNode(config: P2pConfig, logger: Logger): P2pNode {
  const settings = resolve(config);
  return new P2pNode(settings, logger.child({ adapter: 'p2p', peer: settings.name }));
}

export { P2pNode };
