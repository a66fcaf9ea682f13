import { randomUUID } from 'node:crypto';
import type { Message as AmqpMessage, Options } from 'amqplib';
import { BusbarError } from '../../lib/errors.js';
import { headerPolicy, type HeaderPolicy } from '../../lib/header-policy.js';
import { outgoingTrace, W3C } from '../../lib/tracing/context.js';
import { createMessage, type HeaderValue, type Message } from '../../lib/message.js';

/**
 * Headers busbar adds on the wire to carry what AMQP properties cannot (causation,
 * delivery counts of republished messages, remote errors, a request's conversation id).
 * They are removed again when a message is read.
 */
export const WIRE = {
  causation: 'x-busbar-causation-id',
  correlation: 'x-busbar-correlation-id',
  deliveries: 'x-busbar-deliveries',
  errorCode: 'x-busbar-error-code',
  errorMessage: 'x-busbar-error-message',
} as const;

/** Message headers that carry AMQP properties and delivery facts (read) or property overrides (write). */
export const AMQP_HEADERS = {
  contentType: 'content-type',
  contentEncoding: 'content-encoding',
  exchange: 'amqp.exchange',
  routingKey: 'amqp.routingKey',
  redelivered: 'amqp.redelivered',
  deliveries: 'amqp.deliveries',
  replyTo: 'amqp.replyTo',
  type: 'amqp.type',
  appId: 'amqp.appId',
  priority: 'amqp.priority',
  expiration: 'amqp.expiration',
  userId: 'amqp.userId',
} as const;

const SKIP_OUT = new Set<string>(['content-type', 'content-encoding']);

export type BodyType = 'auto' | 'string' | 'buffer' | 'json' | 'value';

export interface Encoded {
  content: Buffer;
  options: Options.Publish;
}

/**
 * A busbar message as AMQP content and properties. Buffers go as they are, strings as
 * UTF-8, anything else as JSON (application/json). `content-type` and the `amqp.*`
 * property headers (type, appId, priority, expiration) become properties; delivery facts
 * (`amqp.routingKey`, `amqp.redelivered`...) of a consumed message are never re-sent, so
 * a bridged message does not carry its old route along.
 */
const DEFAULT_POLICY = headerPolicy();

/**
 * `policy` decides which message headers go onto the wire (lib/header-policy.ts): by default
 * no other transport's headers (`http.*`, `soap.*`, `busbar.file.*`...) and no credentials.
 */
export function encode(msg: Message, opts: { persistent: boolean; mandatory: boolean; policy?: HeaderPolicy }): Encoded {
  const policy = opts.policy ?? DEFAULT_POLICY;
  const b = msg.body;
  let content: Buffer;
  let contentType = msg.headers[AMQP_HEADERS.contentType] as string | undefined;
  if (Buffer.isBuffer(b)) {
    content = b;
    contentType ??= 'application/octet-stream';
  } else if (typeof b === 'string') {
    content = Buffer.from(b, 'utf8');
    contentType ??= 'text/plain';
  } else if (b instanceof Uint8Array) {
    content = Buffer.from(b);
    contentType ??= 'application/octet-stream';
  } else {
    const text = JSON.stringify(b);
    content = Buffer.from(text === undefined ? 'null' : text, 'utf8');
    contentType = 'application/json';
  }
  let headers: Record<string, unknown> | undefined;
  for (const k in msg.headers) {
    const v = msg.headers[k];
    if (v === undefined || SKIP_OUT.has(k) || k.startsWith('amqp.') || k.startsWith('x-busbar-') || !policy.outbound(k)) continue;
    (headers ??= {})[k] = v;
  }
  if (msg.causationId !== undefined) (headers ??= {})[WIRE.causation] = msg.causationId;
  // the trace context as W3C headers (set by the engine's tracer: the publish span), over any stale copy
  const trace = outgoingTrace(msg);
  if (trace !== undefined) {
    (headers ??= {})[W3C.traceparent] = trace.traceparent;
    if (trace.tracestate !== undefined) headers[W3C.tracestate] = trace.tracestate;
    else delete headers[W3C.tracestate];
  }
  // AMQP timestamps are whole seconds; the milliseconds are not worth a headers table on
  // every message (encoding one costs more than the rest of the publish)
  const options: Options.Publish = {
    persistent: opts.persistent,
    mandatory: opts.mandatory,
    contentType,
    messageId: msg.id,
    timestamp: Math.floor(msg.timestamp / 1000),
  };
  // the reader takes the message id when there is no correlation id: a fresh message needs none
  if (msg.correlationId !== msg.id) options.correlationId = msg.correlationId;
  if (headers) options.headers = headers;
  const h = msg.headers;
  if (h[AMQP_HEADERS.contentEncoding] !== undefined) options.contentEncoding = String(h[AMQP_HEADERS.contentEncoding]);
  if (h[AMQP_HEADERS.type] !== undefined) options.type = String(h[AMQP_HEADERS.type]);
  if (h[AMQP_HEADERS.appId] !== undefined) options.appId = String(h[AMQP_HEADERS.appId]);
  if (typeof h[AMQP_HEADERS.priority] === 'number') options.priority = h[AMQP_HEADERS.priority] as number;
  if (h[AMQP_HEADERS.expiration] !== undefined) options.expiration = String(h[AMQP_HEADERS.expiration]);
  return { content, options };
}

