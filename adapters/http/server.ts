import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { BusbarError } from '../../lib/errors.js';
import { sendError } from './status.js';

/** Server-wide settings (adapter configuration): the same for every route on a server. */
export interface ServerSettings {
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  /** Connections at once from one remote address (undefined: no per-address limit). */
  maxConnectionsPerClient?: number | undefined;
  stopTimeoutMs: number;
  /** Certificate and key: the server speaks HTTPS. */
  secure?: { cert?: Buffer; key?: Buffer; passphrase?: string; ca?: Buffer; clientAuth: 'none' | 'request' | 'require' };
}

/** What a request handler gets after routing. */
export interface Routed {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: Target;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * The request target split at `?`; the query is parsed only when someone reads it
 * (a WHATWG URL per request costs more than the rest of the routing).
 */
export class Target {
  readonly pathname: string;
  readonly #search: string;
  #params: URLSearchParams | undefined;
  constructor(raw: string) {
    const q = raw.indexOf('?');
    this.pathname = q < 0 ? raw : raw.slice(0, q);
    this.#search = q < 0 ? '' : raw.slice(q + 1);
  }
  get hasQuery(): boolean {
    return this.#search.length > 0;
  }
  get searchParams(): URLSearchParams {
    return (this.#params ??= new URLSearchParams(this.#search));
  }
}

/** One route's claim on a server: a method and a path pattern. */
export interface Mount {
  readonly routeId: string;
  /** Upper-case method, or `*` for any. */
  readonly method: string;
  readonly pattern: string;
  /** May answer synchronously; a promise it returns is watched for failures it did not answer. */
  handle(r: Routed): void | Promise<void>;
}

interface CompiledMount {
  mount: Mount;
  match: (pathname: string) => Record<string, string> | undefined;
  /** Literal segments count more than parameters: `/orders/new` wins over `/orders/:id`. */
  score: number;
}

/**
 * `/orders/:id/items/*` -> a matcher returning the parameters (`id`, and `*` for the rest).
 * Segments are compared decoded, so `/a%20b` matches `/a b`.
 */
export function compilePattern(pattern: string): { match: (pathname: string) => Record<string, string> | undefined; score: number } {
  const segs = pattern.split('/').filter(Boolean);
  const wildcard = segs[segs.length - 1] === '*';
  if (wildcard) segs.pop();
  let score = 0;
  for (const s of segs) score += s.startsWith(':') ? 1 : 3;
  if (!wildcard) score += 0.5;
  if (!wildcard && segs.every((s) => !s.startsWith(':') && encodeURIComponent(s) === s)) {
    // a literal path: one string comparison (with or without a trailing slash)
    const exact = `/${segs.join('/')}`;
    const empty: Record<string, string> = {};
    return {
      score,
      match: (pathname) => (pathname === exact || pathname === `${exact}/` || (exact === '/' && pathname === '') ? empty : undefined),
    };
  }
  return {
    score,
    match(pathname) {
      const parts = pathname.split('/').filter(Boolean);
      if (wildcard ? parts.length < segs.length : parts.length !== segs.length) return undefined;
      const params: Record<string, string> = {};
      for (let i = 0; i < segs.length; i++) {
        const s = segs[i]!;
        let p: string;
        try {
          p = decodeURIComponent(parts[i]!);
        } catch {
          return undefined;
        }
        if (s.startsWith(':')) params[s.slice(1)] = p;
        else if (s !== p) return undefined;
      }
      if (wildcard) params['*'] = parts.slice(segs.length).join('/');
      return params;
    },
  };
}

/**
 * One listening socket shared by every route mounted on its host:port. Listens when the
 * first route mounts, closes when the last one leaves. While closing it refuses new
 * requests (503, `Connection: close`) and lets requests in progress finish.
 */
export class SharedServer {
  readonly host: string;
  readonly port: number;
  readonly #settings: ServerSettings;
  readonly #logger: Logger;
  #server: Server | undefined;
  #mounts: CompiledMount[] = [];
  #active = 0;
  #idle: Array<() => void> = [];
  #closing = false;
  /** Open connections per remote address, when maxConnectionsPerClient is set. */
  readonly #perClient = new Map<string, number>();
  /** Open connections, with the bytes they had moved and since when, at the last idle sweep. */
  readonly #connections = new Map<Socket, { moved: number; since: number }>();
  #sweep: ReturnType<typeof setInterval> | undefined;

  constructor(host: string, port: number, settings: ServerSettings, logger: Logger) {
    this.host = host;
    this.port = port;
    this.#settings = settings;
    this.#logger = logger;
  }

