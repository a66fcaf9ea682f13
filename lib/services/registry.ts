/**
 * The service registry: services announce themselves on the bus (name, version, node,
 * address, endpoints, metadata, health, contract) with a heartbeat, over whichever transport
 * the engine has (the amqp bus, the p2p bus, or in memory for one process); every engine with
 * a registry keeps a view of all instances, expires those whose heartbeats stop (TTL), and
 * calls services by name (`proxy`) on passing instances only.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { from } from '../builder.js';
import { CircuitBreaker, type CircuitBreakerOptions } from '../circuit-breaker.js';
import { compileContract, type Contract } from '../contracts.js';
import type { Engine } from '../engine.js';
import { BusbarError, isBusbarError } from '../errors.js';
import { createMessage, merged, type Headers, type Message } from '../message.js';
import { methodsOf, restoreRemoteError, RPC_HEADERS, TIMEOUT_HEADER, expose, type Remote } from '../rpc.js';
import type { JsonSchema } from '../schema.js';
import type { StepKind } from '../step.js';

export type InstanceHealth = 'passing' | 'warning' | 'critical';
export type InstanceStatus = 'up' | 'draining' | 'down';

/** One method of a service's contract: what the gateway's OpenAPI document shows and what the instance validates. */
export interface MethodContract {
  /** JSON Schema of the (first) argument. Calls whose argument violates it fail with VALIDATION_FAILED (HTTP 400 at the gateway). */
  input?: JsonSchema;
  /** JSON Schema of the result. */
  output?: JsonSchema;
  /** The method may run twice: a call whose instance dies mid-call is retried on another instance. */
  idempotent?: boolean;
  description?: string;
}

export interface ServiceContract {
  methods: Record<string, MethodContract>;
}

/** What an instance announces (and what the registry view holds). */
export interface ServiceInstance {
  service: string;
  version: string;
  /** Unique per instance (per `register` call). */
  id: string;
  /** Where it runs: `<host>/<pid>/<engine name>`. */
  node: string;
  /** Its call address on the transport (the registry turns it into an endpoint URI). */
  address: string;
  /** Extra endpoints the service wants known (an HTTP URL, a queue...). */
  endpoints: Record<string, string>;
  metadata: Record<string, string>;
  health: InstanceHealth;
  status: InstanceStatus;
  contract?: ServiceContract;
  /** How long after its last heartbeat the instance counts as gone. */
  ttlMs: number;
  seq: number;
}

export interface InstanceView extends ServiceInstance {
  /** Milliseconds since its last heartbeat. */
  ageMs: number;
  /** Up, passing health, heard from within its TTL: the only instances calls go to. */
  passing: boolean;
  /** Calls of this engine now waiting on it. */
  outstanding: number;
  /** Its circuit breaker here (one per instance per registry). */
  circuit: 'closed' | 'open' | 'half-open';
}

export interface RegistryOptions {
  /**
   * The adapter (scheme) the registry talks over: `amqp` (or a named amqp instance), `p2p`
   * (or a named one). Default: in memory (one engine). Every engine of a cluster must use a
   * transport of the same kind and the same `prefix`.
   */
  transport?: string;
  /** First part of transport-side names (default `busbar`). */
  prefix?: string;
  /** Heartbeat period of the instances this engine registers (default 1000 ms). */
  heartbeatMs?: number;
  /** An instance not heard from for this long is gone (default 3 heartbeats). */
  ttlMs?: number;
  /** `stop()`: how long to announce `draining` before stopping the service routes, so callers stop choosing them (default 2 heartbeats). */
  drainGraceMs?: number;
}

export interface RegisterOptions {
  version?: string;
  contract?: ServiceContract;
  metadata?: Record<string, string>;
  endpoints?: Record<string, string>;
  /** Only these methods (default: the contract's methods, or every method of the object). */
  methods?: readonly string[];
  /** Health check, run before every heartbeat: false or a throw is `critical`, `'warning'` is kept but not passing. */
  check?: () => boolean | InstanceHealth | Promise<boolean | InstanceHealth>;
  /** In-flight bound of the instance's route. */
  maxInflight?: number;
}

export interface ServiceProxyOptions {
  /** Time limit of each call (default 10 s). */
  timeoutMs?: number;
  /** Methods that may run twice (in addition to those the contract marks `idempotent`), or `true` for all. */
  idempotent?: boolean | readonly string[];
  /** Per-instance circuit breaker settings (default: 50% failures over 10 calls, open 5 s). */
  breaker?: CircuitBreakerOptions;
  headers?: Headers;
}

