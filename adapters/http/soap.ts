/**
 * SOAP 1.1 and 1.2 over HTTP, on top of the SOAP codec (lib/codecs/soap.ts): several routes
 * can share one path, each taking a SOAPAction and/or an operation; Faults go out with the
 * status each version asks for; a WSDL document supplied by the user is served at `?wsdl`.
 */
import { readFile } from 'node:fs/promises';
import type { Consumer, ConsumerContext, Endpoint } from '../../lib/adapter.js';
import {
  buildSoapEnvelope,
  buildSoapFault,
  errorToSoapFault,
  mustUnderstandFault,
  parseSoapEnvelope,
  soapBody,
  soapFaultToError,
  SOAP_CONTENT_TYPES,
  type SoapEnvelope,
  type SoapVersion,
} from '../../lib/codecs.js';
import { isPlainObject } from '../../lib/codecs/base.js';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import { merged, type HeaderValue, type Message } from '../../lib/message.js';
import type { ProtocolClient, WireResponse } from './client.js';
import { hubOf, ServerEndpoint } from './consumer.js';
import { Formats } from './formats.js';
import { SOAP_HEADERS } from './headers.js';
import type { HttpRuntime, HttpOptions } from './options.js';
import type { Mount, Routed, SharedServer } from './server.js';
import { sendError } from './status.js';

/** SOAPAction of a request: the 1.1 header, or the 1.2 `action` media type parameter; quotes removed. */
export function actionOf(headers: { soapaction?: string | string[] | undefined; 'content-type'?: string | undefined }): string | undefined {
  const h = headers.soapaction;
  const raw = Array.isArray(h) ? h[0] : h;
  if (raw !== undefined) return raw.trim().replace(/^"(.*)"$/, '$1');
  const m = /;\s*action\s*=\s*("([^"]*)"|[^;\s]+)/i.exec(headers['content-type'] ?? '');
  return m ? (m[2] ?? m[1]) : undefined;
}

/** 1.1: every fault is 500. 1.2: Sender faults are 400, the rest 500. */
function faultStatus(version: SoapVersion, err: unknown): number {
  if (version === '1.1') return 500;
  const code = errorToSoapFault(err, version).code;
  return code === 'Sender' ? 400 : 500;
}

function contentType(version: SoapVersion): string {
  return `${SOAP_CONTENT_TYPES[version]}; charset=utf-8`;
}

function sendXml(r: Routed, status: number, version: SoapVersion, xml: string): void {
  r.res.statusCode = status;
  r.res.setHeader('Content-Type', contentType(version));
  r.res.setHeader('Content-Length', Buffer.byteLength(xml));
  r.res.end(xml);
}

/** The reply envelope for a route's reply body. */
export function replyEnvelope(body: unknown, env: SoapEnvelope, namespace: string | undefined): string {
  if (typeof body === 'string' && body.trimStart().startsWith('<')) return body;
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  if (isPlainObject(body) && typeof body.operation === 'string' && 'payload' in body) {
    const ns = typeof body.namespace === 'string' ? body.namespace : namespace;
    return buildSoapEnvelope(soapBody(body.operation, body.payload, ns), { version: env.version });
  }
  // document/literal wrapped: <OperationResponse xmlns="...">...</OperationResponse>
  const op = `${env.operation ?? 'Operation'}Response`;
  return buildSoapEnvelope(soapBody(op, body, namespace), { version: env.version });
}

interface SoapRoute {
  ep: ServerEndpoint;
  action: string | undefined;
  operation: string | undefined;
  namespace: string | undefined;
  wsdl: string | undefined;
  /** Header blocks the route processes (`soapUnderstood`). */
  understood: string[];
}

/**
 * One path on one server, shared by the SOAP routes that serve it; picks the route by
 * SOAPAction and operation (the most specific match wins).
 */
