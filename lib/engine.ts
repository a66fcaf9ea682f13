import type { Logger } from 'pino';
import { busbarLogger } from './logging.js';
import type { Observable, Subject } from 'rxjs';
import { lazy } from './lazy.js';
import { AdapterRegistry, canReply, named, type Adapter, type AdapterContext, type Consumer, type ConsumerContext, type Producer, type RequestOptions, type SourceStatus } from './adapter.js';
import { isRouteBuilder, type RouteBuilder } from './builder.js';
import { mockEndpoint, type MockEndpoint } from '../adapters/mock/index.js';
import { ChannelBinder, type ChannelBindings } from './bindings.js';
import { builtinAdapters } from './builtins.js';
import { systemClock, type Clock } from './clock.js';
import { CodecRegistry, type Codec } from './codecs.js';
import { ConfigReader, INVALID_STEP, problemsError, type RouteConfig, type RoutesConfig } from './config.js';
import { withRouteContract } from './contracts.js';
import { BusbarError, isBusbarError } from './errors.js';
import { compileExpression, type CompiledExpression } from './expression.js';
import { createMessage, withHeaders, type Headers, type Message } from './message.js';
import type { ErrorPolicy, RouteDefinition } from './model.js';
import { routeFingerprint } from './route-fingerprint.js';
import { Route, type ExchangeObserver, type MessageEvent, type RouteEvents, type RouteState, type RouteStats } from './route.js';
import type { ManagementOptions, ManagementServer } from './management/types.js';
import type { Problem } from './schema.js';
import { continuation, fuse, guard, isPromise, type GuardSlot, type MapFn, type MapStage, type StepProbe, StepRegistry, type CompileContext, type MaybePromise, type NamedFunction, type Next, type StepDefinition, type StepKind } from './step.js';
import { builtinSteps } from './steps/index.js';
import { EngineTracer, type TracingOptions } from './tracing/tracer.js';

export type EngineState = 'new' | 'starting' | 'started' | 'stopping' | 'stopped' | 'failed';

export type EngineEvent =
  | { type: 'engine.started' | 'engine.stopping' | 'engine.stopped'; engine: string }
  | { type: 'route.started' | 'route.stopped' | 'route.suspended' | 'route.resumed'; routeId: string }
  | { type: 'route.failed'; routeId: string; error: string; code: string }
  | MessageEvent;

export interface EngineOptions {
  /** Shown in logs; useful when several engines share a process. */
  name?: string;
  /** A pino logger; by default one writing JSON to stdout at `BUSBAR_LOG_LEVEL` (info). */
  logger?: Logger;
  /** Adapters to register; the built-in in-memory ones (direct, queue, topic, mock, log, timer) are always there unless `builtins: false`. */
  adapters?: Iterable<Adapter>;
  builtins?: boolean;
  /** Extra step kinds and codecs (plugins). */
  steps?: Iterable<StepKind>;
  codecs?: Iterable<Codec>;
  /** Functions config routes may call by name (`{ "transform": { "fn": "enrich" } }`). */
  functions?: Record<string, NamedFunction>;
  /** Default bound on in-flight messages per route (default 256). */
  maxInflight?: number;
  /** Engine-wide error policy; a route's own policy takes precedence. */
  errorPolicy?: ErrorPolicy;
  /** Timers (the testing kit passes a fake clock). */
  clock?: Clock;
  /** Default graceful-stop timeout (10 s). */
  stopTimeoutMs?: number;
  /**
   * Carry the in-memory channels of the routes (`direct:`, `queue:`, `topic:`) over a
   * transport instead (`{ transport: 'amqp' }`), without changing the routes: see docs/topologies.md.
   */
  channels?: ChannelBindings | readonly ChannelBindings[];
  /**
   * OpenTelemetry tracing (docs/tracing.md): a span per exchange and per output, W3C trace
   * context on the transports. `true` uses the globally registered tracer provider; off by
   * default, and then nothing of it is loaded or run.
   */
  tracing?: boolean | TracingOptions;
}

/** One step of a route's structure (`engine.describeRoute`): what the console draws and the management API shows. */
export interface StepDescription {
  /** Where the step is in the route, e.g. `/steps/2` or `/steps/1/when/0/steps/0`. */
  path: string;
  /** The step kind (the pattern): `to`, `choice`, `split`, `aggregate`, `enrich`... */
  kind: string;
  /** Endpoint URIs the step sends to that are known when the route is built. */
  endpoints: string[];
  /** Nested step lists by name (`when/0/steps`, `otherwise`, `branches/1`, `steps`, `fallback`). */
  children: Record<string, StepDescription[]>;
}

export interface RouteDescription {
  id: string;
  from: string;
  description?: string;
  state: RouteState;
  maxInflight: number;
  /** Dead-letter endpoints of the route's error policy (its own and per-code rules). */
  deadLetters: string[];
  steps: StepDescription[];
}

/** Per-endpoint connection status, for readiness (`/ready`). */
export interface EndpointHealth {
  uri: string;
  role: 'source' | 'output';
  status: string;
  /** ISO time of the last status change (for a down endpoint: down since). */
  since?: string;
  error?: string;
}

/** A route given to `addRoutes`: a builder, config data, or a list of them. */
export type RouteInput = RouteBuilder<unknown, never> | RouteConfig | RoutesConfig | readonly RouteInput[];

/** What `engine.reload` did, by route id. */
export interface ReloadReport {
  /** New ids: created and started. */
  added: string[];
  /** Gone from the new routes: drained and stopped. */
  removed: string[];
  /** Their model changed: drained, then the new version started. */
  changed: string[];
  /** Same model: left running, untouched. */
  unchanged: string[];
}

export interface StopReport {
  timedOut: boolean;
  /** Messages still in flight per route when stop gave up waiting. */
  inflight: Record<string, number>;
}

export interface EngineStats {
  state: EngineState;
  /** Producers (destination endpoints) open now. */
  producers: number;
  routes: Record<string, RouteStats>;
  /**
   * Per adapter instance in use (by scheme: `amqp`, and each named instance such as
   * `amqp-eu`): its type, the routes consuming from it with their message counts, the
   * producers open on it and the sends they were given.
   */
  adapters: Record<string, AdapterStats>;
}

export interface AdapterStats {
  type: string;
  consumers: number;
  received: number;
  completed: number;
  failed: number;
  producers: number;
  sent: number;
  /** Figures the adapter itself keeps (`Adapter.stats`), e.g. the fn adapter's per-function usage under `functions`. */
  [figure: string]: unknown;
}

interface ProducerEntry {
  producer: Producer;
  started: boolean;
  starting: Promise<void> | undefined;
  sender: ((msg: Message) => MaybePromise<Message | undefined>) | undefined;
  requester: ((msg: Message, opts?: RequestOptions) => Promise<Message>) | undefined;
  /** Messages handed to this producer (per-instance stats). */
  sent: number;
  /** Created while running (a computed URI): may be evicted to keep the table bounded. */
  dynamic: boolean;
  evicted: boolean;
}

/** Statuses in which an endpoint counts as up for readiness. */
const UP: ReadonlySet<SourceStatus> = new Set<SourceStatus>(['connected', 'idle', 'ended']);

/** Producers for URIs computed at message time (recipient lists, routing slips) kept at once. */
const MAX_DYNAMIC_PRODUCERS = 4096;

/** What `send` resolves with when the endpoint had the message at once (shared: nothing reads it but `await`). */
const DONE: Promise<void> = Promise.resolve();

/**
 * The engine: adapter registry, routes, producers, lifecycle, logger, events, stats.
 * No globals: everything lives on the instance, so several engines can share a process.
 */
const rxjs = lazy<typeof import('rxjs')>('rxjs');

export class Engine {
  readonly name: string;
  readonly logger: Logger;
  readonly adapters: AdapterRegistry;
  readonly steps: StepRegistry;
  readonly codecs: CodecRegistry;
  readonly clock: Clock;
  readonly functions = new Map<string, NamedFunction>();

