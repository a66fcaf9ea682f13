/**
 * The API gateway: HTTP paths mapped to services by name, resolved through the registry
 * (only passing instances get calls), with an allow-list of methods per route, a rate limit
 * per route, an auth hook, and an OpenAPI document generated from the services' contracts.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BusbarError, isBusbarError, type ErrorCode } from '../errors.js';
import type { JsonSchema } from '../schema.js';
import type { ServiceRegistry } from './registry.js';

/** What the auth hook sees of a request. */
export interface GatewayRequest {
  method: string;
  path: string;
  service: string;
  operation: string;
  headers: IncomingHttpHeaders;
}

/**
 * Decide whether a request may go on: `true`; `false` (403); or `{ status: 401 | 403, message }`.
 * A hook that throws refuses the request (403); it never takes the gateway down.
 */
export type GatewayAuthHook = (req: GatewayRequest) => boolean | { status: 401 | 403; message?: string } | Promise<boolean | { status: 401 | 403; message?: string }>;

export interface GatewayRoute {
  /** Path prefix (`/api/inventory`); calls are `POST <path>/<method>` with the arguments as JSON (a list, or one value). */
  path: string;
  /** The service's name in the registry. */
  service: string;
  /** Allow-list of methods. Default: the methods of the service's contract (a service without a contract exposes none). */
  methods?: readonly string[];
  /** Token bucket: `perSecond` calls on average, bursts up to `burst` (default `perSecond`). Over it: 429. */
  rateLimit?: { perSecond: number; burst?: number };
  /** This route's auth hook (after the gateway's). */
  auth?: GatewayAuthHook;
  /** Time limit of a call (default 10 s). */
  timeoutMs?: number;
  /** Methods retried on another instance when theirs is lost (in addition to the contract's `idempotent` ones). */
  idempotent?: boolean | readonly string[];
}

export interface GatewayOptions {
  routes: readonly GatewayRoute[];
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Auth hook for every route. */
  auth?: GatewayAuthHook;
  /** Largest request body (default 1 MiB). */
  maxBodyBytes?: number;
  /** The OpenAPI document: `GET <path>` (default `/openapi.json`; `false`: none). */
  openapi?: false | { path?: string; title?: string; version?: string };
}

export interface GatewayStats {
  requests: number;
  ok: number;
  failed: Record<string, number>;
}

export interface Gateway {
  url: string;
  /** The OpenAPI 3.0 document as served now. */
  openapi(): Record<string, unknown>;
  stats(): GatewayStats;
  close(): Promise<void>;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  BUSBAR_ERR_GATEWAY_NOT_FOUND: 404,
  BUSBAR_ERR_RPC_METHOD_NOT_FOUND: 404,
  BUSBAR_ERR_NOT_FOUND: 404,
  BUSBAR_ERR_GATEWAY_BAD_REQUEST: 400,
  BUSBAR_ERR_VALIDATION_FAILED: 400,
  BUSBAR_ERR_GATEWAY_RATE_LIMITED: 429,
  BUSBAR_ERR_SERVICE_UNAVAILABLE: 503,
  BUSBAR_ERR_CIRCUIT_OPEN: 503,
  BUSBAR_ERR_SERVICE_INSTANCE_LOST: 502,
  BUSBAR_ERR_P2P_PEER_LOST: 502,
  BUSBAR_ERR_TIMEOUT: 504,
};

class Bucket {
  #tokens: number;
  #at = Date.now();
  readonly #rate: number;
  readonly #burst: number;
  constructor(perSecond: number, burst: number) {
    this.#rate = perSecond;
    this.#burst = burst;
    this.#tokens = burst;
  }
  /** 0 when a token was taken, else the milliseconds until one is there. */
  take(): number {
    const now = Date.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) / this.#rate) * 1000);
  }
}

const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object' } } } },
};