function headerValue(v: unknown): HeaderValue {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return Number(v);
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof Date) return v.getTime();
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
  return JSON.stringify(v);
}

const TEXTUAL = /^(text\/|application\/(json|xml|.*\+json|.*\+xml|x-www-form-urlencoded|javascript|yaml|x-yaml|csv))/i;

/** How many times this message has been delivered, this delivery included. */
export function deliveryCount(m: AmqpMessage): number {
  const h = (m.properties.headers ?? {}) as Record<string, unknown>;
  const ours = Number(h[WIRE.deliveries] ?? 0) || 0;
  // quorum queues count returns to the queue; absent on the first delivery
  const quorum = Number(h['x-delivery-count'] ?? 0) || 0;
  return ours + quorum + 1;
}

/**
 * An AMQP delivery as a busbar message. Properties come back as they went out (id,
 * correlation id, timestamp, content type) and delivery facts are added as `amqp.*`
 * headers. The body follows `bodyType`: `auto` gives a string for textual content types
 * (text/*, JSON, XML) and a Buffer otherwise; `json` parses (a PARSE error if it cannot).
 */
export function decode(m: AmqpMessage, bodyType: BodyType, policy: HeaderPolicy = DEFAULT_POLICY): Message {
  const p = m.properties;
  const raw = (p.headers ?? {}) as Record<string, unknown>;
  const headers: Record<string, HeaderValue> = {};
  for (const k in raw) {
    // another transport's headers on the wire (a foreign publisher's `http.request.header.cookie`)
    // must not steer a later producer of that transport
    if (k.startsWith('x-busbar-') || !policy.inbound(k)) continue;
    headers[k] = headerValue(raw[k]);
  }
  const contentType = typeof p.contentType === 'string' ? p.contentType : undefined;
  if (contentType !== undefined) headers[AMQP_HEADERS.contentType] = contentType;
  if (p.contentEncoding) headers[AMQP_HEADERS.contentEncoding] = String(p.contentEncoding);
  headers[AMQP_HEADERS.exchange] = m.fields.exchange;
  headers[AMQP_HEADERS.routingKey] = m.fields.routingKey;
  headers[AMQP_HEADERS.redelivered] = m.fields.redelivered;
  headers[AMQP_HEADERS.deliveries] = deliveryCount(m);
  if (p.replyTo) headers[AMQP_HEADERS.replyTo] = String(p.replyTo);
  if (p.type) headers[AMQP_HEADERS.type] = String(p.type);
  if (p.appId) headers[AMQP_HEADERS.appId] = String(p.appId);
  if (typeof p.priority === 'number') headers[AMQP_HEADERS.priority] = p.priority;
  if (p.expiration !== undefined && p.expiration !== null) headers[AMQP_HEADERS.expiration] = String(p.expiration);
  if (p.userId) headers[AMQP_HEADERS.userId] = String(p.userId);

  let body: unknown;
  const textual = contentType !== undefined && TEXTUAL.test(contentType);
  // value: the body as it was sent by busbar (objects as JSON, strings as text, bytes as bytes)
  const kind = bodyType === 'auto' ? (textual ? 'string' : 'buffer') : bodyType === 'value' ? (contentType !== undefined && /^application\/json\b/i.test(contentType) ? 'json' : textual ? 'string' : 'buffer') : bodyType;
  if (kind === 'buffer') body = m.content;
  else {
    const text = m.content.toString('utf8');
    if (kind === 'string') body = text;
    else {
      try {
        body = JSON.parse(text);
      } catch (e) {
        throw new BusbarError('PARSE', `amqp: body of message ${String(p.messageId ?? '?')} is not JSON: ${(e as Error).message}`, { cause: e, details: { codec: 'json', messageId: p.messageId } });
      }
    }
  }
  const id = p.messageId !== undefined && p.messageId !== null ? String(p.messageId) : randomUUID();
  const ts = typeof p.timestamp === 'number' ? p.timestamp * 1000 : Date.now();
  const correlation = raw[WIRE.correlation] ?? p.correlationId;
  const init: Parameters<typeof createMessage>[1] = { id, headers, timestamp: ts, correlationId: correlation !== undefined && correlation !== null ? String(correlation) : id };
  if (raw[WIRE.causation] !== undefined) init.causationId = String(raw[WIRE.causation]);
  return createMessage(body, init);
}
