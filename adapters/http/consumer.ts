import type { TLSSocket } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Consumer, ConsumerContext, Endpoint } from '../../lib/adapter.js';
import { Deadlines } from '../../lib/clock.js';
import { BusbarError } from '../../lib/errors.js';
import { createMessage, type Headers, type HeaderValue, type Message } from '../../lib/message.js';
import { isPromise } from '../../lib/step.js';
import { SOAP_FAULT_HEADER } from '../../lib/steps/transform.js';
import { Formats } from './formats.js';
import { HOP_BY_HOP, HTTP_HEADERS } from './headers.js';
import type { HttpRuntime, HttpOptions } from './options.js';
import { handlerFailed, ServerHub, type Mount, type Routed } from './server.js';
import { prefersXml, sendError, statusOf } from './status.js';

/** What a protocol (REST, JSON-RPC, SOAP) does with a routed request. */
export interface ProtocolServer {
  /** Optional work when the route starts (read a WSDL file). */
  start?(): Promise<void>;
  /** May answer synchronously; a promise it returns is watched for failures it did not answer. */
  handle(r: Routed, ep: ServerEndpoint): void | Promise<void>;
}

const MAX_CACHED_HEADER_NAMES = 256;

/**
 * The parts of a server endpoint every protocol uses: body reading with limits, request
 * -> message, the route call with its time limit, backpressure answers.
 */
export class ServerEndpoint {
  readonly ctx: ConsumerContext;
  readonly opts: HttpOptions;
  readonly formats: Formats;
  /** How much of a refused body is read before answering (adapter configuration). */
  readonly drain: { maxDrainBytes: number; drainTimeoutMs: number };
  stopping = false;

  constructor(ctx: ConsumerContext, opts: HttpOptions, drain: { maxDrainBytes: number; drainTimeoutMs: number } = { maxDrainBytes: 128 * 1024 * 1024, drainTimeoutMs: 5000 }) {
    this.ctx = ctx;
    this.opts = opts;
    this.drain = drain;
    this.formats = new Formats(opts.maxBodyBytes);
  }

  /** 503 + Retry-After when the route has no free slot or is stopping; true when answered. */
  refuseWhenBusy(r: Routed): boolean {
    if (!this.stopping && this.ctx.available() > 0) return false;
    r.req.resume();
    if (this.stopping) r.res.shouldKeepAlive = false;
    const err = this.stopping
      ? new BusbarError('ENGINE_STATE', `route "${this.ctx.routeId}" is stopping`, { details: { routeId: this.ctx.routeId } })
      : new BusbarError('LIMIT_EXCEEDED', `route "${this.ctx.routeId}" is full (${this.ctx.maxInflight} requests in progress); retry later`, { details: { routeId: this.ctx.routeId, maxInflight: this.ctx.maxInflight } });
    sendError(r.req, r.res, 503, err, { retryAfterS: this.opts.retryAfterS });
    return true;
  }

