import { Agent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { Agent as TlsAgent, request as httpsRequest } from 'node:https';
import type { Endpoint, Producer, ProducerContext } from '../../lib/adapter.js';
import { sleep } from '../../lib/clock.js';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import { merged, type HeaderValue, type Message } from '../../lib/message.js';
import { headerPolicy } from '../../lib/header-policy.js';
import { outgoingTrace } from '../../lib/tracing/context.js';
import { renderTemplate } from '../../lib/template.js';
import { Formats } from './formats.js';
import { HOP_BY_HOP, HTTP_HEADERS } from './headers.js';
import { IDEMPOTENT, type HttpRuntime, type HttpOptions } from './options.js';

/** A raw HTTP exchange. */
export interface WireRequest {
  method: string;
  url: URL;
  headers: OutgoingHttpHeaders;
  data?: Buffer | string;
  timeoutMs: number;
}

export interface WireResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** What a protocol (REST, JSON-RPC, SOAP) puts on the wire for a message and makes of the answer. */
export interface ProtocolClient {
  /** Body, content type and extra headers of the call. */
  encode(msg: Message, call: ClientCall): { data?: Buffer | string; contentType?: string; headers?: OutgoingHttpHeaders; method?: string };
  /**
   * The reply message from a response. Called for every status: a protocol that carries
   * its errors in 5xx bodies (SOAP Faults) reads them; return undefined to get the default
   * handling (2xx/3xx decoded as REST, 4xx/5xx as HTTP errors).
   */
  decode(res: WireResponse, msg: Message, call: ClientCall): Message | undefined;
  /** A JSON-RPC notification is done when sent: no retries on a lost reply either. */
  expectsReply?(msg: Message): boolean;
}

export interface ClientCall {
  readonly opts: HttpOptions;
  readonly formats: Formats;
  readonly url: URL;
  readonly method: string;
}

/** Remove credentials from a URL before it goes into an error or a log line. */
export function redact(url: URL | string): string {
  try {
    const u = new URL(String(url));
    if (u.username || u.password) {
      u.username = '***';
      u.password = '';
    }
    return u.toString();
  } catch {
    return '(unparsable url)';
  }
}

/** Percent-encode every `{placeholder}` value of a URL template. */
export function renderUrlTemplate(template: string, msg: Message): string {
  if (template.indexOf('{') === -1) return template;
  return template.replace(/\{[A-Za-z_][\w.-]*\}/g, (ph) => {
    const v = renderTemplate(ph, msg);
    return v === ph ? ph : encodeURIComponent(v);
  });
}

/** The keep-alive pool of one engine (one Agent for all origins: it pools per origin itself). */
export function agentOf(ctx: ProducerContext, config: HttpRuntime): Agent {
  return ctx.state('agent', () => {
    const pool = { keepAlive: true, maxSockets: config.maxSockets, maxFreeSockets: config.maxFreeSockets, timeout: config.freeSocketTimeoutMs, scheduling: 'lifo' as const };
    if (config.scheme === 'http') return new Agent(pool);
    const tls = config.secure;
    return new TlsAgent({
      ...pool,
      rejectUnauthorized: tls?.rejectUnauthorized ?? true,
      ...(tls?.ca ? { ca: tls.ca } : {}),
      // this process's identity, for servers that ask for a client certificate (mutual TLS)
      ...(tls?.cert && tls.key ? { cert: tls.cert, key: tls.key, passphrase: tls.passphrase } : {}),
    });
  });
}

/** TLS failures a retry cannot fix: the certificate is what it is. */
const TLS_ERROR = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|HOSTNAME|ALTNAME/;

/**
 * One HTTP exchange. Errors: TIMEOUT (no complete answer in time), HTTP_NETWORK (refused,
 * reset, closed mid-response), INPUT_TOO_LARGE (response body over the limit). A status
 * is never an error here: the caller decides.
 */
export function exchange(agent: Agent, w: WireRequest, maxBytes: number, ctx: ProducerContext): Promise<WireResponse> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (e: BusbarError): void => {
      if (settled) return;
      settled = true;
      ctx.clock.clearTimeout(timer);
      req.destroy();
      reject(e);
    };
    const where = { method: w.method, url: redact(w.url) };
    const req = (w.url.protocol === 'https:' ? httpsRequest : httpRequest)(w.url, { method: w.method, headers: w.headers, agent });
    const timer = ctx.clock.setTimeout(() => {
      fail(new BusbarError('TIMEOUT', `${w.method} ${where.url}: no complete response within ${w.timeoutMs} ms`, { details: { ...where, timeoutMs: w.timeoutMs } }));
    }, w.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      const tls = e.code !== undefined && TLS_ERROR.test(e.code);
      fail(new BusbarError('HTTP_NETWORK', `${w.method} ${where.url}: ${tls ? `TLS: ${e.message} (${e.code})` : (e.code ?? e.message)}`, { cause: e, details: { ...where, errno: e.code }, ...(tls ? { retryable: false } : {}) }));
    });
    req.on('response', (res) => {
      const declared = Number(res.headers['content-length']);
      const tooLarge = (size: number): BusbarError =>
        new BusbarError('INPUT_TOO_LARGE', `${w.method} ${where.url}: response body of ${size} bytes exceeds the limit of ${maxBytes} bytes (maxBodyBytes)`, { details: { ...where, size, maxBytes } });
      if (declared > maxBytes) return fail(tooLarge(declared));
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) return fail(tooLarge(size));
        chunks.push(c);
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        ctx.clock.clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
      });
      res.on('aborted', () => fail(new BusbarError('HTTP_NETWORK', `${w.method} ${where.url}: connection closed before the response was complete`, { details: { ...where, errno: 'ECONNRESET' } })));
      res.on('error', (e: NodeJS.ErrnoException) => fail(new BusbarError('HTTP_NETWORK', `${w.method} ${where.url}: ${e.code ?? e.message}`, { cause: e, details: { ...where, errno: e.code } })));
    });
    req.end(w.data);
  });
}

