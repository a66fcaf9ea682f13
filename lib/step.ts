import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { CodecRegistry } from './codecs.js';
import { wrapStepError } from './errors.js';
import type { CompiledExpression } from './expression.js';
import type { RequestOptions } from './adapter.js';
import { withBody, type Message } from './message.js';
import type { Route } from './route.js';
import type { JsonSchema, Problem } from './schema.js';
import type { StepTracing } from './tracing/tracer.js';

export type MaybePromise<T> = T | Promise<T>;

/** The rest of a route, from some step on. Returns the message at the end (the reply). */
export type Next = (msg: Message) => MaybePromise<Message>;

/** One step of the internal route model: the builder and config files both produce these. */
export interface StepDefinition {
  readonly kind: string;
  readonly args: unknown;
}

/** A function the config form can refer to by name (`{ "transform": { "fn": "enrich" } }`). */
export type NamedFunction = (body: unknown, msg: Message) => unknown;

/** What a step kind gets when its config form (`{ "<kind>": value }`) is read. */
export interface ConfigContext {
  /** JSON pointer of the step's value in the config document. */
  readonly path: string;
  /** Add a problem; reading goes on so every problem is reported at once. */
  problem(p: Problem): void;
  /** Read a nested list of steps (choice branches, multicast branches...). */
  steps(value: unknown, path: string): StepDefinition[];
  /** Compile a JSONata expression now, so syntax errors are config problems with a path. */
  expression(source: string, path: string): CompiledExpression | undefined;
  /** Look up a named function, reporting a problem (with a suggestion) if it is unknown. */
  fn(name: string, path: string): NamedFunction | undefined;
}

/** What a step kind gets when the route is built into a runnable pipeline. */
export interface CompileContext {
  readonly routeId: string;
  /** Where the step is, e.g. `/steps/2` or `/steps/1/choice/when/0/steps/0`. */
  readonly path: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly codecs: CodecRegistry;
  /** Resolve a destination now (validating its URI and options) and return its one-way sender. */
  producer(uri: string): (msg: Message) => Promise<Message | undefined>;
  /**
   * The same sender without the promise: a producer that completes synchronously (an
   * in-memory sink) returns its result directly, so the step can go on without a promise
   * hop. It may throw; the step's guard turns that into the message's failure.
   */
  sender(uri: string): (msg: Message) => MaybePromise<Message | undefined>;
  /**
   * Resolve a destination that must answer (request-reply) and return its caller. Throws
   * REPLY_UNSUPPORTED now when the endpoint cannot reply. `timeoutMs` is the default time
   * limit of each call (the producer's own when absent); a call may pass its own.
   */
  requester(uri: string, opts?: RequestOptions): (msg: Message, opts?: RequestOptions) => Promise<Message>;
  /** Build a nested list of steps, continuing with `next`. */
  compile(steps: readonly StepDefinition[], next: Next, path: string): Next;
  /** Compile a JSONata expression (cached per route). */
  expression(source: string): CompiledExpression;
  /**
   * Start a new exchange on this route (an aggregate, a resequenced batch): counted in
   * flight, run through the rest of the route, failures handled by the route's error policy.
   */
  spawn(msg: Message, next: Next): void;
  /** Work to do when the route stops, after in-flight messages drained (forced completions). */
  onStop(fn: () => Promise<void> | void): void;
  /** Work to do when the route starts (timers of interval completions). */
  onStart(fn: () => Promise<void> | void): void;
  /** Per-engine state shared by steps (named stores, circuit breakers), created on first use. */
  state<T>(key: string, init: () => T): T;
  /** The route's bound on messages in flight. */
  readonly maxInflight: number;
  /**
   * This step's counters (late arrivals, timed-out recipients...): a record the step
   * increments, reported in the route's stats under `steps[<path>]`.
   */
  counters(): Record<string, number>;
  /**
   * Consume `uri` while the route runs (started before the route's source, stopped after
   * its messages drained): each message is handed to `handle`, and its source acknowledged
   * when `handle` resolves (nacked when it rejects). What a step that waits for messages
   * arriving on another channel (`awaitReply`) listens with.
   */
  listen(uri: string, handle: (msg: Message) => Promise<unknown>): void;
  /** The engine's tracer when it traces (a split part's span); undefined otherwise. */
  readonly tracing?: StepTracing | undefined;
  /**
   * Go on once a promise this step made (a send, a call) resolves: `f(arg, value)`, in one
   * `then` whose failures (the promise's, or a throw of `f`) are labelled with this step.
   * Return what it returns as it is: the step's guard then adds no `then` of its own (with
   * `p.then(...)` the guard adds one to label failures: a promise, a reaction and a microtask
   * more per message). `f` should end in `next`, whose failures are labelled by later steps.
   */
  continueWith: ContinueWith;
}

