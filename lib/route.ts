import type { Logger } from 'pino';
import { shouldAck, type Consumer, type SourceStatus } from './adapter.js';
import { sleep, type Clock } from './clock.js';
import { BusbarError, isBusbarError, isRetryable, wrapStepError } from './errors.js';
import { withHeaders, type HeaderValue, type Message } from './message.js';
import type { ErrorPolicy, ErrorRule, RedeliveryPolicy, RouteDefinition } from './model.js';
import { isPromise, type GuardSlot, type MaybePromise, type Next, type StepProbe } from './step.js';

export type RouteState = 'stopped' | 'starting' | 'started' | 'stopping' | 'suspended';

/** How an exchange ended, for observers (metrics, tracing, the management API). */
export type ExchangeOutcome = 'completed' | 'failed' | 'dead_lettered';

/**
 * Watches a route's exchanges (the management API, metrics, tracing). Set on a route only
 * while someone observes it: a route without one pays a single property check per exchange
 * and per step.
 */
export interface ExchangeObserver {
  /**
   * An exchange entered the route (at `performance.now()` = `at`, read once by the route for
   * every observer); the returned token comes back to `pending` and `end`.
   */
  begin(route: Route, msg: Message, at?: number): unknown;
  /** The exchange reached step `path` (of kind `kind`). */
  step(route: Route, msg: Message, path: string, kind: string): void;
  /**
   * The exchange did not finish in the turn it entered (it waits for something
   * asynchronous): called once, in that turn. Exchanges that finish at once never get it, so
   * an observer can keep what outlives a turn (an in-flight list) for these only.
   */
  pending?(route: Route, token: unknown): void;
  /** The exchange ended; `began` and `ended` are its `performance.now()` times. */
  end(route: Route, token: unknown, outcome: ExchangeOutcome, err?: unknown, began?: number, ended?: number): void;
  /** `begin` returns no token (it only needs the times `end` gets): a combined observer skips it. */
  readonly stateless?: boolean;
  /** `step` does nothing (metrics count exchanges, not steps): a combined observer does not call it, and a route observed only by such observers calls no observer per step (nor counts step hits). */
  readonly ignoresSteps?: boolean;
  /** A failed message went to dead-letter endpoint `uri`, which answered `reply` (where it put it). */
  deadLettered?(route: Route, uri: string, msg: Message, reply: Message | undefined): void | Promise<void>;
}

export interface RouteStats {
  state: RouteState;
  /** `backlog`: messages waiting at the source as last read (a metrics scrape, `engine.endpointStats()`), at `backlogAt`. */
  source: { uri: string; status: SourceStatus; error?: string; since?: string; details?: Record<string, unknown>; backlog?: number; backlogAt?: string };
  received: number;
  completed: number;
  failed: number;
  deadLettered: number;
  redelivered: number;
  inflight: number;
  maxInflight: number;
  /** Counters of steps that keep some (by step path), e.g. `{ "/steps/1": { "lateArrivals": 2 } }`. */
  steps?: Record<string, Record<string, number>>;
}

export type MessageEvent =
  | { type: 'message.completed'; routeId: string; messageId: string; durationMs: number }
  | { type: 'message.failed'; routeId: string; messageId: string; durationMs: number; code: string; error: string; deadLettered: boolean };

/** Headers a dead-lettered message carries (the original message plus these). */
export const ERROR_HEADERS = {
  code: 'busbar.error.code',
  message: 'busbar.error.message',
  step: 'busbar.error.step',
  routeId: 'busbar.error.routeId',
  attempts: 'busbar.error.attempts',
  failedAt: 'busbar.error.failedAt',
  /** Only when the failure was in another route (called through `direct:`): the route whose error policy dead-lettered the message. */
  handledBy: 'busbar.error.handledBy',
} as const;
export const ATTEMPT_HEADER = 'busbar.attempt';

