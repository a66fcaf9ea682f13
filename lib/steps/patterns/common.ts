import { BusbarError, isBusbarError, wrapStepError } from '../../errors.js';
import { withHeaders, type HeaderValue, type Message } from '../../message.js';
import type { AggregationStore, ClaimCheckStore, IdempotentRepository } from '../../stores.js';
import { MemoryAggregationStore, MemoryClaimCheckStore, MemoryIdempotentRepository } from '../../stores-memory.js';
import type { CompileContext, MaybePromise } from '../../step.js';
import type { CircuitBreaker } from '../../circuit-breaker.js';

/**
 * Per-engine state of the pattern steps (named stores, circuit breakers, counters).
 *
 * CompileContext offers no per-engine state, so it is keyed on the one engine-owned object
 * every CompileContext carries: the engine's CodecRegistry. A WeakMap, so an engine that is
 * dropped takes its state with it, and two engines never share anything.
 */
export interface PatternState {
  readonly aggregationStores: Map<string, AggregationStore>;
  readonly idempotentRepositories: Map<string, IdempotentRepository>;
  readonly claimCheckStores: Map<string, ClaimCheckStore>;
  readonly breakers: Map<string, CircuitBreaker>;
  /** Duplicates an idempotent consumer skipped or diverted, by `<routeId><step path>`. */
  readonly duplicates: Map<string, number>;
}

function newPatternState(): PatternState {
  return {
    aggregationStores: new Map([['memory', new MemoryAggregationStore()]]),
    idempotentRepositories: new Map([['memory', new MemoryIdempotentRepository()]]),
    claimCheckStores: new Map([['memory', new MemoryClaimCheckStore()]]),
    breakers: new Map(),
    duplicates: new Map(),
  };
}

/** The pattern state of the engine compiling a step (kept in the engine's step state). */
export function patternStateOf(ctx: Pick<CompileContext, 'state'>): PatternState {
  return ctx.state('patterns', newPatternState);
}

/**
 * The pattern state of an engine: register named stores that config routes refer to
 * (`{ "aggregate": { "store": "pg" } }`), read circuit breakers and duplicate counts.
 * Each kind of store has a `memory` entry by default, shared by the engine's routes.
 */
export function patternState(engine: { stepState<T>(key: string, init: () => T): T }): PatternState {
  return engine.stepState('patterns', newPatternState);
}

export function namedStore<S>(stores: Map<string, S>, name: string, what: string): S {
  const s = stores.get(name);
  if (!s) {
    throw new BusbarError('INVALID_ROUTE', `unknown ${what} "${name}" (registered: ${[...stores.keys()].join(', ')}); register it with patternState(engine).${what === 'aggregation store' ? 'aggregationStores' : what === 'idempotent repository' ? 'idempotentRepositories' : 'claimCheckStores'}.set(name, store)`, {
      details: { store: name },
    });
  }
  return s;
}

/** Headers split parts carry. */
export const SPLIT_HEADERS = {
  index: 'busbar.split.index',
  /** Number of parts, when the splitter knows it up front (arrays); absent for streams. */
  size: 'busbar.split.size',
  last: 'busbar.split.last',
} as const;

/** Headers of an aggregator's output. */
export const AGGREGATE_HEADERS = {
  completedBy: 'busbar.aggregate.completedBy',
  size: 'busbar.aggregate.size',
  key: 'busbar.aggregate.key',
} as const;

/** Caches senders of endpoints computed at message time, with a bound so odd URIs cannot grow it forever. */
export function senderCache(ctx: CompileContext, max = 1000): (uri: string) => (msg: Message) => Promise<Message | undefined> {
  const cache = new Map<string, (msg: Message) => Promise<Message | undefined>>();
  return (uri) => {
    let s = cache.get(uri);
    if (!s) {
      s = ctx.producer(uri);
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(uri, s);
    }
    return s;
  };
}

/** Like `senderCache`, with the senders that may complete synchronously (`CompileContext.sender`): an in-memory sink needs no promise. */
export function syncSenderCache(ctx: CompileContext, max = 1000): (uri: string) => (msg: Message) => MaybePromise<Message | undefined> {
  const cache = new Map<string, (msg: Message) => MaybePromise<Message | undefined>>();
  return (uri) => {
    let s = cache.get(uri);
    if (!s) {
      s = ctx.sender(uri);
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(uri, s);
    }
    return s;
  };
}