/** See `CompileContext.continueWith`. */
export type ContinueWith = <A, T>(p: Promise<T>, f: (arg: A, value: T) => MaybePromise<Message>, arg: A) => Promise<Message>;

/** `continueWith` for one step of a route: failures labelled `label`, the promise made put in the route's slot (see GuardSlot). */
export function continuation(routeId: string, label: string, slot: GuardSlot): ContinueWith {
  const failed = (e: unknown): never => {
    throw wrapStepError(e, routeId, label);
  };
  return <A, T>(p: Promise<T>, f: (arg: A, value: T) => MaybePromise<Message>, arg: A): Promise<Message> => {
    const later = p.then((v) => {
      try {
        return f(arg, v);
      } catch (e) {
        return failed(e);
      }
    }, failed);
    slot.last = later;
    return later;
  };
}

/** What a `to` step is made of: its endpoint's send, how it goes on after an asynchronous one, and the step after it. */
export interface SendParts {
  readonly send: (msg: Message) => MaybePromise<Message | undefined>;
  readonly later: ContinueWith;
  readonly goOn: (msg: Message, reply: Message | undefined) => MaybePromise<Message>;
  readonly next: Next;
}
const SEND_OF = new WeakMap<Next, SendParts>();

/**
 * A `to` step's function (send, then go on with the reply or the message), and, for a stretch
 * of one step before it, its parts: the stretch then sends itself (see sendAfter), and the
 * step's own function and context are not read per message (with many routes, two cache misses).
 */
export function sendStep(parts: SendParts): Next {
  const { send, later, goOn, next } = parts;
  const f: Next = (msg) => sendOn(send, later, goOn, next, msg);
  SEND_OF.set(f, parts);
  return f;
}

/** What a `to` step does: send, and go on with the reply or the message (an in-memory producer that is done already: in the same turn). */
function sendOn(send: SendParts['send'], later: ContinueWith, goOn: SendParts['goOn'], next: Next, msg: Message): MaybePromise<Message> {
  const r = send(msg);
  return isPromise(r) ? later(r, goOn, msg) : next(r ?? msg);
}

/**
 * A step kind: a processor (an EIP, a converter, a validator) with its config form.
 * Builder methods and config files both end up calling `compile`.
 */
export interface StepKind<A = unknown> {
  readonly name: string;
  readonly description: string;
  /** JSON Schema of `value` in the config form `{ "<name>": value }`. */
  readonly configSchema: JsonSchema;
  /** Config value (already schema-valid) -> args. */
  fromConfig(value: unknown, ctx: ConfigContext): A;
  compile(args: A, next: Next, ctx: CompileContext): Next;
  /**
   * Optional, for a step that turns each message into one message and always goes on (a
   * transformation, a codec, a header): the function doing that. The engine then runs a
   * stretch of such steps in one loop with one error handler (see `fuse`) instead of a
   * wrapper per step; `compile` must do the same as `then(map(msg), next)` (`mapStep` makes it).
   */
  map?(args: A, ctx: CompileContext): MapFn;
}

/** What a `map` step does to one message. */
export type MapFn = (msg: Message) => MaybePromise<Message>;

/** A step kind defined by its `map` alone: `compile` is derived from it. */
export function mapStep<A>(kind: Omit<StepKind<A>, 'compile' | 'map'> & { map(args: A, ctx: CompileContext): MapFn }): StepKind<A> {
  return {
    ...kind,
    compile(args, next, ctx) {
      const f = kind.map(args, ctx);
      return (msg) => then(f(msg), next);
    },
  };
}

