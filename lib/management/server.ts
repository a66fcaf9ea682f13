import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { BusbarError, isBusbarError } from '../errors.js';
import type { ManagementHandler, ManagementServer } from './types.js';

export const DEFAULT_MANAGEMENT_PORT = 9464;

interface Mount {
  method: string;
  /** Literal segments, `:name` segments; `prefix` mounts match any rest (`*`). */
  segments: string[];
  prefix: boolean;
  handler: ManagementHandler;
  /** Answers without a token (only `/live`). */
  open: boolean;
}

/** Addresses that only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

const STATUS_BY_CODE: Record<string, number> = {
  BUSBAR_ERR_NOT_FOUND: 404,
  BUSBAR_ERR_UNAUTHORIZED: 401,
  BUSBAR_ERR_ROUTE_STATE: 409,
  BUSBAR_ERR_ENGINE_STATE: 409,
  BUSBAR_ERR_MANAGEMENT_REQUEST: 400,
  BUSBAR_ERR_INVALID_ROUTE: 400,
  BUSBAR_ERR_INVALID_OPTION: 400,
  BUSBAR_ERR_UNKNOWN_SCHEME: 400,
  BUSBAR_ERR_ROUTES_FILE: 400,
  BUSBAR_ERR_RELOAD_FAILED: 422,
};

/** Write a JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** Write a coded error: `{ "error": { "code", "message", "details" } }` with the status its code maps to. */
export function sendError(res: ServerResponse, err: unknown, status?: number): void {
  const e = isBusbarError(err) ? err : new BusbarError('STEP_FAILED', (err as Error)?.message ?? String(err), { cause: err });
  const code = status ?? STATUS_BY_CODE[e.code] ?? 500;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const details = jsonSafe(e.details);
  sendJson(res, code, { error: { code: e.code, message: e.message, ...(details && Object.keys(details).length ? { details } : {}) } });
}

