import { createHash, randomInt } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIPv4 } from 'node:net';
import type { Logger } from 'pino';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';
import { topicMatches } from '../topic/index.js';
import { encodeFrame, FrameReader, fromWire, toWire, type Frame, type MemberRecord, type MemberState, type WireMessage } from './frames.js';

export const PROTOCOL = '/busbar/p2p/1.0.0';

export interface P2pSettings {
  name: string;
  listen: { host: string; port: number };
  seeds: Array<{ host: string; port: number }>;
  secret: string;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  indirectProbes: number;
  suspectTimeoutMs: number;
  requestTimeoutMs: number;
  durableTimeoutMs: number;
  maxFrameBytes: number;
  relay: boolean;
  advertise: boolean;
}

export interface P2pStats {
  peer: string;
  name: string;
  members: Record<MemberState, number>;
  /** Lifeguard's local health multiplier now (0 = healthy). */
  localHealth: number;
  /** Open links (streams) to other peers now. */
  links: number;
  suspicions: number;
  deaths: number;
  refutations: number;
  published: number;
  delivered: number;
  dropped: number;
  redelivered: number;
  requests: number;
  failovers: number;
  /** Frames this peer forwarded for others (a super-peer). */
  relayed: number;
  /** Links to peers it could not dial, going through a super-peer. */
  viaRelay: number;
  /** Frames this peer wrote and read (membership and traffic): the per-peer message rate. */
  framesSent: number;
  framesReceived: number;
  /** Writes to streams (frames of one event-loop turn to one peer go out as one write). */
  writes: number;
  bytesSent: number;
}

export interface MemberView {
  id: string;
  name: string;
  state: MemberState;
  incarnation: number;
  subs: string[];
  services: string[];
}

/** A seed: `host:port`, the host an IPv4 address or a name (looked up at every join attempt). */
export const SEED = /^([0-9.]+|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*):([0-9]{1,5})$/;

type Handler = (msg: Message) => Promise<Message>;

interface Pending {
  peer: string;
  /** The link the frame went out on: when it ends without an answer, the call is lost. */
  link?: Link;
  resolve(f: Extract<Frame, { t: 'rep' }>): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
}

/** One open stream to a peer: frames written with `send`, everything read goes to the node. */
interface Link {
  send(f: Frame): void;
  close(): void;
  closed: boolean;
}

interface Member extends MemberRecord {
  suspectTimer?: NodeJS.Timeout;
  outstanding: number;
}

const RANK: Record<MemberState, number> = { alive: 0, suspect: 1, dead: 2 };

/** Node 20 lacks Promise.withResolvers, which libp2p 3 uses: defined here only where missing, only when the p2p adapter starts. */
function polyfill(): void {
  const P = Promise as unknown as { withResolvers?: () => unknown };
  if (typeof P.withResolvers === 'function') return;
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value<T>() {
      let resolve!: (v: T) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<T>((a, b) => {
        resolve = a;
        reject = b;
      });
      return { promise, resolve, reject };
    },
  });
}

