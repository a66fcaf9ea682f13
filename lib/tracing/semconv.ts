import type { Message } from '../message.js';
import { parseUri } from '../uri.js';

/**
 * Span names, kinds and attributes per endpoint, after the OpenTelemetry semantic
 * conventions: messaging (`messaging.system`, `messaging.destination.name`,
 * `messaging.operation.type`, `messaging.message.id`, the RabbitMQ routing key), rpc
 * (`rpc.system`, `rpc.method`) and http (`http.request.method`, `url.full`,
 * `server.address`). Worked out once per endpoint; per message only the few attributes
 * that change (ids, the method) are added.
 */
export type SpanKindName = 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER' | 'INTERNAL';
export type Attributes = Record<string, string | number | boolean>;

export interface EndpointSpan {
  kind: SpanKindName;
  /** The span name for a message (`publish orders`, `POST`, `orders.get`). */
  name(msg: Message): string;
  /** Attributes known from the URI alone. */
  readonly attributes: Attributes;
  /** Attributes of this message. */
  perMessage(msg: Message): Attributes;
  /** Attributes of the answer (a status code), for endpoints that have one. */
  reply?(reply: Message): Attributes;
}

// the http adapter's header names (adapters/http/headers.ts, lib/rpc.ts): the core imports no adapter
const HTTP_HEADERS_LITE = { method: 'http.method', path: 'http.path', requestMethod: 'http.request.method', responseStatus: 'http.response.status' } as const;
const RPC_METHOD_HEADER = 'rpc.method';
// the gRPC client's status header (adapters/grpc/options.ts)
const GRPC_STATUS_HEADER = 'grpc.response.status';

/** A span name known from the URI alone: made once, not per message. */
function fixed(name: string): (msg: Message) => string {
  return () => name;
}

const IN_MEMORY = new Set(['direct', 'queue', 'topic', 'mock', 'log', 'timer']);

function messageAttrs(msg: Message): Attributes {
  const a: Attributes = { 'messaging.message.id': msg.id };
  if (msg.correlationId !== msg.id) a['messaging.message.conversation_id'] = msg.correlationId;
  return a;
}

/** The span of a producer (one output of a route): PRODUCER for messaging, CLIENT for calls. */
export function producerSpan(uri: string, type: string): EndpointSpan {
  const p = parseUri(uri);
  const o = p.params;
  if (type === 'http' || type === 'https') {
    const url = safeUrl(`${p.scheme}:${p.path}`);
    const base: Attributes = { 'url.full': url ? `${url.origin}${url.pathname}` : p.path };
    if (url) {
      base['server.address'] = url.hostname;
      base['server.port'] = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    }
    const method = (msg: Message): string => String(msg.headers[HTTP_HEADERS_LITE.requestMethod] ?? (o.method && o.method !== 'ANY' ? o.method : 'POST')).toUpperCase();
    const reply = (r: Message): Attributes => {
      const s = r.headers[HTTP_HEADERS_LITE.responseStatus];
      return typeof s === 'number' ? { 'http.response.status_code': s } : {};
    };
    if (o.protocol === 'jsonrpc') {
      const rpc = (msg: Message): string => String(msg.headers[RPC_METHOD_HEADER] ?? o.rpcMethod ?? 'batch');
      return {
        kind: 'CLIENT',
        name: rpc,
        attributes: { ...base, 'rpc.system': 'jsonrpc', 'rpc.jsonrpc.version': '2.0', 'http.request.method': 'POST' },
        perMessage: (msg) => ({ 'rpc.method': rpc(msg) }),
        reply,
      };
    }
    if (o.protocol === 'soap') {
      const op = (msg: Message): string => String(msg.headers['soap.operation'] ?? o.operation ?? o.soapAction ?? 'call');
      return {
        kind: 'CLIENT',
        name: op,
        attributes: { ...base, 'rpc.system': 'soap', 'http.request.method': 'POST' },
        perMessage: (msg) => ({ 'rpc.method': op(msg) }),
        reply,
      };
    }
    return { kind: 'CLIENT', name: method, attributes: base, perMessage: (msg) => ({ 'http.request.method': method(msg) }), reply };
  }
  if (type === 'amqp') {
    const [kind, ...rest] = p.path.split(':');
    const name = rest.join(':');
    const attrs: Attributes = { 'messaging.system': 'rabbitmq', 'messaging.destination.name': name, 'messaging.operation.type': 'send', 'messaging.operation.name': 'publish' };
    const rk = o.routingKey;
    const fixedKey = rk === undefined ? (kind === 'queue' ? name : '') : rk.includes('{') ? undefined : rk;
    if (fixedKey !== undefined && fixedKey !== '') attrs['messaging.rabbitmq.destination.routing_key'] = fixedKey;
    return { kind: 'PRODUCER', name: fixed(`publish ${name}`), attributes: attrs, perMessage: messageAttrs };
  }
  if (type === 'grpc' || type === 'grpcs') {
    // grpc://host:port/pkg.Service/Method: an RPC client span (rpc conventions)
    const m = /^\/\/([^/:]+)(?::(\d+))?\/(.+)\/([^/]+)$/.exec(p.path);
    const attrs: Attributes = { 'rpc.system': 'grpc' };
    if (m) {
      attrs['server.address'] = m[1]!;
      if (m[2]) attrs['server.port'] = Number(m[2]);
      attrs['rpc.service'] = m[3]!;
      attrs['rpc.method'] = m[4]!;
    }
    const name = m ? `${m[3]}/${m[4]}` : p.path;
    return {
      kind: 'CLIENT',
      name: fixed(name),
      attributes: attrs,
      perMessage: () => ({}),
      reply: (r): Attributes => {
        const s = r.headers[GRPC_STATUS_HEADER];
        return typeof s === 'number' ? { 'rpc.grpc.status_code': s } : {};
      },
    };
  }
  if (type === 'file') {
    return { kind: 'PRODUCER', name: fixed(`send ${p.path}`), attributes: { 'messaging.system': 'file', 'messaging.destination.name': p.path, 'messaging.operation.type': 'send', 'messaging.operation.name': 'send' }, perMessage: messageAttrs };
  }
  if (type === 'db') {
    const system = dbSystem(p.path);
    if (o.outbox) {
      return { kind: 'CLIENT', name: fixed(`INSERT ${o.outbox}`), attributes: { 'db.system.name': system, 'db.collection.name': o.outbox, 'db.operation.name': 'INSERT' }, perMessage: messageAttrs };
    }
    const op = (o.operation ?? (o.query ? 'select' : 'execute')).toUpperCase();
    const attrs: Attributes = { 'db.system.name': system, 'db.operation.name': op };
    if (o.table) attrs['db.collection.name'] = o.table;
    return { kind: 'CLIENT', name: fixed(o.table ? `${op} ${o.table}` : op), attributes: attrs, perMessage: messageAttrs };
  }
  const system = IN_MEMORY.has(type) ? 'busbar' : type;
  return {
    kind: 'PRODUCER',
    name: fixed(`publish ${p.path}`),
    attributes: { 'messaging.system': system, 'messaging.destination.name': p.path, 'messaging.operation.type': 'send', 'messaging.operation.name': 'publish', 'busbar.endpoint': `${p.scheme}:${p.path}` },
    perMessage: messageAttrs,
  };
}

