/**
 * The typed options of the pattern builder methods (lib/builder.ts). Functions here are
 * typed on the body type at that point of the route; the config form takes JSONata
 * expressions or registered function names instead.
 */
import type { CircuitBreakerOptions } from '../../circuit-breaker.js';
import type { Message } from '../../message.js';
import type { RedeliveryPolicy } from '../../model.js';
import type { MaybePromise } from '../../step.js';
import type { AggregationStore, ClaimCheckStore, IdempotentRepository } from '../../stores.js';
import type { AggregateStrategy } from './aggregate.js';
import type { ReplyStrategy } from './common.js';
import type { NamedReduce } from './map-reduce.js';
import type { GatherResult } from './routing.js';

/** The item type of an array, iterable or async iterable body. */
export type ItemOf<T> = T extends readonly (infer E)[] ? E : T extends AsyncIterable<infer E> ? E : T extends Iterable<infer E> ? E : unknown;

export type BodyFunction<T, R> = (body: T, msg: Message<T>) => MaybePromise<R>;

export interface SplitOptions {
  /** Parts processed at once (default 1: in order). */
  parallel?: number;
  /** A failing part goes here (with busbar.error.* headers) and the split goes on. */
  partDeadLetter?: string;
}

export interface AggregateOptions<T, A> {
  /** Correlation key (default: the correlation id, which split parts share with their parent). */
  correlate?: BodyFunction<T, string | number>;
  /** Combine the group's bodies into the output body (default: the array of bodies). */
  combine?: (bodies: T[], msgs: Message<T>[]) => MaybePromise<A>;
  /** A predefined combination instead of `combine`. */
  strategy?: AggregateStrategy;
  /** Complete at this many messages. */
  size?: number;
  /** Complete when all parts of a split arrived. */
  fromSplit?: boolean;
  /** Complete when this holds for the group. */
  predicate?: (bodies: T[], msgs: Message<T>[]) => MaybePromise<boolean>;
  /** Complete a group idle for this long (engine clock). */
  timeoutMs?: number;
  /** Complete every open group this often. */
  intervalMs?: number;
  /** Complete open groups when the route stops (default true). */
  completeOnStop?: boolean;
  /** The group store (default in memory), or the name of one registered on the engine. */
  store?: AggregationStore | string;
  /** Bound on open groups (default 10 000); beyond it the oldest group is completed (`capacity`). */
  maxGroups?: number;
  /** Complete a group this long after its first message, however busy (`deadline`). */
  completionDeadlineMs?: number;
  /**
   * Close a key when its group completes: later messages with it are late arrivals, counted
   * in the route stats (`lateArrivals`) and discarded, or sent to `lateArrivals`. Closed keys
   * are remembered for `ttlMs` (default 5 min), at most `maxKeys` (default 10 000).
   */
  close?: boolean | { ttlMs?: number; maxKeys?: number };
  /** Endpoint late arrivals go to (with `busbar.aggregate.late: true`), instead of being discarded. */
  lateArrivals?: string;
}

export interface ResequenceOptions<T> {
  by: BodyFunction<T, number | string>;
  mode?: 'batch' | 'stream';
  batchSize?: number;
  timeoutMs?: number;
  capacity?: number;
  start?: number;
  reverse?: boolean;
}

export type Strategy<R> = ReplyStrategy | ((replies: Message[], original: Message) => R);

export interface RecipientListOptions<R> {
  parallel?: boolean;
  /** Default `original`: the message goes on unchanged. */
  strategy?: Strategy<R>;
  /** Separator of a computed string of URIs (default ","). */
  delimiter?: string;
}

export interface MulticastOptions<R> {
  parallel?: boolean;
  /** Default `array`: the reply bodies in branch order. */
  strategy?: Strategy<R>;
  shareBody?: boolean;
}

/**
 * A scatter-gather strategy: a name, or a function of the replies, the original message
 * (already carrying the `busbar.scatter.*` headers) and the gather result (each reply with
 * its recipient and index; the failed and timed-out recipients with their error codes).
 */
export type ScatterStrategy<R> = ReplyStrategy | ((replies: Message[], original: Message, gather: GatherResult) => MaybePromise<R>);

export interface ScatterGatherOptions<R> {
  recipients?: string[];
  timeoutMs?: number;
  minReplies?: number;
  strategy?: ScatterStrategy<R>;
  /** Log level of expected partial results (timed-out / failed recipients), default `debug`; they are counted in the route's stats either way. */
  logPartial?: 'debug' | 'info' | 'warn';
}

export interface EnrichOptions<T, U> {
  /** The request body sent (default: the body). */
  request?: BodyFunction<T, unknown>;
  /** Put the reply body under this field. */
  into?: string;
  /** How long to wait for the answer (default: the endpoint's own, e.g. amqp `replyTimeoutMs`). */
  timeoutMs?: number;
  merge?: 'merge' | 'replace' | ((original: T, reply: unknown, msg: Message) => MaybePromise<U>);
}

/** A correlation key: a function of the body and message, or a header's value. */
export type CorrelationKey<T> = BodyFunction<T, string | number> | { header: string };

export interface AwaitReplyOptions<T> {
  /** The waiting message's key (default: its correlation id). */
  correlate?: CorrelationKey<T>;
  /** The key of a message arriving on the reply endpoint (default: read like `correlate`). */
  replyCorrelate?: CorrelationKey<unknown>;
  /** How long to wait (default 30 000 ms); then BUSBAR_ERR_TIMEOUT (retryable), handled by the error policy. */
  timeoutMs?: number;
  /** Send the message here (one-way) once its wait is registered, so even an instant answer is caught. */
  send?: string;
  /** Replies nobody waits for go here (with `busbar.awaitReply.late: true`); default: counted and discarded. */
  lateReplies?: string;
}

export interface ClaimCheckOptions<T> {
  key?: BodyFunction<T, string>;
  store?: ClaimCheckStore | string;
}

export interface IdempotentOptions<T> {
  key?: BodyFunction<T, string | number>;
  repository?: IdempotentRepository | string;
  maxKeys?: number;
  duplicateUri?: string;
  removeOnFailure?: boolean;
}

export interface LoadBalanceOptions {
  strategy?: 'roundRobin' | 'random' | 'weighted' | 'failover';
  weights?: number[];
  roundRobin?: boolean;
  retryableOnly?: boolean;
}

export interface RetryOptions extends RedeliveryPolicy {
  on?: string[];
}

export interface CircuitBreakerStepOptions extends CircuitBreakerOptions {
  name?: string;
}

export interface MapReduceOptions<T, V> {
  /** The items (default: the body). */
  items?: BodyFunction<T, unknown>;
  /** Split text into items on this delimiter. */
  tokenize?: string;
  map?: (item: ItemOf<T> | string) => MaybePromise<Iterable<readonly [string, V]>>;
  reduce?: ((a: V, b: V, key: string) => V) | NamedReduce;
  workers?: { module: string | URL; threads?: number; batchSize?: number };
}
