import { BusbarError } from './errors.js';
import type { HeaderValue, Message } from './message.js';
import type { ErrorPolicy, ErrorRule, RedeliveryPolicy, RouteDefinition } from './model.js';
import type { MaybePromise, StepDefinition } from './step.js';
import type { ChoiceArgs, Computed, RequestArgs, SetHeaderArgs } from './steps/core.js';
import type { AggregateArgs, ResequenceArgs } from './steps/patterns/aggregate.js';
import type { Combiner } from './steps/patterns/common.js';
import type { ClaimCheckArgs, EnrichArgs, IdempotentArgs } from './steps/patterns/content.js';
import type { MapReduceArgs } from './steps/patterns/map-reduce.js';
import type { AggregateOptions, AwaitReplyOptions, BodyFunction, CircuitBreakerStepOptions, ClaimCheckOptions, EnrichOptions, IdempotentOptions, ItemOf, LoadBalanceOptions, MapReduceOptions, MulticastOptions, RecipientListOptions, ResequenceOptions, RetryOptions, ScatterGatherOptions, SplitOptions } from './steps/patterns/options.js';
import type { CircuitBreakerArgs, RetryArgs, TimeoutArgs } from './steps/patterns/resilience.js';
import type { DelayArgs, DynamicRouterArgs, LoadBalanceArgs, MulticastArgs, RecipientListArgs, RoutingSlipArgs, ScatterGatherArgs, ThrottleArgs } from './steps/patterns/routing.js';
import type { SplitArgs } from './steps/patterns/split.js';
import type { AwaitReplyArgs } from './steps/patterns/await-reply.js';
import type { Static, TSchema } from '@sinclair/typebox';
import type { SoapVersion } from './codecs/soap.js';
import type { ContractOptions, RouteContract } from './contracts.js';
import { compileExpression } from './expression.js';
import type { JsonSchema } from './schema.js';
import type { ConvertArgs, FormatArgs, HeaderSpec, SetBodyArgs, SetHeadersArgs, SoapFaultOnErrorArgs, ValidateArgs } from './steps/transform.js';

const BRAND = Symbol.for('busbar.RouteBuilder');

export type Predicate<T> = (body: T, msg: Message<T>) => MaybePromise<boolean>;

/** A branch: a fragment that starts with body type T and ends with R, or a function building one. */
export type Branch<T, R> = RouteBuilder<R, T> | ((b: RouteBuilder<T, T>) => RouteBuilder<R, T>);

function branchSteps<T, R>(branch: Branch<T, R>): StepDefinition[] {
  const b = typeof branch === 'function' ? branch(new RouteBuilder<T, T>(undefined)) : branch;
  return [...b.steps];
}

export class ChoiceBuilder<T, R> {
  readonly whens: ChoiceArgs['whens'] = [];
  otherwiseSteps: StepDefinition[] | undefined;
  onNoMatchMode: ChoiceArgs['onNoMatch'];

  /** First match wins. */
  when(predicate: Predicate<T>, branch: Branch<T, R>): this {
    this.whens.push({ predicate: { fn: predicate as Computed['fn'] }, steps: branchSteps(branch) });
    return this;
  }

  otherwise(branch: Branch<T, R>): this {
    this.otherwiseSteps = branchSteps(branch);
    return this;
  }

  /**
   * Without `otherwise`, a message that matches nothing is an error (`BUSBAR_ERR_NO_MATCH`)
   * unless this says to `continue` with the rest of the route or to `stop` here.
   */
  onNoMatch(mode: 'error' | 'continue' | 'stop'): this {
    this.onNoMatchMode = mode;
    return this;
  }
}

type Settings = Omit<RouteDefinition, 'from' | 'steps' | 'id'> & { id?: string };

/** The property a literal endpoint URI's `mergeInto=<name>` option (db: queries) puts the result under. */
export type MergeIntoKey<U extends string> = U extends `${string}mergeInto=${infer K}&${string}` ? K : U extends `${string}mergeInto=${infer K}` ? K : never;