/** A service's answers are `Remote<T>` plus a look at where the calls went. */
export type ServiceProxy<T> = Remote<T>;

const STEP_KIND = 'busbar.registry.lifecycle';
const NAME = /^[A-Za-z0-9_-]+$/;

interface Entry {
  rec: ServiceInstance;
  seen: number;
  outstanding: number;
  breaker?: CircuitBreaker;
  waiters: Set<(e: BusbarError) => void>;
}

interface Local {
  rec: ServiceInstance;
  routeId: string;
  check?: RegisterOptions['check'];
}

/** The endpoint URIs of the registry's traffic for one transport kind. */
interface Wiring {
  announceTo(service: string): string;
  listen: string;
  serve(address: string): string;
  call(address: string): string;
}

function wiring(scheme: string | undefined, type: string | undefined, prefix: string): Wiring {
  if (scheme === undefined) {
    return { announceTo: (s) => `topic:${prefix}.registry.${s}`, listen: `topic:${prefix}.registry.#`, serve: (a) => `direct:${a}`, call: (a) => `direct:${a}` };
  }
  if (type === 'amqp') {
    // announcements on the predeclared topic exchange (a private auto-deleted queue per listener);
    // calls on amq.direct to the instance's own auto-deleted queue, published mandatory: a call to
    // an instance that is gone comes back at once (AMQP_UNROUTABLE) and goes to another
    return {
      announceTo: (s) => `${scheme}:exchange:amq.topic?routingKey=${prefix}.registry.${s}&bodyType=value&persistent=false`,
      listen: `${scheme}:exchange:amq.topic?bindingKey=${prefix}.registry.%23&bodyType=value`,
      serve: (a) => `${scheme}:exchange:amq.direct?bindingKey=${a}&bodyType=value`,
      call: (a) => `${scheme}:exchange:amq.direct?routingKey=${a}&bodyType=value&persistent=false`,
    };
  }
  if (type === 'p2p') {
    return { announceTo: (s) => `${scheme}:topic:${prefix}.registry.${s}`, listen: `${scheme}:topic:${prefix}.registry.#`, serve: (a) => `${scheme}:direct:${a}`, call: (a) => `${scheme}:direct:${a}` };
  }
  throw new BusbarError('INVALID_OPTION', `service registry: transport "${scheme}" is a ${type ?? 'unknown'} adapter; the registry runs over amqp, p2p or in memory (no transport)`, { details: { option: 'transport', transport: scheme, type } });
}

/** Errors that say the instance did not get the call: always safe to send it elsewhere. */
function unsent(e: unknown): boolean {
  return isBusbarError(e) && (e.code === 'BUSBAR_ERR_AMQP_UNROUTABLE' || e.code === 'BUSBAR_ERR_P2P_NO_PROVIDER' || e.details.unsent === true);
}

/** The instance answered with a failure of the call itself (the method threw, bad input): it is healthy. */
function answered(e: unknown): boolean {
  return isBusbarError(e) && (e.details.remote === true || typeof e.details.remoteCode === 'string' || e.code === 'BUSBAR_ERR_RPC_METHOD_NOT_FOUND' || e.code === 'BUSBAR_ERR_VALIDATION_FAILED');
}

function callError(e: unknown, service: string, method: string): BusbarError {
  if (isBusbarError(e)) {
    const rc = e.details.remoteCode;
    if (typeof rc === 'string' && rc !== e.code) {
      const msg = typeof e.details.remoteMessage === 'string' ? e.details.remoteMessage : e.message;
      const restored = restoreRemoteError(rc, msg, 'RPC_REMOTE_ERROR', { ...e.details, service, method });
      return restored;
    }
    e.details.service ??= service;
    e.details.method ??= method;
    return e;
  }
  return new BusbarError('STEP_FAILED', `${service}.${method}: ${e instanceof Error ? e.message : String(e)}`, { cause: e, details: { service, method } });
}

/**
 * A registry on one engine. Create it before adding the engine's routes is done (it adds its
 * own: a listener of announcements, and one route per registered service), start the engine,
 * and it heartbeats; `stop()` drains gracefully (announce `draining`, let calls in flight
 * finish, then deregister).
 */