/**
 * What a map step made by `bodyMap` computes: the new body from the old one (the step's
 * message is the old one with it). Called as a transform's function is, with the body and the
 * message: a transform's own function is its body function, no wrapper between (one function
 * and its context less per message, which with many routes is two cache lines less).
 */
export type BodyMapFn = (body: unknown, msg: Message) => MaybePromise<unknown>;

const BODY_OF = new WeakMap<MapFn, BodyMapFn>();

/**
 * A map step's function for a step that only replaces the body (a transform): `withBody(msg,
 * body(msg))`, and, for the engine, `body` itself. A stretch (see `fuse`) then continues an
 * asynchronous body with one `then` of its own: made as a MapFn alone, the step's promise
 * is continued twice (the step's to make the message, the stretch's to go on), one more
 * promise, reaction, closure and microtask for every message in flight.
 */
export function bodyMap(body: BodyMapFn): MapFn {
  const f: MapFn = (msg) => thenWith(body(msg.body, msg), withBody, msg);
  BODY_OF.set(f, body);
  return f;
}

/**
 * Native promises only: a `then` lookup on every plain message would cost more than the
 * rest of a synchronous step. Async functions always return native promises.
 */
export function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return v instanceof Promise;
}

/** Apply `f` to a value that may or may not be a promise, staying synchronous when it can. */
export function then<T, U>(v: MaybePromise<T>, f: (t: T) => MaybePromise<U>): MaybePromise<U> {
  return isPromise(v) ? v.then(f) : f(v);
}

/**
 * `f(arg, value)` once `v` has its value, synchronously when it is one. Unlike `then` with a
 * closure made at the call, nothing is allocated on the synchronous path: a function that
 * makes a closure gives every call a context for the variables it keeps, whichever path runs,
 * so the closure lives in `thenLater`, called only for a promise.
 */
export function thenWith<A, T, U>(v: MaybePromise<T>, f: (arg: A, value: T) => MaybePromise<U>, arg: A): MaybePromise<U> {
  return isPromise(v) ? thenLater(v, f, arg) : f(arg, v);
}

function thenLater<A, T, U>(v: Promise<T>, f: (arg: A, value: T) => MaybePromise<U>, arg: A): Promise<U> {
  return v.then((t) => f(arg, t));
}

/**
 * What the guards of one route share: the promise the guard that returned last handed back.
 * A guard's promise only ever rejects with an error a guard has labelled, so a step that
 * returns one unchanged (the rest of the route's, a branch's) needs no `.then` of its own.
 */
export interface GuardSlot {
  last: unknown;
}

/**
 * Where a guarded step is, for the route's observer (one property check per step when
 * nobody observes steps). `hits` counts the exchanges that reached the step while observed
 * by an observer of steps (the management API's, the console's): a
 * counter made when the route is built, so counting costs no lookup per message.
 */
export interface StepProbe {
  readonly route: Route;
  readonly path: string;
  readonly kind: string;
  hits: number;
}

/**
 * The functions `guard` and `fuse` made: what they throw is labelled with a step already, and
 * a promise they return keeps the slot's contract. A stretch followed by one needs no guard
 * of its own around it.
 */
const LABELLED = new WeakSet<Next>();

/** What a guard wraps: the step itself and its error handler (a stretch before it may run the step as the guard would). */
interface Guarded {
  readonly fn: Next;
  readonly onError: (e: unknown) => never;
  readonly slot: GuardSlot;
}
const GUARDED = new WeakMap<Next, Guarded>();

/**
 * Wrap a compiled step so anything it throws names the route and step (keeping the cause),
 * and, when `observe` is given, tell the route's observer (if any) the exchange reached it.
 * Errors are caught once per synchronous stretch: a step that returns a promise some guard of
 * the route returned (the rest of the route's, a choice branch's) gets no `.then` of its own,
 * as the failures in it belong to (and were labelled by) later steps; that saves a promise
 * and a microtask per step per message. Only a promise the step made itself (an async call,
 * a send) is wrapped. The slot is checked right after the step returns, in the same turn, so
 * only guards that ran inside this step can have set it.
 */