/** The body after `to(uri)`: `R`, or the body with the `mergeInto` property when the URI has one. */
export type AfterTo<T, U extends string, R> = [MergeIntoKey<U>] extends [never] ? R : Omit<T, MergeIntoKey<U>> & { [P in MergeIntoKey<U>]: unknown };

/**
 * The typed fluent route builder. `T` is the body type at this point of the route, `In`
 * the type a fragment starts with. Each step's output type is the next step's input type,
 * so a step that expects another body type does not compile.
 *
 * Immutable: every step and setting returns a new builder and leaves this one as it was,
 * so a shared prefix (`const front = from(...).validate(S)`) can start several routes
 * (`front.to(a)`, `front.scatterGather(...)`) without one seeing the other's steps.
 */
export class RouteBuilder<T, In = unknown> {
  /** Phantom members: make the body types part of the builder's structural type. */
  declare readonly __in?: (input: In) => void;
  declare readonly __out?: () => T;
  readonly [BRAND] = true;

  readonly #from: string | undefined;
  readonly #steps: readonly StepDefinition[];
  readonly #settings: Readonly<Settings>;

  constructor(from: string | undefined, steps: readonly StepDefinition[] = [], settings: Readonly<Settings> = {}) {
    this.#from = from;
    this.#steps = steps;
    this.#settings = settings;
  }

  /** This route with other settings (a new builder). */
  #with(settings: Partial<Settings>): this {
    return new RouteBuilder<T, In>(this.#from, this.#steps, { ...this.#settings, ...settings }) as this;
  }

  get steps(): readonly StepDefinition[] {
    return this.#steps;
  }

  get source(): string | undefined {
    return this.#from;
  }