/** The span of a route's exchange: CONSUMER (`process <source>`), SERVER for an HTTP source (http / rpc conventions). */
export function consumerSpan(uri: string, type: string, routeId: string): EndpointSpan {
  const p = parseUri(uri);
  const o = p.params;
  const route: Attributes = { 'busbar.route.id': routeId };
  if (type === 'http' || type === 'https') {
    const path = p.path.startsWith('/') ? p.path : `/${p.path}`;
    if (o.protocol === 'jsonrpc' || o.protocol === 'soap') {
      const system = o.protocol;
      const m = (msg: Message): string => String(msg.headers[system === 'jsonrpc' ? RPC_METHOD_HEADER : 'soap.operation'] ?? path);
      return { kind: 'SERVER', name: m, attributes: { ...route, 'rpc.system': system, 'http.route': path, 'url.scheme': type }, perMessage: (msg) => ({ 'rpc.method': m(msg) }) };
    }
    const method = (msg: Message): string => String(msg.headers[HTTP_HEADERS_LITE.method] ?? 'GET');
    return {
      kind: 'SERVER',
      name: (msg) => `${method(msg)} ${path}`,
      attributes: { ...route, 'http.route': path, 'url.scheme': type },
      perMessage: (msg) => {
        const a: Attributes = { 'http.request.method': method(msg) };
        const u = msg.headers[HTTP_HEADERS_LITE.path];
        if (typeof u === 'string') a['url.path'] = u;
        return a;
      },
    };
  }
  if (type === 'grpc' || type === 'grpcs') {
    // grpc:pkg.Service/Method: an RPC server span
    const m = /^\/*(.+)\/([^/]+)$/.exec(p.path);
    const attrs: Attributes = { ...route, 'rpc.system': 'grpc' };
    if (m) {
      attrs['rpc.service'] = m[1]!;
      attrs['rpc.method'] = m[2]!;
    }
    const name = m ? `${m[1]}/${m[2]}` : p.path;
    return { kind: 'SERVER', name: fixed(name), attributes: attrs, perMessage: () => ({}) };
  }
  let system: string = type;
  let dest = p.path;
  const attrs: Attributes = { ...route, 'messaging.operation.type': 'process', 'messaging.operation.name': 'process' };
  if (type === 'amqp') {
    system = 'rabbitmq';
    dest = p.path.split(':').slice(1).join(':');
  } else if (type === 'db') {
    system = dbSystem(p.path);
    dest = o.table ?? o.outbox ?? p.path;
  } else if (IN_MEMORY.has(type)) system = 'busbar';
  attrs['messaging.system'] = system;
  attrs['messaging.destination.name'] = dest;
  return {
    kind: 'CONSUMER',
    name: fixed(`process ${dest}`),
    attributes: attrs,
    perMessage: (msg) => {
      const a = messageAttrs(msg);
      const rk = msg.headers['amqp.routingKey'];
      if (typeof rk === 'string' && rk !== '') a['messaging.rabbitmq.destination.routing_key'] = rk;
      return a;
    },
  };
}

function dbSystem(path: string): string {
  return path.startsWith('sqlite:') ? 'sqlite' : path.startsWith('postgres') ? 'postgresql' : 'sql';
}

function safeUrl(s: string): URL | undefined {
  try {
    return new URL(s.replace(/\{[^}]*\}/g, '_'));
  } catch {
    return undefined;
  }
}