  /** The bound port (differs from `port` when it was 0). */
  get boundPort(): number | undefined {
    return (this.#server?.address() as AddressInfo | null)?.port;
  }

  get mounts(): number {
    return this.#mounts.length;
  }

  async mount(mount: Mount): Promise<void> {
    const dup = this.#mounts.find((m) => m.mount.pattern === mount.pattern && (m.mount.method === mount.method || m.mount.method === '*' || mount.method === '*'));
    if (dup) {
      throw new BusbarError('HTTP_ROUTE', `http ${this.host}:${this.port}: ${mount.method === '*' ? 'any method' : mount.method} ${mount.pattern} is already served by route "${dup.mount.routeId}"`, {
        details: { routeId: mount.routeId, other: dup.mount.routeId, path: mount.pattern, method: mount.method },
      });
    }
    const c = compilePattern(mount.pattern);
    this.#mounts.push({ mount, ...c });
    this.#mounts.sort((a, b) => b.score - a.score);
    if (!this.#server) {
      try {
        await this.#listen();
      } catch (e) {
        this.#mounts = this.#mounts.filter((m) => m.mount !== mount);
        throw e;
      }
    }
  }

  /** Remove a route; when it was the last one, stop listening and wait (bounded) for requests in progress. */
  async unmount(mount: Mount): Promise<void> {
    this.#mounts = this.#mounts.filter((m) => m.mount !== mount);
    if (this.#mounts.length === 0) await this.close();
  }

  #listen(): Promise<void> {
    const s = this.#settings;
    const options = {
      maxHeaderSize: s.maxHeaderBytes,
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      // how often Node checks header/request timeouts: fine enough to make them mean something
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(s.headersTimeoutMs, s.requestTimeoutMs) / 4))),
    };
    const tls = s.secure;
    const server: Server = tls
      ? createTlsServer({
          ...options,
          cert: tls.cert,
          key: tls.key,
          passphrase: tls.passphrase,
          ...(tls.clientAuth !== 'none' ? { ca: tls.ca, requestCert: true, rejectUnauthorized: tls.clientAuth === 'require' } : {}),
        })
      : createServer(options);
    server.maxConnections = s.maxConnections;
    // idle connections: one sweep of every connection a quarter of idleTimeoutMs apart (at most
    // a second), not a socket timeout. That is a timer refreshed on every read and every write of
    // every request: about 1 µs of CPU per request measured on a small JSON exchange, 3-4% of it
    server.on('connection', (socket: Socket) => {
      this.#connections.set(socket, { moved: -1, since: Date.now() });
      socket.once('close', () => this.#connections.delete(socket));
    });
    const every = Math.max(10, Math.min(1000, Math.floor(s.idleTimeoutMs / 4)));
    this.#sweep = setInterval(() => this.#closeIdle(), every);
    this.#sweep.unref();
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.#onClientError(err, socket));
    if (s.maxConnectionsPerClient !== undefined) {
      const limit = s.maxConnectionsPerClient;
      server.on('connection', (socket: Socket) => this.#limitPerClient(socket, limit));
    }
    this.#server = server;
    this.#closing = false;
    return new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        this.#stopSweep();
        this.#server = undefined;
        reject(new BusbarError('HTTP_ROUTE', `http: cannot listen on ${this.host}:${this.port}: ${err.code ?? err.message}`, { cause: err, details: { host: this.host, port: this.port, errno: err.code } }));
      };
      server.once('error', onError);
      server.listen(this.port, this.host, () => {
        server.off('error', onError);
        server.on('error', (err) => this.#logger.error({ err }, 'http server error'));
        this.#logger.info({ host: this.host, port: this.boundPort }, 'http server listening');
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#closing = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // in-flight requests finish (their responses carry Connection: close); past the limit, cut them
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#settings.stopTimeoutMs);
    });
    const idle = this.#active === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.#idle.push(resolve));
    const r = await Promise.race([idle.then(() => 'idle' as const), limit]);
    if (r === 'timeout') this.#logger.error({ active: this.#active }, 'http server stop timed out; closing connections with requests in progress');
    server.closeAllConnections();
    await Promise.race([closed, limit]);
    clearTimeout(timer);
    this.#stopSweep();
    this.#server = undefined;
    this.#logger.info({ host: this.host, port: this.port }, 'http server closed');
  }

  #stopSweep(): void {
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /** Close the connections that moved no byte either way (read, or handed to the socket) for idleTimeoutMs. */
  #closeIdle(): void {
    const now = Date.now();
    const limit = this.#settings.idleTimeoutMs;
    for (const [socket, seen] of this.#connections) {
      // bytesWritten counts what was handed to the socket, sent or not, and writableLength what
      // of it waits in the socket's own buffer: their difference moves when a write goes out (as
      // a socket timeout is refreshed), not while a client that stopped reading holds it
      const moved = socket.bytesRead + (socket.bytesWritten ?? 0) - socket.writableLength;
      if (moved !== seen.moved) {
        seen.moved = moved;
        seen.since = now;
      } else if (now - seen.since >= limit) {
        this.#logger.debug({ remoteAddress: socket.remoteAddress, idleMs: now - seen.since }, 'http connection closed: idle (idleTimeoutMs)');
        socket.destroy();
      }
    }
  }