/** The libp2p private-network key (pnet PSK) derived from the cluster secret. */
function swarmKey(secret: string): Uint8Array {
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${createHash('sha256').update(`busbar-p2p-psk\u0000${secret}`).digest('hex')}`);
}

type Libp2p = Awaited<ReturnType<typeof import('libp2p')['createLibp2p']>>;

/**
 * A peer of the busbar p2p bus. libp2p gives transport, authentication and encryption (TCP,
 * a private network keyed by the cluster secret, Noise, Yamux); on top of it, over one
 * protocol: SWIM membership (probes, indirect probes through k other members, a suspect state
 * refuted by the member's own higher incarnation, updates piggybacked on probes so the load per
 * member stays constant), pub/sub with wildcard topics sent straight to the subscribing peers,
 * and request-reply / competing-consumer calls to one live provider.
 */
export class P2pNode {
  readonly settings: P2pSettings;
  readonly #log: Logger;
  #lib: Libp2p | undefined;
  #self!: MemberRecord;
  readonly #members = new Map<string, Member>();
  readonly #links = new Map<string, Link>();
  readonly #dialing = new Map<string, Promise<Link>>();
  readonly #pending = new Map<number, Pending>();
  readonly #acks = new Map<number, (ok?: boolean) => void>();
  readonly #updates: Array<{ rec: MemberRecord; left: number }> = [];
  readonly #subs = new Map<string, Set<Handler>>();
  readonly #services = new Map<string, Set<Handler>>();
  readonly #listeners = new Set<(m: MemberView, prev: MemberState | undefined) => void>();
  #seq = 0;
  /**
   * Lifeguard's local health multiplier (0..8): grows when our own timers fire late, when we
   * miss acks only we missed, when we must refute a suspicion; shrinks on clean probes. It
   * stretches our probe and suspicion timeouts, so a slow or starved peer does not declare
   * healthy ones dead.
   */
  #lhm = 0;
  #probeTimer: NodeJS.Timeout | undefined;
  #joinTimer: NodeJS.Timeout | undefined;
  #syncTimer: NodeJS.Timeout | undefined;
  #probeOrder: string[] = [];
  #lastNewLink = 0;
  #running = false;
  #starting: Promise<void> | undefined;
  #users = 0;
  readonly #stats: Omit<P2pStats, 'peer' | 'name' | 'members' | 'localHealth' | 'links'> = { suspicions: 0, deaths: 0, refutations: 0, published: 0, delivered: 0, dropped: 0, redelivered: 0, requests: 0, failovers: 0, relayed: 0, viaRelay: 0, framesSent: 0, framesReceived: 0, writes: 0, bytesSent: 0 };

  constructor(settings: P2pSettings, logger: Logger) {
    this.settings = settings;
    this.#log = logger;
  }

  get id(): string {
    return this.#self?.id ?? '';
  }

  /** `host:port` this peer listens on (the bound port when configured with 0): what others use as a seed. */
  get address(): string {
    const m = /\/ip4\/([0-9.]+)\/tcp\/([0-9]+)/.exec(this.#lib?.getMultiaddrs()[0]?.toString() ?? '');
    return m ? `${m[1]}:${m[2]}` : '';
  }

  /** Reference-counted: every consumer and producer of the engine shares the node. */
  async acquire(): Promise<void> {
    this.#users++;
    await (this.#starting ??= this.#start());
  }

  async release(): Promise<void> {
    if (--this.#users > 0) return;
    await this.#stop();
  }

  async #start(): Promise<void> {
    polyfill();
    const [{ createLibp2p }, { tcp }, { noise }, { defaultCrypto }, { fastNoiseCrypto }, { yamux }, { preSharedKey }, { generateKeyPairFromSeed }] = await Promise.all([
      import('libp2p'),
      import('@libp2p/tcp'),
      import('@chainsafe/libp2p-noise'),
      import('@chainsafe/libp2p-noise/crypto'),
      import('./noise-crypto.js'),
      import('@chainsafe/libp2p-yamux'),
      import('@libp2p/pnet'),
      import('@libp2p/crypto/keys'),
    ]);
    const s = this.settings;
    // a stable identity per (secret, name): a restarted peer comes back as itself
    const privateKey = await generateKeyPairFromSeed('Ed25519', createHash('sha256').update(`busbar-p2p-id\u0000${s.secret}\u0000${s.name}`).digest());
    const lib = await createLibp2p({
      privateKey,
      addresses: { listen: [`/ip4/${s.listen.host}/tcp/${s.listen.port}`] },
      transports: [tcp()],
      connectionEncrypters: [noise({ crypto: fastNoiseCrypto(defaultCrypto) })],
      streamMuxers: [yamux()],
      connectionProtector: preSharedKey({ psk: swarmKey(s.secret) }),
      // failure detection is ours (SWIM), not the connection monitor's 10 s pings
      connectionMonitor: { enabled: false },
      // libp2p's defaults take at most 5 new connections per second from one host and 10 being
      // set up at once: every peer of a cluster on one machine (or behind one NAT) is the same
      // host, so a cluster joining at once had its connections refused, probes failing on
      // them, and healthy peers suspected and declared dead by the hundred (20 peers here)
      connectionManager: { inboundConnectionThreshold: INBOUND_PER_HOST_PER_S, maxIncomingPendingConnections: INBOUND_PENDING },
    });
    this.#lib = lib;
    await lib.handle(PROTOCOL, (stream, connection) => void this.#serve(stream as unknown as StreamLike, connection.remotePeer.toString()), { runOnLimitedConnection: true, maxInboundStreams: 1024 });
    lib.addEventListener('peer:disconnect', (e) => {
      const id = e.detail.toString();
      this.#linkClosed(id);
    });
    this.#self = {
      id: lib.peerId.toString(),
      name: s.name,
      // a peer that others cannot dial announces no address: they reach it through a super-peer
      addrs: s.advertise ? lib.getMultiaddrs().map((a) => a.toString()) : [],
      state: 'alive',
      // higher than any incarnation of an earlier run of this peer
      incarnation: Date.now(),
      subs: [...this.#subs.keys()],
      services: [...this.#services.keys()],
      relay: s.relay,
    };
    this.#running = true;
    this.#log.info({ peer: this.#self.id, addrs: this.#self.addrs }, 'p2p peer started');
    await this.#join();
    this.#scheduleProbe();
    this.#scheduleSync();
  }

  async #stop(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    this.#starting = undefined;
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#probeTimer);
    clearTimeout(this.#joinTimer);
    clearTimeout(this.#syncTimer);
    for (const m of this.#members.values()) clearTimeout(m.suspectTimer);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new BusbarError('P2P_PEER_LOST', 'p2p peer stopped', { details: { peer: p.peer } }));
      this.#pending.delete(id);
    }
    for (const l of this.#links.values()) l.close();
    this.#links.clear();
    await this.#lib?.stop();
    this.#lib = undefined;
  }

  // ---------------------------------------------------------------- registrations

  subscribe(pattern: string, h: Handler): () => void {
    return this.#register(this.#subs, pattern, h);
  }

  provide(channel: string, h: Handler): () => void {
    return this.#register(this.#services, channel, h);
  }

  #register(table: Map<string, Set<Handler>>, key: string, h: Handler): () => void {
    let set = table.get(key);
    if (!set) table.set(key, (set = new Set()));
    set.add(h);
    this.#announce();
    return () => {
      set.delete(h);
      if (set.size === 0) table.delete(key);
      this.#announce();
    };
  }

  /** Our record changed (subscriptions, services): a new incarnation, gossiped. */
  #announce(): void {
    if (!this.#self) return;
    this.#self = { ...this.#self, incarnation: this.#self.incarnation + 1, subs: [...this.#subs.keys()], services: [...this.#services.keys()] };
    this.#gossip(this.#self);
  }

  onChange(fn: (m: MemberView, prev: MemberState | undefined) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  members(): MemberView[] {
    return [...this.#members.values()].map((m) => ({ id: m.id, name: m.name, state: m.state, incarnation: m.incarnation, subs: m.subs, services: m.services }));
  }

  stats(): P2pStats {
    const members = { alive: 0, suspect: 0, dead: 0 };
    for (const m of this.#members.values()) members[m.state]++;
    return { peer: this.id, name: this.settings.name, members, localHealth: this.#lhm, links: this.#links.size, ...this.#stats };
  }

  // ---------------------------------------------------------------- links and frames

  async #link(id: string): Promise<Link> {
    const have = this.#links.get(id);
    if (have && !have.closed) return have;
    let p = this.#dialing.get(id);
    if (!p) {
      p = this.#dialTo(id)
        .catch((e: unknown) => this.#viaRelay(id, e))
        .finally(() => this.#dialing.delete(id));
      this.#dialing.set(id, p);
    }
    return p;
  }

  /**
   * A link to a peer we cannot dial, through a live super-peer we can reach (directly): frames
   * go out wrapped in `relay`, and the super-peer hands them on as `relayed`.
   */
  async #viaRelay(id: string, err: unknown): Promise<Link> {
    const relays = [...this.#members.values()].filter((m) => m.relay && m.state === 'alive' && m.id !== id);
    for (const r of relays) {
      try {
        const have = this.#links.get(r.id);
        const rl = have && !have.closed ? have : await this.#dialTo(r.id);
        const v = this.#relayedLink(id, rl);
        this.#stats.viaRelay++;
        return v;
      } catch {
        // try the next super-peer
      }
    }
    throw err;
  }

  #relayedLink(to: string, via: Link): Link {
    let closed = false;
    const link: Link = {
      get closed() {
        return closed || via.closed;
      },
      set closed(v: boolean) {
        closed = v;
      },
      send: (f) => via.send({ t: 'relay', to, frame: f }),
      close: () => {
        closed = true;
      },
    };
    const old = this.#links.get(to);
    if (!old || old.closed) this.#links.set(to, link);
    return link;
  }

  async #dialTo(id: string): Promise<Link> {
    const m = this.#members.get(id);
    const { multiaddr } = await import('@multiformats/multiaddr');
    const addrs = (m?.addrs ?? []).map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${id}`));
    if (!addrs.length) throw new BusbarError('P2P_PEER_LOST', `p2p: no address known for peer ${id}`, { details: { peer: id } });
    const stream = (await this.#lib!.dialProtocol(addrs, PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS * (1 + this.#lhm)) })) as unknown as StreamLike;
    return this.#serve(stream, id);
  }

  /** Read frames from a stream (either direction) and give back a link that writes to it. */
  #serve(stream: StreamLike, remote: string): Link {
    // frames sent in one turn of the event loop go out as one write: one Yamux frame and one
    // Noise encryption for them all instead of one each (16 concurrent calls: ~16x fewer)
    let queued: Uint8Array[] | undefined;
    const flush = (): void => {
      const frames = queued;
      queued = undefined;
      if (!frames || link.closed) return;
      try {
        this.#stats.writes++;
        stream.send(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
      } catch (err) {
        this.#log.debug({ err: (err as Error).message, peer: remote }, 'p2p write failed');
        link.close();
      }
    };
    const link: Link = {
      closed: false,
      send: (f) => {
        if (link.closed) throw new BusbarError('P2P_PEER_LOST', `p2p: link to ${remote} is closed`, { details: { peer: remote } });
        const bytes = encodeFrame(f);
        this.#stats.framesSent++;
        this.#stats.bytesSent += bytes.length;
        if (queued) queued.push(bytes);
        else {
          queued = [bytes];
          queueMicrotask(flush);
        }
      },
      close: () => {
        if (queued && !link.closed) flush(); // what was sent before the close still goes out
        link.closed = true;
        try {
          stream.abort(new Error('closed'));
        } catch {
          // already gone
        }
      },
    };
    const old = this.#links.get(remote);
    if (!old || old.closed) this.#links.set(remote, link);
    const reader = new FrameReader(this.settings.maxFrameBytes);
    void (async () => {
      try {
        for await (const chunk of stream as AsyncIterable<Uint8Array | { subarray(): Uint8Array }>) {
          const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray();
          for (const f of reader.push(bytes)) this.#onFrame(f, link, remote);
        }
      } catch (err) {
        this.#log.debug({ err: (err as Error).message, peer: remote }, 'p2p stream ended');
      } finally {
        link.closed = true;
        if (this.#links.get(remote) === link) this.#links.delete(remote);
        this.#failPending(remote, link);
      }
    })();
    return link;
  }

  #linkClosed(id: string): void {
    const l = this.#links.get(id);
    if (l) l.closed = true;
    this.#links.delete(id);
    // a closed connection is a hint, not a verdict: probe the peer now instead of waiting for its turn
    const m = this.#members.get(id);
    if (m && m.state === 'alive' && this.#running) void this.#probe(id);
  }

  /** A stream ended: calls sent on it will get no answer (the request may or may not have run). */
  #failPending(peer: string, link: Link): void {
    for (const [id, p] of this.#pending) {
      if (p.link !== link) continue;
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new BusbarError('P2P_PEER_LOST', `p2p: the connection to peer ${this.#members.get(peer)?.name ?? peer} closed before it answered`, { details: { peer } }));
    }
  }

  #onFrame(f: Frame, link: Link, remote: string): void {
    this.#stats.framesReceived++;
    switch (f.t) {
      case 'join':
        this.#apply(f.self);
        this.#applyAll(f.members);
        this.#safeSend(link, { t: 'sync', members: [this.#self, ...this.#records()] });
        return;
      case 'sync': {
        this.#applyAll(f.members);
        // a joiner exchanges whole views with a few members too, instead of waiting for gossip
        // to carry its record from the seed, and to learn what the seed had not heard of yet
        // (bounded, so a join costs O(1) exchanges per member, not O(n))
        const others = [...this.#members.values()].filter((m) => m.state === 'alive' && m.id !== remote);
        for (let k = 0; k < JOIN_FANOUT && others.length; k++) this.#pushPull(others.splice(randomInt(others.length), 1)[0]!.id);
        return;
      }
      case 'push-pull':
        this.#applyAll(f.members);
        this.#safeSend(link, { t: 'state', members: [this.#self, ...this.#records()] });
        return;
      case 'state':
        this.#applyAll(f.members);
        return;
      case 'ping': {
        for (const r of f.updates) this.#apply(r);
        // a member we hold suspect or dead is talking to us: tell it, so that it refutes
        const them = this.#members.get(remote);
        const news = them && them.state !== 'alive' ? [this.#recordOf(them)] : [];
        this.#safeSend(link, { t: 'ack', seq: f.seq, updates: [...news, ...this.#piggyback()] });
        return;
      }
      case 'ack':
        for (const r of f.updates) this.#apply(r);
        this.#acks.get(f.seq)?.();
        return;
      case 'ping-req':
        for (const r of f.updates) this.#apply(r);
        void this.#directProbe(f.target).then((ok) => {
          if (ok) this.#safeSend(link, { t: 'ack', seq: f.seq, updates: this.#piggyback() });
        });
        return;
      case 'pub':
        void this.#deliver(this.#subs, f.topic, fromWire(f.msg), true).then(
          () => this.#safeSend(link, { t: 'rep', id: f.id }),
          (e: unknown) => this.#safeSend(link, { t: 'rep', id: f.id, err: errorOf(e) }),
        );
        return;
      case 'req':
        void this.#deliver(this.#services, f.channel, fromWire(f.msg), false).then(
          (reply) => this.#safeSend(link, { t: 'rep', id: f.id, ...(reply && f.inOut ? { msg: toWire(reply) } : {}) }),
          (e: unknown) => this.#safeSend(link, { t: 'rep', id: f.id, err: errorOf(e) }),
        );
        return;
      case 'rep': {
        const p = this.#pending.get(f.id);
        if (p && p.peer === remote) {
          this.#pending.delete(f.id);
          clearTimeout(p.timer);
          p.resolve(f);
        }
        return;
      }
      case 'relay':
        // a super-peer forwards for peers that cannot reach each other; replies come back the same way
        if (!this.settings.relay || f.to === this.#self.id) return;
        this.#stats.relayed++;
        void this.#link(f.to).then(
          (l) => this.#safeSend(l, { t: 'relayed', from: remote, frame: f.frame }),
          () => undefined,
        );
        return;
      case 'relayed': {
        // from a peer that cannot reach us directly: answer back through the same super-peer
        if (!f.frame || f.frame.t === 'relay' || f.frame.t === 'relayed') return;
        const have = this.#links.get(f.from);
        const back = have && !have.closed ? have : this.#relayedLink(f.from, link);
        this.#onFrame(f.frame, back, f.from);
        return;
      }
    }
  }

  #safeSend(link: Link, f: Frame): void {
    this.#trySend(link, f);
  }

  #trySend(link: Link, f: Frame): boolean {
    try {
      link.send(f);
      return true;
    } catch {
      // the peer went away; its member state will say so
      return false;
    }
  }

  /** Run a message through the local handlers of a topic (every matching subscription) or a channel (one handler). */
  async #deliver(table: Map<string, Set<Handler>>, key: string, msg: Message, topic: boolean): Promise<Message | undefined> {
    if (topic) {
      const hs: Handler[] = [];
      for (const [pattern, set] of table) if (topicMatches(pattern, key)) hs.push(...set);
      await Promise.all(hs.map((h) => h(msg)));
      return undefined;
    }
    const set = table.get(key);
    if (!set || set.size === 0) throw new BusbarError('P2P_NO_PROVIDER', `p2p: this peer does not serve ${key}`, { details: { channel: key } });
    const hs = [...set];
    return hs[randomInt(hs.length)]!(msg);
  }

  // ---------------------------------------------------------------- membership (SWIM)

  #records(): MemberRecord[] {
    return [...this.#members.values()].map(({ suspectTimer: _t, outstanding: _o, ...r }) => r);
  }

  /**
   * Join (more) peers through `seeds` (`host:port`) once started, beside the configured seeds:
   * e.g. peers started apart that are told of each other later. Resolves when the join frames
   * are out; the view fills as the seeds answer.
   */
  async join(seeds: string[]): Promise<void> {
    if (!this.#running) throw new BusbarError('P2P_CONFIG', 'p2p: join() before the peer started (start an endpoint of its engine first)', { details: { seeds } });
    const parsed = seeds.map((s) => {
      const m = SEED.exec(s);
      if (!m) throw new BusbarError('P2P_CONFIG', `p2p: seed "${s}" is not host:port (an IPv4 address or a host name)`, { details: { seed: s } });
      return { host: m[1]!, port: Number(m[2]) };
    });
    await this.#join(parsed);
    this.#scheduleSync();
  }

  #applyAll(members: unknown): void {
    if (!Array.isArray(members)) return;
    for (const r of members.slice(0, MAX_VIEW) as MemberRecord[]) this.#apply(r);
  }

  /** Exchange whole views with a member (memberlist's push-pull): what one of us missed, the other has. */
  #pushPull(id: string): void {
    void this.#link(id).then(
      (l) => this.#safeSend(l, { t: 'push-pull', members: [this.#self, ...this.#records()] }),
      () => undefined,
    );
  }

  /**
   * Push-pull rounds with a random member: a few soon after a join (peers that joined at the
   * same time through the same seed each got only part of the view from it), then one every
   * SYNC_INTERVAL_MS, stretched as the view grows beyond 32 so the bytes per peer stay flat.
   * Members we have a link to first: an exchange should not cost a handshake.
   */
  #scheduleSync(round = 0): void {
    if (!this.#running) return;
    clearTimeout(this.#syncTimer);
    const ms = round < SYNC_AFTER_JOIN_MS.length ? SYNC_AFTER_JOIN_MS[round]! : SYNC_INTERVAL_MS * Math.max(1, Math.ceil(this.#members.size / 32));
    this.#syncTimer = setTimeout(() => {
      const alive = [...this.#members.values()].filter((m) => m.state === 'alive');
      const linked = alive.filter((m) => this.#links.get(m.id)?.closed === false);
      const pool = linked.length ? linked : alive;
      if (pool.length) this.#pushPull(pool[randomInt(pool.length)]!.id);
      this.#scheduleSync(round + 1);
    }, ms);
    this.#syncTimer.unref?.();
  }

  async #join(seeds = this.settings.seeds): Promise<void> {
    if (!this.#running) return;
    const { multiaddr } = await import('@multiformats/multiaddr');
    await Promise.all(
      seeds.map(async (seed) => {
        try {
          // a host name is looked up again at every attempt: a seed that moved is found at its new address
          const ip = isIPv4(seed.host) ? seed.host : (await lookup(seed.host, { family: 4 })).address;
          if (ip === this.settings.listen.host && seed.port === this.settings.listen.port) return;
          const stream = (await this.#lib!.dialProtocol(multiaddr(`/ip4/${ip}/tcp/${seed.port}`), PROTOCOL, { signal: AbortSignal.timeout(3000) })) as unknown as StreamLike & { remotePeer?: unknown };
          const conns = this.#lib!.getConnections().filter((c) => c.remoteAddr.toString().includes(`/tcp/${seed.port}`));
          const remote = conns[0]?.remotePeer.toString() ?? `seed:${seed.host}:${seed.port}`;
          if (remote === this.#self.id) return stream.abort(new Error('self'));
          const link = this.#serve(stream, remote);
          link.send({ t: 'join', self: this.#self, members: this.#records() });
        } catch (err) {
          this.#log.debug({ err: (err as Error).message, seed }, 'p2p seed unreachable');
        }
      }),
    );
    // until we know someone, keep trying the seeds (they may start after us)
    const alive = [...this.#members.values()].some((m) => m.state !== 'dead');
    if (!alive && seeds.length) {
      clearTimeout(this.#joinTimer);
      this.#joinTimer = setTimeout(() => void this.#join(seeds), 500);
    }
  }

  #gossip(rec: MemberRecord): void {
    const i = this.#updates.findIndex((u) => u.rec.id === rec.id);
    if (i >= 0) this.#updates.splice(i, 1);
    // each update rides on about 3 log2(n) probes: enough to reach everyone with high probability
    this.#updates.unshift({ rec, left: 3 * Math.ceil(Math.log2(this.#members.size + 2)) + 2 });
    if (this.#updates.length > 64) this.#updates.length = 64;
  }

  #piggyback(): MemberRecord[] {
    const out: MemberRecord[] = [];
    for (const u of this.#updates) {
      if (out.length >= PIGGYBACK) break;
      out.push(u.rec);
      u.left--;
    }
    for (let i = this.#updates.length - 1; i >= 0; i--) if (this.#updates[i]!.left <= 0) this.#updates.splice(i, 1);
    // our own record now and then, so that late joiners learn about us without a full sync
    if (out.length < PIGGYBACK && randomInt(4) === 0) out.push(this.#self);
    return out;
  }

  /** Merge a record heard from someone: a newer incarnation wins; for the same one, dead > suspect > alive. */
  #apply(rec: MemberRecord): void {
    if (!rec || typeof rec.id !== 'string') return;
    if (rec.id === this.#self.id) {
      if (rec.state !== 'alive' && rec.incarnation >= this.#self.incarnation) {
        // someone suspects us: refute with a higher incarnation (SWIM's refutation)
        this.#self = { ...this.#self, incarnation: rec.incarnation + 1 };
        this.#stats.refutations++;
        this.#health(+1);
        this.#gossip(this.#self);
      }
      return;
    }
    const cur = this.#members.get(rec.id);
    if (cur && (rec.incarnation < cur.incarnation || (rec.incarnation === cur.incarnation && RANK[rec.state] <= RANK[cur.state]))) {
      // same or older news. Addresses travel in the records: a peer's addresses are fixed for its
      // identity (a restarted peer is a new identity, with its new addresses, and the old one dies)
      return;
    }
    const prev = cur?.state;
    const m: Member = { ...rec, outstanding: cur?.outstanding ?? 0 };
    if (cur?.suspectTimer) clearTimeout(cur.suspectTimer);
    this.#members.set(rec.id, m);
    this.#gossip(rec);
    if (rec.state === 'suspect') {
      if (prev !== 'suspect') this.#stats.suspicions++;
      m.suspectTimer = setTimeout(() => this.#confirmDead(rec.id, rec.incarnation), this.#suspectTimeout());
      m.suspectTimer.unref?.();
    } else if (rec.state === 'dead') {
      if (prev !== 'dead') this.#stats.deaths++;
      this.#links.get(rec.id)?.close();
      this.#links.delete(rec.id);
      for (const [id, p] of this.#pending) {
        if (p.peer !== rec.id) continue;
        this.#pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new BusbarError('P2P_PEER_LOST', `p2p: peer ${rec.name} (${rec.id}) died before it answered`, { details: { peer: rec.id, name: rec.name } }));
      }
    }
    if (prev !== rec.state) {
      this.#log.debug({ peer: rec.id, name: rec.name, state: rec.state, prev }, 'p2p member state');
      const view: MemberView = { id: m.id, name: m.name, state: m.state, incarnation: m.incarnation, subs: m.subs, services: m.services };
      for (const l of this.#listeners) l(view, prev);
    }
  }

  /** Lifeguard: the suspicion timeout grows with the cluster (log n), so big clusters do not declare deaths on partial news. */
  #suspectTimeout(): number {
    return Math.round(this.settings.suspectTimeoutMs * Math.max(1, Math.log10(this.#members.size + 1)) * (1 + this.#lhm));
  }

  #health(delta: number): void {
    this.#lhm = Math.min(8, Math.max(0, this.#lhm + delta));
  }

  #confirmDead(id: string, incarnation: number): void {
    const m = this.#members.get(id);
    if (!m || m.state !== 'suspect' || m.incarnation !== incarnation || !this.#running) return;
    this.#apply({ ...this.#recordOf(m), state: 'dead' });
  }

  #recordOf(m: Member): MemberRecord {
    const { suspectTimer: _t, outstanding: _o, ...r } = m;
    return r;
  }

  #scheduleProbe(): void {
    if (!this.#running) return;
    const due = Date.now() + this.settings.probeIntervalMs;
    this.#probeTimer = setTimeout(() => {
      // our own event loop was late: we are the slow one
      if (Date.now() - due > this.settings.probeIntervalMs) this.#health(+1);
      const target = this.#nextTarget();
      void (target ? this.#probe(target) : Promise.resolve()).finally(() => this.#scheduleProbe());
    }, this.settings.probeIntervalMs);
    this.#probeTimer.unref?.();
  }

  /**
   * Round-robin over a shuffled list of the live members (SWIM: every member probed within n
   * periods), except that a member we have no connection to yet is taken at most once per
   * NEW_LINK_EVERY_MS: a first probe costs a connection (~15 ms of CPU on each side here), and a
   * cluster joining at once would otherwise set up its whole mesh (n(n-1)/2 connections) within
   * n probe periods and starve the machine. Until then the members it is connected to (its seed,
   * those it exchanged views with, those that probed it) probe it; its turn comes in a later round.
   */
  #nextTarget(): string | undefined {
    const linked = (id: string): boolean => this.#links.get(id)?.closed === false;
    const mayDial = Date.now() - this.#lastNewLink >= NEW_LINK_EVERY_MS;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = this.#probeOrder.length - 1; i >= 0; i--) {
        const id = this.#probeOrder[i]!;
        const m = this.#members.get(id);
        if (!m || m.state === 'dead') {
          this.#probeOrder.splice(i, 1);
          continue;
        }
        if (!linked(id) && !mayDial) continue;
        this.#probeOrder.splice(i, 1);
        if (!linked(id)) this.#lastNewLink = Date.now();
        return id;
      }
      // what is left of the round waits for a connection: start the next round with it in front
      const waiting = this.#probeOrder;
      const ids = [...this.#members.values()].filter((m) => m.state !== 'dead' && !waiting.includes(m.id)).map((m) => m.id);
      for (let i = ids.length - 1; i > 0; i--) {
        const j = randomInt(i + 1);
        [ids[i], ids[j]] = [ids[j]!, ids[i]!];
      }
      this.#probeOrder = [...ids, ...waiting];
    }
    return undefined;
  }

  /** Wait for an ack to `seq` for up to `ms`; false on timeout. Lifeguard: a timer that fired late says *we* were slow, not the peer. */
  #awaitAck(seq: number, ms: number): Promise<boolean | 'late'> {
    return new Promise((resolve) => {
      const due = Date.now() + ms;
      const timer = setTimeout(() => {
        this.#acks.delete(seq);
        resolve(Date.now() - due > Math.max(50, ms / 2) ? 'late' : false);
      }, ms);
      // called with false: the ping could not be written (the link closed), no need to wait
      this.#acks.set(seq, (ok = true) => {
        clearTimeout(timer);
        this.#acks.delete(seq);
        resolve(ok);
      });
    });
  }

  /**
   * Ping `id` and wait for its ack. The ack's time limit starts once the link is up: a first
   * contact costs a TCP connect and the pnet + Noise handshakes (a few ms idle, hundreds on a
   * starved machine while a whole cluster joins), and a connection still being set up is not a
   * missed ack. A dial that fails (connection refused: the peer is gone) fails the probe at once.
   */
  async #ping(id: string, updates: () => MemberRecord[], ms: number): Promise<boolean | 'late'> {
    let link: Link;
    try {
      link = await this.#link(id);
    } catch {
      return false;
    }
    const seq = ++this.#seq;
    const wait = this.#awaitAck(seq, ms);
    if (!this.#trySend(link, { t: 'ping', seq, updates: updates() })) this.#acks.get(seq)?.(false);
    return wait;
  }

  async #directProbe(id: string): Promise<boolean> {
    return (await this.#ping(id, () => this.#piggyback(), this.settings.probeTimeoutMs * (1 + this.#lhm))) === true;
  }

  async #probe(id: string): Promise<void> {
    const m = this.#members.get(id);
    if (!m || m.state === 'dead') return;
    const t = this.settings.probeTimeoutMs * (1 + this.#lhm);
    const have = this.#links.get(id);
    if (!have || have.closed) {
      // first contact (or the connection closed): connecting can take longer than a probe
      // period on a busy machine, so the probe loop does not wait for it. A refused connection
      // (nobody listens there: the peer is gone) counts as a missed ack; one that is only slow
      // or timed out (both event loops busy) as nothing: the members connected to it probe it
      const dial = this.#link(id).then(
        () => 'up' as const,
        (e: unknown) => (isTimeout(e) ? ('slow' as const) : ('refused' as const)),
      );
      let timer: NodeJS.Timeout | undefined;
      const settled = await Promise.race([dial, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), t)))]);
      clearTimeout(timer);
      if (settled === undefined) {
        void dial.then((r) => (r !== 'refused' || !this.#running ? undefined : this.#missed(id, t)));
        return;
      }
      if (settled === 'slow') return;
      if (settled === 'refused') return this.#missed(id, t);
    }
    const direct = await this.#ping(id, () => [m.state === 'suspect' ? this.#recordOf(m) : this.#self, ...this.#piggyback()], t);
    if (direct === true) return this.#health(-1);
    if (direct === 'late') return this.#health(+1); // our own loop was late: inconclusive, probe again later
    return this.#missed(id, t);
  }

  /** A direct probe went unanswered: indirect probes, then suspicion. */
  async #missed(id: string, t: number): Promise<void> {
    if (this.#members.get(id)?.state !== 'alive') return;
    // indirect: ask k others to probe it for us; any ack they relay keeps it alive
    // (helpers we already have a link to first: asking them costs no handshake)
    const helpers = [...this.#members.values()].filter((x) => x.id !== id && x.state === 'alive').map((x) => x.id);
    const linked = helpers.filter((h) => this.#links.get(h)?.closed === false);
    const unlinked = helpers.filter((h) => this.#links.get(h)?.closed !== false);
    const picked: string[] = [];
    for (const pool of [linked, unlinked]) while (picked.length < this.settings.indirectProbes && pool.length) picked.push(pool.splice(randomInt(pool.length), 1)[0]!);
    if (picked.length) {
      const iseq = ++this.#seq;
      // (a link that closed in between must not throw out of the callback: an unhandled rejection would end the process)
      await Promise.all(picked.map((h) => this.#link(h).then((l) => this.#safeSend(l, { t: 'ping-req', seq: iseq, target: id, updates: this.#piggyback() }), () => undefined)));
      const r = await this.#awaitAck(iseq, t * 2);
      // someone else reached it and we did not: the problem may be on our side
      if (r === true) return this.#health(+1);
      if (r === 'late') return this.#health(+1);
    }
    const now = this.#members.get(id);
    if (!now || now.state !== 'alive' || !this.#running) return;
    const suspect: MemberRecord = { ...this.#recordOf(now), state: 'suspect' };
    this.#apply(suspect);
    // Lifeguard's buddy system: tell the suspect itself at once, over the link we have, rather
    // than wait for gossip to reach it. A peer that was only slow (a starved or blocked event
    // loop) refutes when it reads this, and the refutation in its ack follows the suspicion
    // through the cluster before the suspicion timers run out
    const l = this.#links.get(id);
    if (l && !l.closed) this.#safeSend(l, { t: 'ping', seq: ++this.#seq, updates: [suspect] });
  }

  // ---------------------------------------------------------------- messaging

  #call(peer: string, build: (id: number) => Frame, timeoutMs: number): Promise<Extract<Frame, { t: 'rep' }>> {
    return new Promise((resolve, reject) => {
      const id = ++this.#seq;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new BusbarError('TIMEOUT', `p2p: no answer from peer ${this.#members.get(peer)?.name ?? peer} within ${timeoutMs} ms`, { details: { peer, timeoutMs } }));
      }, timeoutMs);
      this.#pending.set(id, { peer, resolve, reject, timer });
      this.#link(peer).then(
        (l) => {
          const p = this.#pending.get(id);
          if (!p) return;
          p.link = l;
          try {
            l.send(build(id));
          } catch {
            this.#failPending(peer, l);
          }
        },
        (e: unknown) => {
          if (!this.#pending.delete(id)) return;
          clearTimeout(timer);
          reject(new BusbarError('P2P_PEER_LOST', `p2p: cannot reach peer ${this.#members.get(peer)?.name ?? peer}: ${(e as Error).message}`, { cause: e, details: { peer, unsent: true } }));
        },
      );
    });
  }

  /**
   * Publish to every peer whose subscriptions match (and to our own subscribers). Resolves when
   * each has run the message through its routes, or: best effort, counted as dropped when a
   * peer fails or is unreachable; durable, retried (bounded by durableTimeoutMs) until it answers.
   */
  async publish(topic: string, msg: Message, durable: boolean): Promise<{ delivered: number; dropped: number }> {
    this.#stats.published++;
    const wire = toWire(msg);
    const targets = [...this.#members.values()].filter((m) => m.state !== 'dead' && m.subs.some((p) => topicMatches(p, topic)));
    let delivered = 0;
    let dropped = 0;
    const local = [...this.#subs.keys()].some((p) => topicMatches(p, topic));
    const jobs: Array<Promise<void>> = targets.map(async (m) => {
      const deadline = Date.now() + this.settings.durableTimeoutMs;
      for (let attempt = 0; ; attempt++) {
        try {
          const rep = await this.#call(m.id, (id) => ({ t: 'pub', id, topic, msg: wire }), this.settings.requestTimeoutMs);
          if (rep.err) throw remoteError(rep.err, m.name);
          delivered++;
          return;
        } catch (e) {
          const gone = this.#members.get(m.id)?.state === 'dead';
          if (!durable || Date.now() > deadline || (isBusbarError(e) && !e.retryable)) {
            dropped++;
            this.#log.warn({ peer: m.id, name: m.name, topic, err: (e as Error).message }, 'p2p publish dropped for a peer');
            return;
          }
          this.#stats.redelivered++;
          await new Promise((r) => setTimeout(r, gone ? 500 : Math.min(1000, 100 * 2 ** attempt)));
        }
      }
    });
    if (local) jobs.push(this.#deliver(this.#subs, topic, msg, true).then(() => void delivered++));
    await Promise.all(jobs);
    this.#stats.delivered += delivered;
    this.#stats.dropped += dropped;
    return { delivered, dropped };
  }

  /**
   * A call to one provider of a `direct:`/`queue:` channel, picked by the power of two choices on
   * outstanding requests among live providers (suspect ones only when no live one is left). When
   * the provider cannot be reached the call goes to another; when it dies mid-call the caller
   * gets P2P_PEER_LOST, or, for an idempotent endpoint, a retry on another provider.
   */
  async request(channel: string, msg: Message, opts: { inOut: boolean; idempotent: boolean; timeoutMs: number }): Promise<Message | undefined> {
    this.#stats.requests++;
    const tried = new Set<string>();
    const wire = toWire(msg);
    let last: unknown;
    for (;;) {
      const id = this.#pick(channel, tried);
      if (id === undefined) {
        if (last) throw last;
        if (this.#services.has(channel)) return this.#deliver(this.#services, channel, msg, false);
        throw new BusbarError('P2P_NO_PROVIDER', `p2p: no live peer serves ${channel}`, { details: { channel } });
      }
      if (id === this.#self.id) return this.#deliver(this.#services, channel, msg, false);
      tried.add(id);
      const m = this.#members.get(id)!;
      m.outstanding++;
      try {
        const rep = await this.#call(id, (rid) => ({ t: 'req', id: rid, channel, msg: wire, inOut: opts.inOut }), opts.timeoutMs);
        if (rep.err) throw remoteError(rep.err, m.name);
        return rep.msg ? fromWire(rep.msg) : undefined;
      } catch (e) {
        last = e;
        const unsent = isBusbarError(e) && e.details.unsent === true;
        const lost = isBusbarError(e, 'P2P_PEER_LOST');
        if (!(unsent || (lost && opts.idempotent))) throw e;
        this.#stats.failovers++;
      } finally {
        m.outstanding--;
      }
    }
  }

  #pick(channel: string, tried: Set<string>): string | undefined {
    const providers = (state: MemberState): Member[] => [...this.#members.values()].filter((m) => m.state === state && !tried.has(m.id) && m.services.includes(channel));
    let c = providers('alive');
    const self = this.#services.has(channel) && !tried.has(this.#self.id);
    if (c.length === 0 && !self) c = providers('suspect');
    const ids = c.map((m) => ({ id: m.id, load: m.outstanding }));
    if (self) ids.push({ id: this.#self.id, load: 0 });
    if (ids.length === 0) return undefined;
    if (ids.length === 1) return ids[0]!.id;
    const a = ids[randomInt(ids.length)]!;
    let b = ids[randomInt(ids.length)]!;
    if (b === a) b = ids[(ids.indexOf(a) + 1) % ids.length]!;
    return (a.load <= b.load ? a : b).id;
  }
}

/**
 * New inbound connections accepted per second from one host, and being set up at once. Bounded
 * still (a host without the secret fails at the pnet handshake; these stop it from tying up the
 * peer with attempts), but above what a whole cluster on one host needs while it joins.
 */
const INBOUND_PER_HOST_PER_S = 200;
/**
 * Time limit of setting up a connection (TCP, pnet, Noise, Yamux, protocol negotiation: a dozen
 * round trips through both event loops). A few ms when idle; seconds when a whole cluster joins
 * on a starved machine. A refused connection (a peer that is gone) fails at once regardless.
 */
const DIAL_TIMEOUT_MS = 3000;
/** A probe to a member we have no connection to yet: at most one per this many ms (see #nextTarget). */
const NEW_LINK_EVERY_MS = 1000;
const INBOUND_PENDING = 64;
/** Push-pull rounds after a join (ms after the previous one), then every SYNC_INTERVAL_MS (x view/32). */
const SYNC_AFTER_JOIN_MS = [300, 500, 1000, 1000, 2000, 3000];
const SYNC_INTERVAL_MS = 15_000;
/** Records taken from one join or push-pull frame. */
const MAX_VIEW = 4096;
/** Members a joiner exchanges views with directly, on top of its seed. */
const JOIN_FANOUT = 3;
/** Member updates carried by one probe or ack (each a few hundred bytes). */
const PIGGYBACK = 16;

interface StreamLike extends AsyncIterable<Uint8Array> {
  send(data: Uint8Array): boolean;
  abort(err: Error): void;
}

/** A dial that ran out of time (an AbortSignal timeout, libp2p's TimeoutError), as opposed to one refused. */
function isTimeout(e: unknown): boolean {
  const err = e as { name?: string; message?: string; errors?: unknown[] } | undefined;
  if (!err) return false;
  if (err.name === 'TimeoutError' || err.name === 'AbortError' || /timed? ?out|aborted/i.test(err.message ?? '')) return true;
  return Array.isArray(err.errors) && err.errors.length > 0 && err.errors.every(isTimeout);
}

function errorOf(e: unknown): { code: string; message: string; retryable: boolean } {
  if (isBusbarError(e)) return { code: e.code, message: e.message, retryable: e.retryable };
  return { code: 'BUSBAR_ERR_STEP_FAILED', message: e instanceof Error ? e.message : String(e), retryable: false };
}

function remoteError(err: { code: string; message: string; retryable: boolean }, peer: string): BusbarError {
  const name = err.code.replace(/^BUSBAR_ERR_/, '');
  const known = name in (BusbarError as unknown as { prototype: object }) ? name : undefined;
  void known;
  return new BusbarError('STEP_FAILED', `p2p peer ${peer}: ${err.message}`, { retryable: err.retryable, details: { remote: true, remoteCode: err.code, remoteMessage: err.message, peer } });
}

export type { WireMessage };