/** The headers a dead-lettered message carries: why, where and when it failed. */
export function deadLetterHeaders(err: BusbarError, routeId: string, attempts: number, now: number): Record<string, HeaderValue> {
  // the step and the route it belongs to come together: a failure inside a route called through
  // direct: is reported with that route's id, and the route whose policy dead-lettered it as handledBy
  const step = err.details.step as HeaderValue | undefined;
  const failedIn = step !== undefined && typeof err.details.routeId === 'string' ? err.details.routeId : routeId;
  const headers: Record<string, HeaderValue> = {
    [ERROR_HEADERS.code]: err.code,
    [ERROR_HEADERS.message]: err.message,
    [ERROR_HEADERS.step]: step ?? 'route',
    [ERROR_HEADERS.routeId]: failedIn,
    [ERROR_HEADERS.attempts]: attempts,
    [ERROR_HEADERS.failedAt]: new Date(now).toISOString(),
  };
  if (failedIn !== routeId) headers[ERROR_HEADERS.handledBy] = routeId;
  return headers;
}

/** The engine's message events: one object shared by all its routes (a route reads it on every message). */
export interface RouteEvents {
  emit(ev: MessageEvent): void;
  wantsEvents(): boolean;
}

interface RouteHooks {
  events: RouteEvents;
  deadLetter(uri: string, msg: Message): Promise<unknown>;
}

/** A running route: the consumer, the compiled pipeline, the in-flight bound and the error policy. */
export class Route implements GuardSlot {
  // the fields every message reads come first: an object's fields lie in declaration order, so
  // these share a cache line or two (with a thousand routes, each message would touch lines of
  // its own route's object that nothing else keeps warm)
  readonly maxInflight: number;
  pipeline: Next = (m) => m;
  /** Set when the engine traces (lib/tracing): wraps each exchange in its span. */
  trace: ((msg: Message, run: (m: Message) => Promise<Message>) => Promise<Message>) | undefined;
  /** Set while the route is observed (see ExchangeObserver). */
  observer: ExchangeObserver | undefined;
  /**
   * The observer again when it wants steps (`ignoresSteps` not set), else unset: a route
   * watched only by observers that count exchanges (metrics) costs nothing per step.
   */
  stepObserver: ExchangeObserver | undefined;
  #inflight = 0;
  #received = 0;
  #completed = 0;
  // unset while nobody waits: a message checks the field, not an array of its own (with many
  // routes, every object a message reads is a cache miss)
  #waiters: Array<() => void> | undefined = undefined;
  #drained: Array<() => void> | undefined = undefined;
  readonly #events: RouteEvents;
  /** The route's guards' slot (GuardSlot): the promise the guard that returned last handed back. */
  last: unknown = undefined;

  readonly id: string;
  readonly definition: RouteDefinition;
  readonly logger: Logger;
  state: RouteState = 'stopped';
  consumer: Consumer | undefined;
  readonly startHooks: Array<() => Promise<void> | void> = [];
  readonly stopHooks: Array<() => Promise<void> | void> = [];
  /** Counters steps keep (CompileContext.counters), by step path. */
  readonly stepCounters = new Map<string, Record<string, number>>();
  /** Every step of the route with the exchanges that reached it while observed (see StepProbe). */
  readonly probes: StepProbe[] = [];

  #failed = 0;
  #deadLettered = 0;
  #redelivered = 0;
  #status: SourceStatus = 'idle';
  #statusError: string | undefined;
  #statusSince = Date.now();
  #connectionFailures = 0;
  readonly #policy: ErrorPolicy;
  readonly #clock: Clock;
  readonly #deadLetter: RouteHooks['deadLetter'];

  constructor(def: RouteDefinition, opts: { maxInflight: number; logger: Logger; clock: Clock; policy: ErrorPolicy; hooks: RouteHooks }) {
    this.id = def.id;
    this.definition = def;
    this.maxInflight = def.maxInflight ?? opts.maxInflight;
    this.logger = opts.logger;
    this.#clock = opts.clock;
    this.#policy = { ...opts.policy, ...def.errorPolicy, on: [...(def.errorPolicy?.on ?? []), ...(opts.policy.on ?? [])] };
    this.#events = opts.hooks.events;
    this.#deadLetter = opts.hooks.deadLetter;
  }

  /** The policy in force: the route's own rules first, then the engine's. */
  get errorPolicy(): ErrorPolicy {
    return this.#policy;
  }

  get inflight(): number {
    return this.#inflight;
  }

