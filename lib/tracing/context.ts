import type { HeaderValue, Headers, Message } from '../message.js';

/**
 * How a trace context travels with a message inside busbar, and onto and off the wire.
 * This module loads nothing (no OpenTelemetry): adapters import it to copy the W3C
 * `traceparent` / `tracestate` strings between their wire and the message, and pay only a
 * header lookup when tracing is off (the headers are then absent).
 *
 * Inside the engine the context is the message header `busbar.trace.parent` (a W3C
 * traceparent string: the span the message belongs to now) and `busbar.trace.state`. The
 * header policy treats `busbar.trace.*` like a transport header: no producer writes it as
 * a plain header and no consumer takes it off a wire; each transport writes the context in
 * its own standard place instead (an HTTP or AMQP `traceparent` header, a db column, a file
 * sidecar), and only while the engine traces.
 */
export const TRACE_HEADERS = {
  /** W3C traceparent of the span the message belongs to (set by the engine's tracer). */
  parent: 'busbar.trace.parent',
  /** W3C tracestate going with it. */
  state: 'busbar.trace.state',
  /** Traceparents of the messages an aggregate was made of (its span links each). */
  links: 'busbar.trace.links',
} as const;

/** The W3C header names on the wire (lower case, as HTTP and AMQP carry them). */
export const W3C = { traceparent: 'traceparent', tracestate: 'tracestate' } as const;

/**
 * Header names, besides `busbar.trace.parent`, under which a consumer may have put an
 * incoming context: AMQP and the db/file consumers use the W3C name, the HTTP server its
 * `http.header.` prefix, the gRPC server its `grpc.metadata.` one.
 */
export const INCOMING_PARENT = ['traceparent', 'http.header.traceparent', 'grpc.metadata.traceparent'] as const;
export const INCOMING_STATE = ['tracestate', 'http.header.tracestate', 'grpc.metadata.tracestate'] as const;

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

export interface ParsedTraceparent {
  traceId: string;
  spanId: string;
  /** Trace flags (bit 0: sampled). */
  flags: number;
}

/** A W3C traceparent, or undefined when it is not a valid one (all-zero ids, version ff, junk). */
export function parseTraceparent(v: HeaderValue): ParsedTraceparent | undefined {
  if (typeof v !== 'string' || v.length < 55 || v.length > 512) return undefined;
  const m = TRACEPARENT.exec(v.trim().toLowerCase());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return { traceId: traceId!, spanId: spanId!, flags: parseInt(flags!, 16) };
}

export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${(flags & 0xff).toString(16).padStart(2, '0')}`;
}

/**
 * The context a producer writes onto its wire: `{ traceparent, tracestate? }`, or undefined
 * when the message carries none (tracing off, or no span). The engine's tracer sets it to
 * the producer's own span just before calling the producer.
 */
export function outgoingTrace(msg: Message): { traceparent: string; tracestate?: string } | undefined {
  const p = msg.headers[TRACE_HEADERS.parent];
  if (typeof p !== 'string') return undefined;
  const s = msg.headers[TRACE_HEADERS.state];
  return typeof s === 'string' && s !== '' ? { traceparent: p, tracestate: s } : { traceparent: p };
}

/** Message headers carrying a context a consumer read off its wire (a db column, a file sidecar): the W3C names. */
export function incomingTraceHeaders(traceparent: unknown, tracestate?: unknown): Record<string, string> | undefined {
  if (typeof traceparent !== 'string' || parseTraceparent(traceparent) === undefined) return undefined;
  return typeof tracestate === 'string' && tracestate !== '' ? { traceparent, tracestate } : { traceparent };
}

/** The parent context a message arrived with: the engine's own header first, then what a consumer put there. */
export function incomingParent(headers: Headers): { traceparent: string; tracestate?: string } | undefined {
  let p = headers[TRACE_HEADERS.parent];
  let s = headers[TRACE_HEADERS.state];
  if (typeof p !== 'string') {
    for (let i = 0; i < INCOMING_PARENT.length; i++) {
      const v = headers[INCOMING_PARENT[i]!];
      if (typeof v === 'string') {
        p = v;
        s = headers[INCOMING_STATE[i]!];
        break;
      }
    }
  }
  if (typeof p !== 'string') return undefined;
  return typeof s === 'string' && s !== '' ? { traceparent: p, tracestate: s } : { traceparent: p };
}

/** A file sidecar's content: the W3C pair as one small JSON document. */
export function sidecarText(t: { traceparent: string; tracestate?: string }): string {
  return JSON.stringify(t);
}

export function parseSidecar(text: string): Record<string, string> | undefined {
  try {
    const o = JSON.parse(text) as { traceparent?: unknown; tracestate?: unknown };
    return incomingTraceHeaders(o?.traceparent, o?.tracestate);
  } catch {
    return undefined;
  }
}

/** The trace contexts of the messages an aggregate is made of (undefined when none carries one). */
export function traceLinks(msgs: readonly Message[]): string[] | undefined {
  let out: string[] | undefined;
  for (const m of msgs) {
    const p = m.headers[TRACE_HEADERS.parent];
    if (typeof p === 'string') (out ??= []).push(p);
  }
  return out;
}