/** Like `senderCache`, for request-reply calls (REPLY_UNSUPPORTED when an endpoint cannot answer). */
export function requesterCache(ctx: CompileContext, max = 1000): (uri: string) => (msg: Message) => Promise<Message> {
  const cache = new Map<string, (msg: Message) => Promise<Message>>();
  return (uri) => {
    let s = cache.get(uri);
    if (!s) {
      s = ctx.requester(uri);
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(uri, s);
    }
    return s;
  };
}

/**
 * A copy of a body that branches may change without another branch seeing it: plain
 * objects and arrays are deep-copied, Buffers copied, everything else (immutable values,
 * class instances) shared.
 */
export function copyBody<T>(body: T): T {
  if (body === null || typeof body !== 'object') return body;
  if (Buffer.isBuffer(body)) return Buffer.from(body) as T;
  const proto = Object.getPrototypeOf(body) as unknown;
  if (Array.isArray(body) || proto === Object.prototype || proto === null) {
    try {
      return structuredClone(body);
    } catch {
      return body; // holds functions or the like: cannot be copied, share it
    }
  }
  return body;
}

/** Replies combined into one body: a strategy name or a function of the replies and the original. */
export type ReplyStrategy = 'array' | 'first' | 'last' | 'original' | 'merge';
export type Combiner = ReplyStrategy | ((replies: Message[], original: Message) => unknown);

/** The combined body; a strategy function may be async (a promise of it). */
export function combineReplies(strategy: Combiner, replies: Message[], original: Message): MaybePromise<unknown> {
  if (typeof strategy === 'function') return strategy(replies, original);
  switch (strategy) {
    case 'array':
      return replies.map((r) => r.body);
    case 'first':
      return replies.length ? replies[0]!.body : original.body;
    case 'last':
      return replies.length ? replies[replies.length - 1]!.body : original.body;
    case 'merge':
      return Object.assign({}, ...replies.map((r) => (r.body && typeof r.body === 'object' ? r.body : {})));
    case 'original':
      return original.body;
  }
}

export const combinerSchema = {
  oneOf: [
    { enum: ['array', 'first', 'last', 'original', 'merge'], description: 'how replies become the body: array of reply bodies, first, last, original body, or merged objects' },
    { type: 'object', additionalProperties: false, required: ['fn'], properties: { fn: { type: 'string', description: 'registered function called with (replies bodies, original message)' } } },
  ],
} as const;

/**
 * Add facts to an error thrown in a branch or part, keeping its code (policies match on
 * it); anything else thrown (an endpoint's plain Error) is wrapped as STEP_FAILED first.
 */
export function annotate(err: unknown, facts: Record<string, unknown>, routeId: string, step: string): BusbarError {
  const e = isBusbarError(err) ? err : wrapStepError(err, routeId, step);
  for (const [k, v] of Object.entries(facts)) e.details[k] ??= v;
  return e;
}

/** The error headers a part or branch sent to a side dead-letter endpoint carries. */
export function errorHeaders(msg: Message, err: unknown, routeId: string, step: string, now: number): Message {
  const e = err as { code?: unknown; message?: unknown; details?: { step?: unknown; routeId?: unknown } };
  const inner = typeof e?.details?.step === 'string';
  return withHeaders(msg, {
    'busbar.error.code': typeof e?.code === 'string' ? e.code : 'BUSBAR_ERR_STEP_FAILED',
    'busbar.error.message': typeof e?.message === 'string' ? e.message : String(err),
    'busbar.error.step': (inner ? e.details!.step : step) as HeaderValue,
    // the route of that step (another one when the part went through direct:)
    'busbar.error.routeId': inner && typeof e.details!.routeId === 'string' ? e.details!.routeId : routeId,
    'busbar.error.attempts': 1,
    'busbar.error.failedAt': new Date(now).toISOString(),
  });
}

export function keyOf(value: unknown, what: string, routeId: string, step: string): string {
  if (value === undefined || value === null || (typeof value === 'number' && Number.isNaN(value))) {
    throw new BusbarError('CORRELATION_KEY', `route "${routeId}", step ${step}: the ${what} expression gave ${String(value)} for this message`, { details: { routeId, step } });
  }
  return typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
}