export class ServiceRegistry {
  readonly #engine: Engine;
  readonly #wiring: Wiring;
  readonly #prefix: string;
  readonly #heartbeatMs: number;
  readonly #ttlMs: number;
  readonly #graceMs: number;
  readonly #view = new Map<string, Entry>();
  readonly #local = new Map<string, Local>();
  readonly #listeners = new Set<(i: ServiceInstance, change: 'up' | 'changed' | 'gone') => void>();
  #beat: NodeJS.Timeout | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #beating = false;
  #running = false;
  #stopped = false;

  constructor(engine: Engine, opts: RegistryOptions = {}) {
    this.#engine = engine;
    this.#prefix = opts.prefix ?? 'busbar';
    if (!NAME.test(this.#prefix)) throw new BusbarError('INVALID_OPTION', `service registry: prefix "${this.#prefix}" must be letters, digits, _ or -`, { details: { option: 'prefix' } });
    const t = opts.transport;
    this.#wiring = wiring(t, t === undefined ? undefined : engine.adapters.get(t)?.type ?? (engine.adapters.get(t) ? t : undefined), this.#prefix);
    this.#heartbeatMs = opts.heartbeatMs ?? 1000;
    this.#ttlMs = opts.ttlMs ?? this.#heartbeatMs * 3;
    this.#graceMs = opts.drainGraceMs ?? this.#heartbeatMs * 2;
    if (!(this.#heartbeatMs >= 10)) throw new BusbarError('INVALID_OPTION', `service registry: heartbeatMs must be >= 10, got ${this.#heartbeatMs}`, { details: { option: 'heartbeatMs' } });
    if (!(this.#ttlMs > this.#heartbeatMs)) throw new BusbarError('INVALID_OPTION', `service registry: ttlMs (${this.#ttlMs}) must be longer than heartbeatMs (${this.#heartbeatMs})`, { details: { option: 'ttlMs' } });
    if (!engine.steps.get(STEP_KIND)) engine.steps.register(lifecycleStep);
    engine.addRoutes(
      from<unknown>(this.#wiring.listen)
        .routeId(`${this.#prefix}.registry`)
        .step(STEP_KIND, this as unknown)
        .process((m) => {
          this.#heard(m.body);
          return m;
        }),
    );
  }

  /**
   * Register an instance of service `name` served by `impl`'s methods. Call before the engine
   * starts (it adds the instance's route). Returns the instance id.
   */
  register<T extends object>(name: string, impl: T, opts: RegisterOptions = {}): string {
    if (!NAME.test(name)) throw new BusbarError('INVALID_OPTION', `service registry: service name "${name}" must be letters, digits, _ or -`, { details: { option: 'name', service: name } });
    const id = `${name}-${randomUUID().slice(0, 8)}`;
    const address = `${this.#prefix}.svc.${name}.${id}`;
    const all = methodsOf(impl);
    const methods = opts.methods ?? (opts.contract ? Object.keys(opts.contract.methods) : [...all]);
    for (const m of methods) {
      if (!all.has(m)) throw new BusbarError('INVALID_ROUTE', `service "${name}": the implementation has no method "${m}"${opts.contract?.methods[m] ? ' (named in its contract)' : ''}`, { details: { service: name, method: m } });
    }
    // the contract's input schemas are checked on the instance, so every caller gets the same answer
    const target = impl as unknown as Record<string, (...a: unknown[]) => unknown>;
    const checked: Record<string, (...a: unknown[]) => unknown> = {};
    for (const m of methods) {
      const schema = opts.contract?.methods[m]?.input;
      const contract: Contract | undefined = schema ? compileContract(schema, { name: `${name}.${m} input` }) : undefined;
      checked[m] = contract ? (...a: unknown[]) => target[m]!.apply(impl, [contract(a[0]), ...a.slice(1)]) : (...a: unknown[]) => target[m]!.apply(impl, a);
    }
    const routeId = `${this.#prefix}.svc.${id}`;
    let route = expose(name, checked, { from: this.#wiring.serve(address) }).routeId(routeId);
    if (opts.maxInflight !== undefined) route = route.maxInflight(opts.maxInflight);
    this.#engine.addRoutes(route);
    const rec: ServiceInstance = {
      service: name,
      version: opts.version ?? '0.0.0',
      id,
      node: `${hostname()}/${process.pid}/${this.#engine.name}`,
      address,
      endpoints: { ...opts.endpoints },
      metadata: { ...opts.metadata },
      health: 'passing',
      status: 'up',
      ttlMs: this.#ttlMs,
      seq: 0,
    };
    if (opts.contract) rec.contract = { methods: Object.fromEntries(methods.map((m) => [m, opts.contract!.methods[m] ?? {}])) };
    const local: Local = { rec, routeId };
    if (opts.check) local.check = opts.check;
    this.#local.set(id, local);
    return id;
  }

  /** Instances in the view (all services, or one), with their health as seen here. */
  instances(service?: string): InstanceView[] {
    const now = Date.now();
    const out: InstanceView[] = [];
    for (const e of this.#view.values()) {
      if (service !== undefined && e.rec.service !== service) continue;
      out.push({ ...e.rec, ageMs: now - e.seen, passing: this.#passing(e, now), outstanding: e.outstanding, circuit: e.breaker?.state ?? 'closed' });
    }
    return out.sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
  }

  /** Names of the services with at least one instance in the view. */
  services(): string[] {
    return [...new Set([...this.#view.values()].map((e) => e.rec.service))].sort();
  }

  /** The newest contract of `service` (from its passing instances, else from any it has). */
  contractOf(service: string): { version: string; contract?: ServiceContract } | undefined {
    const now = Date.now();
    const all = [...this.#view.values()].filter((e) => e.rec.service === service);
    const passing = all.filter((e) => this.#passing(e, now));
    // passing instances speak for the service; when none passes, what the others said still describes it
    const c = passing.length ? passing : all;
    if (!c.length) return undefined;
    c.sort((a, b) => compareVersions(b.rec.version, a.rec.version));
    const r = c[0]!.rec;
    return r.contract ? { version: r.version, contract: r.contract } : { version: r.version };
  }

  /** Be told when an instance appears, changes (health, status) or goes. */
  onChange(fn: (i: ServiceInstance, change: 'up' | 'changed' | 'gone') => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * A typed client of service `name`: every call goes to one passing instance, chosen by the
   * power of two choices on this engine's outstanding calls, skipping instances whose circuit
   * is open. A call the instance never got (it is gone) goes to another at once; a call lost
   * with its instance (it died, its heartbeats stopped) is retried elsewhere when the method is
   * idempotent, else fails with SERVICE_INSTANCE_LOST. No passing instance: SERVICE_UNAVAILABLE.
   */
  proxy<T extends object>(name: string, opts: ServiceProxyOptions = {}): ServiceProxy<T> {
    const cache = new Map<string, (...args: unknown[]) => Promise<unknown>>();
    return new Proxy(Object.create(null) as object, {
      get: (_t, prop) => {
        if (typeof prop !== 'string' || prop === 'then' || prop === 'toJSON') return undefined;
        let f = cache.get(prop);
        if (!f) cache.set(prop, (f = (...args: unknown[]) => this.call(name, prop, args, opts)));
        return f;
      },
    }) as ServiceProxy<T>;
  }

  /** One call of `service.method(...args)` (what `proxy` and the gateway use). */
  async call(service: string, method: string, args: unknown[], opts: ServiceProxyOptions = {}): Promise<unknown> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const tried = new Set<string>();
    let last: unknown;
    for (;;) {
      const e = this.#pick(service, tried, opts);
      if (!e) {
        const n = this.instances(service).length;
        throw new BusbarError('SERVICE_UNAVAILABLE', `service "${service}": no passing instance${n ? ` (${n} known, none passing or all tried)` : ' known'}${last ? `; last failure: ${(last as Error).message}` : ''}`, { cause: last, details: { service, method, known: n, tried: [...tried] } });
      }
      tried.add(e.rec.id);
      const idempotent = opts.idempotent === true || (Array.isArray(opts.idempotent) && opts.idempotent.includes(method)) || e.rec.contract?.methods[method]?.idempotent === true;
      const breaker = e.breaker!;
      e.outstanding++;
      try {
        const reply = await this.#send(e, service, method, args, timeoutMs, opts.headers);
        breaker.success();
        return reply.body;
      } catch (err) {
        if (answered(err)) {
          breaker.success();
          throw callError(err, service, method);
        }
        last = err;
        // a call the instance never got (no route to it yet: its provider not in this peer's
        // view, a broker return) says nothing of its health: it must not open its circuit, or a
        // client calling right after discovery would lose the instance for `openMs`
        if (unsent(err)) {
          breaker.release();
          continue;
        }
        breaker.failure();
        if (idempotent && this.#running) continue;
        throw callError(err, service, method);
      } finally {
        e.outstanding--;
      }
    }
  }

  #send(e: Entry, service: string, method: string, args: unknown[], timeoutMs: number, headers?: Headers): Promise<Message> {
    const msg = createMessage(args, { headers: merged(headers ?? {}, { [RPC_HEADERS.method]: `${service}.${method}`, [TIMEOUT_HEADER]: timeoutMs }) });
    return new Promise<Message>((resolve, reject) => {
      // the instance leaving the view (heartbeats stopped, deregistered) ends its calls now, not at their time limit
      const lost = (err: BusbarError): void => {
        cleanup();
        reject(err);
      };
      const timer = setTimeout(() => lost(new BusbarError('TIMEOUT', `${service}.${method}: no reply from instance ${e.rec.id} within ${timeoutMs} ms`, { details: { service, method, instance: e.rec.id, timeoutMs } })), timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        e.waiters.delete(lost);
      };
      e.waiters.add(lost);
      let p: Promise<Message>;
      try {
        p = this.#engine.requestMessage(this.#wiring.call(e.rec.address), msg, { timeoutMs });
      } catch (err) {
        p = Promise.reject(err);
      }
      p.then(
        (r) => {
          cleanup();
          resolve(r);
        },
        (err: unknown) => {
          cleanup();
          reject(err);
        },
      );
    });
  }

  #passing(e: Entry, now: number): boolean {
    return e.rec.status === 'up' && e.rec.health === 'passing' && now - e.seen <= e.rec.ttlMs;
  }

  #pick(service: string, tried: Set<string>, opts: ServiceProxyOptions): Entry | undefined {
    const now = Date.now();
    const c: Entry[] = [];
    for (const e of this.#view.values()) {
      if (e.rec.service !== service || tried.has(e.rec.id) || !this.#passing(e, now)) continue;
      e.breaker ??= new CircuitBreaker(`${service}/${e.rec.id}`, this.#engine.clock, { windowSize: 10, minimumCalls: 5, openMs: 5000, ...opts.breaker });
      if (e.breaker.state === 'open') continue;
      c.push(e);
    }
    // power of two choices: two at random, the one with fewer calls outstanding
    while (c.length) {
      let pick = c[Math.floor(Math.random() * c.length)]!;
      if (c.length > 1) {
        let other = c[Math.floor(Math.random() * c.length)]!;
        if (other === pick) other = c[(c.indexOf(pick) + 1) % c.length]!;
        if (other.outstanding < pick.outstanding) pick = other;
      }
      if (pick.breaker!.tryAcquire()) return pick;
      c.splice(c.indexOf(pick), 1);
    }
    return undefined;
  }

  #heard(body: unknown): void {
    const r = body as Partial<ServiceInstance> | null;
    if (!r || typeof r !== 'object' || typeof r.id !== 'string' || typeof r.service !== 'string' || typeof r.address !== 'string' || typeof r.seq !== 'number') return;
    const rec = r as ServiceInstance;
    const cur = this.#view.get(rec.id);
    if (cur && rec.seq < cur.rec.seq) return;
    if (rec.status === 'down') {
      if (cur) {
        cur.rec = rec;
        this.#gone(cur, 'deregistered');
      }
      return;
    }
    if (!cur) {
      this.#view.set(rec.id, { rec, seen: Date.now(), outstanding: 0, waiters: new Set() });
      this.#emit(rec, 'up');
      return;
    }
    const changed = cur.rec.status !== rec.status || cur.rec.health !== rec.health;
    cur.rec = rec;
    cur.seen = Date.now();
    if (changed) this.#emit(rec, 'changed');
  }

  #gone(e: Entry, why: 'deregistered' | 'expired'): void {
    this.#view.delete(e.rec.id);
    const err = new BusbarError('SERVICE_INSTANCE_LOST', `service "${e.rec.service}": instance ${e.rec.id} (${e.rec.node}) ${why === 'expired' ? `stopped heartbeating (no heartbeat for ${e.rec.ttlMs} ms)` : 'deregistered'} before it answered`, { details: { service: e.rec.service, instance: e.rec.id, node: e.rec.node, reason: why } });
    for (const w of [...e.waiters]) w(err);
    this.#emit(e.rec, 'gone');
  }

  #emit(rec: ServiceInstance, change: 'up' | 'changed' | 'gone'): void {
    for (const l of this.#listeners) {
      try {
        l(rec, change);
      } catch (err) {
        this.#engine.logger.error({ err }, 'service registry listener failed');
      }
    }
  }

  // ---------------------------------------------------------------- lifecycle (driven by the engine)

  /** @internal the listener route started: heartbeats and expiry begin. */
  started(): void {
    this.#running = true;
    this.#stopped = false;
    // the first heartbeat once the engine has started every route (the service routes start after this one)
    const deadline = Date.now() + 60_000;
    const kick = (): void => {
      if (this.#engine.state === 'started') void this.#heartbeat();
      else if (this.#engine.state === 'starting' && Date.now() < deadline) setTimeout(kick, 5).unref();
    };
    kick();
    this.#beat = setInterval(() => void this.#heartbeat(), this.#heartbeatMs);
    this.#beat.unref();
    this.#sweep = setInterval(() => {
      const now = Date.now();
      for (const e of [...this.#view.values()]) if (now - e.seen > e.rec.ttlMs) this.#gone(e, 'expired');
    }, Math.max(10, Math.floor(this.#ttlMs / 4)));
    this.#sweep.unref();
  }

  /** @internal the engine drained its routes: deregister what is still registered. */
  async stopped(): Promise<void> {
    if (!this.#stopped) await this.#deregister();
    clearInterval(this.#sweep);
    this.#running = false;
    for (const e of [...this.#view.values()]) this.#gone(e, 'deregistered');
  }

  /**
   * Graceful: announce every local instance `draining` (callers stop choosing them), wait
   * `drainGraceMs`, stop the service routes (calls in flight finish), then deregister. The
   * engine and its view go on; `engine.stop()` afterwards stops the rest.
   */
  async stop(): Promise<void> {
    if (!this.#running || this.#stopped) return;
    for (const l of this.#local.values()) l.rec = { ...l.rec, status: 'draining', seq: l.rec.seq + 1 };
    await this.#announceAll();
    await new Promise((r) => setTimeout(r, this.#graceMs));
    for (const l of this.#local.values()) await this.#engine.stopRoute(l.routeId).catch((err: unknown) => this.#engine.logger.warn({ err, route: l.routeId }, 'service route stop failed'));
    await this.#deregister();
  }

  async #deregister(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#beat);
    for (const l of this.#local.values()) l.rec = { ...l.rec, status: 'down', seq: l.rec.seq + 1 };
    await this.#announceAll();
  }

  async #heartbeat(): Promise<void> {
    // a slow transport must not pile up heartbeats
    if (this.#beating || this.#stopped) return;
    this.#beating = true;
    try {
      for (const l of this.#local.values()) {
        let health: InstanceHealth = 'passing';
        if (l.check) {
          try {
            const h = await l.check();
            health = h === true ? 'passing' : h === false ? 'critical' : h;
          } catch {
            health = 'critical';
          }
        }
        if (this.#stopped) return;
        l.rec = { ...l.rec, health, seq: l.rec.seq + 1 };
      }
      await this.#announceAll();
    } finally {
      this.#beating = false;
    }
  }

  async #announceAll(): Promise<void> {
    await Promise.all(
      [...this.#local.values()].map((l) =>
        this.#engine.send(this.#wiring.announceTo(l.rec.service), l.rec).catch((err: unknown) => this.#engine.logger.warn({ err, service: l.rec.service }, 'service announcement failed')),
      ),
    );
  }
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/** A step (on the registry's listener route) that ties heartbeats to the engine's lifecycle. */
const lifecycleStep: StepKind<ServiceRegistry> = {
  name: STEP_KIND,
  description: 'internal: starts the service registry\'s heartbeats with the engine, deregisters after the drain',
  configSchema: { not: {} },
  fromConfig: () => {
    throw new BusbarError('INVALID_ROUTE', `${STEP_KIND} is internal to the service registry`, { details: {} });
  },
  compile(registry, next, ctx) {
    ctx.onStart(() => registry.started());
    ctx.onStop(() => registry.stopped());
    return next;
  },
};
