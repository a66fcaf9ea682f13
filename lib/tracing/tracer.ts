import type { Context, Link, Span, SpanContext, Tracer, TracerProvider } from '@opentelemetry/api';
import { isBusbarError } from '../errors.js';
import { EMPTY_HEADERS, withBodyAndHeaders, type HeaderValue, type Message } from '../message.js';
import { lazy } from '../lazy.js';
import { isPromise, type MaybePromise, type Next } from '../step.js';
import { formatTraceparent, incomingParent, INCOMING_PARENT, INCOMING_STATE, parseTraceparent, TRACE_HEADERS } from './context.js';
import { consumerSpan, producerSpan, type Attributes, type EndpointSpan, type SpanKindName } from './semconv.js';

/** The OpenTelemetry API, loaded when the first engine with tracing on is created. */
const otel = lazy<typeof import('@opentelemetry/api')>('@opentelemetry/api');

/** `tracing` of the engine options: `true` for the globally registered tracer provider, or these. */
export interface TracingOptions {
  /**
   * Where spans go. Default: the global provider (`trace.getTracerProvider()`) that an
   * OpenTelemetry SDK registers (`NodeTracerProvider#register()`, `NodeSDK#start()`); with no
   * SDK registered that is the API's no-op provider and spans cost next to nothing.
   */
  tracerProvider?: TracerProvider;
  /** Instrumentation scope name (default `busbar`). */
  name?: string;
}

/** What step kinds get when the engine traces (`CompileContext.tracing`): a span around part of a message's way. */
export interface StepTracing {
  /**
   * Run `fn` on `msg` inside a span of its own: a child of the message's span, or, with
   * `newTrace`, the root of a new trace linked to the message's span (a split part). The
   * message `fn` gets carries the new span's context.
   */
  run(msg: Message, span: { name: string; attributes?: Attributes; newTrace?: boolean }, fn: Next): MaybePromise<Message>;
}

const INVALID_TRACE_ID = '0'.repeat(32);
const INVALID_SPAN_ID = '0'.repeat(16);

const KIND: Record<SpanKindName, number> = { INTERNAL: 0, SERVER: 1, CLIENT: 2, PRODUCER: 3, CONSUMER: 4 };
const STATUS_ERROR = 2;

/**
 * The engine's tracer: a span per route exchange (CONSUMER, or SERVER for an HTTP source),
 * one per output (PRODUCER / CLIENT), parented through the message header
 * `busbar.trace.parent` (see ./context.ts), so the context survives every in-memory hop,
 * queue and aggregation store without a context manager.
 */
export class EngineTracer implements StepTracing {
  readonly #tracer: Tracer;
  readonly #consumers = new Map<string, EndpointSpan>();
  /** Whether spans go nowhere now: the global provider with no SDK registered behind it. */
  readonly #noop: () => boolean;

  constructor(opts: TracingOptions, version: string) {
    const api = otel();
    const provider = opts.tracerProvider ?? api.trace.getTracerProvider();
    const name = opts.name ?? 'busbar';
    this.#tracer = provider.getTracer(name, version);
    // the API's proxy hands out no-op spans until an SDK registers (which may happen later):
    // while it has no delegate, a message that carries no trace context needs no span at all
    // (a no-op span of no parent has an invalid context, which the message would not carry)
    if (provider instanceof api.ProxyTracerProvider && provider.getDelegateTracer(name, version) === undefined) {
      const none = provider.getDelegate();
      this.#noop = () => provider.getDelegate() === none;
    } else this.#noop = () => false;
  }

  /** The last headers object found untraced: steps share one between messages (a marshal step's content type). */
  #lastUntraced: Message['headers'] = EMPTY_HEADERS;

  #untraced(headers: Message['headers']): boolean {
    // headers are never changed in place: an object found untraced stays so. The empty
    // object is checked apart, so it never takes the one cache slot from a shared one
    // (a message sent with no headers, then marshalled, would otherwise alternate the two)
    if (headers === this.#lastUntraced || headers === EMPTY_HEADERS) return true;
    if (!untraced(headers)) return false;
    this.#lastUntraced = headers;
    return true;
  }