class SoapDispatcher {
  readonly routes: SoapRoute[];
  #xml: { maxBytes: number } | undefined;
  readonly post: Mount;
  readonly get: Mount;
  constructor(pattern: string, fallbackVersion: () => SoapVersion, routes: SoapRoute[]) {
    this.routes = routes;
    const routeId = routes[0]?.ep.ctx.routeId ?? 'soap';
    this.post = { routeId, method: 'POST', pattern, handle: (r) => this.#handle(r, fallbackVersion()) };
    this.get = { routeId, method: 'GET', pattern, handle: (r) => this.#wsdl(r) };
  }

  async #wsdl(r: Routed): Promise<void> {
    const doc = this.routes.find((x) => x.wsdl !== undefined)?.wsdl;
    const asked = [...r.url.searchParams.keys()].some((k) => k.toLowerCase() === 'wsdl');
    if (!asked || doc === undefined) {
      sendError(r.req, r.res, 404, new BusbarError('NOT_FOUND', `GET ${r.url.pathname}: a SOAP endpoint answers POST; its WSDL is at ?wsdl${doc === undefined ? ' (none configured)' : ''}`, { details: {} }));
      return;
    }
    r.res.statusCode = 200;
    r.res.setHeader('Content-Type', 'text/xml; charset=utf-8');
    r.res.setHeader('Content-Length', Buffer.byteLength(doc));
    r.res.end(doc);
  }

  #pick(action: string | undefined, operation: string | undefined): SoapRoute | undefined {
    let best: SoapRoute | undefined;
    let bestScore = -1;
    for (const x of this.routes) {
      if (x.action !== undefined && x.action !== action) continue;
      if (x.operation !== undefined && x.operation !== operation) continue;
      const score = (x.action !== undefined ? 2 : 0) + (x.operation !== undefined ? 1 : 0);
      if (score > bestScore) [best, bestScore] = [x, score];
    }
    return best;
  }

