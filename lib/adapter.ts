import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { BusbarError } from './errors.js';
import type { Message } from './message.js';
import type { MaybePromise } from './step.js';
import { createAjv, didYouMean, formatProblem, SchemaCache, toProblems, type JsonSchema } from './schema.js';
import { parseUri, type ParsedUri } from './uri.js';

/** A resolved endpoint: its URI parsed and its options validated against the adapter's schema. */
export interface Endpoint<O = Record<string, unknown>> extends ParsedUri {
  readonly options: O;
}

/** What the engine offers every consumer and producer. */
export interface AdapterContext {
  readonly logger: Logger;
  readonly clock: Clock;
  /**
   * Per-engine state of this adapter (channel tables, connection pools...), created on
   * first use. Adapters keep no module-level state, so two engines never share by accident.
   */
  state<T>(key: string, init: () => T): T;
  /** Send to any endpoint of the same engine (used by adapters that forward or reply). */
  send(uri: string, msg: Message): Promise<Message | undefined>;
  /**
   * Whether the engine traces (docs/tracing.md). Adapters that must do extra I/O to carry a
   * trace context (a file sidecar) do it only then; header-based ones need not ask.
   */
  readonly tracing?: boolean;
}

/** Status a source reports about its connection to the outside (Benthos' typed signals). */
export type SourceStatus = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'backing-off' | 'ended';

/**
 * Whether a consumer should acknowledge its source after `process` rejected with `err`:
 * true when the error policy dead-lettered the message (it is safe elsewhere) or declared
 * the failure handled. Otherwise nack, so the source keeps the message.
 */
export function shouldAck(err: unknown): boolean {
  const d = (err as { details?: { deadLettered?: unknown; handled?: unknown } } | null)?.details;
  return d?.deadLettered === true || d?.handled === true;
}

/** A route's entry points as an object (see ConsumerContext.processor): its `processNow` and `available`. */
export interface Processor {
  processNow(msg: Message): MaybePromise<Message>;
  available(): number;
}

/** What a consumer gets: its route's entry points. Its functions are bound: a consumer may keep one and call it alone. */
export interface ConsumerContext extends AdapterContext {
  readonly routeId: string;
  /** The route's bound on messages in flight (size prefetch / polls with it). */
  readonly maxInflight: number;
  /**
   * Runs a message through the route. Resolves with the reply (the message at the end of
   * the route) once the route and every output it sent to finished: acknowledge the source
   * then. Rejects with a BusbarError on failure: nack, unless `shouldAck(err)`.
   * Waits while the route is full, which is how backpressure reaches the source.
   */
  process(msg: Message): Promise<Message>;
  /**
   * `process`, except that a route that finished synchronously gives back its reply itself
   * (no promise): a consumer that answers its source (an HTTP response) can do so in the
   * same turn, with no timer or promise of its own. Same contract otherwise.
   */
  processNow(msg: Message): MaybePromise<Message>;
  /**
   * `processNow` and `available` as methods of one object (the route's own):
   * `processor.processNow(msg)`. A consumer that hands over many messages keeps this rather
   * than the functions: a call reads the object alone, not a function and then what it holds
   * (with many routes on one engine, every object a message reads is a cache miss).
   */
  readonly processor: Processor;
  /** In-flight slots free right now. */
  available(): number;
  /** Resolves as soon as a slot is free. */
  whenAvailable(): Promise<void>;
  /** Report the source's connection status (shown in `engine.stats()`). */
  setStatus(status: SourceStatus, error?: unknown): void;
  /**
   * A message the source will not run through the route (a poison message past its
   * delivery limit, a body it cannot decode): the route's error policy dead-letters it with
   * the reason, as it does a failed message. Resolves once dead-lettered (or handled by a
   * rule): acknowledge the source. Rejects when the policy has nowhere to put it: leave it
   * to the source's own mechanism (a broker's dead-letter exchange, say).
   */
  reject(msg: Message, err: BusbarError): Promise<void>;
}

export type ProducerContext = AdapterContext;

export interface Consumer {
  start(): Promise<void>;
  /** Stop taking new messages; messages already handed to `process` still finish. */
  stop(): Promise<void>;
  /** Source-specific figures for `engine.stats()` (e.g. an event log's lag per partition), under `source.details`. */
  stats?(): Record<string, unknown>;
  /** Messages waiting at the source (consumer lag: a queue's depth), where the source knows it; read when metrics are scraped. */
  backlog?(): Promise<number | undefined>;
}

/** How a step asks an endpoint for an answer (`Producer.request`). */
export interface RequestOptions {
  /**
   * How long the step waits for the reply; the producer's own default (e.g. amqp
   * `replyTimeoutMs`) when absent. Transports that can, make the request expire then too
   * (AMQP `expiration`), so a request nobody waits for any more is not processed later.
   */
  timeoutMs?: number;
}

