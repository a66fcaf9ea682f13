import type { Context, Link, Span, SpanContext, Tracer, TracerProvider } from '@opentelemetry/api';
import { isBusbarError } from '../errors.js';
import { createMessage, EMPTY_HEADERS, type HeaderValue, type Message } from '../message.js';
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
    // headers are never changed in place: an object found untraced stays so
    if (headers === this.#lastUntraced) return true;
    if (!untraced(headers)) return false;
    this.#lastUntraced = headers;
    return true;
  }

  /** A route exchange: the span starts now and ends when `run`'s promise settles. */
  exchange(routeId: string, from: string, type: string, msg: Message, run: (m: Message) => Promise<Message>): Promise<Message> {
    if (this.#untraced(msg.headers) && this.#noop()) return run(msg);
    let desc = this.#consumers.get(routeId);
    if (desc === undefined || (desc as { from?: string }).from !== from) {
      desc = consumerSpan(from, type, routeId);
      (desc as { from?: string }).from = from;
      this.#consumers.set(routeId, desc);
    }
    const api = otel();
    const parent = parentContext(msg.headers);
    const links = linksOf(msg.headers[TRACE_HEADERS.links]);
    const span = this.#tracer.startSpan(desc.name(msg), { kind: KIND[desc.kind], attributes: { ...desc.attributes, ...desc.perMessage(msg) }, ...(links ? { links } : {}) }, parent ?? api.ROOT_CONTEXT);
    const traced = carrying(msg, span.spanContext(), true);
    let r: Promise<Message>;
    try {
      r = api.context.with(api.trace.setSpan(parent ?? api.ROOT_CONTEXT, span), run, undefined, traced);
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
    if (this.#untraced(msg.headers) && this.#noop()) {
      // what the traced path does to a reply of an untraced message: no trace context on it
      const r = send(msg);
      return isPromise(r) ? r.then((reply) => restore(reply, msg)) : restore(r, msg);
    }
    const api = otel();
    const parent = parentContext(msg.headers);
    const links = linksOf(msg.headers[TRACE_HEADERS.links]);
    const span = this.#tracer.startSpan(desc.name(msg), { kind: KIND[desc.kind], attributes: { ...desc.attributes, ...desc.perMessage(msg) }, ...(links ? { links } : {}) }, parent ?? api.ROOT_CONTEXT);
    const out = carrying(msg, span.spanContext(), false);
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
      r = api.context.with(api.trace.setSpan(parent ?? api.ROOT_CONTEXT, span), send, undefined, out);
    } catch (e) {
      return fail(e);
    }
    return isPromise(r) ? r.then(done, fail) : done(r);
  }

  run(msg: Message, s: { name: string; attributes?: Attributes; newTrace?: boolean }, fn: Next): MaybePromise<Message> {
    if (this.#untraced(msg.headers) && this.#noop()) return fn(msg);
    const api = otel();
    const parent = parentContext(msg.headers);
    const sc = parent === undefined ? undefined : api.trace.getSpanContext(parent);
    const links: Link[] | undefined = s.newTrace && sc ? [{ context: sc, attributes: { 'busbar.link': 'split-from' } }] : undefined;
    const base = s.newTrace ? api.ROOT_CONTEXT : (parent ?? api.ROOT_CONTEXT);
    const span = this.#tracer.startSpan(s.name, { kind: KIND.INTERNAL, attributes: { 'messaging.message.id': msg.id, ...(s.attributes ?? {}) }, ...(links ? { links, root: true } : s.newTrace ? { root: true } : {}) }, base);
    const out = carrying(msg, span.spanContext(), false);
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
      r = api.context.with(api.trace.setSpan(base, span), fn, undefined, out);
    } catch (e) {
      return fail(e);
    }
    return isPromise(r) ? r.then(done, fail) : done(r);
  }
}

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

function toSpanContext(traceparent: string, tracestate?: string): SpanContext | undefined {
  const p = parseTraceparent(traceparent);
  if (p === undefined) return undefined;
  const sc: SpanContext = { traceId: p.traceId, spanId: p.spanId, traceFlags: p.flags & 1, isRemote: true };
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
  const h: Record<string, HeaderValue> = { ...msg.headers };
  delete h[TRACE_HEADERS.links];
  if (entering) {
    for (const k of INCOMING_PARENT) if (!k.startsWith('http.')) delete h[k];
    for (const k of INCOMING_STATE) if (!k.startsWith('http.')) delete h[k];
  }
  const api = otel();
  if (api.isSpanContextValid(sc)) {
    h[TRACE_HEADERS.parent] = formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags);
    const ts = sc.traceState?.serialize();
    if (ts) h[TRACE_HEADERS.state] = ts;
    else delete h[TRACE_HEADERS.state];
  } else {
    delete h[TRACE_HEADERS.parent];
    delete h[TRACE_HEADERS.state];
  }
  return copyWith(msg, h);
}

/** A producer's answer goes on in the route under the route's span, not the producer's. */
function restore<R extends Message | undefined>(reply: R, sent: Message): R {
  if (reply === undefined) return reply;
  const want = sent.headers[TRACE_HEADERS.parent];
  const wantState = sent.headers[TRACE_HEADERS.state];
  if (reply.headers[TRACE_HEADERS.parent] === want && reply.headers[TRACE_HEADERS.state] === wantState) return reply;
  const h: Record<string, HeaderValue> = { ...reply.headers };
  if (want === undefined) delete h[TRACE_HEADERS.parent];
  else h[TRACE_HEADERS.parent] = want;
  if (wantState === undefined) delete h[TRACE_HEADERS.state];
  else h[TRACE_HEADERS.state] = wantState;
  return copyWith(reply, h) as R;
}

function copyWith(msg: Message, headers: Record<string, HeaderValue>): Message {
  const init: Parameters<typeof createMessage>[1] = { id: msg.id, headers, timestamp: msg.timestamp, correlationId: msg.correlationId };
  if (msg.causationId !== undefined) init.causationId = msg.causationId;
  return createMessage(msg.body, init);
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