/** A 4xx/5xx as a coded error: HTTP_CLIENT_ERROR (not retryable, but 408/429 are), HTTP_SERVER_ERROR. */
export function statusError(res: WireResponse, method: string, url: URL): BusbarError {
  const text = res.body.subarray(0, 512).toString('utf8');
  const details: Record<string, unknown> = { status: res.status, method, url: redact(url), body: text };
  const ra = res.headers['retry-after'];
  if (ra !== undefined) details.retryAfterS = Number(ra);
  if (res.status >= 500) return new BusbarError('HTTP_SERVER_ERROR', `${method} ${redact(url)}: HTTP ${res.status}`, { details });
  return new BusbarError('HTTP_CLIENT_ERROR', `${method} ${redact(url)}: HTTP ${res.status}`, { details, retryable: res.status === 408 || res.status === 429 });
}

/** Response headers as `http.response.header.*` (lower-case), plus the status. */
export function responseHeaders(res: WireResponse): Record<string, HeaderValue> {
  const out: Record<string, HeaderValue> = { [HTTP_HEADERS.responseStatus]: res.status };
  for (const k in res.headers) {
    const v = res.headers[k];
    if (v !== undefined) out[HTTP_HEADERS.responseHeader + k] = v;
  }
  return out;
}

export const restClient: ProtocolClient = {
  encode(msg, call) {
    if (call.method === 'GET' || call.method === 'HEAD') return {};
    const explicit = msg.headers[HTTP_HEADERS.requestHeader + 'content-type'];
    const enc = call.formats.encode(msg.body, call.opts.format, typeof explicit === 'string' ? explicit : undefined);
    return enc ? { data: enc.data, contentType: enc.contentType } : {};
  },
  decode() {
    return undefined;
  },
};

/**
 * The client side of `http:`: URL from a template, keep-alive pool, per-call timeout,
 * retries only when safe (idempotent method or an idempotency key).
 */