  available(): number {
    return Math.max(0, this.maxInflight - this.#inflight);
  }

  whenAvailable(): Promise<void> {
    if (this.#inflight < this.maxInflight) return Promise.resolve();
    return new Promise((resolve) => (this.#waiters ??= []).push(resolve));
  }

  /** Resolves when nothing is in flight. */
  whenDrained(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#drained ??= []).push(resolve));
  }

  /** Times the source went from up to down (disconnected, backing off). */
  get connectionFailures(): number {
    return this.#connectionFailures;
  }

  setStatus(status: SourceStatus, error?: unknown): void {
    if (status !== this.#status) {
      this.#statusSince = Date.now();
      if ((status === 'disconnected' || status === 'backing-off') && this.#status !== 'disconnected' && this.#status !== 'backing-off') this.#connectionFailures++;
    }
    this.#status = status;
    this.#statusError = error === undefined ? undefined : error instanceof Error ? error.message : String(error);
  }

  stats(): RouteStats {
    const source: RouteStats['source'] = { uri: this.definition.from, status: this.#status, since: new Date(this.#statusSince).toISOString() };
    if (this.#statusError !== undefined) source.error = this.#statusError;
    if (this.consumer?.stats) source.details = this.consumer.stats();
    const s: RouteStats = {
      state: this.state,
      source,
      received: this.#received,
      completed: this.#completed,
      failed: this.#failed,
      deadLettered: this.#deadLettered,
      redelivered: this.#redelivered,
      inflight: this.#inflight,
      maxInflight: this.maxInflight,
    };
    if (this.stepCounters.size) s.steps = Object.fromEntries([...this.stepCounters].map(([path, c]) => [path, { ...c }]));
    return s;
  }

  /** Counters back to zero (the management API's reset-stats); in-flight messages stay counted. */
  resetStats(): void {
    this.#received = this.#completed = this.#failed = this.#deadLettered = this.#redelivered = 0;
    for (const c of this.stepCounters.values()) for (const k of Object.keys(c)) c[k] = 0;
    this.resetStepHits();
  }

  /** Exchanges that reached each step while the route was observed, by step path. */
  stepHits(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of this.probes) if (p.hits > 0) out[p.path] = (out[p.path] ?? 0) + p.hits;
    return out;
  }

  resetStepHits(): void {
    for (const p of this.probes) p.hits = 0;
  }

  /**
   * The consumer's entry point. Waits for a slot (backpressure), runs the pipeline under
   * the error policy, and settles only when the route and all its outputs finished.
   * A pipeline that completes synchronously costs no extra promise hops.
   */
  process(msg: Message, next?: Next): Promise<Message> {
    const t = this.trace;
    if (t === undefined) return this.#process(msg, next ?? this.pipeline);
    // the common case (the route's own pipeline) reuses one function instead of a closure per message
    if (next === undefined || next === this.pipeline) {
      if (this.#run === undefined || this.#runOf !== this.pipeline) {
        const pipeline = (this.#runOf = this.pipeline);
        this.#run = (m) => this.#process(m, pipeline);
      }
      return t(msg, this.#run);
    }
    return t(msg, (m) => this.#process(m, next));
  }

  #run: ((m: Message) => Promise<Message>) | undefined;
  #runOf: Next | undefined;

  /**
   * `process` for a consumer that can answer in the same turn (an HTTP server): a route that
   * finished synchronously gives its reply itself, not a promise of it. Everything else
   * (waiting for a slot, an asynchronous step, a failure, tracing) is `process`'s promise.
   */
  processNow(msg: Message): MaybePromise<Message> {
    if (this.trace !== undefined) return this.process(msg);
    return this.#process(msg, this.pipeline, true);
  }

  #process(msg: Message, next: Next): Promise<Message>;
  #process(msg: Message, next: Next, now: true): MaybePromise<Message>;
  #process(msg: Message, next: Next, now = false): MaybePromise<Message> {
    if (this.#inflight >= this.maxInflight) return this.#whenSlot(msg, next);
    this.#inflight++;
    this.#received++;
    const obs = this.observer;
    const events = this.#events.wantsEvents();
    // one clock read for every observer and the events (none when nobody watches)
    const t0 = obs !== undefined || events ? performance.now() : 0;
    const token = obs === undefined ? undefined : obs.begin(this, msg, t0);
    let r: Message | Promise<Message>;
    try {
      r = next(msg);
    } catch (e) {
      r = Promise.reject(e);
    }
    if (!isPromise(r)) {
      this.#succeeded(msg, t0, events, obs, token);
      return now ? r : Promise.resolve(r);
    }
    if (obs !== undefined && obs.pending !== undefined) obs.pending(this, token);
    // unobserved, with no events: what success does needs nothing of this exchange (one function
    // per route, not a closure per message), and the failure handler only the message and next
    // (decided here: a function with closures makes their context on entry, whatever it returns)
    return obs === undefined && !events ? this.#settlePlain(r, msg, next) : this.#settle(r, msg, next, t0, events, obs, token);
  }

  /**
   * What an exchange whose pipeline went asynchronous does when it settles. Apart from
   * `#process`: its closures keep the exchange's variables, and a function that makes a
   * closure gives every call a context for them, finished synchronously or not.
   */
  #settle(r: Promise<Message>, msg: Message, next: Next, t0: number, events: boolean, obs: ExchangeObserver | undefined, token: unknown): Promise<Message> {
    const ok = (reply: Message): Message => {
      this.#succeeded(msg, t0, events, obs, token);
      return reply;
    };
    // the failure handler is made only once the first attempt failed
    return r.then(ok, (e: unknown) =>
      this.#recover(msg, next, e).then(ok, (err: unknown): never => {
        if (obs !== undefined) obs.end(this, token, (err as BusbarError).details?.deadLettered === true ? 'dead_lettered' : 'failed', err, t0, performance.now());
        return this.#failedWith(msg, events ? t0 : 0, err);
      }),
    );
  }

  /** `#settle` unobserved and without events: its failure handler's context holds two variables, not seven. */
  #settlePlain(r: Promise<Message>, msg: Message, next: Next): Promise<Message> {
    return r.then(this.#plainOk, (e: unknown) => this.#recover(msg, next, e).then(this.#plainOk, (err: unknown): never => this.#failedWith(msg, 0, err)));
  }

  #whenSlot(msg: Message, next: Next): Promise<Message> {
    return this.whenAvailable().then(() => this.#process(msg, next));
  }

  readonly #plainOk = (reply: Message): Message => {
    this.#completed++;
    this.#release();
    return reply;
  };

  #release(): void {
    this.#inflight--;
    // wake every waiter: each re-checks for a slot, so a waiter that decides not to take
    // one (a poller that found nothing) cannot swallow the wake-up another one needed
    const waiters = this.#waiters;
    if (waiters !== undefined) {
      this.#waiters = undefined;
      for (const w of waiters) w();
    }
    if (this.#inflight === 0 && this.#drained !== undefined) {
      const drained = this.#drained;
      this.#drained = undefined;
      for (const d of drained) d();
    }
  }

  #succeeded(msg: Message, t0: number, events: boolean, obs: ExchangeObserver | undefined, token: unknown): void {
    this.#completed++;
    this.#release();
    if (obs === undefined && !events) return;
    const t1 = performance.now();
    if (obs !== undefined) obs.end(this, token, 'completed', undefined, t0, t1);
    if (events) this.#events.emit({ type: 'message.completed', routeId: this.id, messageId: msg.id, durationMs: t1 - t0 });
  }

  #failedWith(msg: Message, t0: number, e: unknown): never {
    this.#failed++;
    const err = e as BusbarError;
    if (err.details?.deadLettered) this.#deadLettered++;
    this.#release();
    if (this.#events.wantsEvents()) {
      this.#events.emit({
        type: 'message.failed',
        routeId: this.id,
        messageId: msg.id,
        durationMs: t0 ? performance.now() - t0 : 0,
        code: err.code,
        error: err.message,
        deadLettered: err.details?.deadLettered === true,
      });
    }
    throw err;
  }