/**
 * A destination. The exchange pattern belongs to the step that uses the producer, never to
 * the message: `send` is one-way (`to`, wire taps, dead letters), `request` asks for an
 * answer (`enrich`, `scatterGather`, `request`, reply-combining strategies, `engine.request`).
 * Nothing a message carries switches a producer from one to the other.
 */
export interface Producer {
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /**
   * Deliver a message one-way. Resolves when the endpoint has it safely (written,
   * confirmed). Transports whose every call has an answer (an HTTP response, a `direct:`
   * route's result) resolve with it and it replaces the route's message; the others
   * resolve with undefined and never wait for a reply.
   * A producer that is done when `send` returns (an in-memory sink, a counter) may return
   * the result itself instead of a promise: the route then goes on synchronously.
   */
  send(msg: Message): Promise<Message | undefined> | Message | undefined;
  /**
   * Request-reply: deliver and resolve with the answer. A producer without `request`
   * cannot answer; asking it for a reply is a route-creation error (REPLY_UNSUPPORTED).
   */
  request?(msg: Message, opts: RequestOptions): Promise<Message>;
  /**
   * Connection status of an output that holds a connection (readiness, `/ready`);
   * `since` is when it last changed (ms since the epoch). Outputs without one are always up.
   */
  status?(): { status: SourceStatus; error?: string; since?: number };
}

/** Whether a producer can answer a request. */
export function canReply(p: Producer): p is Producer & { request(msg: Message, opts: RequestOptions): Promise<Message> } {
  return typeof p.request === 'function';
}

/**
 * One adapter = one scheme. `optionsSchema` is the single source of truth for the
 * endpoint's options: they are validated with it (ajv, strings coerced, defaults applied,
 * unknown options rejected) and the README tables are generated from it.
 */
export interface Adapter<O = Record<string, unknown>> {
  readonly scheme: string;
  /**
   * The kind of adapter when it is registered under a name of its own (`named('amqp-eu',
   * createAmqpAdapter(...))` has scheme `amqp-eu` and type `amqp`). Absent: the scheme.
   */
  readonly type?: string;
  readonly description: string;
  readonly optionsSchema: JsonSchema;
  createConsumer?(endpoint: Endpoint<O>, ctx: ConsumerContext): Consumer;
  createProducer?(endpoint: Endpoint<O>, ctx: ProducerContext): Producer;
  /**
   * Figures this adapter keeps per engine (usage meters, pools), shown under
   * `engine.stats().adapters[scheme]`; `state` reads the adapter's per-engine state without
   * creating it. Return undefined when there is nothing to show.
   */
  stats?(state: <T>(key: string) => T | undefined): Record<string, unknown> | undefined;
}

/** A closed object schema that declares no options at all (`{ type: 'object', properties: {}, additionalProperties: false }`). */
function isOptionless(schema: JsonSchema): boolean {
  for (const k in schema) if (k !== 'type' && k !== 'properties' && k !== 'additionalProperties' && k !== 'description' && k !== 'title') return false;
  const props = schema.properties as object | undefined;
  return props === undefined || Object.keys(props).length === 0;
}

export type Role = 'consumer' | 'producer';

const SCHEME_NAME = /^[a-z][a-z0-9+.-]*$/;

/**
 * One more instance of an adapter under its own scheme: two RabbitMQ brokers as
 * `named('amqp-eu', createAmqpAdapter({ url: EU }))` and `named('amqp-us', ...)`, two
 * databases, two HTTP servers. The instance keeps the adapter's options schema (endpoint
 * options are checked the same way) and gets its own per-engine state (connections, pools,
 * servers) and its own line in `engine.stats().adapters`, because the engine keys both by
 * scheme. `amqp-eu:queue:orders` is then an endpoint of the EU broker.
 */
export function named<O>(name: string, adapter: Adapter<O>): Adapter<O> {
  if (typeof name !== 'string' || !SCHEME_NAME.test(name)) {
    throw new BusbarError('INVALID_OPTION', `adapter name ${JSON.stringify(name)}: a name is used as a URI scheme, so it must be lower-case letters, digits, + . - and start with a letter (e.g. "amqp-eu")`, { details: { name } });
  }
  if (!adapter || typeof adapter.scheme !== 'string') {
    throw new BusbarError('INVALID_OPTION', `adapter "${name}": named() needs an adapter object`, { details: { name } });
  }
  const consumer = adapter.createConsumer;
  const producer = adapter.createProducer;
  // what the adapter was created with (createAmqpAdapter keeps it), so tools that read it
  // (`busbar topology plan`) see a named instance as they see the adapter itself
  const config = (adapter as { readonly config?: unknown }).config;
  return {
    scheme: name,
    type: adapter.type ?? adapter.scheme,
    description: adapter.description,
    optionsSchema: adapter.optionsSchema,
    ...(config !== undefined ? { config } : {}),
    ...(consumer ? { createConsumer: (e: Endpoint<O>, c: ConsumerContext) => consumer.call(adapter, e, c) } : {}),
    ...(producer ? { createProducer: (e: Endpoint<O>, c: ProducerContext) => producer.call(adapter, e, c) } : {}),
  };
}