  /**
   * The request body, refusing more than `maxBodyBytes` (INPUT_TOO_LARGE -> 413). The rest of
   * a refused body is read and discarded (up to `maxDrainBytes` / `drainTimeoutMs`) before the
   * refusal goes out: a client that sends its whole body before reading would otherwise get
   * a connection reset instead of the 413, and retry it as a network error.
   */
  readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => this.receive(req, (err, bytes) => (err === undefined ? resolve(bytes!) : reject(err))));
  }

  /**
   * `readBody` with a callback, called once: `done(undefined, bytes)` in the `end` event
   * itself, so a route that finishes synchronously is answered in that same turn.
   */
  receive(req: IncomingMessage, done: (err: unknown, bytes?: Buffer) => void): void {
    const max = this.opts.maxBodyBytes;
    const tooLarge = (size: number): BusbarError =>
      new BusbarError('INPUT_TOO_LARGE', `request body of ${size} bytes exceeds the limit of ${max} bytes (maxBodyBytes)`, { details: { size, maxBytes: max } });
    const declared = Number(req.headers['content-length']);
    if (declared > max) {
      this.#drainThenReject(req, 0, tooLarge(declared)).catch(done);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    // an error after the end (or after a refusal) is not this body's any more
    let settled = false;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > max) {
        req.off('data', onData);
        req.off('end', onEnd);
        settled = true;
        this.#drainThenReject(req, size, tooLarge(size)).catch(done);
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => {
      if (settled) return;
      settled = true;
      done(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', (e: Error): void => {
      if (settled) return;
      settled = true;
      done(new BusbarError('HTTP_NETWORK', `request body not received: ${e.message}`, { cause: e, details: {} }));
    });
  }

  /** Read and discard the rest of a refused body (bounded in bytes and time), then reject with `err`. */
  #drainThenReject(req: IncomingMessage, already: number, err: BusbarError): Promise<never> {
    const { maxDrainBytes, drainTimeoutMs } = this.drain;
    const declared = Number(req.headers['content-length']);
    return new Promise((_resolve, reject) => {
      // more than the cap announced: waiting would not help, answer now
      if (declared - already > maxDrainBytes || req.readableEnded) {
        req.resume();
        reject(err);
        return;
      }
      let drained = 0;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.off('data', onData);
        req.resume();
        reject(err);
      };
      const onData = (c: Buffer): void => {
        drained += c.length;
        if (drained > maxDrainBytes) finish();
      };
      const timer = setTimeout(finish, drainTimeoutMs);
      req.on('data', onData);
      req.once('end', finish);
      req.once('error', finish);
      req.once('close', finish);
      req.resume();
    });
  }

  // `http.header.<name>` by request header name: clients send the same few names over and
  // over, and a name made anew per request is concatenated and then looked up again as a
  // property key. Bounded: names beyond it (a client making up names) are just made.
  readonly #headerNames = new Map<string, string>();

  #headerName(k: string): string {
    let n = this.#headerNames.get(k);
    if (n === undefined) {
      n = HTTP_HEADERS.header + k;
      if (this.#headerNames.size < MAX_CACHED_HEADER_NAMES) this.#headerNames.set(k, n);
    }
    return n;
  }

  /** The message a request becomes: body plus `http.*` headers. */
  message(r: Routed, body: unknown, extra?: Record<string, HeaderValue>): Message {
    const h: Record<string, HeaderValue> = {
      [HTTP_HEADERS.method]: r.req.method ?? 'GET',
      [HTTP_HEADERS.path]: r.url.pathname,
      [HTTP_HEADERS.url]: r.req.url ?? '/',
    };
    for (const k in r.params) h[HTTP_HEADERS.param + k] = r.params[k];
    if (r.url.hasQuery) for (const k of new Set(r.url.searchParams.keys())) {
      const all = r.url.searchParams.getAll(k);
      h[HTTP_HEADERS.query + k] = all.length === 1 ? all[0]! : all;
    }
    const raw = r.req.headers;
    for (const k in raw) {
      const v = raw[k];
      if (v !== undefined) h[this.#headerName(k)] = v;
    }
    if (r.req.socket.remoteAddress) h[HTTP_HEADERS.remoteAddress] = r.req.socket.remoteAddress;
    const tls = r.req.socket as Partial<TLSSocket>;
    if (tls.encrypted) {
      // true only for a client certificate that verified against tls.ca (mutual TLS)
      h[HTTP_HEADERS.tlsAuthorized] = tls.authorized === true;
      const cn = tls.getPeerCertificate?.()?.subject?.CN;
      if (cn !== undefined) h[HTTP_HEADERS.tlsClientSubject] = String(cn);
    }
    if (extra) Object.assign(h, extra);
    const cid = raw['x-correlation-id'];
    return createMessage(body, typeof cid === 'string' && cid ? { headers: h, correlationId: cid } : { headers: h });
  }

  #deadlines: Deadlines | undefined;

  /**
   * `run`, except that a route that finished synchronously gives its reply itself: no
   * promise and no time limit for it (it is already there).
   */
  runNow(msg: Message): Message | Promise<Message> {
    const r = this.ctx.processNow(msg);
    return isPromise(r) ? this.#limit(r, msg) : r;
  }

  /** Run the message through the route within `timeoutMs` (TIMEOUT -> 504); the limits of an endpoint share one timer. */
  run(msg: Message): Promise<Message> {
    return this.#limit(this.ctx.process(msg), msg);
  }

  #limit(p: Promise<Message>, msg: Message): Promise<Message> {
    const ms = this.opts.timeoutMs;
    const deadlines = (this.#deadlines ??= new Deadlines(this.ctx.clock, ms, { unref: true }));
    return new Promise<Message>((resolve, reject) => {
      let done = false;
      const expire = (): void => {
        if (done) return;
        done = true;
        reject(new BusbarError('TIMEOUT', `route "${this.ctx.routeId}" did not reply within ${ms} ms (timeoutMs)`, { details: { routeId: this.ctx.routeId, timeoutMs: ms } }));
      };
      deadlines.add(expire);
      p.then(
        (m) => {
          if (done) return;
          done = true;
          deadlines.delete(expire);
          resolve(m);
        },
        (e: unknown) => {
          if (done) {
            this.ctx.logger.warn({ err: e, messageId: msg.id }, 'request failed after its client got 504');
            return;
          }
          done = true;
          deadlines.delete(expire);
          reject(e);
        },
      );
    });
  }

  /** Answer with an error: status by code, body with code/message/problems, logged. */
  fail(r: Routed, err: unknown, msg?: Message): void {
    const status = statusOf(err);
    if (status >= 500) this.ctx.logger.warn({ err, messageId: msg?.id, status }, 'http request failed');
    else this.ctx.logger.debug({ code: (err as BusbarError).code, status }, 'http request refused');
    if (msg) r.res.setHeader('X-Correlation-Id', msg.correlationId);
    // the rest of an oversized body is not worth reading: close the connection after the answer
    if (status === 413) r.res.shouldKeepAlive = false;
    sendError(r.req, r.res, status, err);
  }

  /** `http.reply.header.*` of the reply onto the response (never hop-by-hop ones). */
  static replyHeaders(res: ServerResponse, reply: Message): void {
    const h = reply.headers;
    const p = HTTP_HEADERS.replyHeader;
    for (const k in h) {
      if (!k.startsWith(p)) continue;
      const name = k.slice(p.length).toLowerCase();
      const v = h[k];
      if (HOP_BY_HOP.has(name) || v === undefined || v === null) continue;
      res.setHeader(name, typeof v === 'object' ? [...v] : String(v));
    }
  }
}