  /** Refuse a connection over the per-address limit at once (before any byte is read). */
  #limitPerClient(socket: Socket, limit: number): void {
    const addr = socket.remoteAddress ?? '';
    const n = (this.#perClient.get(addr) ?? 0) + 1;
    if (n > limit) {
      this.#logger.debug({ remoteAddress: addr, limit }, 'http connection refused: too many from this address (maxConnectionsPerClient)');
      socket.destroy();
      return;
    }
    this.#perClient.set(addr, n);
    socket.once('close', () => {
      const left = (this.#perClient.get(addr) ?? 1) - 1;
      if (left <= 0) this.#perClient.delete(addr);
      else this.#perClient.set(addr, left);
    });
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    // Node answers most of these itself when it can (408, 431); this covers the rest.
    // The socket is destroyed after the answer, not half-closed: a client that never answers
    // the FIN (slowloris, a stuck proxy) would otherwise hold its connection slot until the
    // idle timeout, and enough of them lock everyone else out.
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const text = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
    // a client that does not read at all cannot keep the answer (and the socket) pending either
    setTimeout(() => socket.destroy(), 1000).unref();
    this.#logger.debug({ code: err.code, status }, 'http client error');
  }

  // one listener for every response ('close' comes once per response): no closure or once-wrapper per request
  readonly #closed = (): void => {
    this.#active--;
    if (this.#active === 0 && this.#idle.length) for (const f of this.#idle.splice(0)) f();
  };

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.#active++;
    res.on('close', this.#closed);
    if (this.#closing) {
      res.shouldKeepAlive = false;
      sendError(req, res, 503, new BusbarError('ENGINE_STATE', 'server is stopping', { details: {} }), { retryAfterS: 1 });
      return;
    }
    const raw = req.url ?? '/';
    if (raw.charCodeAt(0) !== 47 /* / */) {
      // absolute-form and asterisk-form targets are for proxies and OPTIONS *, not for us
      sendError(req, res, 400, new BusbarError('PARSE', 'request target must be a path (origin-form)', { details: {} }));
      return;
    }
    const url = new Target(raw);
    let allowed: Set<string> | undefined;
    for (const m of this.#mounts) {
      const params = m.match(url.pathname);
      if (!params) continue;
      if (m.mount.method === '*' || m.mount.method === req.method || (req.method === 'HEAD' && m.mount.method === 'GET')) {
        const r: Routed = { req, res, url, params };
        let p: void | Promise<void>;
        try {
          p = m.mount.handle(r);
        } catch (err) {
          handlerFailed(r, err, this.#logger, m.mount.routeId);
          return;
        }
        if (p !== undefined) p.catch((err: unknown) => handlerFailed(r, err, this.#logger, m.mount.routeId));
        return;
      }
      (allowed ??= new Set()).add(m.mount.method);
    }
    if (allowed) {
      res.setHeader('Allow', [...allowed].join(', '));
      sendError(req, res, 405, new BusbarError('NOT_FOUND', `method ${req.method} is not allowed on ${url.pathname}`, { details: { allowed: [...allowed] } }));
      return;
    }
    sendError(req, res, 404, new BusbarError('NOT_FOUND', `no route for ${req.method} ${url.pathname}`, { details: { path: url.pathname } }));
  }
}

/** A handler failed without answering: logged, a 500 if nothing went out yet, else the connection cut. */
export function handlerFailed(r: Routed, err: unknown, logger: Logger, routeId: string): void {
  logger.error({ err, routeId }, 'http handler failed');
  if (!r.res.headersSent) sendError(r.req, r.res, 500, err);
  else r.res.destroy();
}

/** The servers of one engine, by host:port. */
export class ServerHub {
  readonly #servers = new Map<string, SharedServer>();

  get(host: string, port: number, settings: ServerSettings, logger: Logger): SharedServer {
    const key = `${host}:${port}`;
    let s = this.#servers.get(key);
    if (!s) this.#servers.set(key, (s = new SharedServer(host, port, settings, logger)));
    return s;
  }

  find(host: string, port: number): SharedServer | undefined {
    return this.#servers.get(`${host}:${port}`);
  }
}