function jsonSafe(d: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!d) return undefined;
  try {
    return JSON.parse(JSON.stringify(d)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Read a request body as JSON (bounded); an empty body is `{}`. */
export async function readJson(req: IncomingMessage, maxBytes = 1 << 20): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > maxBytes) throw new BusbarError('MANAGEMENT_REQUEST', `request body larger than ${maxBytes} bytes`, { details: { maxBytes } });
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new BusbarError('MANAGEMENT_REQUEST', `request body is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BusbarError('MANAGEMENT_REQUEST', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * The management HTTP server: one listener, mounts with `:params` and prefix mounts,
 * bearer-token auth on everything but `/live`, coded JSON errors. Handlers that throw
 * answer 500 and never take the process down.
 */
export class ManagementHttpServer implements ManagementServer {
  readonly #mounts: Mount[] = [];
  readonly #server: Server;
  readonly #token: Buffer | undefined;
  readonly #logger: Logger;
  readonly #closers = new Set<() => void>();
  #url = '';

  constructor(opts: { token?: string; logger: Logger }) {
    this.#token = opts.token === undefined ? undefined : digest(opts.token);
    this.#logger = opts.logger;
    this.#server = createServer((req, res) => void this.#handle(req, res));
    // keep-alive sockets of clients must not hold close() up
    this.#server.keepAliveTimeout = 5000;
  }

  get url(): string {
    return this.#url;
  }

  static async listen(opts: { host?: string; port?: number; token?: string; logger: Logger }): Promise<ManagementHttpServer> {
    const host = opts.host ?? '127.0.0.1';
    const port = opts.port ?? DEFAULT_MANAGEMENT_PORT;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new BusbarError('MANAGEMENT_CONFIG', `management port ${String(port)} is not a port number (0-65535)`, { details: { port } });
    }
    if (host !== 'localhost' && isIP(host.replace(/^\[|\]$/g, '')) === 0) {
      throw new BusbarError('MANAGEMENT_CONFIG', `management host "${host}" is not an IP address or localhost`, { details: { host } });
    }
    if (opts.token !== undefined && opts.token.length < 1) throw new BusbarError('MANAGEMENT_CONFIG', 'management token is empty', { details: { host } });
    if (!isLoopback(host) && opts.token === undefined) {
      throw new BusbarError('MANAGEMENT_CONFIG', `refusing to start the management API on ${host} without a token: only loopback addresses (127.0.0.1, ::1) may go without one; give a token (--management-token, BUSBAR_MANAGEMENT_TOKEN)`, {
        details: { host },
      });
    }
    const s = new ManagementHttpServer({ logger: opts.logger, ...(opts.token !== undefined ? { token: opts.token } : {}) });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        reject(new BusbarError('MANAGEMENT_CONFIG', `management API cannot listen on ${host}:${port}: ${e.code === 'EADDRINUSE' ? 'port in use' : e.message}`, { cause: e, details: { host, port, errno: e.code } }));
      };
      s.#server.once('error', onError);
      s.#server.listen(port, host.replace(/^\[|\]$/g, ''), () => {
        s.#server.off('error', onError);
        resolve();
      });
    });
    s.#server.on('error', (err) => s.#logger.error({ err }, 'management server error'));
    const addr = s.#server.address();
    const bound = typeof addr === 'object' && addr ? addr : { address: host, port };
    const h = bound.address.includes(':') ? `[${bound.address}]` : bound.address;
    s.#url = `http://${h}:${bound.port}`;
    return s;
  }

  addRoute(method: string, path: string, handler: ManagementHandler, opts: { open?: boolean } = {}): void {
    if (typeof handler !== 'function') throw new BusbarError('MANAGEMENT_CONFIG', `addRoute ${method} ${path}: handler is not a function`, { details: { method, path } });
    if (!path.startsWith('/')) throw new BusbarError('MANAGEMENT_CONFIG', `addRoute ${method} ${path}: path must start with /`, { details: { method, path } });
    const prefix = path.endsWith('/*');
    const segments = (prefix ? path.slice(0, -2) : path).split('/').filter(Boolean);
    const m = method.toUpperCase();
    if (this.#mounts.some((x) => x.method === m && x.prefix === prefix && x.segments.join('/') === segments.join('/'))) {
      throw new BusbarError('MANAGEMENT_CONFIG', `addRoute: ${m} ${path} is already mounted`, { details: { method: m, path } });
    }
    this.#mounts.push({ method: m, segments, prefix, handler, open: opts.open === true });
  }

  /** Run `fn` when the server closes (event streams end). */
  onClose(fn: () => void): () => void {
    this.#closers.add(fn);
    return () => this.#closers.delete(fn);
  }

  async close(): Promise<void> {
    for (const c of [...this.#closers]) {
      try {
        c();
      } catch {
        // closing goes on
      }
    }
    this.#closers.clear();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #match(method: string, parts: string[]): { mount: Mount; params: Record<string, string> } | 'method' | undefined {
    let wrongMethod = false;
    // exact mounts before prefix mounts
    for (const pass of [false, true]) {
      for (const m of this.#mounts) {
        if (m.prefix !== pass) continue;
        if (m.prefix ? parts.length < m.segments.length : parts.length !== m.segments.length) continue;
        const params: Record<string, string> = {};
        let ok = true;
        for (let i = 0; i < m.segments.length; i++) {
          const seg = m.segments[i]!;
          if (seg.startsWith(':')) params[seg.slice(1)] = parts[i]!;
          else if (seg !== parts[i]) {
            ok = false;
            break;
          }
        }
        if (!ok) continue;
        if (m.method !== method && !(m.method === 'GET' && method === 'HEAD')) {
          wrongMethod = true;
          continue;
        }
        if (m.prefix) params['*'] = parts.slice(m.segments.length).join('/');
        return { mount: m, params };
      }
      if (wrongMethod) return 'method';
    }
    return undefined;
  }

  #authorized(req: IncomingMessage): boolean {
    if (!this.#token) return true;
    const h = req.headers.authorization;
    if (typeof h !== 'string' || !/^bearer /i.test(h)) return false;
    return timingSafeEqual(digest(h.slice(7).trim()), this.#token);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://management.invalid');
      let parts: string[];
      try {
        parts = url.pathname.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
      } catch {
        sendError(res, new BusbarError('MANAGEMENT_REQUEST', `bad path encoding: ${url.pathname}`));
        return;
      }
      const found = this.#match(req.method ?? 'GET', parts);
      const open = found !== undefined && found !== 'method' && found.mount.open;
      if (!open && !this.#authorized(req)) {
        res.setHeader('www-authenticate', 'Bearer realm="busbar"');
        sendError(res, new BusbarError('UNAUTHORIZED', req.headers.authorization ? 'wrong bearer token' : 'this endpoint needs a bearer token (Authorization: Bearer <token>)'));
        return;
      }
      if (found === undefined) {
        sendError(res, new BusbarError('NOT_FOUND', `no management endpoint ${req.method} ${url.pathname}`, { details: { path: url.pathname } }));
        return;
      }
      if (found === 'method') {
        sendError(res, new BusbarError('MANAGEMENT_REQUEST', `method ${req.method} not allowed on ${url.pathname}`, { details: { path: url.pathname, method: req.method } }), 405);
        return;
      }
      await found.mount.handler(req, res, found.params);
    } catch (err) {
      this.#logger.warn({ err, url: req.url }, 'management request failed');
      sendError(res, err);
    }
  }
}