/** Start an API gateway in front of the services of `registry`. */
export async function startGateway(registry: ServiceRegistry, opts: GatewayOptions): Promise<Gateway> {
  const routes = opts.routes.map((r, i) => {
    if (!/^\/[A-Za-z0-9/_.-]*$/.test(r.path)) throw new BusbarError('INVALID_OPTION', `gateway route ${i}: path "${r.path}" must start with / (letters, digits, / _ . -)`, { details: { option: `routes/${i}/path` } });
    if (r.rateLimit && !(r.rateLimit.perSecond > 0)) throw new BusbarError('INVALID_OPTION', `gateway route ${i}: rateLimit.perSecond must be > 0`, { details: { option: `routes/${i}/rateLimit` } });
    const bucket = r.rateLimit ? new Bucket(r.rateLimit.perSecond, Math.max(1, r.rateLimit.burst ?? r.rateLimit.perSecond)) : undefined;
    return { ...r, prefix: r.path.replace(/\/+$/, ''), bucket };
  });
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  const docPath = opts.openapi === false ? undefined : (opts.openapi?.path ?? '/openapi.json');
  const stats: GatewayStats = { requests: 0, ok: 0, failed: {} };

  const allowed = (r: (typeof routes)[number]): string[] => [...(r.methods ?? Object.keys(registry.contractOf(r.service)?.contract?.methods ?? {}))];

  const openapi = (): Record<string, unknown> => {
    const paths: Record<string, unknown> = {};
    for (const r of routes) {
      const c = registry.contractOf(r.service);
      for (const m of allowed(r)) {
        const mc = c?.contract?.methods[m];
        const input: JsonSchema | undefined = mc?.input;
        paths[`${r.prefix}/${m}`] = {
          post: {
            operationId: `${r.service}.${m}`,
            summary: mc?.description ?? `${r.service}.${m}`,
            tags: [r.service],
            ...(c ? { 'x-service-version': c.version } : {}),
            requestBody: { required: input !== undefined, content: { 'application/json': { schema: input ?? {} } } },
            responses: {
              200: { description: 'the result', content: { 'application/json': { schema: mc?.output ?? {} } } },
              ...Object.fromEntries(
                [
                  [400, 'bad request or contract violated'],
                  [404, 'not on the allow-list'],
                  [429, 'rate limited'],
                  [502, 'the instance was lost mid-call'],
                  [503, 'no passing instance'],
                  [504, 'timed out'],
                ].map(([s, d]) => [s, { description: d, content: { 'application/json': { schema: ERROR_SCHEMA } } }]),
              ),
            },
          },
        };
      }
    }
    return { openapi: '3.0.3', info: { title: (opts.openapi || undefined)?.title ?? 'busbar API gateway', version: (opts.openapi || undefined)?.version ?? '1.0.0' }, paths };
  };

  const fail = (res: ServerResponse, e: unknown): void => {
    const err = isBusbarError(e) ? e : new BusbarError('STEP_FAILED', e instanceof Error ? e.message : String(e), { cause: e });
    const status = (err.details.httpStatus as number | undefined) ?? STATUS[err.code] ?? 500;
    stats.failed[err.code] = (stats.failed[err.code] ?? 0) + 1;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (status === 429 && typeof err.details.retryAfterMs === 'number') headers['retry-after'] = String(Math.max(1, Math.ceil(err.details.retryAfterMs / 1000)));
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    const details: Record<string, unknown> = {};
    for (const k of ['service', 'method', 'instance', 'problems', 'retryAfterMs']) if (err.details[k] !== undefined) details[k] = err.details[k];
    send(res, status, { error: { code: err.code, message: err.message, details } }, headers);
  };

  const authorize = async (hook: GatewayAuthHook | undefined, req: GatewayRequest): Promise<void> => {
    if (!hook) return;
    let verdict: Awaited<ReturnType<GatewayAuthHook>>;
    try {
      verdict = await hook(req);
    } catch (e) {
      throw new BusbarError('GATEWAY_FORBIDDEN', `gateway: the auth hook failed: ${(e as Error).message}`, { details: { httpStatus: 403 } });
    }
    if (verdict === true) return;
    const status = verdict === false ? 403 : verdict.status === 401 ? 401 : 403;
    const message = verdict === false ? undefined : verdict.message;
    throw new BusbarError('GATEWAY_FORBIDDEN', `gateway: ${message ?? (status === 401 ? 'credentials required' : 'not allowed')} (${req.method} ${req.path})`, { details: { httpStatus: status } });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    stats.requests++;
    const path = (req.url ?? '/').split('?')[0]!;
    if (docPath && path === docPath && (req.method === 'GET' || req.method === 'HEAD')) {
      stats.ok++;
      return send(res, 200, openapi());
    }
    const r = routes.find((x) => path.startsWith(`${x.prefix}/`));
    const operation = r ? path.slice(r.prefix.length + 1) : '';
    if (!r || !operation || operation.includes('/') || !allowed(r).includes(operation)) {
      req.resume();
      throw new BusbarError('GATEWAY_NOT_FOUND', `gateway: no route for ${req.method} ${path}${r ? ` (service "${r.service}" allows: ${allowed(r).join(', ') || 'nothing'})` : ''}`, { details: { path } });
    }
    if (req.method !== 'POST') {
      req.resume();
      throw new BusbarError('GATEWAY_BAD_REQUEST', `gateway: ${path} takes POST, not ${req.method}`, { details: { httpStatus: 405 } });
    }
    const info: GatewayRequest = { method: req.method, path, service: r.service, operation, headers: req.headers };
    await authorize(opts.auth, info);
    await authorize(r.auth, info);
    const wait = r.bucket?.take() ?? 0;
    if (wait > 0) {
      req.resume();
      throw new BusbarError('GATEWAY_RATE_LIMITED', `gateway: rate limit of ${r.path} (${r.rateLimit!.perSecond}/s) reached; retry in ${wait} ms`, { details: { retryAfterMs: wait } });
    }
    const text = await readBody(req, maxBody);
    let body: unknown;
    try {
      body = text.length ? JSON.parse(text) : undefined;
    } catch (e) {
      throw new BusbarError('GATEWAY_BAD_REQUEST', `gateway: the request body is not JSON: ${(e as Error).message}`, { details: {} });
    }
    const args = Array.isArray(body) ? body : body === undefined ? [] : [body];
    const callOpts: Parameters<ServiceRegistry['call']>[3] = {};
    if (r.timeoutMs !== undefined) callOpts.timeoutMs = r.timeoutMs;
    if (r.idempotent !== undefined) callOpts.idempotent = r.idempotent;
    const result = await registry.call(r.service, operation, args, callOpts);
    stats.ok++;
    if (result === undefined) {
      res.writeHead(204).end();
      return;
    }
    send(res, 200, result);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) fail(res, e);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new BusbarError('INVALID_OPTION', `gateway: cannot listen on ${host}:${opts.port ?? 0}: ${e.message}`, { cause: e, details: { option: 'port' } })));
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    openapi,
    stats: () => ({ ...stats, failed: { ...stats.failed } }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > max) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BusbarError('GATEWAY_BAD_REQUEST', `gateway: the request body is larger than ${max} bytes`, { details: { httpStatus: 413 } }));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