export function guard(fn: Next, routeId: string, label: string, slot: GuardSlot = { last: undefined }, probe?: StepProbe): Next {
  const onError = (e: unknown): never => {
    throw wrapStepError(e, routeId, label);
  };
  // the observer's check in the same function as the step's call: one call per step, not two
  const route = probe?.route;
  // a `to` step: sent from its parts here, its own function and context not read per message
  const to = SEND_OF.get(fn);
  const run = to !== undefined ? guardedSend(to, route, probe, slot, onError) : (msg: Message): MaybePromise<Message> => {
    if (route !== undefined) reached(route, probe!, msg);
    return runStep(fn, msg, slot, onError);
  };
  LABELLED.add(run);
  GUARDED.set(run, { fn, onError, slot });
  return run;
}

/** Tell the route's observer of steps, if it has one, that `msg` reached the step of `probe` (and count it). */
function reached(route: Route, probe: StepProbe, msg: Message): void {
  const o = route.stepObserver;
  if (o !== undefined) {
    probe.hits++;
    o.step(route, msg, probe.path, probe.kind);
  }
}

/** `guard`'s function for a `to` step (see sendStep): the step's parts and the guard's in one context. */
function guardedSend(to: SendParts, route: Route | undefined, probe: StepProbe | undefined, slot: GuardSlot, onError: (e: unknown) => never): Next {
  const { send, later, goOn, next } = to;
  return (msg) => {
    if (route !== undefined) reached(route, probe!, msg);
    return sendAfter(send, later, goOn, next, msg, slot, onError);
  };
}

/** A guarded step's call (see guard): one function for every guard, so the JIT inlines it where it is called. */
function runStep(fn: Next, msg: Message, slot: GuardSlot, onError: (e: unknown) => never): MaybePromise<Message> {
  let r: MaybePromise<Message>;
  try {
    slot.last = undefined;
    r = fn(msg);
  } catch (e) {
    return onError(e);
  }
  return stepResult(r, slot, onError);
}

/** `runStep` of a `to` step (see sendStep), the step's function written out: the same slot handling and labels. */
function sendAfter(send: SendParts['send'], later: ContinueWith, goOn: SendParts['goOn'], next: Next, msg: Message, slot: GuardSlot, onError: (e: unknown) => never): MaybePromise<Message> {
  let r: MaybePromise<Message>;
  try {
    slot.last = undefined;
    r = sendOn(send, later, goOn, next, msg);
  } catch (e) {
    return onError(e);
  }
  return stepResult(r, slot, onError);
}

/** A guarded step's result (see GuardSlot): a promise no guard labelled gets the step's label and goes in the slot. */
function stepResult(r: MaybePromise<Message>, slot: GuardSlot, onError: (e: unknown) => never): MaybePromise<Message> {
  if (!isPromise(r)) {
    slot.last = undefined; // hold no message past its step
    return r;
  }
  if (r !== slot.last) r = r.then(undefined, onError);
  slot.last = r;
  return r;
}

/** One `map` step of a fused stretch: its function, its label for errors, its probe. */
export interface MapStage {
  fn: MapFn;
  label: string;
  probe?: StepProbe | undefined;
}

/**
 * A stretch of consecutive `map` steps run as one: a loop over their functions in one
 * try/catch (the failing step's label is the loop index), the observer told at each step as
 * `guard` does, the stretch going asynchronous only where a step returns a promise. Then
 * `next`, whose failures are its own (labelled by its guard) except a synchronous throw of an
 * unguarded end, which gets the last step's label as it would behind that step's guard. What
 * it returns keeps the slot's contract (see GuardSlot): a promise the stretch made is labelled
 * and put in the slot; one `next` returned passes through as `guard` passes it.
 */