  /** Start a new exchange (aggregates etc.); failures are handled by the policy and logged. */
  spawn(msg: Message, next: Next): void {
    this.process(msg, next).catch((err: BusbarError) => {
      if (!shouldAck(err)) this.logger.error({ err, messageId: msg.id, body: msg.body }, 'spawned message failed and has no dead-letter endpoint');
    });
  }

  /** The first attempt failed with `first`: redeliver per policy, then dead-letter or give up. */
  async #recover(msg: Message, next: Next, first: unknown): Promise<Message> {
    let attempt = 1;
    let failure: unknown = first;
    for (;;) {
      const err = isBusbarError(failure) ? failure : wrapStepError(failure, this.id, 'route');
      const rule = this.#ruleFor(err);
      const r = rule.redelivery;
      if (r && attempt < r.maxAttempts && (isRetryable(err) || r.retryNonRetryable)) {
        const delay = backoff(r, attempt);
        this.logger.warn({ messageId: msg.id, attempt, code: err.code, delayMs: delay }, `redelivering after ${err.message}`);
        this.#redelivered++;
        if (delay > 0) await sleep(this.#clock, delay);
        attempt++;
        try {
          return await next(withHeaders(msg, { [ATTEMPT_HEADER]: attempt }));
        } catch (e) {
          failure = e;
          continue;
        }
      }
      err.details.attempts = attempt;
      await this.#settleFailure(msg, err, rule, attempt);
      throw err;
    }
  }

