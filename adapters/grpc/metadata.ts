import type { Metadata } from '@grpc/grpc-js';
import { headerPolicy, type HeaderPolicy } from '../../lib/header-policy.js';
import type { HeaderValue, Headers } from '../../lib/message.js';
import { TRACE_HEADERS, W3C } from '../../lib/tracing/context.js';
import { GRPC_HEADERS } from './options.js';
import { grpcJs } from './protos.js';

/** Metadata keys gRPC allows (lower-case; `-bin` keys carry bytes, base64 in headers). */
const KEY = /^[0-9a-z_.-]+$/;

/** Metadata as headers under `prefix` (`grpc.metadata.`): one value as a string, several as a list. */
export function metadataToHeaders(md: Metadata | undefined, prefix: string, out: Record<string, HeaderValue> = {}): Record<string, HeaderValue> {
  if (!md) return out;
  for (const key of Object.keys(md.getMap())) {
    const values = md.get(key).map((v) => (typeof v === 'string' ? v : v.toString('base64')));
    out[prefix + key] = values.length === 1 ? values[0]! : values;
  }
  return out;
}

function add(md: Metadata, key: string, v: HeaderValue): void {
  if (v === undefined || v === null || !KEY.test(key)) return;
  const values = typeof v === 'object' ? [...v] : [String(v)];
  for (const s of values) {
    if (key.endsWith('-bin')) md.add(key, Buffer.from(s, 'base64'));
    else md.add(key, s);
  }
}

/** The metadata key an allow-listed header travels under: the name after its transport's prefix. */
function keyOf(name: string): string {
  for (const p of [GRPC_HEADERS.metadata, 'http.header.', GRPC_HEADERS.responseMetadata]) if (name.startsWith(p)) return name.slice(p.length).toLowerCase();
  return name.toLowerCase();
}

/**
 * The request metadata a client call carries: every `grpc.request.metadata.<key>` the route
 * set, the headers the endpoint's `headers` allow-list names (received `grpc.metadata.*` or
 * `http.header.*` ones included; credentials only when named exactly), the correlation id, and
 * the W3C trace context while the engine traces.
 */
export function requestMetadata(headers: Headers, correlationId: string, forward: HeaderPolicy | undefined): Metadata {
  const md = new (grpcJs().Metadata)();
  const p = GRPC_HEADERS.requestMetadata;
  for (const k in headers) {
    if (k.startsWith(p)) add(md, k.slice(p.length).toLowerCase(), headers[k]);
    else if (forward?.allowed(k)) add(md, keyOf(k), headers[k]);
  }
  if (md.get('x-correlation-id').length === 0) md.set('x-correlation-id', correlationId);
  // the trace context (set by the engine's tracer to this call's span), over any forwarded copy
  const parent = headers[TRACE_HEADERS.parent];
  if (typeof parent === 'string') {
    md.set(W3C.traceparent, parent);
    const state = headers[TRACE_HEADERS.state];
    if (typeof state === 'string' && state !== '') md.set(W3C.tracestate, state);
    else md.remove(W3C.tracestate);
  }
  return md;
}

/** The `grpc.reply.metadata.*` headers of a reply, as response metadata (undefined when none). */
export function replyMetadata(headers: Headers): Metadata | undefined {
  let md: Metadata | undefined;
  const p = GRPC_HEADERS.replyMetadata;
  for (const k in headers) {
    if (!k.startsWith(p)) continue;
    md ??= new (grpcJs().Metadata)();
    add(md, k.slice(p.length).toLowerCase(), headers[k]);
  }
  return md;
}

export const forwardPolicy = (allow: string | undefined): HeaderPolicy | undefined => (allow === undefined ? undefined : headerPolicy(allow));