  /** A route exchange: the span starts now and ends when `run`'s promise settles. */
  exchange(routeId: string, from: string, type: string, msg: Message, run: (m: Message) => Promise<Message>): Promise<Message> {
    if (this.#noop() && this.#untraced(msg.headers)) return run(msg);
    let desc = this.#consumers.get(routeId);
    if (desc === undefined || (desc as { from?: string }).from !== from) {
      desc = consumerSpan(from, type, routeId);
      (desc as { from?: string }).from = from;
      this.#consumers.set(routeId, desc);
    }
    const api = otel();
    const parent = this.#parentOf(msg.headers) ?? api.ROOT_CONTEXT;
    const links = linksOf(msg.headers[TRACE_HEADERS.links]);
    const span = this.#tracer.startSpan(desc.name(msg), spanOptions(KIND[desc.kind]!, desc, msg, links), parent);
    const active = api.trace.setSpan(parent, span);
    const traced = this.#carrying(msg, span.spanContext(), active, true);
    let r: Promise<Message>;
    try {
      r = api.context.with(active, run, undefined, traced);
    } catch (e) {
      r = Promise.reject(e);
    }
    return r.then(
      (reply) => {
        span.end();
        return reply;
      },
      (err: unknown) => {
        failed(span, err);
        span.end();
        throw err;
      },
    );
  }

  /** The send function of an output, traced: a PRODUCER / CLIENT span per message, its context on the message the producer gets. */
  sender(uri: string, type: string, send: (m: Message) => MaybePromise<Message | undefined>): (m: Message) => MaybePromise<Message | undefined> {
    const desc = producerSpan(uri, type);
    return (msg) => this.#call(desc, msg, send);
  }

  requester<O>(uri: string, type: string, request: (m: Message, o?: O) => Promise<Message>): (m: Message, o?: O) => Promise<Message> {
    const desc = producerSpan(uri, type);
    return (msg, o) => this.#call(desc, msg, (m) => request(m, o)) as Promise<Message>;
  }

  #call<R extends Message | undefined>(desc: EndpointSpan, msg: Message, send: (m: Message) => MaybePromise<R>): MaybePromise<R> {
    if (this.#noop() && this.#untraced(msg.headers)) {
      // no span here and none around: the producer's answer carries no context this engine
      // made, so it goes back as it is (no promise hop on every send)
      return send(msg);
    }
    const api = otel();
    const parent = this.#parentOf(msg.headers) ?? api.ROOT_CONTEXT;
    const links = linksOf(msg.headers[TRACE_HEADERS.links]);
    const span = this.#tracer.startSpan(desc.name(msg), spanOptions(KIND[desc.kind]!, desc, msg, links), parent);
    const active = api.trace.setSpan(parent, span);
    const out = this.#carrying(msg, span.spanContext(), active, false);
    const done = (reply: R): R => {
      if (reply !== undefined && desc.reply) span.setAttributes(desc.reply(reply));
      span.end();
      return restore(reply, msg);
    };
    const fail = (err: unknown): never => {
      failed(span, err);
      span.end();
      throw err;
    };
    let r: MaybePromise<R>;
    try {
      r = api.context.with(active, send, undefined, out);
    } catch (e) {
      return fail(e);
    }
    return isPromise(r) ? r.then(done, fail) : done(r);
  }

  /**
   * The contexts of the last spans this tracer started, by the traceparent it wrote on the
   * message (plus tracestate, when there is one): the next hop of a message in this process
   * (the output after the exchange, the route behind a direct: send) finds its parent here
   * instead of parsing the header again and building a context for it. A few slots only: a
   * cache holding spans longer would keep them past the young generation, and the garbage
   * collector's cost grew more than the parsing it saved (measured). A miss costs the parse.
   */
  readonly #keys: string[] = new Array<string>(CONTEXT_SLOTS).fill('');
  readonly #ctxs: Array<Context | undefined> = new Array<Context | undefined>(CONTEXT_SLOTS).fill(undefined);
  #next = 0;