/** Which of our representations the Accept header allows; undefined = none (406). */
export function acceptable(req: IncomingMessage): 'json' | 'xml' | undefined {
  const accept = req.headers.accept;
  if (!accept) return 'json';
  if (prefersXml(req)) return 'xml';
  return /(\*\/\*|application\/\*|json)/i.test(accept) ? 'json' : undefined;
}

/**
 * REST: the body in, the route's reply out, by content negotiation. A route that finishes
 * synchronously is answered in the turn its body arrived: no promise, no time limit (there
 * is nothing left to wait for).
 */
export const restServer: ProtocolServer = {
  handle(r, ep) {
    if (ep.refuseWhenBusy(r)) return;
    ep.receive(r.req, (err, bytes) => {
      if (err !== undefined) lastWord(r, ep, () => ep.fail(r, err));
      else restExchange(r, ep, bytes!);
    });
  },
};

function restExchange(r: Routed, ep: ServerEndpoint, bytes: Buffer): void {
  let msg: Message | undefined;
  try {
    const body = ep.formats.decode(bytes, r.req.headers['content-type'], ep.opts.bodyFormat);
    msg = ep.message(r, body);
    const reply = ep.runNow(msg);
    if (!isPromise(reply)) {
      writeReply(r, ep, reply, msg.headers);
      return;
    }
    const m = msg;
    reply.then(
      (out) => lastWord(r, ep, () => writeReplyOrFail(r, ep, out, m)),
      (e: unknown) => lastWord(r, ep, () => ep.fail(r, e, m)),
    );
  } catch (err) {
    lastWord(r, ep, () => ep.fail(r, err, msg));
  }
}

function writeReplyOrFail(r: Routed, ep: ServerEndpoint, reply: Message, msg: Message): void {
  try {
    writeReply(r, ep, reply, msg.headers);
  } catch (err) {
    ep.fail(r, err, msg);
  }
}

/** Run `answer`; if even that throws, the server's last resort (a 500, or the connection cut), never an uncaught exception. */
function lastWord(r: Routed, ep: ServerEndpoint, answer: () => void): void {
  try {
    answer();
  } catch (err) {
    handlerFailed(r, err, ep.ctx.logger, ep.ctx.routeId);
  }
}