  /** Dead-letter (or mark handled) per `rule`; a dead-letter endpoint that fails turns into DEAD_LETTER_FAILED. */
  async #settleFailure(msg: Message, err: BusbarError, rule: ErrorRule, attempts: number): Promise<void> {
    if (rule.deadLetter) {
      const dead = withHeaders(msg, deadLetterHeaders(err, this.id, attempts, this.#clock.now()));
      try {
        await this.#deadLetter(rule.deadLetter, dead);
      } catch (dlqErr) {
        this.logger.error({ err: dlqErr, messageId: msg.id, original: err.message }, 'dead-letter endpoint failed; nacking the source');
        throw new BusbarError('DEAD_LETTER_FAILED', `route "${this.id}": could not dead-letter message ${msg.id} to ${rule.deadLetter}: ${(dlqErr as Error).message} (original error: ${err.message})`, {
          cause: err,
          details: { routeId: this.id, deadLetter: rule.deadLetter, dlqError: (dlqErr as Error).message },
        });
      }
      this.logger.warn({ messageId: msg.id, code: err.code, deadLetter: rule.deadLetter, attempts }, `dead-lettered: ${err.message}`);
      err.details.deadLettered = true;
    } else if (rule.handled) {
      this.logger.warn({ messageId: msg.id, code: err.code }, `failure handled: ${err.message}`);
      err.details.handled = true;
    }
  }

  /**
   * A message the source will not run through the route (a poison message past its
   * delivery limit, a body it cannot decode): settled by the route's error policy for
   * `err`'s code, without redelivery. Resolves once it is dead-lettered (or the rule marks
   * it handled): acknowledge the source then. Rejects with `err` (not dead-lettered) when
   * the policy has no dead-letter endpoint for it, or with DEAD_LETTER_FAILED.
   */
  async reject(msg: Message, err: BusbarError): Promise<void> {
    this.#received++;
    this.#failed++;
    err.details.attempts ??= 1;
    try {
      await this.#settleFailure(msg, err, this.#ruleFor(err), err.details.attempts as number);
    } finally {
      if (err.details.deadLettered) this.#deadLettered++;
      if (this.#events.wantsEvents()) {
        this.#events.emit({ type: 'message.failed', routeId: this.id, messageId: msg.id, durationMs: 0, code: err.code, error: err.message, deadLettered: err.details.deadLettered === true });
      }
    }
    if (!shouldAck(err)) throw err;
  }

  #ruleFor(err: BusbarError): ErrorRule {
    const className = (err.cause as { constructor?: { name?: string } } | undefined)?.constructor?.name;
    for (const rule of this.#policy.on ?? []) {
      if (rule.codes.some((c) => c === err.code || c === className || (c.endsWith('*') && err.code.startsWith(c.slice(0, -1))))) {
        // a rule that declares the failure handled does not inherit the policy's dead letter
        const deadLetter = rule.deadLetter ?? (rule.handled ? undefined : this.#policy.deadLetter);
        return { redelivery: rule.redelivery ?? this.#policy.redelivery, deadLetter, handled: rule.handled ?? false };
      }
    }
    return this.#policy;
  }
}

export function backoff(r: RedeliveryPolicy, attempt: number): number {
  const base = (r.delayMs ?? 0) * Math.pow(r.multiplier ?? 2, attempt - 1);
  const capped = Math.min(base, r.maxDelayMs ?? Infinity);
  const j = r.jitter ?? 0;
  return Math.max(0, Math.round(capped * (1 + j * (Math.random() - 0.5))));
}