  #parentOf(headers: Message['headers']): Context | undefined {
    const p = headers[TRACE_HEADERS.parent];
    if (typeof p === 'string') {
      const st = headers[TRACE_HEADERS.state];
      const key = typeof st === 'string' && st !== '' ? `${p} ${st}` : p;
      // newest first: the hop after a span is nearly always the next one to look
      const keys = this.#keys;
      for (let n = 0, i = this.#next; n < CONTEXT_SLOTS; n++) {
        i = i === 0 ? CONTEXT_SLOTS - 1 : i - 1;
        if (keys[i] === key) return this.#ctxs[i];
      }
      // the engine's own header: a span of this process (no consumer takes it off a wire),
      // so a local parent whether found above or parsed
      const sc = toSpanContext(p, typeof st === 'string' ? st : undefined, false);
      if (sc === undefined) return undefined;
      const api = otel();
      return api.trace.setSpanContext(api.ROOT_CONTEXT, sc);
    }
    return parentContext(headers);
  }

  /** `msg` carrying span context `sc` (see `carrying`); the span's context is kept for the next hop. */
  #carrying(msg: Message, sc: SpanContext, active: Context, entering: boolean): Message {
    const out = carrying(msg, sc, entering);
    const p = out.headers[TRACE_HEADERS.parent];
    if (typeof p === 'string') {
      const st = out.headers[TRACE_HEADERS.state];
      const i = this.#next;
      this.#keys[i] = typeof st === 'string' ? `${p} ${st}` : p;
      this.#ctxs[i] = active;
      this.#next = (i + 1) % CONTEXT_SLOTS;
    }
    return out;
  }

  run(msg: Message, s: { name: string; attributes?: Attributes; newTrace?: boolean }, fn: Next): MaybePromise<Message> {
    if (this.#noop() && this.#untraced(msg.headers)) return fn(msg);
    const api = otel();
    const parent = this.#parentOf(msg.headers);
    const sc = parent === undefined ? undefined : api.trace.getSpanContext(parent);
    const links: Link[] | undefined = s.newTrace && sc ? [{ context: sc, attributes: { 'busbar.link': 'split-from' } }] : undefined;
    const base = s.newTrace ? api.ROOT_CONTEXT : (parent ?? api.ROOT_CONTEXT);
    const span = this.#tracer.startSpan(s.name, { kind: KIND.INTERNAL, attributes: { 'messaging.message.id': msg.id, ...(s.attributes ?? {}) }, ...(links ? { links, root: true } : s.newTrace ? { root: true } : {}) }, base);
    const active = api.trace.setSpan(base, span);
    const out = this.#carrying(msg, span.spanContext(), active, false);
    const done = (reply: Message): Message => {
      span.end();
      return reply;
    };
    const fail = (err: unknown): never => {
      failed(span, err);
      span.end();
      throw err;
    };
    let r: MaybePromise<Message>;
    try {
      r = api.context.with(active, fn, undefined, out);
    } catch (e) {
      return fail(e);
    }
    return isPromise(r) ? r.then(done, fail) : done(r);
  }
}

/** How many span contexts the tracer keeps for the next hop (see `#keys`). */
const CONTEXT_SLOTS = 8;

/** startSpan's options: the endpoint's fixed attributes and this message's, in one object. */
function spanOptions(kind: number, desc: EndpointSpan, msg: Message, links: Link[] | undefined): { kind: number; attributes: Attributes; links?: Link[] } {
  // copied key by key: on this V8 a spread copy that then gets more keys is several times slower (measured)
  const attributes: Attributes = {};
  const base = desc.attributes;
  for (const k in base) attributes[k] = base[k]!;
  const per = desc.perMessage(msg);
  for (const k in per) attributes[k] = per[k]!;
  return links ? { kind, attributes, links } : { kind, attributes };
}

/** Headers `carrying` never copies: the engine's own context (rewritten) ... */
const ENGINE_TRACE = new Set<string>([TRACE_HEADERS.parent, TRACE_HEADERS.state, TRACE_HEADERS.links]);
/** ... and, when an exchange starts, a context a consumer put there (the HTTP server's request headers stay). */
const CONSUMED_TRACE = new Set<string>([...INCOMING_PARENT, ...INCOMING_STATE].filter((k) => !k.startsWith('http.')));

const TRACE_KEYS: readonly string[] = [TRACE_HEADERS.parent, TRACE_HEADERS.state, TRACE_HEADERS.links, ...INCOMING_PARENT, ...INCOMING_STATE];