let optionSchemas: SchemaCache | undefined;

/**
 * Compiled option validators, shared by all registries: compiling is the expensive part of
 * creating an engine, and a schema object compiles to the same validator whoever asks.
 */
function sharedOptionSchemas(): SchemaCache {
  return (optionSchemas ??= new SchemaCache(() => createAjv({ coerceTypes: true })));
}

/** Adapters by scheme; an instance per engine (cloneable), never a module global. */
export class AdapterRegistry {
  readonly #adapters = new Map<string, Adapter>();
  readonly #schemas: SchemaCache;

  constructor(adapters: Iterable<Adapter> = [], schemas = sharedOptionSchemas()) {
    this.#schemas = schemas;
    for (const a of adapters) this.register(a);
  }

  register(adapter: Adapter): this {
    if (!adapter || typeof adapter.scheme !== 'string' || typeof adapter.optionsSchema !== 'object') {
      throw new BusbarError('INVALID_OPTION', 'an adapter needs a scheme and an optionsSchema', { details: { adapter: String(adapter?.scheme) } });
    }
    const schema = adapter.optionsSchema as { type?: unknown; additionalProperties?: unknown };
    if (schema.type !== 'object' || schema.additionalProperties !== false) {
      throw new BusbarError('INVALID_OPTION', `adapter "${adapter.scheme}": optionsSchema must be an object schema with additionalProperties: false`, { details: { scheme: adapter.scheme } });
    }
    this.#adapters.set(adapter.scheme, adapter as Adapter);
    return this;
  }

  get(scheme: string): Adapter | undefined {
    return this.#adapters.get(scheme);
  }

  has(scheme: string): boolean {
    return this.#adapters.has(scheme);
  }

  schemes(): string[] {
    return [...this.#adapters.keys()];
  }

  list(): Adapter[] {
    return [...this.#adapters.values()];
  }

  clone(): AdapterRegistry {
    return new AdapterRegistry(this.#adapters.values(), this.#schemas);
  }

  /**
   * Parse and validate an endpoint URI for a role. Every problem is reported with the
   * route, the endpoint, the option, what was expected and the nearest valid name.
   */
  resolve(uri: string, role: Role, where: { routeId?: string } = {}): { adapter: Adapter; endpoint: Endpoint } {
    const routePart = where.routeId ? `route "${where.routeId}": ` : '';
    const parsed = parseUri(uri);
    const adapter = this.#adapters.get(parsed.scheme);
    if (!adapter) {
      const hint = didYouMean(parsed.scheme, this.#adapters.keys());
      throw new BusbarError('UNKNOWN_SCHEME', `${routePart}endpoint "${uri}": no adapter for scheme "${parsed.scheme}"${hint ? ` (${hint})` : ''}; known schemes: ${this.schemes().join(', ')}`, {
        details: { routeId: where.routeId, uri, scheme: parsed.scheme, suggestion: hint },
      });
    }
    const can = role === 'consumer' ? adapter.createConsumer : adapter.createProducer;
    if (!can) {
      throw new BusbarError('UNSUPPORTED_ENDPOINT', `${routePart}endpoint "${uri}": the ${parsed.scheme} adapter cannot be used as a ${role === 'consumer' ? 'source (from)' : 'destination (to)'}`, {
        details: { routeId: where.routeId, uri, role },
      });
    }
    const options: Record<string, unknown> = { ...parsed.params };
    // an adapter without options given none: nothing to check or default (and no validator to compile)
    if (isOptionless(adapter.optionsSchema) && Object.keys(options).length === 0) return { adapter, endpoint: { ...parsed, options } };
    const validate = this.#schemas.get(adapter.optionsSchema);
    if (!validate(options)) {
      const problems = toProblems(validate.errors, adapter.optionsSchema, '', 'option');
      const first = problems[0];
      const option = first?.path.split('/')[1];
      throw new BusbarError('INVALID_OPTION', `${routePart}endpoint "${uri}": ${problems.map((p) => formatProblem({ ...p, path: p.path.replace(/^\//, 'option ') })).join('; ')}`, {
        details: { routeId: where.routeId, uri, option, suggestion: first?.suggestion, problems },
      });
    }
    return { adapter, endpoint: { ...parsed, options } };
  }
}