export function createClientProducer(endpoint: Endpoint<HttpOptions>, ctx: ProducerContext, config: HttpRuntime, protocol: ProtocolClient): Producer {
  const opts = endpoint.options;
  if (!endpoint.path.startsWith('//')) {
    throw new BusbarError('INVALID_OPTION', `endpoint "${endpoint.uri}": a client endpoint is a URL (${config.scheme}://host:port/path), got "${endpoint.path}"`, { details: { uri: endpoint.uri } });
  }
  const slash = endpoint.path.indexOf('/', 2);
  const authority = slash < 0 ? endpoint.path.slice(2) : endpoint.path.slice(2, slash);
  const pathTemplate = slash < 0 ? '/' : endpoint.path.slice(slash);
  let origin: URL;
  try {
    origin = new URL(`${config.scheme}://${authority}`);
  } catch (e) {
    throw new BusbarError('INVALID_URI', `endpoint "${redact(`${config.scheme}:${endpoint.path}`)}": "${authority.replace(/^[^@]*@/, '***@')}" is not a host[:port]`, { cause: e, details: {} });
  }
  const auth = origin.username || origin.password ? `Basic ${Buffer.from(`${decodeURIComponent(origin.username)}:${decodeURIComponent(origin.password)}`).toString('base64')}` : undefined;
  const base = `${origin.protocol}//${origin.host}`;
  const formats = new Formats(opts.maxBodyBytes);
  // received headers (`http.header.*`) stay on this side unless the endpoint forwards them
  const forward = opts.headers === undefined ? undefined : headerPolicy(opts.headers);
  let agent: Agent | undefined;

  const once = async (msg: Message, method: string, url: URL, timeoutMs: number, idemKey: string | undefined): Promise<Message> => {
    const call: ClientCall = { opts, formats, url, method };
    const enc = protocol.encode(msg, call);
    const headers: OutgoingHttpHeaders = {};
    const p = HTTP_HEADERS.requestHeader;
    if (forward) {
      const inbound = HTTP_HEADERS.header;
      for (const k in msg.headers) {
        if (!k.startsWith(inbound) || !forward.allowed(k)) continue;
        const name = k.slice(inbound.length).toLowerCase();
        const v = msg.headers[k];
        if (HOP_BY_HOP.has(name) || v === undefined || v === null) continue;
        headers[name] = typeof v === 'object' ? [...v] : String(v);
      }
    }
    for (const k in msg.headers) {
      if (!k.startsWith(p)) continue;
      const name = k.slice(p.length).toLowerCase();
      const v = msg.headers[k];
      if (HOP_BY_HOP.has(name) || v === undefined || v === null) continue;
      headers[name] = typeof v === 'object' ? [...v] : String(v);
    }
    if (auth && headers.authorization === undefined) headers.authorization = auth;
    if (idemKey !== undefined) headers[opts.idempotencyHeader.toLowerCase()] = idemKey;
    if (headers['x-correlation-id'] === undefined) headers['x-correlation-id'] = msg.correlationId;
    // W3C trace context of the call's span (set by the engine's tracer), over any forwarded copy
    const trace = outgoingTrace(msg);
    if (trace !== undefined) {
      headers.traceparent = trace.traceparent;
      if (trace.tracestate !== undefined) headers.tracestate = trace.tracestate;
      else delete headers.tracestate;
    }
    Object.assign(headers, enc.headers);
    if (enc.contentType && headers['content-type'] === undefined) headers['content-type'] = enc.contentType;
    if (enc.data !== undefined) headers['content-length'] = Buffer.byteLength(enc.data);
    if (headers.accept === undefined) headers.accept = 'application/json, application/xml;q=0.9, */*;q=0.8';
    const w: WireRequest = { method: enc.method ?? method, url, headers, timeoutMs };
    if (enc.data !== undefined) w.data = enc.data;
    agent ??= agentOf(ctx, config);
    const res = await exchange(agent, w, opts.maxBodyBytes, ctx);
    const own = protocol.decode(res, msg, call);
    if (own) return own;
    if (res.status >= 400) throw statusError(res, w.method, url);
    const body = formats.decode(res.body, res.headers['content-type'], opts.bodyFormat);
    return { ...msg, body, headers: merged(msg.headers, responseHeaders(res)) };
  };

  const send = async (msg: Message): Promise<Message> => {
      const method = String(msg.headers[HTTP_HEADERS.requestMethod] ?? (opts.method && opts.method !== 'ANY' ? opts.method : 'POST')).toUpperCase();
      let target = base + renderUrlTemplate(pathTemplate, msg);
      if (opts.query) target += (target.includes('?') ? '&' : '?') + renderUrlTemplate(opts.query, msg);
      let url: URL;
      try {
        url = new URL(target);
      } catch (e) {
        throw new BusbarError('INVALID_URI', `${method} ${redact(target)}: not a valid URL after filling in the template`, { cause: e, details: { uri: endpoint.uri } });
      }
      const perMessage = Number(msg.headers[HTTP_HEADERS.timeoutMs]);
      const timeoutMs = perMessage > 0 ? perMessage : opts.timeoutMs;
      const given = msg.headers[HTTP_HEADERS.requestHeader + opts.idempotencyHeader.toLowerCase()];
      const idemKey = typeof given === 'string' ? undefined : opts.idempotencyKey ? renderTemplate(opts.idempotencyKey, msg) : undefined;
      const safe = IDEMPOTENT.has(method) || typeof given === 'string' || idemKey !== undefined;
      const attempts = safe ? 1 + opts.retries : 1;
      for (let attempt = 1; ; attempt++) {
        try {
          return await once(msg, method, url, timeoutMs, idemKey);
        } catch (e) {
          if (attempt >= attempts || !isBusbarError(e) || !e.retryable) {
            if (isBusbarError(e)) e.details.attempts = attempt;
            throw e;
          }
          const ra = Number(e.details.retryAfterS);
          const delay = Math.max(opts.retryDelayMs * 2 ** (attempt - 1), ra > 0 ? Math.min(ra * 1000, 10_000) : 0);
          ctx.logger.debug({ code: e.code, attempt, delayMs: delay, method, url: redact(url) }, 'http call failed; retrying');
          if (delay > 0) await sleep(ctx.clock, delay);
        }
      }
  };
  return {
    send,
    // every HTTP call has a response: a request is a send
    request: send,
    async stop() {
      // the pool is per engine and shared by every client endpoint: idle sockets only
      agent?.destroy();
    },
  };
}