/** The message carries no trace context of any kind (nothing a span would take off or pass on). */
function untraced(headers: Message['headers']): boolean {
  if (headers === EMPTY_HEADERS) return true;
  for (let i = 0; i < TRACE_KEYS.length; i++) if (headers[TRACE_KEYS[i]!] !== undefined) return false;
  return true;
}

/** The context a message arrived with, as an OpenTelemetry context holding a remote span context. */
function parentContext(headers: Message['headers']): Context | undefined {
  const inc = incomingParent(headers);
  if (inc === undefined) return undefined;
  const sc = toSpanContext(inc.traceparent, inc.tracestate);
  if (sc === undefined) return undefined;
  const api = otel();
  return api.trace.setSpanContext(api.ROOT_CONTEXT, sc);
}

function toSpanContext(traceparent: string, tracestate?: string, remote = true): SpanContext | undefined {
  const p = parseTraceparent(traceparent);
  if (p === undefined) return undefined;
  const sc: SpanContext = { traceId: p.traceId, spanId: p.spanId, traceFlags: p.flags & 1, isRemote: remote };
  if (tracestate !== undefined) {
    try {
      sc.traceState = otel().createTraceState(tracestate);
    } catch {
      // a malformed tracestate is dropped, the traceparent still holds (W3C: vendors' state is optional)
    }
  }
  return sc;
}

function linksOf(v: HeaderValue): Link[] | undefined {
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? (v as readonly string[]) : [];
  const links: Link[] = [];
  for (const tp of list) {
    const sc = toSpanContext(tp);
    if (sc) links.push({ context: sc });
  }
  return links.length ? links : undefined;
}

/**
 * `msg` carrying span context `sc` in `busbar.trace.*`; `entering` (an exchange starts)
 * also takes the W3C headers a consumer put on it off the message, so a stale upstream
 * context is never written out again as a plain header: the tracer propagates it.
 */
function carrying(msg: Message, sc: SpanContext, entering: boolean): Message {
  // copied key by key rather than spread and deleted from: a `delete` turns the headers
  // object into a slow dictionary for every step after
  const src = msg.headers;
  const h: Record<string, HeaderValue> = {};
  for (const k in src) if (!ENGINE_TRACE.has(k) && !(entering && CONSUMED_TRACE.has(k))) h[k] = src[k]!;
  // the ids come from the SDK or a parsed (checked) header: only the all-zero ids of a
  // non-recording span need telling apart (the API's isSpanContextValid runs two regexps)
  if (sc.traceId !== INVALID_TRACE_ID && sc.spanId !== INVALID_SPAN_ID) {
    h[TRACE_HEADERS.parent] = formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags);
    const ts = sc.traceState?.serialize();
    if (ts) h[TRACE_HEADERS.state] = ts;
  }
  return withBodyAndHeaders(msg, msg.body, h);
}

/** A producer's answer goes on in the route under the route's span, not the producer's. */
function restore<R extends Message | undefined>(reply: R, sent: Message): R {
  if (reply === undefined) return reply;
  const want = sent.headers[TRACE_HEADERS.parent];
  const wantState = sent.headers[TRACE_HEADERS.state];
  const src = reply.headers;
  if (src[TRACE_HEADERS.parent] === want && src[TRACE_HEADERS.state] === wantState) return reply;
  const h: Record<string, HeaderValue> = {};
  for (const k in src) if (k !== TRACE_HEADERS.parent && k !== TRACE_HEADERS.state) h[k] = src[k]!;
  if (want !== undefined) h[TRACE_HEADERS.parent] = want;
  if (wantState !== undefined) h[TRACE_HEADERS.state] = wantState;
  return withBodyAndHeaders(reply, reply.body, h) as R;
}

/** A failure on a span: status ERROR with the coded error, recorded as an exception event. */
function failed(span: Span, err: unknown): void {
  const code = isBusbarError(err) ? err.code : err instanceof Error ? err.name : 'Error';
  const message = err instanceof Error ? err.message : String(err);
  span.setStatus({ code: STATUS_ERROR, message });
  span.setAttribute('error.type', code);
  if (isBusbarError(err) && err.details?.deadLettered === true) span.setAttribute('busbar.dead_lettered', true);
  span.recordException(err instanceof Error ? { name: code, message, ...(err.stack ? { stack: err.stack } : {}) } : { name: code, message });
}