const REPLY_CONTENT_TYPE = HTTP_HEADERS.replyHeader + 'content-type';

/**
 * The reply as the response. `requestHeaders` are the headers of the message the request
 * became: a reply that still has that very object (a route that changed only the body) has no
 * `http.reply.*` header to look for, as a request's headers are all `http.*` of the request.
 */
function writeReply(r: Routed, ep: ServerEndpoint, reply: Message, requestHeaders: Headers): void {
  const { res, req } = r;
  const asReceived = reply.headers === requestHeaders;
  if (!asReceived) ServerEndpoint.replyHeaders(res, reply);
  const body = reply.body;
  let format = ep.opts.format;
  if (format === 'auto' && body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    const want = acceptable(req);
    if (!want) {
      res.setHeader('X-Correlation-Id', reply.correlationId);
      sendError(req, res, 406, new BusbarError('UNSUPPORTED_FORMAT', `cannot answer in any type of Accept: ${req.headers.accept}; available: application/json, application/xml`, { details: { accept: req.headers.accept } }));
      return;
    }
    format = want;
  }
  const statusHeader = asReceived ? undefined : reply.headers[HTTP_HEADERS.replyStatus];
  const explicitType = asReceived ? undefined : reply.headers[REPLY_CONTENT_TYPE];
  const enc = ep.formats.encode(body, format, typeof explicitType === 'string' ? explicitType : undefined);
  // a SOAP Fault reply (soapFaultOnError) goes out as 500, as SOAP over HTTP says
  const status = statusHeader !== undefined ? Number(statusHeader) : !asReceived && reply.headers[SOAP_FAULT_HEADER] === true ? 500 : enc ? 200 : 204;
  // the correlation id goes in writeHead's own headers: a response with no other header set
  // then needs no header map of its own (setHeader makes one)
  if (!enc) {
    res.writeHead(status, { 'X-Correlation-Id': reply.correlationId });
    res.end();
    return;
  }
  res.writeHead(status, { 'X-Correlation-Id': reply.correlationId, 'content-type': enc.contentType, 'content-length': Buffer.byteLength(enc.data) });
  res.end(enc.data);
}

/** The servers of this engine (per-engine adapter state, shared by REST, JSON-RPC and SOAP routes). */
export function hubOf(ctx: ConsumerContext): ServerHub {
  return ctx.state('servers', () => new ServerHub());
}

/** A server route: mounts itself on the shared server of its host:port when started. */
export function createServerConsumer(endpoint: Endpoint<HttpOptions>, ctx: ConsumerContext, config: HttpRuntime, protocol: ProtocolServer): Consumer {
  const opts = endpoint.options;
  let pattern = endpoint.path;
  if (pattern.startsWith('//')) {
    throw new BusbarError('INVALID_OPTION', `route "${ctx.routeId}": endpoint "${endpoint.uri}" is a URL (a client endpoint); a server route is a path: http:/orders/:id?port=8080`, {
      details: { uri: endpoint.uri, routeId: ctx.routeId },
    });
  }
  if (!pattern.startsWith('/')) pattern = `/${pattern}`;
  const ep = new ServerEndpoint(ctx, opts, config);
  const method = !opts.method || opts.method === 'ANY' ? (endpoint.options.protocol === 'rest' ? '*' : 'POST') : opts.method;
  const mount: Mount = { routeId: ctx.routeId, method, pattern, handle: (r) => protocol.handle(r, ep) };
  // SOAP's ?wsdl is a GET on the same path
  const extra: Mount[] = opts.protocol === 'soap' && opts.wsdl ? [{ routeId: ctx.routeId, method: 'GET', pattern, handle: (r) => protocol.handle(r, ep) }] : [];
  let server: ReturnType<ServerHub['get']> | undefined;
  return {
    async start() {
      ep.stopping = false;
      await protocol.start?.();
      server = hubOf(ctx).get(opts.host, opts.port, config, ctx.logger);
      await server.mount(mount);
      for (const m of extra) await server.mount(m);
      ctx.setStatus('connected');
    },
    async stop() {
      ep.stopping = true;
      if (!server) return;
      for (const m of extra) await server.unmount(m);
      await server.unmount(mount);
      ctx.setStatus('idle');
    },
  };
}