  async #handle(r: Routed, fallback: SoapVersion): Promise<void> {
    const first = this.routes[0];
    if (!first) return sendError(r.req, r.res, 503, new BusbarError('ENGINE_STATE', 'SOAP endpoint is stopping', { details: {} }), { retryAfterS: 1 });
    const ct = r.req.headers['content-type'] ?? '';
    const declared: SoapVersion = /application\/soap\+xml/i.test(ct) ? '1.2' : /text\/xml/i.test(ct) ? '1.1' : fallback;
    const limit = Math.max(...this.routes.map((x) => x.ep.opts.maxBodyBytes));
    let bytes: Buffer;
    try {
      bytes = await first.ep.readBody(r.req);
    } catch (err) {
      if (isBusbarError(err, 'INPUT_TOO_LARGE') && limit > first.ep.opts.maxBodyBytes) err.details.maxBytes = limit;
      r.res.shouldKeepAlive = false;
      return sendXml(r, 413, declared, buildSoapFault(err, { version: declared }));
    }
    let env: SoapEnvelope;
    try {
      if (this.#xml?.maxBytes !== limit) this.#xml = { maxBytes: limit }; // one options object: the codec caches its parser per object
      env = parseSoapEnvelope(bytes, this.#xml);
    } catch (err) {
      const e = isBusbarError(err) ? err : new BusbarError('PARSE', String(err));
      return sendXml(r, faultStatus(declared, e), declared, buildSoapFault(e, { version: declared }));
    }
    const action = actionOf(r.req.headers);
    const route = this.#pick(action, env.operation);
    if (!route) {
      const err = new BusbarError('RPC_METHOD_NOT_FOUND', `no SOAP operation here for action ${JSON.stringify(action ?? '')} and element <${env.operation ?? ''}>`, {
        details: { action, operation: env.operation },
      });
      return sendXml(r, faultStatus(env.version, err), env.version, buildSoapFault(err, { version: env.version }));
    }
    const ep = route.ep;
    const notUnderstood = mustUnderstandFault(env, route.understood);
    if (notUnderstood) {
      ep.ctx.logger.warn({ notUnderstood: notUnderstood.notUnderstood, action, operation: env.operation }, 'SOAP request refused: a mustUnderstand header block this route does not process (soapUnderstood)');
      return sendXml(r, 500, env.version, notUnderstood.xml);
    }
    if (ep.stopping || ep.ctx.available() === 0) {
      // a Server fault (retryable) that SOAP clients understand, with the HTTP hint to wait
      const busy = new BusbarError('LIMIT_EXCEEDED', ep.stopping ? `route "${ep.ctx.routeId}" is stopping` : `route "${ep.ctx.routeId}" is full (${ep.ctx.maxInflight} requests in progress); retry later`, {
        details: { routeId: ep.ctx.routeId },
        retryable: true,
      });
      r.res.setHeader('Retry-After', String(ep.opts.retryAfterS));
      if (ep.stopping) r.res.shouldKeepAlive = false;
      return sendXml(r, 503, env.version, buildSoapFault(busy, { version: env.version }));
    }
    const extra: Record<string, HeaderValue> = { [SOAP_HEADERS.version]: env.version };
    if (action !== undefined) extra[SOAP_HEADERS.action] = action;
    if (env.operation !== undefined) extra[SOAP_HEADERS.operation] = env.operation;
    if (env.namespace !== undefined) extra[SOAP_HEADERS.namespace] = env.namespace;
    for (const [name, block] of Object.entries(env.headers)) {
      extra[`${SOAP_HEADERS.headerBlock}${name}`] = typeof block === 'string' ? block : block === null || typeof block !== 'object' ? String(block) : JSON.stringify(block);
    }
    const msg = ep.message(r, env.payload, extra);
    let xml: string;
    try {
      const reply = await ep.run(msg);
      xml = replyEnvelope(reply.body, env, route.namespace ?? env.namespace);
    } catch (err) {
      const status = faultStatus(env.version, err);
      // the whole error (route, step, cause) stays here; the client gets a fault without them
      ep.ctx.logger[status >= 500 ? 'warn' : 'info']({ err, messageId: msg.id, status }, 'SOAP request failed; answered with a Fault');
      return sendXml(r, status, env.version, buildSoapFault(err, { version: env.version, reason: ep.opts.faultReason }));
    }
    r.res.setHeader('X-Correlation-Id', msg.correlationId);
    sendXml(r, 200, env.version, xml);
  }
}

/** `{urn:a,b}X, Y` -> ['{urn:a,b}X', 'Y']: commas inside a `{namespace}` do not split. */
function splitUnderstood(list: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of list) {
    if (ch === '{') depth++;
    else if (ch === '}') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  out.push(cur.trim());
  return out.filter(Boolean);
}

/** A SOAP server route: joins (or opens) the dispatcher of its host:port and path. */
export function createSoapConsumer(endpoint: Endpoint<HttpOptions>, ctx: ConsumerContext, config: HttpRuntime): Consumer {
  const opts = endpoint.options;
  let pattern = endpoint.path;
  if (pattern.startsWith('//')) {
    throw new BusbarError('INVALID_OPTION', `route "${ctx.routeId}": endpoint "${endpoint.uri}" is a URL (a client endpoint); a SOAP server route is a path: http:/ws/orders?protocol=soap&port=8080`, {
      details: { uri: endpoint.uri, routeId: ctx.routeId },
    });
  }
  if (!pattern.startsWith('/')) pattern = `/${pattern}`;
  const understood = opts.soapUnderstood ? splitUnderstood(opts.soapUnderstood) : [];
  const route: SoapRoute = { ep: new ServerEndpoint(ctx, opts, config), action: opts.soapAction, operation: opts.operation, namespace: opts.namespace, wsdl: undefined, understood };
  const key = `soap ${opts.host}:${opts.port} ${pattern}`;
  const dispatchers = ctx.state('soap-dispatchers', () => new Map<string, SoapDispatcher>());
  let server: SharedServer | undefined;
  return {
    async start() {
      route.ep.stopping = false;
      if (opts.wsdl) {
        try {
          route.wsdl = await readFile(opts.wsdl, 'utf8');
        } catch (e) {
          throw new BusbarError('INVALID_OPTION', `route "${ctx.routeId}": cannot read the WSDL file "${opts.wsdl}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
            cause: e,
            details: { routeId: ctx.routeId, option: 'wsdl', path: opts.wsdl },
          });
        }
      }
      const d = dispatchers.get(key);
      if (d) {
        const clash = d.routes.find((x) => x.action === route.action && x.operation === route.operation);
        if (clash) {
          throw new BusbarError('HTTP_ROUTE', `SOAP ${pattern} on ${opts.host}:${opts.port}: action ${JSON.stringify(route.action ?? '*')} / operation ${JSON.stringify(route.operation ?? '*')} is already served by route "${clash.ep.ctx.routeId}"`, {
            details: { routeId: ctx.routeId, other: clash.ep.ctx.routeId },
          });
        }
        d.routes.push(route);
      } else {
        const routes: SoapRoute[] = [route];
        const made: SoapDispatcher = new SoapDispatcher(pattern, (): SoapVersion => routes[0]?.ep.opts.soapVersion ?? '1.1', routes);
        dispatchers.set(key, made);
        server = hubOf(ctx).get(opts.host, opts.port, config, ctx.logger);
        try {
          await server.mount(made.post);
          await server.mount(made.get);
        } catch (e) {
          dispatchers.delete(key);
          await server.unmount(made.post).catch(() => undefined);
          throw e;
        }
      }
      ctx.setStatus('connected');
    },
    async stop() {
      route.ep.stopping = true;
      const d = dispatchers.get(key);
      if (!d) return;
      const i = d.routes.indexOf(route);
      if (i >= 0) d.routes.splice(i, 1);
      if (d.routes.length === 0) {
        dispatchers.delete(key);
        const s = server ?? hubOf(ctx).find(opts.host, opts.port);
        if (s) {
          await s.unmount(d.get);
          await s.unmount(d.post);
        }
      }
      ctx.setStatus('idle');
    },
  };
}

/** The SOAP client: plain data in an operation element, the reply's payload (or a Fault as SOAP_FAULT). */
export const soapClient: ProtocolClient = {
  encode(msg, call) {
    const o = call.opts;
    const version = o.soapVersion;
    const action = (msg.headers[SOAP_HEADERS.action] as string | undefined) ?? o.soapAction;
    const operation = (msg.headers[SOAP_HEADERS.operation] as string | undefined) ?? o.operation;
    const body = msg.body;
    let xml: string;
    if (typeof body === 'string' && body.trimStart().startsWith('<')) xml = body;
    else if (Buffer.isBuffer(body)) xml = body.toString('utf8');
    else if (isPlainObject(body) && typeof body.operation === 'string' && 'payload' in body) {
      xml = buildSoapEnvelope(soapBody(body.operation, body.payload, typeof body.namespace === 'string' ? body.namespace : o.namespace), { version });
    } else if (operation !== undefined) xml = buildSoapEnvelope(soapBody(operation, body, o.namespace), { version });
    else if (isPlainObject(body)) xml = buildSoapEnvelope(body, { version });
    else {
      throw new BusbarError('ENCODE', 'soap: no operation to call: set the operation option or the soap.operation header, or send Body content / an envelope', { details: { codec: 'soap' } });
    }
    const headers: Record<string, string> = {};
    let ct = contentType(version);
    if (version === '1.1') headers.soapaction = `"${action ?? ''}"`;
    else if (action !== undefined) ct += `; action="${action}"`;
    headers.accept = `${SOAP_CONTENT_TYPES[version]}, text/xml, application/soap+xml`;
    return { data: xml, contentType: ct, headers, method: 'POST' };
  },
  decode(res: WireResponse, msg: Message) {
    const kind = Formats.kindOf(res.headers['content-type']);
    const soapish = kind === 'xml' || /soap\+xml/i.test(res.headers['content-type'] ?? '');
    if (!soapish || res.body.length === 0) {
      if (res.status >= 300) return undefined;
      throw new BusbarError('SOAP_ENVELOPE', `soap: the response (HTTP ${res.status}) is not a SOAP envelope (content type ${res.headers['content-type'] ?? 'none'})`, { details: { codec: 'soap', reason: 'not-envelope', status: res.status } });
    }
    let env: SoapEnvelope;
    try {
      env = parseSoapEnvelope(res.body);
    } catch (e) {
      if (res.status >= 300) return undefined;
      throw e;
    }
    if (env.fault) {
      const err = soapFaultToError(env.fault);
      err.details.status = res.status;
      throw err;
    }
    if (res.status >= 300) return undefined;
    const headers: Record<string, HeaderValue> = merged(msg.headers, { [SOAP_HEADERS.version]: env.version });
    if (env.operation !== undefined) headers[SOAP_HEADERS.operation] = env.operation;
    if (env.namespace !== undefined) headers[SOAP_HEADERS.namespace] = env.namespace;
    return { ...msg, body: env.payload, headers };
  },
};