  readonly #routes = new Map<string, Route>();
  readonly #producers = new Map<string, ProducerEntry>();
  readonly #dynamic: string[] = [];
  readonly #adapterState = new Map<string, unknown>();
  /** Each source's backlog as last read (engine.stats() is synchronous; reading it is not). */
  readonly #backlogs = new Map<string, { n: number; at: string }>();
  /** Created on the first `events$` read: rxjs is loaded only by engines someone observes. */
  #events: Subject<EngineEvent> | undefined;
  /** What routes tell about their messages: shared by every route (see RouteEvents). */
  readonly #routeEvents: RouteEvents = {
    emit: (ev) => this.#events?.next(ev),
    wantsEvents: () => this.#events?.observed === true,
  };
  readonly #maxInflight: number;
  readonly #policy: ErrorPolicy;
  readonly #stopTimeoutMs: number;
  readonly #bindings: readonly ChannelBindings[];
  #binders: ChannelBinder[] | undefined;
  #state: EngineState = 'new';
  #transition: Promise<unknown> | undefined;
  #routeSeq = 0;
  readonly #descriptions = new Map<string, StepDescription[]>();
  readonly #routeUris = new Map<string, Set<string>>();
  readonly #mounters: Array<(m: ManagementServer) => void | Promise<void>> = [];
  #observer: ExchangeObserver | undefined;
  #stepObserver: ExchangeObserver | undefined;
  readonly #observers: ExchangeObserver[] = [];
  /** Reloads run one at a time. */
  #reloads: Promise<unknown> = Promise.resolve();
  /** Set while a reload builds routes: their producers are part of the routes, not computed at message time. */
  #deploying = false;
  readonly #tracer: EngineTracer | undefined;

  #events$: Observable<EngineEvent> | undefined;

  /** Lifecycle and message events (message events are only built while someone subscribes). */
  get events$(): Observable<EngineEvent> {
    if (!this.#events$) {
      this.#events = new (rxjs().Subject)<EngineEvent>();
      this.#events$ = this.#events.asObservable();
    }
    return this.#events$;
  }

  constructor(opts: EngineOptions = {}) {
    this.name = opts.name ?? 'busbar';
    this.logger = opts.logger ?? busbarLogger({ name: this.name, level: process.env.BUSBAR_LOG_LEVEL ?? 'info' });
    this.adapters = new AdapterRegistry(opts.builtins === false ? [] : builtinAdapters());
    for (const a of opts.adapters ?? []) this.adapters.register(a);
    this.steps = new StepRegistry(builtinSteps);
    for (const s of opts.steps ?? []) this.steps.register(s);
    this.codecs = new CodecRegistry();
    for (const c of opts.codecs ?? []) this.codecs.register(c);
    this.clock = opts.clock ?? systemClock;
    this.#maxInflight = opts.maxInflight ?? 256;
    this.#policy = opts.errorPolicy ?? {};
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
    this.#bindings = opts.channels === undefined ? [] : Array.isArray(opts.channels) ? (opts.channels as readonly ChannelBindings[]) : [opts.channels as ChannelBindings];
    for (const b of this.#bindings) new ChannelBinder(b, 'check');
    for (const [k, f] of Object.entries(opts.functions ?? {})) this.functions.set(k, f);
    this.#tracer = opts.tracing ? new EngineTracer(opts.tracing === true ? {} : opts.tracing, '0.1.0') : undefined;
  }

  /** Whether this engine traces (the `tracing` option). */
  get tracing(): boolean {
    return this.#tracer !== undefined;
  }

  get state(): EngineState {
    return this.#state;
  }

  /**
   * Register an adapter; with a name, as one more instance under that scheme
   * (`engine.use(createAmqpAdapter({ url: US }), 'amqp-us')`, see `named`).
   */
  use(adapter: Adapter, name?: string): this {
    this.adapters.register(name === undefined || name === adapter.scheme ? adapter : named(name, adapter));
    return this;
  }

  /** Register functions that config routes can refer to by name. */
  registerFunctions(fns: Record<string, NamedFunction>): this {
    for (const [k, f] of Object.entries(fns)) this.functions.set(k, f);
    return this;
  }

  // ---------------------------------------------------------------- routes
  /**
   * Add routes (builders or config data). Everything is checked now (endpoints, options,
   * steps, expressions), so a wrong route fails here with a coded error, not at message time.
   */
  addRoutes(...inputs: RouteInput[]): this {
    if (this.#state !== 'new' && this.#state !== 'stopped') {
      throw new BusbarError('ENGINE_STATE', `cannot add routes while the engine is ${this.#state}; add them before start()`, { details: { state: this.#state } });
    }
    const defs = this.#definitions(inputs);
    const created: Route[] = [];
    for (const def of defs) created.push(this.#createRoute(def));
    for (const r of created) this.#routes.set(r.id, r);
    return this;
  }

  /**
   * Check routes without adding them: every problem with its path (`/routes/<i>/...`).
   * Used by `busbar validate`. Every problem of a route in one pass: its source, every
   * endpoint of every step (a bad one is reported and the check goes on) and the steps'
   * own compile errors.
   */
  check(...inputs: RouteInput[]): Problem[] {
    const { defs, problems } = this.#collect(inputs);
    const seen = new Set(this.#routes.keys());
    for (const { def, path } of defs) {
      if (seen.has(def.id)) problems.push({ path: `${path}/id`, message: `duplicate route id "${def.id}"` });
      seen.add(def.id);
      const toProblem = (e: unknown, where?: string): Problem => {
        const err = e as BusbarError;
        const step = typeof err.details?.step === 'string' ? (err.details.step as string).split(' ')[0] : undefined;
        const at = where !== undefined ? `${path}${where}` : step?.startsWith('/') ? `${path}${step}` : err.code === 'BUSBAR_ERR_UNKNOWN_SCHEME' || err.code === 'BUSBAR_ERR_INVALID_OPTION' || err.code === 'BUSBAR_ERR_UNSUPPORTED_ENDPOINT' ? `${path}/from` : path;
        const p: Problem = { path: at, message: err?.message ?? String(e) };
        const s = err?.details?.suggestion;
        if (typeof s === 'string') p.suggestion = s;
        return p;
      };
      try {
        this.#createRoute(def, true, (e, where) => problems.push(toProblem(e, where)));
      } catch (e) {
        problems.push(toProblem(e));
      }
    }
    return problems;
  }

  /** Route definitions from any mix of inputs, with the path of each in the given list. */
  #collect(inputs: readonly RouteInput[]): { defs: Array<{ def: RouteDefinition; path: string }>; problems: Problem[] } {
    const defs: Array<{ def: RouteDefinition; path: string }> = [];
    const problems: Problem[] = [];
    // made on the first config-form input: builder routes need no config schema compiled
    let reader: ConfigReader | undefined;
    let i = 0;
    for (const input of this.#flatten(inputs)) {
      if (isRouteBuilder(input)) {
        const path = `/routes/${i++}`;
        try {
          defs.push({ def: input.toDefinition(this.#nextRouteId(defs)), path });
        } catch (e) {
          problems.push({ path, message: (e as Error).message });
        }
        continue;
      }
      const grouped = typeof input === 'object' && input !== null && 'routes' in input;
      const read = (reader ??= this.#reader()).read(input, grouped ? '' : `/routes/${i}`);
      problems.push(...read.problems);
      read.routes.forEach((def, j) => {
        const explicit = grouped ? (input as RoutesConfig).routes[j]?.id : (input as RouteConfig).id;
        if (explicit === undefined) def.id = this.#nextRouteId(defs);
        defs.push({ def, path: grouped ? `/routes/${j}` : `/routes/${i}` });
      });
      i += grouped ? read.routes.length : 1;
    }
    return { defs, problems };
  }

  /**
   * Hot reload: replace the routes by `inputs` (the new version of a routes file). Everything
   * is validated first; then only routes whose model changed are redeployed (the old version
   * drains its in-flight messages, then the new one starts), new ids start and ids that are
   * gone stop. When validation or a start fails, the running version stays (routes swapped
   * before the failure are swapped back) and a RELOAD_FAILED error says why. A route an
   * operator had stopped or suspended keeps that: its new version is deployed stopped.
   */
  reload(inputs: readonly RouteInput[], opts: { timeoutMs?: number; functions?: Record<string, NamedFunction> } = {}): Promise<ReloadReport> {
    const run = this.#reloads.then(() => this.#reload(inputs, opts));
    this.#reloads = run.catch(() => undefined);
    return run;
  }

  async #reload(inputs: readonly RouteInput[], opts: { timeoutMs?: number; functions?: Record<string, NamedFunction> }): Promise<ReloadReport> {
    if (this.#state === 'starting' || this.#state === 'stopping') throw new BusbarError('ENGINE_STATE', `cannot reload while the engine is ${this.#state}`, { details: { state: this.#state } });
    const oldFns = new Map(this.functions);
    const restoreFns = (): void => {
      this.functions.clear();
      for (const [k, f] of oldFns) this.functions.set(k, f);
    };
    for (const [k, f] of Object.entries(opts.functions ?? {})) this.functions.set(k, f);
    // 1. validate everything before touching a running route
    const { defs, problems } = this.#collect(inputs);
    const seen = new Set<string>();
    for (const { def, path } of defs) {
      if (seen.has(def.id)) problems.push({ path: `${path}/id`, message: `duplicate route id "${def.id}"` });
      seen.add(def.id);
      try {
        this.#createRoute(def, true);
      } catch (e) {
        problems.push({ path, message: (e as Error).message });
      }
    }
    if (problems.length) {
      restoreFns();
      const lines = problems.map((p) => `  ${p.path || '/'}: ${p.message}${p.suggestion ? ` (${p.suggestion})` : ''}`);
      throw new BusbarError('RELOAD_FAILED', `reload refused, the running routes stay: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${lines.join('\n')}`, { details: { phase: 'validate', problems } });
    }
    // 2. what changed
    const report: ReloadReport = { added: [], removed: [], changed: [], unchanged: [] };
    const next = new Map(defs.map(({ def }) => [def.id, def]));
    for (const [id, def] of next) {
      const old = this.#routes.get(id);
      if (!old) report.added.push(id);
      else if (routeFingerprint(old.definition) === routeFingerprint(def)) report.unchanged.push(id);
      else report.changed.push(id);
    }
    for (const id of this.#routes.keys()) if (!next.has(id)) report.removed.push(id);
    const forget = (id: string): void => {
      this.#routes.delete(id);
      this.#descriptions.delete(id);
      this.#routeUris.delete(id);
      this.#backlogs.delete(id);
    };
    if (this.#state !== 'started') {
      // nothing runs: swap the models
      for (const id of report.removed) forget(id);
      for (const id of [...report.changed, ...report.added]) this.#routes.set(id, this.#createRoute(next.get(id)!));
      this.logger.info(report, 'routes reloaded');
      return report;
    }
    // 3. build the new versions (compiling cannot touch the running ones), start their producers
    const saved = new Map<string, { route: Route; steps: StepDescription[] | undefined; uris: Set<string> | undefined }>();
    for (const id of report.changed) saved.set(id, { route: this.#routes.get(id)!, steps: this.#descriptions.get(id), uris: this.#routeUris.get(id) });
    const restoreModel = (id: string): void => {
      const s = saved.get(id);
      if (!s) {
        forget(id);
        return;
      }
      this.#routes.set(id, s.route);
      if (s.steps) this.#descriptions.set(id, s.steps);
      if (s.uris) this.#routeUris.set(id, s.uris);
    };
    const built = new Map<string, Route>();
    const models = new Map<string, { steps: StepDescription[] | undefined; uris: Set<string> | undefined }>();
    const fail = (phase: string, id: string, e: unknown): BusbarError => {
      restoreFns();
      return new BusbarError('RELOAD_FAILED', `reload refused, the running routes stay: route "${id}" ${phase === 'build' ? 'cannot be built' : 'failed to start'}: ${(e as Error).message}`, { cause: e, details: { phase: 'start', routeId: id } });
    };
    this.#deploying = true;
    try {
      for (const id of [...report.changed, ...report.added]) {
        try {
          const route = this.#createRoute(next.get(id)!);
          built.set(id, route);
          // #createRoute recorded the new structure; the old one stays in force until the swap
          const s = saved.get(id);
          const steps = this.#descriptions.get(id);
          const uris = this.#routeUris.get(id);
          if (s) {
            if (s.steps) this.#descriptions.set(id, s.steps);
            if (s.uris) this.#routeUris.set(id, s.uris);
          }
          models.set(id, { steps, uris });
          for (const uri of uris ?? []) {
            const entry = this.#producers.get(uri);
            if (entry) await this.#startProducer(entry);
          }
        } catch (e) {
          for (const done of built.keys()) if (!saved.has(done)) forget(done);
          if (!saved.has(id)) forget(id);
          throw fail('build', id, e);
        }
      }
    } finally {
      this.#deploying = false;
    }
    // 4. swap: drain the old version, start the new one; on a failure swap everything back
    const swapped: string[] = [];
    const stoppedOld = new Set<string>();
    const install = (id: string): Route => {
      const route = built.get(id)!;
      const m = models.get(id);
      this.#routes.set(id, route);
      if (m?.steps) this.#descriptions.set(id, m.steps);
      if (m?.uris) this.#routeUris.set(id, m.uris);
      return route;
    };
    try {
      for (const id of [...report.changed, ...report.added]) {
        const old = saved.get(id)?.route;
        const wasRunning = old === undefined || old.state === 'started';
        if (old && (old.state === 'started' || old.state === 'suspended')) {
          await this.stopRoute(id, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
          if (wasRunning) stoppedOld.add(id);
        }
        const route = install(id);
        swapped.push(id);
        if (wasRunning) await this.#startOne(route);
      }
    } catch (e) {
      const id = swapped[swapped.length - 1]!;
      for (const back of swapped.reverse()) {
        const neu = this.#routes.get(back)!;
        if (neu.state === 'started' || neu.state === 'suspended') await this.stopRoute(back).catch(() => undefined);
        restoreModel(back);
        const old = saved.get(back)?.route;
        if (old && stoppedOld.has(back)) await this.#startOne(old).catch((err: unknown) => this.logger.error({ err, route: back }, 'reload: the old version did not start again'));
      }
      throw fail('start', id, e);
    }
    // 5. routes gone from the file
    for (const id of report.removed) {
      const r = this.#routes.get(id)!;
      if (r.state === 'started' || r.state === 'suspended') await this.stopRoute(id, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }).catch((err: unknown) => this.logger.error({ err, route: id }, 'reload: stopping a removed route failed'));
      forget(id);
    }
    this.logger.info(report, 'routes reloaded');
    return report;
  }

  routeIds(): string[] {
    return [...this.#routes.keys()];
  }

  /** The model of every added route with the error policy in force (what `busbar graph` and the console draw). */
  routeModels(): RouteDefinition[] {
    return [...this.#routes.values()].map((r) => ({ ...r.definition, errorPolicy: r.errorPolicy }));
  }

  #flatten(inputs: readonly RouteInput[]): Array<Exclude<RouteInput, readonly RouteInput[]>> {
    const out: Array<Exclude<RouteInput, readonly RouteInput[]>> = [];
    for (const i of inputs) {
      if (Array.isArray(i)) out.push(...this.#flatten(i as readonly RouteInput[]));
      else out.push(i as Exclude<RouteInput, readonly RouteInput[]>);
    }
    return out;
  }

  #reader(): ConfigReader {
    return new ConfigReader({ steps: this.steps, functions: this.functions });
  }

  #nextRouteId(pending: ReadonlyArray<{ def: RouteDefinition }> = []): string {
    let id: string;
    do id = `route-${++this.#routeSeq}`;
    while (this.#routes.has(id) || pending.some((p) => p.def.id === id));
    return id;
  }

  #definitions(inputs: readonly RouteInput[]): RouteDefinition[] {
    const { defs, problems } = this.#collect(inputs);
    if (problems.length) throw problemsError(problems, 'invalid routes');
    const ids = new Set<string>();
    for (const { def: d } of defs) {
      if (ids.has(d.id) || this.#routes.has(d.id)) throw new BusbarError('DUPLICATE_ROUTE', `duplicate route id "${d.id}"`, { details: { routeId: d.id } });
      ids.add(d.id);
    }
    return defs.map((d) => d.def);
  }

  /** `collect` (dry runs of `check`): report a problem and go on, so one pass finds them all. */
  #createRoute(def: RouteDefinition, dryRun = false, collect?: (err: unknown, where?: string) => void): Route {
    const logger = this.logger.child({ route: def.id });
    const route: Route = new Route(def, {
      maxInflight: this.#maxInflight,
      logger,
      clock: this.clock,
      policy: this.#policy,
      hooks: {
        events: this.#routeEvents,
        deadLetter: (uri: string, msg: Message): Promise<Message | undefined> => {
          const sent = this.#sender(uri)(msg);
          const o: ExchangeObserver | undefined = route.observer;
          // the observer's record (the reason of a file dead letter) is written before the source is acknowledged
          return o?.deadLettered ? sent.then(async (reply) => (await o.deadLettered!(route, uri, msg, reply), reply)) : sent;
        },
      },
    });
    let source: ReturnType<AdapterRegistry['resolve']> | undefined;
    try {
      source = this.adapters.resolve(this.#bound(def.from, 'consumer'), 'consumer', { routeId: def.id });
    } catch (e) {
      if (!collect) throw e;
      collect(e, '/from');
    }
    const policy = { ...this.#policy, ...def.errorPolicy };
    for (const uri of [policy.deadLetter, ...(policy.on ?? []).map((r) => r.deadLetter)]) {
      if (!uri) continue;
      try {
        this.#producerEntry(uri, def.id, dryRun);
      } catch (e) {
        if (!collect) throw e;
        collect(e, '/errorPolicy');
      }
    }
    const exprs = new Map<string, CompiledExpression>();
    // collecting: a bad endpoint is reported where it is used and the step compiles on without it
    const checked = (uri: string, at: string): boolean => {
      if (!collect) return true;
      try {
        this.#producerEntry(uri, def.id, dryRun);
        return true;
      } catch (e) {
        collect(e, at);
        return false;
      }
    };
    // the route's structure, recorded while compiling (nested lists hang under the step compiling them)
    let rootSteps: StepDescription[] = [];
    const compiling: StepDescription[] = [];
    const uris = new Set<string>(policy.deadLetter ? [policy.deadLetter] : []);
    for (const r of policy.on ?? []) if (r.deadLetter) uris.add(r.deadLetter);
    // shared by the route's guards: the promise the last of them returned
    // (the route itself, whose fields every message reads anyway: no object of its own to read)
    const slot: GuardSlot = route;
    const compile = (steps: readonly StepDefinition[], next: Next, base: string): Next => {
      let n = next;
      // consecutive map steps (compiled last to first) run as one stretch (see fuse)
      let stretch: MapStage[] = [];
      const flush = (): void => {
        if (stretch.length === 0) return;
        n = fuse(stretch.reverse(), n, def.id, slot);
        stretch = [];
      };
      const parent = compiling[compiling.length - 1];
      const described: StepDescription[] = new Array<StepDescription>(steps.length);
      if (parent && base.startsWith(`${parent.path}/`)) parent.children[base.slice(parent.path.length + 1)] = described;
      else if (!parent) rootSteps = described;
      for (let i = steps.length - 1; i >= 0; i--) {
        const step = steps[i]!;
        const path = `${base}/${i}`;
        const node: StepDescription = { path, kind: step.kind, endpoints: [], children: {} };
        described[i] = node;
        // a config step that already has its problems reported (only check() builds with one)
        if (step.kind === INVALID_STEP) continue;
        const kind = this.steps.get(step.kind);
        if (!kind) {
          throw new BusbarError('INVALID_ROUTE', `route "${def.id}", step ${path}: unknown step kind "${step.kind}"`, { details: { routeId: def.id, step: path } });
        }
        const ctx: CompileContext = {
          routeId: def.id,
          path,
          logger,
          clock: this.clock,
          codecs: this.codecs,
          producer: (uri) => {
            if (!checked(uri, path)) return async () => undefined;
            this.#producerEntry(uri, def.id, dryRun);
            // endpoints computed at message time are not part of the structure
            if (building) {
              if (!node.endpoints.includes(uri)) node.endpoints.push(uri);
              uris.add(uri);
            }
            return dryRun ? async () => undefined : this.#sender(uri);
          },
          sender: (uri) => {
            if (!checked(uri, path)) return () => undefined;
            this.#producerEntry(uri, def.id, dryRun);
            if (building) {
              if (!node.endpoints.includes(uri)) node.endpoints.push(uri);
              uris.add(uri);
            }
            return dryRun ? () => undefined : this.#syncSender(uri);
          },
          requester: (uri, defaults) => {
            if (!checked(uri, path)) return async (m) => m;
            const entry = this.#producerEntry(uri, def.id, dryRun);
            if (!canReply(entry.producer)) {
              const err = this.#cannotReply(uri, def.id, `${path} (${step.kind})`);
              if (!collect) throw err;
              collect(err, path);
              return async (m) => m;
            }
            if (building) {
              if (!node.endpoints.includes(uri)) node.endpoints.push(uri);
              uris.add(uri);
            }
            if (dryRun) return async (m) => m;
            const call = this.#requester(uri);
            return defaults?.timeoutMs === undefined ? call : (m, o) => call(m, o ?? defaults);
          },
          compile,
          expression: (src) => {
            let e = exprs.get(src);
            if (!e) exprs.set(src, (e = compileExpression(src)));
            return e;
          },
          spawn: (msg, nxt) => route.spawn(msg, nxt),
          onStop: (fn) => route.stopHooks.push(fn),
          onStart: (fn) => route.startHooks.push(fn),
          state: (key, init) => this.stepState(key, init),
          maxInflight: route.maxInflight,
          counters: () => {
            let c = route.stepCounters.get(path);
            if (!c) route.stepCounters.set(path, (c = {}));
            return c;
          },
          tracing: this.#tracer,
          continueWith: continuation(def.id, `${path} (${step.kind})`, slot),
          listen: (uri, handle) => {
            if (building) {
              if (!node.endpoints.includes(uri)) node.endpoints.push(uri);
              uris.add(uri);
            }
            this.#listen(route, uri, handle, dryRun);
          },
        };
        let compiled: Next | undefined;
        let mapped: MapFn | undefined;
        compiling.push(node);
        try {
          if (kind.map !== undefined && !def.history) mapped = kind.map(step.args as never, ctx);
          else {
            flush();
            compiled = kind.compile(step.args as never, n, ctx);
          }
        } catch (e) {
          if (collect) {
            collect(e, path);
            continue;
          }
          if (isBusbarError(e)) {
            e.details.routeId ??= def.id;
            e.details.step ??= `${path} (${step.kind})`;
            if (!e.message.includes(def.id)) e.message = `route "${def.id}", step ${path} (${step.kind}): ${e.message}`;
            throw e;
          }
          throw new BusbarError('INVALID_ROUTE', `route "${def.id}", step ${path} (${step.kind}): ${(e as Error).message}`, { cause: e, details: { routeId: def.id, step: path } });
        } finally {
          compiling.pop();
        }
        // one wrapper per step (or per stretch of map steps): its errors labelled, the observer told (a promise passed on from the rest of the route needs no label of this step)
        let probe: StepProbe | undefined;
        if (!dryRun) route.probes.push((probe = { route, path, kind: step.kind, hits: 0 }));
        if (mapped !== undefined) {
          stretch.push({ fn: mapped, label: `${path} (${step.kind})`, probe });
          continue;
        }
        if (def.history) compiled = withHistory(compiled!, `${path} ${step.kind}`, this.clock);
        n = guard(compiled!, def.id, `${path} (${step.kind})`, slot, probe);
      }
      flush();
      return n;
    };
    let building = true;
    route.pipeline = withRouteContract(def, (end) => compile(def.steps, end, '/steps'));
    building = false;
    if (!dryRun) {
      this.#descriptions.set(def.id, rootSteps);
      this.#routeUris.set(def.id, uris);
      route.observer = this.#observer;
      route.stepObserver = this.#stepObserver;
      const tracer = this.#tracer;
      if (tracer !== undefined) {
        const from = this.#bound(def.from, 'consumer');
        const scheme = from.slice(0, from.indexOf(':'));
        const type = this.adapters.get(scheme)?.type ?? scheme;
        route.trace = (msg, run) => tracer.exchange(def.id, from, type, msg, run);
      }
    }
    // consumers do no I/O when created, so a dry run builds one too: its checks count
    if (!source) return route;
    let consumer: Consumer;
    try {
      consumer = source.adapter.createConsumer!(source.endpoint, this.#consumerContext(route));
    } catch (e) {
      if (!collect) throw e;
      collect(e, '/from');
      return route;
    }
    if (!dryRun) route.consumer = consumer;
    return route;
  }

  // ---------------------------------------------------------------- contexts & producers
  #adapterContext(logger: Logger, scheme: string): AdapterContext {
    return {
      logger,
      clock: this.clock,
      state: <T>(key: string, init: () => T): T => {
        const k = `${scheme}\u0000${key}`;
        if (!this.#adapterState.has(k)) this.#adapterState.set(k, init());
        return this.#adapterState.get(k) as T;
      },
      send: (uri, msg) => this.#sender(uri)(msg),
      tracing: this.#tracer !== undefined,
    };
  }

  /** The URI a channel is carried on when channel bindings apply to it, else the URI itself. */
  #bound(uri: string, role: 'consumer' | 'producer'): string {
    if (this.#bindings.length === 0) return uri;
    // the first binding that includes the channel carries it (federation: some channels on another hub's broker)
    this.#binders ??= this.#bindings.map((b) => new ChannelBinder(b, this.adapters.get(b.transport)?.type ?? b.transport));
    for (const b of this.#binders) {
      const bound = b.bind(uri, role);
      if (bound !== undefined) return bound;
    }
    return uri;
  }

  /**
   * A consumer of `uri` feeding `handle` instead of a route (CompileContext.listen): it
   * starts with `route` (before its source) and stops after the route drained. Its messages
   * count against nothing: `handle` only hands them over.
   */
  #listen(route: Route, uri: string, handle: (msg: Message) => Promise<unknown>, dryRun: boolean): void {
    const bound = this.#bound(uri, 'consumer');
    const { adapter, endpoint } = this.adapters.resolve(bound, 'consumer', { routeId: route.id });
    const scheme = bound.slice(0, bound.indexOf(':'));
    const logger = route.logger.child({ listening: uri });
    // handed over, never waited for: every entry point is the same hand-over, every slot free
    const processor = { processNow: (msg: Message): Promise<Message> => handle(msg).then(() => msg), available: (): number => route.maxInflight };
    const consumer = adapter.createConsumer!(endpoint, {
      ...this.#adapterContext(logger, scheme),
      routeId: route.id,
      maxInflight: route.maxInflight,
      process: processor.processNow,
      processNow: processor.processNow,
      processor,
      available: processor.available,
      whenAvailable: () => Promise.resolve(),
      setStatus: (status, error) => {
        if (status === 'disconnected' || status === 'backing-off') logger.warn({ status, err: error }, 'reply listener source is down');
      },
      reject: (msg, err) => route.reject(msg, err),
    });
    if (dryRun) return;
    let running = false;
    route.startHooks.push(async () => {
      await consumer.start();
      running = true;
    });
    route.stopHooks.push(async () => {
      if (!running) return;
      running = false;
      await consumer.stop();
    });
  }

  #consumerContext(route: Route): ConsumerContext {
    const from = this.#bound(route.definition.from, 'consumer');
    const scheme = from.slice(0, from.indexOf(':'));
    return {
      ...this.#adapterContext(route.logger, scheme),
      routeId: route.id,
      maxInflight: route.maxInflight,
      process: (msg) => route.process(msg),
      // bound: the function holds the route itself (no closure context to read per message)
      processNow: route.processNow.bind(route),
      processor: route,
      available: () => route.available(),
      whenAvailable: () => route.whenAvailable(),
      setStatus: (status, error) => route.setStatus(status, error),
      reject: (msg, err) => route.reject(msg, err),
    };
  }

  #producerEntry(uri: string, routeId?: string, dryRun = false): ProducerEntry {
    let entry = this.#producers.get(uri);
    if (entry) return entry;
    const where = routeId === undefined ? {} : { routeId };
    const { adapter, endpoint } = this.adapters.resolve(this.#bound(uri, 'producer'), 'producer', where);
    const producer = adapter.createProducer!(endpoint, this.#adapterContext(this.logger.child({ endpoint: uri }), endpoint.scheme));
    // what a send reads first (fields lie in this order): with many routes, one cache line of the entry rather than two
    entry = { producer, started: !producer.start, evicted: false, sent: 0, sender: undefined, starting: undefined, requester: undefined, dynamic: false };
    if (dryRun) return entry;
    if (this.#state === 'started' && !this.#deploying) {
      entry.dynamic = true;
      this.#dynamic.push(uri);
      if (this.#dynamic.length > MAX_DYNAMIC_PRODUCERS) this.#evict(this.#dynamic.shift()!);
    }
    this.#producers.set(uri, entry);
    return entry;
  }

  /** Drop the oldest computed-URI producer; a sender still holding it re-resolves on next use. */
  #evict(uri: string): void {
    const old = this.#producers.get(uri);
    if (!old) return;
    this.#producers.delete(uri);
    old.evicted = true;
    void Promise.resolve(old.starting)
      .then(() => old.producer.stop?.())
      .catch((err: unknown) => this.logger.warn({ err, uri }, 'stopping an evicted producer failed'));
  }

  async #startProducer(entry: ProducerEntry): Promise<void> {
    if (entry.started) return;
    entry.starting ??= (async () => {
      await entry.producer.start?.();
      entry.started = true;
    })().finally(() => {
      entry.starting = undefined;
    });
    return entry.starting;
  }

  /** The send function of an endpoint, as a promise (what adapters and the public API get). */
  #sender(uri: string): (msg: Message) => Promise<Message | undefined> {
    const send = this.#syncSender(uri);
    return (msg) => {
      try {
        const r = send(msg);
        return isPromise(r) ? r : Promise.resolve(r);
      } catch (e) {
        return Promise.reject(e);
      }
    };
  }

  /**
   * The send function of an endpoint; starts its producer on first use if the engine runs.
   * A producer that completes synchronously returns its result directly (routes go on
   * without a promise hop); it may also throw.
   */
  #syncSender(uri: string): (msg: Message) => MaybePromise<Message | undefined> {
    const entry = this.#producerEntry(uri);
    if (entry.sender !== undefined) return entry.sender;
    const send = (msg: Message): MaybePromise<Message | undefined> => {
      if (entry.evicted) return this.#syncSender(uri)(msg);
      entry.sent++;
      if (entry.started) return entry.producer.send(msg);
      if (this.#state !== 'started' && this.#state !== 'starting' && this.#state !== 'stopping') {
        return Promise.reject(new BusbarError('ENGINE_STATE', `cannot send to "${uri}": engine is ${this.#state}`, { details: { state: this.#state, uri } }));
      }
      return this.#sendOnceStarted(entry, msg);
    };
    const t = this.#traced(uri);
    return (entry.sender = t === undefined ? send : this.#tracer!.sender(t.uri, t.type, send));
  }

  // the first message to a producer not started yet, continued in functions of their own: a
  // closure made in a sender would cost every message sent a context, started or not
  #sendOnceStarted(entry: ProducerEntry, msg: Message): Promise<Message | undefined> {
    return this.#startProducer(entry).then(() => entry.producer.send(msg));
  }

  #requestOnceStarted(entry: ProducerEntry, p: { request(msg: Message, opts: RequestOptions): Promise<Message> }, msg: Message, opts: RequestOptions): Promise<Message> {
    return this.#startProducer(entry).then(() => p.request(msg, opts));
  }

  /** The endpoint a producer's spans describe (the bound URI and its adapter type), when the engine traces. */
  #traced(uri: string): { uri: string; type: string } | undefined {
    if (this.#tracer === undefined) return undefined;
    const bound = this.#bound(uri, 'producer');
    const scheme = bound.slice(0, bound.indexOf(':'));
    return { uri: bound, type: this.adapters.get(scheme)?.type ?? scheme };
  }

  /** The request-reply call of an endpoint (REPLY_UNSUPPORTED at message time if it cannot answer). */
  #requester(uri: string): (msg: Message, opts?: RequestOptions) => Promise<Message> {
    const entry = this.#producerEntry(uri);
    if (entry.requester !== undefined) return entry.requester;
    const request = (msg: Message, opts: RequestOptions = {}): Promise<Message> => {
      if (entry.evicted) return this.#requester(uri)(msg, opts);
      const p = entry.producer;
      if (!canReply(p)) return Promise.reject(this.#cannotReply(uri));
      entry.sent++;
      if (entry.started) return p.request(msg, opts);
      if (this.#state !== 'started' && this.#state !== 'starting' && this.#state !== 'stopping') {
        return Promise.reject(new BusbarError('ENGINE_STATE', `cannot request from "${uri}": engine is ${this.#state}`, { details: { state: this.#state, uri } }));
      }
      return this.#requestOnceStarted(entry, p, msg, opts);
    };
    const t = this.#traced(uri);
    return (entry.requester = t === undefined ? request : this.#tracer!.requester(t.uri, t.type, request));
  }

  #cannotReply(uri: string, routeId?: string, step?: string): BusbarError {
    const where = routeId === undefined ? '' : `route "${routeId}", step ${step}: `;
    const scheme = uri.slice(0, uri.indexOf(':'));
    return new BusbarError('REPLY_UNSUPPORTED', `${where}endpoint "${uri}" cannot reply (the ${scheme} adapter is one-way); this step needs an answer: use an endpoint that replies (direct:, amqp:, http:...) or send one-way with to()`, {
      details: { uri, routeId, step },
    });
  }

  // ---------------------------------------------------------------- messaging API
  /** Send a body to an endpoint. Resolves when the endpoint has it (for `direct:`, when the route finished). */
  send(uri: string, body: unknown, headers?: Headers): Promise<void> {
    const r = this.#dispatch(uri, createMessage(body, headers ? { headers } : undefined));
    // done at once: one shared settled promise, none made per message; a promise passes as it is (its reply unread: send is typed void)
    return isPromise(r) ? (r as Promise<unknown> as Promise<void>) : DONE;
  }

  sendMessage(uri: string, msg: Message): Promise<Message | undefined> {
    const r = this.#dispatch(uri, msg);
    return isPromise(r) ? r : Promise.resolve(r);
  }

  /** Hand `msg` to the endpoint: its result itself when the producer finished at once, a promise otherwise (failures as rejections). */
  #dispatch(uri: string, msg: Message): MaybePromise<Message | undefined> {
    if (this.#state !== 'started') return Promise.reject(this.#notRunning(`send to "${uri}"`));
    const entry = this.#producers.get(uri);
    // the common case (a started producer): no wrapper closure per call
    if (entry !== undefined && entry.started && !entry.evicted && (this.#tracer === undefined || entry.sender !== undefined)) {
      try {
        // untraced, the producer's own send: what its sender would call (one function less per message)
        if (this.#tracer === undefined) {
          entry.sent++;
          return entry.producer.send(msg);
        }
        return entry.sender!(msg);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.#sender(uri)(msg);
  }

  /**
   * Request-reply: send and resolve with the reply's body. The endpoint must be able to
   * answer (REPLY_UNSUPPORTED otherwise); `timeoutMs` bounds the wait where the transport
   * waits for a reply (amqp; its `replyTimeoutMs` by default).
   */
  async request<R = unknown>(uri: string, body: unknown, headers?: Headers, opts: RequestOptions = {}): Promise<R> {
    const reply = await this.requestMessage(uri, createMessage(body, headers ? { headers } : {}), opts);
    return reply.body as R;
  }

  async requestMessage(uri: string, msg: Message, opts: RequestOptions = {}): Promise<Message> {
    if (this.#state !== 'started') throw this.#notRunning(`request to "${uri}"`);
    return this.#requester(uri)(msg, opts);
  }

  #notRunning(what: string): BusbarError {
    return new BusbarError('ENGINE_STATE', `cannot ${what}: engine is ${this.#state} (call start() first)`, { details: { state: this.#state } });
  }

  // ---------------------------------------------------------------- lifecycle
  async start(): Promise<void> {
    if (this.#state === 'started') return;
    if (this.#state === 'starting') return this.#transition as Promise<void>;
    if (this.#state === 'stopping') await this.#transition;
    this.#state = 'starting';
    const run = async (): Promise<void> => {
      const started: Route[] = [];
      try {
        // producers first, consumers last: a message taken in must have somewhere to go
        for (const entry of this.#producers.values()) await this.#startProducer(entry);
        for (const route of this.#routes.values()) {
          await this.#startOne(route);
          started.push(route);
        }
      } catch (e) {
        this.logger.error({ err: e }, 'start failed; stopping what already started');
        for (const r of started.reverse()) {
          await r.consumer!.stop().catch(() => undefined);
          await this.#runStopHooks(r);
          r.state = 'stopped';
        }
        await this.#stopProducers();
        this.#state = 'failed';
        throw e;
      }
      this.#state = 'started';
      this.#events?.next({ type: 'engine.started', engine: this.name });
      this.logger.info({ routes: this.#routes.size }, 'engine started');
    };
    this.#transition = run().finally(() => {
      this.#transition = undefined;
    });
    return this.#transition as Promise<void>;
  }

  /**
   * Graceful stop: consumers stop taking messages (first), in-flight messages finish
   * (up to `timeoutMs`, progress logged per route), stop hooks run (forced aggregator
   * completions), then producers stop.
   */
  async stop(opts: { timeoutMs?: number } = {}): Promise<StopReport> {
    if (this.#state === 'stopping') return this.#transition as Promise<StopReport>;
    if (this.#state === 'starting') await (this.#transition as Promise<void>).catch(() => undefined);
    if (this.#state !== 'started') {
      return { timedOut: false, inflight: {} };
    }
    this.#state = 'stopping';
    this.#events?.next({ type: 'engine.stopping', engine: this.name });
    const timeoutMs = opts.timeoutMs ?? this.#stopTimeoutMs;
    const run = async (): Promise<StopReport> => {
      // a route an operator stopped already drained and ran its stop hooks
      const routes = [...this.#routes.values()].filter((r) => r.state !== 'stopped');
      await Promise.all(
        routes.map(async (r) => {
          const suspended = r.state === 'suspended';
          r.state = 'stopping';
          if (!suspended) await r.consumer!.stop().catch((err: unknown) => r.logger.error({ err }, 'consumer stop failed'));
        }),
      );
      const deadline = Date.now() + timeoutMs;
      let timedOut = false;
      const busy = (): Route[] => routes.filter((r) => r.inflight > 0);
      while (busy().length) {
        const left = deadline - Date.now();
        if (left <= 0) {
          timedOut = true;
          break;
        }
        this.logger.info({ inflight: Object.fromEntries(busy().map((r) => [r.id, r.inflight])) }, 'stopping: waiting for in-flight messages');
        await Promise.race([Promise.all(busy().map((r) => r.whenDrained())), new Promise((res) => setTimeout(res, Math.min(1000, left)).unref())]);
      }
      const inflight = Object.fromEntries(busy().map((r) => [r.id, r.inflight]));
      if (timedOut) this.logger.error({ inflight, timeoutMs }, 'stop timed out with messages still in flight (their sources were not acknowledged)');
      for (const r of routes) {
        for (const h of r.stopHooks) await Promise.resolve(h()).catch((err: unknown) => r.logger.error({ err }, 'stop hook failed'));
      }
      if (!timedOut) await Promise.all(routes.map((r) => Promise.race([r.whenDrained(), new Promise((res) => setTimeout(res, Math.max(0, deadline - Date.now())).unref())])));
      for (const r of routes) {
        r.state = 'stopped';
        this.#events?.next({ type: 'route.stopped', routeId: r.id });
      }
      await this.#stopProducers();
      this.#state = 'stopped';
      this.#events?.next({ type: 'engine.stopped', engine: this.name });
      this.logger.info({ timedOut, stats: this.#counts() }, 'engine stopped');
      return { timedOut, inflight };
    };
    this.#transition = run().finally(() => {
      this.#transition = undefined;
    });
    return this.#transition as Promise<StopReport>;
  }

  async #stopProducers(): Promise<void> {
    for (const [uri, entry] of [...this.#producers.entries()].reverse()) {
      if (!entry.started && !entry.starting) continue;
      await entry.starting?.catch(() => undefined);
      try {
        await entry.producer.stop?.();
      } catch (err) {
        this.logger.error({ err, uri }, 'producer stop failed');
      }
      entry.started = !entry.producer.start;
    }
  }

  #counts(): Record<string, { received: number; completed: number; failed: number; deadLettered: number; redelivered: number }> {
    return Object.fromEntries([...this.#routes.values()].map((r) => {
      const s = r.stats();
      return [r.id, { received: s.received, completed: s.completed, failed: s.failed, deadLettered: s.deadLettered, redelivered: s.redelivered }];
    }));
  }

  stats(): EngineStats {
    const routes = Object.fromEntries([...this.#routes.values()].map((r) => [r.id, r.stats()]));
    for (const [id, b] of this.#backlogs) {
      const s = routes[id];
      if (s) Object.assign(s.source, { backlog: b.n, backlogAt: b.at });
    }
    const adapters: Record<string, AdapterStats> = {};
    const of = (uri: string): AdapterStats => {
      const scheme = uri.slice(0, uri.indexOf(':'));
      return (adapters[scheme] ??= { type: this.adapters.get(scheme)?.type ?? scheme, consumers: 0, received: 0, completed: 0, failed: 0, producers: 0, sent: 0 });
    };
    for (const s of Object.values(routes)) {
      const a = of(s.source.uri);
      a.consumers++;
      a.received += s.received;
      a.completed += s.completed;
      a.failed += s.failed;
    }
    for (const [uri, e] of this.#producers) {
      const a = of(uri);
      a.producers++;
      a.sent += e.sent;
    }
    for (const name of this.adapters.schemes()) {
      const own = this.adapters.get(name)?.stats?.(<T>(key: string) => this.#adapterState.get(`${name}\u0000${key}`) as T | undefined);
      if (own) Object.assign(of(`${name}:`), own);
    }
    return { state: this.#state, producers: this.#producers.size, routes, adapters };
  }

  // ---------------------------------------------------------------- operating routes one by one
  #route(id: string): Route {
    const r = this.#routes.get(id);
    if (!r) throw new BusbarError('NOT_FOUND', `no route "${id}" (routes: ${this.routeIds().join(', ') || 'none'})`, { details: { routeId: id } });
    return r;
  }

  /** The route's structure: its source, steps (kind, endpoints, nested lists) and dead-letter endpoints. */
  describeRoute(id: string): RouteDescription {
    const r = this.#route(id);
    const policy = { ...this.#policy, ...r.definition.errorPolicy };
    const deadLetters = [...new Set([policy.deadLetter, ...(policy.on ?? []).map((o) => o.deadLetter)].filter((u): u is string => typeof u === 'string'))];
    const d: RouteDescription = { id, from: r.definition.from, state: r.state, maxInflight: r.maxInflight, deadLetters, steps: this.#descriptions.get(id) ?? [] };
    if (r.definition.description !== undefined) d.description = r.definition.description;
    return d;
  }

  routeStats(id: string): RouteStats {
    return this.#route(id).stats();
  }

  resetRouteStats(id: string): void {
    this.#route(id).resetStats();
  }

  #requireRunning(what: string): void {
    if (this.#state !== 'started') throw this.#notRunning(what);
  }

  #routeStateError(r: Route, what: string, want: string): BusbarError {
    return new BusbarError('ROUTE_STATE', `cannot ${what} route "${r.id}": it is ${r.state} (needs ${want})`, { details: { routeId: r.id, state: r.state } });
  }

  /**
   * Stop one route: its source stops taking messages, messages in flight finish (up to
   * `timeoutMs`; unfinished ones stay unacknowledged at their source), its stop hooks run
   * (forced aggregate completions). The route stays deployed and can be started again.
   */
  async stopRoute(id: string, opts: { timeoutMs?: number } = {}): Promise<StopReport> {
    const r = this.#route(id);
    if (r.state === 'stopped') return { timedOut: false, inflight: {} };
    if (r.state !== 'started' && r.state !== 'suspended') throw this.#routeStateError(r, 'stop', 'started or suspended');
    const wasSuspended = r.state === 'suspended';
    r.state = 'stopping';
    if (!wasSuspended) await r.consumer!.stop().catch((err: unknown) => r.logger.error({ err }, 'consumer stop failed'));
    const timeoutMs = opts.timeoutMs ?? this.#stopTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    // the timer is cleared once drained: a reload stops routes often, and each timer would hold its route until it fired
    const drained = await Promise.race([r.whenDrained().then(() => true), new Promise<false>((res) => (timer = setTimeout(() => res(false), timeoutMs)).unref())]);
    clearTimeout(timer);
    for (const h of r.stopHooks) await Promise.resolve(h()).catch((err: unknown) => r.logger.error({ err }, 'stop hook failed'));
    r.state = 'stopped';
    this.#events?.next({ type: 'route.stopped', routeId: r.id });
    return { timedOut: !drained, inflight: drained ? {} : { [r.id]: r.inflight } };
  }

  /** Start a route that was stopped (the engine must be running). */
  async startRoute(id: string): Promise<void> {
    const r = this.#route(id);
    this.#requireRunning(`start route "${id}"`);
    if (r.state === 'started') return;
    if (r.state !== 'stopped') throw this.#routeStateError(r, 'start', 'stopped');
    await this.#startOne(r);
  }

  async #runStopHooks(r: Route): Promise<void> {
    for (const h of r.stopHooks) await Promise.resolve(h()).catch((err: unknown) => r.logger.error({ err }, 'stop hook failed'));
  }

  async #startOne(route: Route): Promise<void> {
    route.state = 'starting';
    try {
      for (const h of route.startHooks) await h();
      await route.consumer!.start();
    } catch (e) {
      // what the start hooks opened (a step's own listener, timers) closes again
      await this.#runStopHooks(route);
      route.state = 'stopped';
      const err = new BusbarError('ROUTE_START_FAILED', `route "${route.id}" failed to start: ${(e as Error).message}`, { cause: e, details: { routeId: route.id, uri: route.definition.from } });
      this.#events?.next({ type: 'route.failed', routeId: route.id, error: err.message, code: err.code });
      throw err;
    }
    route.state = 'started';
    route.setStatus(route.stats().source.status === 'idle' ? 'connected' : route.stats().source.status);
    this.#events?.next({ type: 'route.started', routeId: route.id });
    route.logger.debug({ from: route.definition.from }, 'route started');
  }

  /**
   * Suspend a route: its source stops taking new messages, messages in flight finish, and
   * everything else stays (aggregation groups, timers, stats); `resumeRoute` takes up again.
   */
  async suspendRoute(id: string): Promise<void> {
    const r = this.#route(id);
    if (r.state === 'suspended') return;
    if (r.state !== 'started') throw this.#routeStateError(r, 'suspend', 'started');
    r.state = 'suspended';
    await r.consumer!.stop().catch((err: unknown) => r.logger.error({ err }, 'consumer stop failed'));
    this.#events?.next({ type: 'route.suspended', routeId: r.id });
  }

  async resumeRoute(id: string): Promise<void> {
    const r = this.#route(id);
    this.#requireRunning(`resume route "${id}"`);
    if (r.state === 'started') return;
    if (r.state !== 'suspended') throw this.#routeStateError(r, 'resume', 'suspended');
    try {
      await r.consumer!.start();
    } catch (e) {
      throw new BusbarError('ROUTE_START_FAILED', `route "${r.id}" failed to resume: ${(e as Error).message}`, { cause: e, details: { routeId: r.id, uri: r.definition.from } });
    }
    r.state = 'started';
    if (r.stats().source.status === 'idle') r.setStatus('connected');
    this.#events?.next({ type: 'route.resumed', routeId: r.id });
  }

  /**
   * Connection status of each route's source and outputs. A route is ready when it is not
   * started (stopped by an operator) or when its source and every output are up.
   */
  health(): { ready: boolean; routes: Array<{ id: string; state: RouteState; ready: boolean; endpoints: EndpointHealth[] }> } {
    const routes = [...this.#routes.values()].map((r) => {
      const s = r.stats().source;
      const endpoints: EndpointHealth[] = [{ uri: s.uri, role: 'source', status: s.status, ...(s.since ? { since: s.since } : {}), ...(s.error !== undefined && !UP.has(s.status) ? { error: s.error } : {}) }];
      for (const uri of this.#routeUris.get(r.id) ?? []) {
        const st = this.#producers.get(uri)?.producer.status?.();
        if (!st) continue;
        const e: EndpointHealth = { uri, role: 'output', status: st.status };
        if (st.since !== undefined) e.since = new Date(st.since).toISOString();
        if (st.error !== undefined && !UP.has(st.status)) e.error = st.error;
        endpoints.push(e);
      }
      const ready = r.state !== 'started' || endpoints.every((e) => UP.has(e.status as SourceStatus));
      return { id: r.id, state: r.state, ready, endpoints };
    });
    return { ready: this.#state === 'started' && routes.every((r) => r.ready), routes };
  }

  /** Exchanges that reached each step of a route while it was observed, by step path ({} for an unknown route). */
  stepHits(routeId: string): Record<string, number> {
    return this.#routes.get(routeId)?.stepHits() ?? {};
  }

  /**
   * Watch every route's exchanges (the management API, metrics, tracing). Returns the
   * function that stops watching; with no observer left routes are back to no cost.
   */
  observe(observer: ExchangeObserver): () => void {
    this.#observers.push(observer);
    this.#applyObservers();
    return () => {
      const i = this.#observers.indexOf(observer);
      if (i >= 0) this.#observers.splice(i, 1);
      this.#applyObservers();
    };
  }

  #applyObservers(): void {
    const list = [...this.#observers];
    this.#observer =
      list.length === 0
        ? undefined
        : list.length === 1
          ? list[0]
          : list.length === 2
            ? pair(list[0]!, list[1]!)
            : {
              begin: (route, msg, at) => list.map((o) => o.begin(route, msg, at)),
              step: stepsOf(list),
              pending: (route, token) => list.forEach((o, i) => o.pending?.(route, (token as unknown[])[i])),
              end: (route, token, outcome, err, began, ended) => list.forEach((o, i) => o.end(route, (token as unknown[])[i], outcome, err, began, ended)),
              deadLettered: async (route, uri, msg, reply) => {
                for (const o of list) await o.deadLettered?.(route, uri, msg, reply);
              },
            };
    this.#stepObserver = this.#observer !== undefined && list.some((o) => o.ignoresSteps !== true) ? this.#observer : undefined;
    for (const r of this.#routes.values()) {
      r.observer = this.#observer;
      r.stepObserver = this.#stepObserver;
    }
  }

  /**
   * Start the management HTTP API (health, routes, metrics, operations; see docs/management.md).
   * Binds 127.0.0.1 unless told otherwise; any other address needs a `token`.
   */
  async management(opts: ManagementOptions = {}): Promise<ManagementServer> {
    const { startManagement } = await import('./management/index.js');
    return startManagement(this, opts);
  }

  /**
   * Run a message through a route as if its source had delivered it (dead-letter replay):
   * counted in the route's stats, under its error policy. Resolves with the reply; rejects
   * like `ConsumerContext.process` (`shouldAck(err)` tells whether it was dead-lettered again).
   */
  inject(routeId: string, msg: Message): Promise<Message> {
    const r = this.#route(routeId);
    if (this.#state !== 'started') return Promise.reject(this.#notRunning(`inject into route "${routeId}"`));
    return r.process(msg);
  }

  /**
   * Counters per endpoint for metrics and the console: messages sent to each output known when
   * routes were built (URIs computed at message time are left out: they would be unbounded),
   * and per route its source's received count, connection failures and lag where known.
   */
  async endpointStats(): Promise<{ outputs: Array<{ uri: string; sent: number }>; sources: Array<{ routeId: string; uri: string; received: number; connectionFailures: number; backlog?: number }> }> {
    const outputs = [...this.#producers.entries()].filter(([, e]) => !e.dynamic).map(([uri, e]) => ({ uri, sent: e.sent }));
    const sources = await Promise.all(
      [...this.#routes.values()].map(async (r) => {
        const s: { routeId: string; uri: string; received: number; connectionFailures: number; backlog?: number } = { routeId: r.id, uri: r.definition.from, received: r.stats().received, connectionFailures: r.connectionFailures };
        if (r.state === 'started' && r.consumer?.backlog) {
          const b = await r.consumer.backlog().catch(() => undefined);
          if (b !== undefined) {
            s.backlog = b;
            this.#backlogs.set(r.id, { n: b, at: new Date().toISOString() });
          }
        }
        return s;
      }),
    );
    return { outputs, sources };
  }

  /** The producer object of an endpoint this engine sends to (undefined when none was created). */
  producerOf(uri: string): Producer | undefined {
    return this.#producers.get(uri)?.producer;
  }

  /**
   * busbar's Prometheus metrics (prom-client, loaded now) on your registry or a new one, for an
   * application that serves its own `/metrics`; the management API serves them too.
   */
  async metrics(opts: import('./management/metrics.js').MetricsOptions = {}): Promise<import('./management/metrics.js').BusbarMetrics> {
    const { createMetrics } = await import('./management/metrics.js');
    return createMetrics(this, opts);
  }

  /** Plug-ins (the console, function deploy) that mount their handlers on every management server this engine starts. */
  onManagement(fn: (m: ManagementServer) => void | Promise<void>): this {
    this.#mounters.push(fn);
    return this;
  }

  /** The mount-ers registered with `onManagement` (read by `startManagement`). */
  get managementPlugins(): ReadonlyArray<(m: ManagementServer) => void | Promise<void>> {
    return this.#mounters;
  }

  /** The recording endpoint behind `mock:name` (for tests): `engine.mock('mock:out').expectCount(3)`. */
  mock(uri: string): MockEndpoint {
    const name = uri.startsWith('mock:') ? uri.slice(5).split('?')[0]! : uri;
    return mockEndpoint(this.#adapterContext(this.logger, 'mock').state, name);
  }

  /** Per-engine state of step kinds (named stores, breakers): what `CompileContext.state` reads. */
  stepState<T>(key: string, init: () => T): T {
    return this.#adapterContext(this.logger, '#steps').state(key, init);
  }

  /** Per-engine state of an adapter (for the testing kit and adapters' helpers). */
  adapterState<T>(scheme: string, key: string, init: () => T): T {
    return this.#adapterContext(this.logger, scheme).state(key, init);
  }
}

/**
 * Two observers (the management API's tracker and its metrics) without a list per exchange;
 * when one of them keeps no token (metrics only need the times), the other's token is passed
 * through as it is: no array per exchange either.
 */
function pair(a: ExchangeObserver, b: ExchangeObserver): ExchangeObserver {
  if (b.stateless === true && a.stateless !== true) return pairStateless(a, b);
  if (a.stateless === true && b.stateless !== true) return pairStateless(b, a);
  const pending = a.pending !== undefined || b.pending !== undefined;
  return {
    begin: (route, msg, at) => [a.begin(route, msg, at), b.begin(route, msg, at)],
    step: stepsOf([a, b]),
    ...(pending
      ? {
          pending(route: Route, token: unknown) {
            const t = token as [unknown, unknown];
            a.pending?.(route, t[0]);
            b.pending?.(route, t[1]);
          },
        }
      : {}),
    end(route, token, outcome, err, began, ended) {
      const t = token as [unknown, unknown];
      a.end(route, t[0], outcome, err, began, ended);
      b.end(route, t[1], outcome, err, began, ended);
    },
    async deadLettered(route, uri, msg, reply) {
      await a.deadLettered?.(route, uri, msg, reply);
      await b.deadLettered?.(route, uri, msg, reply);
    },
  };
}

function withHistory(fn: Next, label: string, clock: Clock): Next {
  return (msg) => {
    const prev = (msg.headers['busbar.history'] as readonly string[] | undefined) ?? [];
    return fn(withHeaders(msg, { 'busbar.history': [...prev, `${label} ${new Date(clock.now()).toISOString()}`] }));
  };
}

/**
 * The step function of combined observers: calls only those that want steps, bound once
 * (an observer of exchanges only, such as metrics, costs no call per step).
 */
function stepsOf(list: readonly ExchangeObserver[]): ExchangeObserver['step'] {
  const want = list.filter((o) => o.ignoresSteps !== true);
  if (want.length === 0) return () => undefined;
  if (want.length === 1) return want[0]!.step.bind(want[0]);
  return (route, msg, path, kind) => {
    for (const o of want) o.step(route, msg, path, kind);
  };
}

/** `a` keeps a token, `b` does not (see `pair`). */
function pairStateless(a: ExchangeObserver, b: ExchangeObserver): ExchangeObserver {
  const o: ExchangeObserver = {
    begin: (route, msg, at) => {
      b.begin(route, msg, at);
      return a.begin(route, msg, at);
    },
    step: stepsOf([a, b]),
    end(route, token, outcome, err, began, ended) {
      a.end(route, token, outcome, err, began, ended);
      b.end(route, undefined, outcome, err, began, ended);
    },
    async deadLettered(route, uri, msg, reply) {
      await a.deadLettered?.(route, uri, msg, reply);
      await b.deadLettered?.(route, uri, msg, reply);
    },
  };
  if (a.pending !== undefined || b.pending !== undefined) {
    o.pending = (route, token) => {
      a.pending?.(route, token);
      b.pending?.(route, undefined);
    };
  }
  return o;
}