export function fuse(stages: readonly MapStage[], next: Next, routeId: string, slot: GuardSlot): Next {
  const k = stages.length;
  const fns = stages.map((s) => s.fn);
  const labels = stages.map((s) => s.label);
  const probes = stages.map((s) => s.probe);
  // steps that only replace the body: called for the body, so an asynchronous one is continued once (see bodyMap)
  const bodies = stages.map((s) => BODY_OF.get(s.fn));
  const route = probes.find((p) => p !== undefined)?.route;
  // next behind the last step's guard: what next throws at once, or a promise no guard labelled, is the last step's
  // (a guarded next labels its own: it is called as it is)
  const tail = LABELLED.has(next) ? next : guard(next, routeId, labels[k - 1]!, slot);
  // a guarded step next: run as its guard runs it while nobody observes steps (see single)
  const guarded = GUARDED.get(tail);
  // what a stretch that went asynchronous at stage i does next: made once per stage, not per message
  const resume: Array<(v: Message) => MaybePromise<Message>> = [];
  const failedAt: Array<(e: unknown) => never> = [];
  for (let i = 0; i < k; i++) {
    resume.push((v) => runFrom(v, i + 1));
    failedAt.push((e) => {
      throw wrapStepError(e, routeId, labels[i]!);
    });
  }
  // an asynchronous body at stage i: the message made and the stretch resumed in one `then`
  // (apart from runFrom: the closure's context, for msg, is made only on this path)
  const bodyLater = (body: Promise<unknown>, msg: Message, i: number): Promise<Message> => body.then((b) => runFrom(withBody(msg, b), i + 1), failedAt[i]);
  const runFrom = (msg: Message, from: number): MaybePromise<Message> => {
    let m = msg;
    let i = from;
    try {
      for (; i < k; i++) {
        if (route !== undefined) {
          const p = probes[i];
          if (p !== undefined) reached(route, p, m);
        }
        const body = bodies[i];
        if (body !== undefined) {
          const b = body(m.body, m);
          if (isPromise(b)) {
            const later = bodyLater(b, m, i);
            slot.last = later;
            return later;
          }
          m = withBody(m, b);
          continue;
        }
        const r = fns[i]!(m);
        if (isPromise(r)) {
          const later = r.then(resume[i], failedAt[i]);
          slot.last = later;
          return later;
        }
        m = r;
      }
    } catch (e) {
      throw wrapStepError(e, routeId, labels[i]!);
    }
    return guarded !== undefined && route?.stepObserver === undefined ? runStep(guarded.fn, m, guarded.slot, guarded.onError) : tail(m);
  };
  let run: Next = (msg) => runFrom(msg, 0);
  if (k === 1 && route !== undefined) {
    const body = bodies[0];
    const stage: SingleStage = body === undefined ? { map: { f: fns[0]!, resume: resume[0]!, failed: failedAt[0]! } } : { body: { f: body, later: bodyLater } };
    run = single(stage, labels[0]!, route, runFrom, tail, guarded, routeId, slot);
  }
  LABELLED.add(run);
  return run;
}

/** What a stretch of one step does with its step's result: `single`'s two forms. */
interface SingleStage {
  /** The step's MapFn, with what continues its promise. */
  readonly map?: { f: MapFn; resume: (v: Message) => MaybePromise<Message>; failed: (e: unknown) => never };
  /** Or its body function (see bodyMap), with what makes the message of an asynchronous body and goes on. */
  readonly body?: { f: BodyMapFn; later: (body: Promise<unknown>, msg: Message, i: number) => Promise<Message> };
}

/**
 * A stretch of one step (the common case: a codec or a transform between two other steps),
 * as one function: no loop, no arrays read per message. Observed, it runs the loop, which
 * tells the observer.
 */
function single(stage: SingleStage, label: string, route: Route, runFrom: (msg: Message, from: number) => MaybePromise<Message>, tail: Next, next: Guarded | undefined, routeId: string, slot: GuardSlot): Next {
  const failure = (e: unknown): never => {
    throw wrapStepError(e, routeId, label);
  };
  // a guarded step next (the common case: `to` after a transform): called here as its guard
  // calls it, the guard itself (its function and what it holds) not read per message; a `to`
  // step is sent from here, from its parts (see sendStep)
  const to = next === undefined ? undefined : SEND_OF.get(next.fn);
  if (stage.body !== undefined) return singleBody(stage.body.f, route, next?.fn, to?.send, to?.later, to?.goOn, to?.next, next?.slot, next?.onError, tail, failure, stage.body.later, runFrom, slot);
  const { f, resume, failed } = stage.map!;
  return singleMap(f, route, next?.fn, to?.send, to?.later, to?.goOn, to?.next, next?.slot, next?.onError, tail, failure, resume, failed, runFrom, slot);
}