  /** Append any registered step kind (plugins); the body type is the caller's to state. */
  step<U = T>(kind: string, args: unknown): RouteBuilder<U, In> {
    return new RouteBuilder<U, In>(this.#from, [...this.#steps, { kind, args }], this.#settings);
  }

  // ------------------------------------------------------------ route settings
  routeId(id: string): this {
    return this.#with({ id });
  }

  description(text: string): this {
    return this.#with({ description: text });
  }

  /** Bound on messages in flight in this route; when full, the source stops taking messages. */
  maxInflight(n: number): this {
    if (!Number.isInteger(n) || n < 1) throw new BusbarError('INVALID_ROUTE', `maxInflight must be a positive integer, got ${n}`);
    return this.#with({ maxInflight: n });
  }

  /** Record the steps each message passes, with times, in the `busbar.history` header. */
  history(on = true): this {
    return this.#with({ history: on });
  }

  errorPolicy(policy: ErrorPolicy): this {
    return this.#with({ errorPolicy: { ...this.#settings.errorPolicy, ...policy } });
  }

  deadLetter(uri: string): this {
    return this.errorPolicy({ deadLetter: uri });
  }

  redelivery(policy: RedeliveryPolicy): this {
    return this.errorPolicy({ redelivery: policy });
  }

  /** A rule for some error codes (`BUSBAR_ERR_...`) or error class names; first match wins. */
  onError(codes: string | string[], rule: ErrorRule): this {
    const on = [...(this.#settings.errorPolicy?.on ?? []), { codes: Array.isArray(codes) ? codes : [codes], ...rule }];
    return this.errorPolicy({ on });
  }

  // ------------------------------------------------------------ steps
  /**
   * Send to an endpoint, one-way: `to` never asks for an answer, whatever entered the route
   * (an amqp endpoint is published to and the route goes on). Endpoints whose every call has
   * a response (http, direct) give it and it replaces the body: state its type as `R`.
   */
  to<R = T, U extends string = string>(uri: U): RouteBuilder<AfterTo<T, U, R>, In> {
    return this.step<AfterTo<T, U, R>>('to', { uri });
  }

  /**
   * Request-reply: send to an endpoint and wait for its answer, which replaces the message
   * (state its body type as `R`). An endpoint that cannot reply (queue:, topic:, file:...)
   * fails when the route is created (BUSBAR_ERR_REPLY_UNSUPPORTED); over amqp the request
   * expires on the broker after `timeoutMs` (default: the endpoint's `replyTimeoutMs`).
   */
  request<R = unknown>(uri: string, opts: { timeoutMs?: number } = {}): RouteBuilder<R, In> {
    return this.step<R>('request', { uri, timeoutMs: opts.timeoutMs } satisfies RequestArgs);
  }

  /** Replace the body with `fn(body)`; the next step receives what `fn` returns. */
  transform<U>(fn: (body: T, msg: Message<T>) => U | Promise<U>): RouteBuilder<U, In> {
    return this.step<U>('transform', { fn: fn as Computed['fn'] } satisfies Computed);
  }

  /** Work on the whole message (headers, ids); return the new message. */
  process<U = T>(fn: (msg: Message<T>) => MaybePromise<Message<U>>): RouteBuilder<U, In> {
    return this.step<U>('process', { fn });
  }

  /** Message filter: only messages for which `predicate` holds go on. */
  filter(predicate: Predicate<T>): RouteBuilder<T, In> {
    return this.step<T>('filter', { fn: predicate } as Computed);
  }

  /** Content-based router. Branches must end with the body type `R` (by default unchanged). */
  choice<R = T>(build: (c: ChoiceBuilder<T, R>) => ChoiceBuilder<T, R>): RouteBuilder<R, In> {
    const c = build(new ChoiceBuilder<T, R>());
    const args: ChoiceArgs = { whens: c.whens, otherwise: c.otherwiseSteps, onNoMatch: c.onNoMatchMode };
    return this.step<R>('choice', args);
  }

  setHeader(name: string, value: HeaderValue | ((body: T, msg: Message<T>) => MaybePromise<HeaderValue>)): RouteBuilder<T, In> {
    const args: SetHeaderArgs = typeof value === 'function' ? { name, computed: { fn: value as Computed['fn'] } } : { name, value };
    return this.step<T>('setHeader', args);
  }

  /** Set a header from a `{template}` (`{body.id}`, `{header.x}`, `{date}`...). */
  setHeaderTemplate(name: string, template: string): RouteBuilder<T, In> {
    return this.step<T>('setHeader', { name, template } satisfies SetHeaderArgs);
  }

  removeHeaders(...names: string[]): RouteBuilder<T, In> {
    return this.step<T>('removeHeaders', { names });
  }

  log(template: string, level: 'trace' | 'debug' | 'info' | 'warn' | 'error' = 'info'): RouteBuilder<T, In> {
    return this.step<T>('log', { message: template, level });
  }

  /** Decode the body with a codec (`json`, `text`, `xml`, ...); state the decoded type as `U`. */
  unmarshal<U = unknown>(format: string): RouteBuilder<U, In> {
    return this.step<U>('unmarshal', { format });
  }

  /** Encode the body with a codec; the body becomes a string (a Buffer for `bytes`). */
  marshal(format: 'bytes'): RouteBuilder<Buffer, In>;
  marshal(format: string): RouteBuilder<string, In>;
  marshal(format: string): RouteBuilder<string | Buffer, In> {
    return this.step<string>('marshal', { format });
  }

  // ------------------------------------------------------------ patterns (EIPs)
  /** Splitter: each item of the body (array, iterable, async iterable) goes on as its own message. */
  split(opts?: SplitOptions): RouteBuilder<ItemOf<T>, In>;
  /** Splitter over what `items` returns (an array, iterable or async iterable, streamed). */
  split<I>(items: BodyFunction<T, readonly I[] | Iterable<I> | AsyncIterable<I>>, opts?: SplitOptions): RouteBuilder<I, In>;
  split(a?: SplitOptions | BodyFunction<T, unknown>, b?: SplitOptions): RouteBuilder<unknown, In> {
    const opts = typeof a === 'function' ? b : a;
    const args: SplitArgs = { ...opts };
    if (typeof a === 'function') args.items = { fn: a as Computed['fn'] };
    return this.step('split', args);
  }

  /** Split text (a string, Buffer, or stream of chunks) on a delimiter, streaming: `tokenize('\n')` gives lines. */
  tokenize(delimiter: string, opts?: SplitOptions): RouteBuilder<string, In> {
    return this.step<string>('split', { ...opts, tokenize: delimiter } satisfies SplitArgs);
  }

  /** Aggregator: emits each completed group (body `A`, default `T[]`) as a new message. */
  aggregate<A = T[]>(opts: AggregateOptions<T, A>): RouteBuilder<A, In> {
    const { correlate, combine, predicate, ...rest } = opts;
    const args: AggregateArgs = { ...rest };
    if (correlate) args.correlate = { fn: correlate as Computed['fn'] };
    if (combine) args.combine = combine as AggregateArgs['combine'];
    if (predicate) args.predicate = predicate as AggregateArgs['predicate'];
    return this.step<A>('aggregate', args);
  }

  /** Resequencer: re-emits messages in the order of `by` (batch or stream mode). */
  resequence(opts: ResequenceOptions<T>): RouteBuilder<T, In> {
    const { by, mode, ...rest } = opts;
    return this.step<T>('resequence', { ...rest, mode: mode ?? 'batch', by: { fn: by as Computed['fn'] } } satisfies ResequenceArgs);
  }

  /** Recipient list: a static list of URIs, or a function computing them per message. */
  recipientList<R = T>(recipients: readonly string[] | BodyFunction<T, string | readonly string[] | undefined | null>, opts: RecipientListOptions<R> = {}): RouteBuilder<R, In> {
    const args: RecipientListArgs = { parallel: opts.parallel, delimiter: opts.delimiter, strategy: opts.strategy as Combiner | undefined };
    if (typeof recipients === 'function') args.compute = { fn: recipients as Computed['fn'] };
    else args.recipients = [...recipients];
    return this.step<R>('recipientList', args);
  }

  /** Multicast: each branch gets its own copy; replies are combined (default: array of reply bodies). */
  multicast<R = unknown[]>(branches: ReadonlyArray<Branch<T, unknown>>, opts: MulticastOptions<R> = {}): RouteBuilder<R, In> {
    return this.step<R>('multicast', { branches: branches.map((b) => branchSteps(b)), parallel: opts.parallel, shareBody: opts.shareBody, strategy: opts.strategy as Combiner | undefined } satisfies MulticastArgs);
  }

  /** Scatter-gather: ask recipients / branches in parallel, gather replies until a timeout (partial results allowed). */
  scatterGather<R = unknown[]>(opts: ScatterGatherOptions<R> & { branches?: ReadonlyArray<Branch<T, unknown>> }): RouteBuilder<R, In> {
    return this.step<R>('scatterGather', {
      recipients: opts.recipients,
      branches: opts.branches?.map((b) => branchSteps(b)),
      timeoutMs: opts.timeoutMs,
      minReplies: opts.minReplies,
      strategy: opts.strategy as ScatterGatherArgs['strategy'],
      logPartial: opts.logPartial,
    } satisfies ScatterGatherArgs);
  }

  /**
   * Return address / correlation: wait (up to `timeoutMs`) for the message correlated with
   * this one to arrive on `uri` (consumed while the route runs), and go on with its body
   * (state its type as `R`). For routes fed by a request-reply source (http, SOAP, JSON-RPC,
   * amqp RPC) whose answer comes back on another channel.
   */
  awaitReply<R = unknown>(uri: string, opts: AwaitReplyOptions<T> = {}): RouteBuilder<R, In> {
    const key = (c: AwaitReplyOptions<T>['correlate'] | AwaitReplyOptions<unknown>['replyCorrelate']): AwaitReplyArgs['correlate'] =>
      c === undefined ? undefined : typeof c === 'function' ? { fn: c as Computed['fn'] } : { header: c.header };
    return this.step<R>('awaitReply', { uri, correlate: key(opts.correlate), replyCorrelate: key(opts.replyCorrelate), timeoutMs: opts.timeoutMs, send: opts.send, lateReplies: opts.lateReplies } satisfies AwaitReplyArgs);
  }

  /** Wire tap: a copy goes to `uri` as its own exchange; the main flow does not wait for it. */
  wireTap(uri: string): RouteBuilder<T, In> {
    return this.step<T>('wireTap', { uri });
  }

  /** Content enricher: ask `uri` for an answer (request-reply, from any source) and merge it into the body. */
  enrich<K extends string, R = unknown>(uri: string, opts: EnrichOptions<T, never> & { into: K; merge?: never }): RouteBuilder<Omit<T, K> & { [P in K]: R }, In>;
  /** Content enricher: the body after the step is `U` (the merge function's result, or the merged object). */
  enrich<U = T>(uri: string, opts?: EnrichOptions<T, U>): RouteBuilder<U, In>;
  enrich<U = T>(uri: string, opts: EnrichOptions<T, U> = {}): RouteBuilder<U, In> {
    const args: EnrichArgs = { uri, into: opts.into, merge: opts.merge as EnrichArgs['merge'], timeoutMs: opts.timeoutMs };
    if (opts.request) args.request = { fn: opts.request as Computed['fn'] };
    return this.step<U>('enrich', args);
  }

  /** Claim check in: park the body in a store; the message carries the key (busbar.claimCheck) and a null body. */
  claimCheckIn(opts: ClaimCheckOptions<T> = {}): RouteBuilder<null, In> {
    return this.step<null>('claimCheck', { operation: 'checkIn', store: opts.store, key: opts.key ? { fn: opts.key as Computed['fn'] } : undefined } satisfies ClaimCheckArgs);
  }

  /** Claim check out: restore the parked body (state its type as `U`); `keep` leaves it in the store. */
  claimCheckOut<U = unknown>(opts: ClaimCheckOptions<T> & { keep?: boolean } = {}): RouteBuilder<U, In> {
    return this.step<U>('claimCheck', { operation: opts.keep ? 'peek' : 'checkOut', store: opts.store, key: opts.key ? { fn: opts.key as Computed['fn'] } : undefined } satisfies ClaimCheckArgs);
  }

  /** Routing slip: the endpoints listed in a header (default busbar.routingSlip) or computed, in order. */
  routingSlip(slip: string | BodyFunction<T, string | readonly string[]> = 'busbar.routingSlip'): RouteBuilder<T, In> {
    return this.step<T>('routingSlip', typeof slip === 'string' ? { header: slip } : { compute: { fn: slip as Computed['fn'] } } satisfies RoutingSlipArgs);
  }

  /** Dynamic router: `next` gives the next endpoint(s) after each hop, nothing when done. */
  dynamicRouter<R = T>(next: (body: unknown, msg: Message) => MaybePromise<string | readonly string[] | undefined | null>, opts: { maxHops?: number } = {}): RouteBuilder<R, In> {
    return this.step<R>('dynamicRouter', { compute: { fn: next as Computed['fn'] }, maxHops: opts.maxHops } satisfies DynamicRouterArgs);
  }

  /** Load balancer over endpoints: round robin (default), random, weighted, failover. */
  loadBalance<R = T>(targets: readonly string[], opts: LoadBalanceOptions = {}): RouteBuilder<R, In> {
    return this.step<R>('loadBalance', { ...opts, targets: [...targets] } satisfies LoadBalanceArgs);
  }

  /** Throttler: at most `max` messages per `periodMs`; the rest wait (backpressure), none is dropped. */
  throttle(max: number, periodMs: number): RouteBuilder<T, In> {
    return this.step<T>('throttle', { max, periodMs } satisfies ThrottleArgs);
  }

  /** Delayer: hold each message `ms` (or a computed number of) milliseconds. */
  delay(ms: number | BodyFunction<T, number>): RouteBuilder<T, In> {
    return this.step<T>('delay', (typeof ms === 'number' ? { ms } : { compute: { fn: ms as Computed['fn'] } }) satisfies DelayArgs);
  }

  /** Idempotent consumer: skip (or divert) messages whose key was seen before. */
  idempotent(opts: IdempotentOptions<T> = {}): RouteBuilder<T, In> {
    const { key, ...rest } = opts;
    return this.step<T>('idempotent', { ...rest, key: key ? { fn: key as Computed['fn'] } : undefined } satisfies IdempotentArgs);
  }

  /** Step-level redelivery: re-run only `branch` on failure, with backoff, before the route's policy sees the error. */
  retry<R = T>(policy: RetryOptions, branch: Branch<T, R>): RouteBuilder<R, In> {
    return this.step<R>('retry', { ...policy, steps: branchSteps(branch) } satisfies RetryArgs);
  }

  /** Time limit on `branch`: past `ms` the message fails with BUSBAR_ERR_TIMEOUT. */
  timeout<R = T>(ms: number, branch: Branch<T, R>): RouteBuilder<R, In> {
    return this.step<R>('timeout', { ms, steps: branchSteps(branch) } satisfies TimeoutArgs);
  }

  /** Circuit breaker around `branch`; `fallback` runs when it is open or `branch` failed. */
  circuitBreaker<R = T>(opts: CircuitBreakerStepOptions, branch: Branch<T, R>, fallback?: Branch<T, R>): RouteBuilder<R, In> {
    return this.step<R>('circuitBreaker', { ...opts, steps: branchSteps(branch), fallback: fallback ? branchSteps(fallback) : undefined } satisfies CircuitBreakerArgs);
  }

  /** Map/reduce over the body's items; the body becomes `{ key: value }`. */
  mapReduce<V>(opts: MapReduceOptions<T, V>): RouteBuilder<Record<string, V>, In> {
    const { items, ...rest } = opts;
    const args: MapReduceArgs = { ...(rest as Omit<MapReduceArgs, 'items'>) };
    if (items) args.items = { fn: items as Computed['fn'] };
    return this.step<Record<string, V>>('mapReduce', args);
  }


  // ------------------------------------------------------------ transformation, codecs, contracts
  /**
   * Convert the body between formats (`xml`, `json`, `soap`, `soap12`, `csv`, `text`, `bytes`,
   * `auto` = by content type). Text or bytes in `from` are decoded, data passes as it is;
   * `to: 'json'` gives JSON *data* (state its type as `U`, or follow with `validate(Schema)`),
   * any other target gives text in that format with the content-type header set.
   */
  convert<U = unknown>(from: string, to: 'json' | 'data' | 'object', options?: ConvertArgs['options']): RouteBuilder<U, In>;
  convert(from: string, to: 'bytes', options?: ConvertArgs['options']): RouteBuilder<Buffer, In>;
  convert(from: string, to: string, options?: ConvertArgs['options']): RouteBuilder<string, In>;
  convert(from: string, to: string, options?: ConvertArgs['options']): RouteBuilder<unknown, In> {
    return this.step('convert', { from, to, options } satisfies ConvertArgs);
  }

  /** `unmarshal` with codec options: `.unmarshalWith<Invoice>('xml', { arrays: ['Invoice.cac:InvoiceLine'] })`. */
  unmarshalWith<U = unknown>(format: string, options: Record<string, unknown>): RouteBuilder<U, In> {
    return this.step<U>('unmarshal', { format, options } satisfies FormatArgs);
  }

  /** `marshal` with codec options: `.marshalWith('xml', { indent: 2 })`. */
  marshalWith(format: string, options: Record<string, unknown>): RouteBuilder<string, In> {
    return this.step<string>('marshal', { format, options } satisfies FormatArgs);
  }

  /**
   * Check the body against a schema (ajv, compiled once). With a TypeBox schema the body
   * type after this step is `Static<typeof schema>`: contract and type come from one
   * declaration. A violation (`BUSBAR_ERR_VALIDATION_FAILED`, every problem with its JSON
   * pointer) goes through the route's error policy, so to the dead-letter endpoint.
   */
  validate<S extends TSchema>(schema: S, options?: Omit<ContractOptions, 'details'>): RouteBuilder<Static<S>, In>;
  validate<U = T>(schema: JsonSchema, options?: Omit<ContractOptions, 'details'>): RouteBuilder<U, In>;
  validate(schema: TSchema | JsonSchema, options: Omit<ContractOptions, 'details'> = {}): RouteBuilder<unknown, In> {
    return this.step('validate', { ...options, schema: schema as JsonSchema } satisfies ValidateArgs);
  }

  /** Route-level contracts: the body the source delivers (`input`) and the body at the end (`output`). */
  contract(contract: RouteContract): this {
    return this.#with({ contract });
  }

  /** Set several headers: constants, or functions of the body. */
  setHeaders(headers: Record<string, HeaderValue | ((body: T, msg: Message<T>) => MaybePromise<HeaderValue>)>): RouteBuilder<T, In> {
    const specs: Record<string, HeaderSpec> = {};
    for (const [name, v] of Object.entries(headers)) specs[name] = typeof v === 'function' ? { computed: { fn: v as Computed['fn'] } } : { value: v };
    return this.step<T>('setHeaders', { headers: specs } satisfies SetHeadersArgs);
  }

  /** Copy a value of the body into a header: a JSON pointer (`/order/id`) or a dotted path (`order.id`). */
  copyHeaderFromBody(header: string, path: string): RouteBuilder<T, In> {
    return this.step<T>('setHeaders', { headers: { [header]: { fromBody: path } } } satisfies SetHeadersArgs);
  }

  /** Replace the body with a constant. */
  setBody<U>(value: U): RouteBuilder<U, In> {
    return this.step<U>('setBody', { value } satisfies SetBodyArgs);
  }

  /** Replace the body with a `{template}` string (`{body.id}`, `{header.x}`, `{date}`...). */
  setBodyTemplate(template: string): RouteBuilder<string, In> {
    return this.step<string>('setBody', { template } satisfies SetBodyArgs);
  }

  /** Map the body with a JSONata expression, compiled now (a syntax error throws `BUSBAR_ERR_EXPRESSION` here). */
  jsonata<U = unknown>(expression: string): RouteBuilder<U, In> {
    return this.step<U>('transform', { expr: compileExpression(expression) } satisfies Computed);
  }

  /**
   * From here on, a failure becomes a SOAP Fault reply (Client/Sender for bad requests,
   * Server/Receiver otherwise, the busbar code in the detail) instead of failing the exchange.
   * `auto` answers in the version of the request.
   */
  soapFaultOnError(version: SoapVersion | 'auto' = 'auto', opts: { reason?: string } = {}): RouteBuilder<T, In> {
    return this.step<T>('soapFaultOnError', { version, reason: opts.reason } satisfies SoapFaultOnErrorArgs);
  }


  // ------------------------------------------------------------ adapters' steps (db outbox, ...)
  /**
   * Transactional outbox (db adapter): run `statements` (named parameters `:body.id`...) and
   * store the message in an outbox table, in one transaction; `from('db:<db>?outbox=<table>')`
   * relays it. `db` is `sqlite:<file>`, `postgres:<connection>` or `<connection>`.
   */
  outbox(args: { db: string; statements?: string | string[]; table?: string; topic?: string }): RouteBuilder<T, In> {
    return this.step<T>('outbox', args);
  }

  // ------------------------------------------------------------ model
  /** The internal route model. `id` is assigned by the engine when not set. */
  toDefinition(defaultId?: string): RouteDefinition {
    if (this.#from === undefined) {
      throw new BusbarError('INVALID_ROUTE', 'a route needs a source: start it with from(uri)', { details: {} });
    }
    const id = this.#settings.id ?? defaultId;
    if (id === undefined) throw new BusbarError('INVALID_ROUTE', `route from "${this.#from}" has no id`);
    return { ...this.#settings, id, from: this.#from, steps: [...this.#steps] };
  }
}

export function isRouteBuilder(v: unknown): v is RouteBuilder<unknown, unknown> {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[BRAND] === true;
}

/** Start a route at an endpoint; `T` is the body type the source delivers. */
export function from<T = unknown>(uri: string): RouteBuilder<T, T> {
  return new RouteBuilder<T, T>(uri);
}

/** A fragment (for branches) that starts with body type `T`. */
export function pipe<T>(): RouteBuilder<T, T> {
  return new RouteBuilder<T, T>(undefined);
}

/** A fragment that sends to an endpoint: `.when(pred, to('direct:big'))`. */
export function to<T>(uri: string): RouteBuilder<T, T> {
  return pipe<T>().to<T>(uri);
}