/**
 * What a one-step stretch does after its step finished at once: the guarded step after it run
 * as its guard runs it (a `to` sent from its parts), or the stretch's tail. A function shared by
 * every stretch, called with what the stretch's context holds (no function of the stretch's own).
 */
function goOnAfter(
  m: Message,
  nextFn: Next | undefined,
  send: SendParts['send'] | undefined,
  sendLater: ContinueWith | undefined,
  sendGoOn: SendParts['goOn'] | undefined,
  sendNext: Next | undefined,
  nextSlot: GuardSlot | undefined,
  nextError: ((e: unknown) => never) | undefined,
  tail: Next,
): MaybePromise<Message> {
  if (nextFn === undefined) return tail(m);
  return send === undefined ? runStep(nextFn, m, nextSlot!, nextError!) : sendAfter(send, sendLater!, sendGoOn!, sendNext!, m, nextSlot!, nextError!);
}

// The two forms of `single`, each a function of its own: what a message reads lies in one
// context (the parameters, those it reads first, first), not in a block's context and the
// context of a function holding both forms' variables (with many routes, each is a cache miss).

function singleBody(
  f: BodyMapFn,
  route: Route,
  nextFn: Next | undefined,
  send: SendParts['send'] | undefined,
  sendLater: ContinueWith | undefined,
  sendGoOn: SendParts['goOn'] | undefined,
  sendNext: Next | undefined,
  nextSlot: GuardSlot | undefined,
  nextError: ((e: unknown) => never) | undefined,
  tail: Next,
  failure: (e: unknown) => never,
  later: (body: Promise<unknown>, msg: Message, i: number) => Promise<Message>,
  runFrom: (msg: Message, from: number) => MaybePromise<Message>,
  slot: GuardSlot,
): Next {
  return (msg) => {
    // observed, the loop and the guard tell the observer at each step
    if (route.stepObserver !== undefined) return runFrom(msg, 0);
    let b: unknown;
    try {
      b = f(msg.body, msg);
    } catch (e) {
      return failure(e);
    }
    if (!isPromise(b)) return goOnAfter(withBody(msg, b), nextFn, send, sendLater, sendGoOn, sendNext, nextSlot, nextError, tail);
    const p = later(b, msg, 0);
    slot.last = p;
    return p;
  };
}

function singleMap(
  f: MapFn,
  route: Route,
  nextFn: Next | undefined,
  send: SendParts['send'] | undefined,
  sendLater: ContinueWith | undefined,
  sendGoOn: SendParts['goOn'] | undefined,
  sendNext: Next | undefined,
  nextSlot: GuardSlot | undefined,
  nextError: ((e: unknown) => never) | undefined,
  tail: Next,
  failure: (e: unknown) => never,
  resume: (v: Message) => MaybePromise<Message>,
  failed: (e: unknown) => never,
  runFrom: (msg: Message, from: number) => MaybePromise<Message>,
  slot: GuardSlot,
): Next {
  return (msg) => {
    if (route.stepObserver !== undefined) return runFrom(msg, 0);
    let r: MaybePromise<Message>;
    try {
      r = f(msg);
    } catch (e) {
      return failure(e);
    }
    if (!isPromise(r)) return goOnAfter(r, nextFn, send, sendLater, sendGoOn, sendNext, nextSlot, nextError, tail);
    const later = r.then(resume, failed);
    slot.last = later;
    return later;
  };
}

/** A registry of step kinds, owned by an engine. */
export class StepRegistry {
  readonly #kinds = new Map<string, StepKind>();
  constructor(kinds: Iterable<StepKind> = []) {
    for (const k of kinds) this.register(k);
  }
  register<A>(kind: StepKind<A>): this {
    this.#kinds.set(kind.name, kind as unknown as StepKind);
    return this;
  }
  get(name: string): StepKind | undefined {
    return this.#kinds.get(name);
  }
  names(): string[] {
    return [...this.#kinds.keys()];
  }
  list(): StepKind[] {
    return [...this.#kinds.values()];
  }
  clone(): StepRegistry {
    return new StepRegistry(this.#kinds.values());
  }
}
