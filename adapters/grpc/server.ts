import type { Server, ServerCredentials, ServerDuplexStream, ServerReadableStream, ServerUnaryCall, ServerWritableStream, sendUnaryData, Metadata, ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Consumer, ConsumerContext, Endpoint } from '../../lib/adapter.js';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import { createMessage, type HeaderValue, type Message } from '../../lib/message.js';
import { RPC_HEADERS } from '../../lib/rpc.js';
import { fitProblems, problemText } from './fit.js';
import { metadataToHeaders, replyMetadata } from './metadata.js';
import { GRPC_HEADERS, type GrpcOptions } from './options.js';
import { callTypeOf, grpcJs, RPC_METHOD, type CallType, type MethodDef, type ProtoCache } from './protos.js';
import { ERROR_TRAILERS, GRPC_STATUS, toStatus } from './status.js';

/** What a server route needs from its adapter. */
export interface ServerRuntime {
  scheme: string;
  protos: readonly string[];
  stopTimeoutMs: number;
  credentials(): ServerCredentials;
  cache(ctx: ConsumerContext): ProtoCache;
}

type Handler = Parameters<Server['register']>[1];

/** One gRPC server per host:port and engine, shared by the routes that serve RPCs there. */
export class GrpcServer {
  readonly host: string;
  readonly port: number;
  boundPort: number | undefined;
  #server: Server | undefined;
  #starting: Promise<void> | undefined;
  readonly #paths = new Set<string>();
  readonly #runtime: ServerRuntime;
  readonly #logger: Logger;
  readonly #maxMessageBytes: number;

  constructor(host: string, port: number, runtime: ServerRuntime, logger: Logger, maxMessageBytes: number) {
    this.host = host;
    this.port = port;
    this.#runtime = runtime;
    this.#logger = logger;
    this.#maxMessageBytes = maxMessageBytes;
  }

  async mount(path: string, handler: Handler, def: MethodDef, type: CallType, routeId: string): Promise<void> {
    if (this.#paths.has(path)) throw new BusbarError('GRPC_CONFIG', `route "${routeId}": ${path} is already served on ${this.host}:${this.port} by another route`, { details: { routeId, method: path } });
    await this.#listen();
    const kind = type === 'unary' ? 'unary' : type === 'server-stream' ? 'serverStream' : type === 'client-stream' ? 'clientStream' : 'bidi';
    this.#server!.register(path, handler, def.responseSerialize as (v: unknown) => Buffer, def.requestDeserialize as (b: Buffer) => unknown, kind);
    this.#paths.add(path);
  }

  /** Unregister an RPC; the last one out shuts the server down (calls in progress get `stopTimeoutMs`). */
  async unmount(path: string): Promise<void> {
    if (!this.#paths.delete(path)) return;
    this.#server?.unregister(path);
    if (this.#paths.size > 0 || !this.#server) return;
    const server = this.#server;
    this.#server = undefined;
    this.#starting = undefined;
    this.boundPort = undefined;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, this.#runtime.stopTimeoutMs);
      server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  #listen(): Promise<void> {
    return (this.#starting ??= new Promise<void>((resolve, reject) => {
      const grpc = grpcJs();
      const server = new grpc.Server({ 'grpc.max_receive_message_length': this.#maxMessageBytes });
      const address = `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
      server.bindAsync(address, this.#runtime.credentials(), (err, port) => {
        if (err) {
          this.#starting = undefined;
          reject(new BusbarError('GRPC_CONFIG', `gRPC server cannot listen on ${address}: ${err.message}`, { cause: err, details: { host: this.host, port: this.port } }));
          return;
        }
        this.#server = server;
        this.boundPort = port;
        this.#logger.info({ host: this.host, port }, 'grpc server listening');
        resolve();
      });
    }));
  }
}

/** The servers of one engine (per-engine adapter state). */
export class GrpcServerHub {
  readonly #servers = new Map<string, GrpcServer>();
  get(host: string, port: number, runtime: ServerRuntime, logger: Logger, maxMessageBytes: number): GrpcServer {
    const key = `${host}:${port}`;
    let s = this.#servers.get(key);
    if (!s) this.#servers.set(key, (s = new GrpcServer(host, port, runtime, logger, maxMessageBytes)));
    return s;
  }
  find(host: string, port: number): GrpcServer | undefined {
    return this.#servers.get(`${host}:${port}`);
  }
}

export const hubOf = (ctx: { state<T>(key: string, init: () => T): T }): GrpcServerHub => ctx.state('servers', () => new GrpcServerHub());

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown> | ServerReadableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>;

/** A failure as the status object grpc-js sends: code, text, the busbar code in trailers. */
function statusOf(err: unknown): Partial<ServiceError> {
  const s = toStatus(err);
  const metadata: Metadata = new (grpcJs().Metadata)();
  if (s.busbarCode) metadata.set(ERROR_TRAILERS.code, s.busbarCode);
  if (s.retryable !== undefined) metadata.set(ERROR_TRAILERS.retryable, String(s.retryable));
  return { code: s.code, details: s.details, metadata };
}

/** Items of a reply body written to a response stream: a list (or any iterable) item by item, nothing for undefined/null. */
function itemsOf(body: unknown): Iterable<unknown> {
  if (body === undefined || body === null) return [];
  if (Array.isArray(body)) return body;
  if (typeof body === 'object' && Symbol.iterator in body && !Buffer.isBuffer(body)) return body as Iterable<unknown>;
  return [body];
}

/** Write with backpressure: wait for `drain` when the stream's buffer is full; stop when the client went away. */
async function writeAll(call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>, items: Iterable<unknown>, check: (item: unknown) => unknown = (i) => i): Promise<void> {
  for (const item of items) {
    if (call.cancelled || call.destroyed) return;
    if (!call.write(check(item))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          call.off('drain', done);
          call.off('close', done);
          resolve();
        };
        call.once('drain', done);
        call.once('close', done);
      });
    }
  }
}

/**
 * A gRPC server route: the RPC named by the endpoint (`grpc:pkg.Service/Method`) is its
 * source. Unary and server-streaming calls are one message each (the request); a client
 * stream is one message whose body is the list of requests; a bidirectional stream is one
 * message per request, each reply written back in order. Backpressure: a unary call that
 * finds the route full is refused with RESOURCE_EXHAUSTED; a stream is not read (HTTP/2 flow
 * control holds the client) while the route is full or the call has `window` messages pending.
 */
export function createGrpcConsumer(endpoint: Endpoint<GrpcOptions>, ctx: ConsumerContext, runtime: ServerRuntime): Consumer {
  const opts = endpoint.options;
  const path = `/${endpoint.path.replace(/^\/+/, '')}`;
  if (endpoint.path.startsWith('//')) {
    throw new BusbarError('INVALID_OPTION', `route "${ctx.routeId}": endpoint "${endpoint.uri}" is an address (a client endpoint); a server route names its RPC: ${runtime.scheme}:pkg.Service/Method?port=50051`, { details: { uri: endpoint.uri, routeId: ctx.routeId } });
  }
  const isRpc = path === `/${RPC_METHOD}`;
  let server: GrpcServer | undefined;
  let stopping = false;
  let def: MethodDef | undefined;
  let type: CallType = 'unary';

  const message = (call: AnyCall, body: unknown, index?: number): Message => {
    const h: Record<string, HeaderValue> = { [GRPC_HEADERS.method]: path, [GRPC_HEADERS.callType]: type, [GRPC_HEADERS.peer]: call.getPeer() };
    const deadline = call.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() : deadline;
    if (Number.isFinite(ms)) h[GRPC_HEADERS.deadline] = ms;
    if (index !== undefined) h[GRPC_HEADERS.index] = index;
    metadataToHeaders(call.metadata, GRPC_HEADERS.metadata, h);
    if (isRpc) {
      const req = body as { method?: string; json?: string };
      h[RPC_HEADERS.method] = req.method ?? '';
      try {
        body = req.json ? JSON.parse(req.json) : [];
      } catch (e) {
        throw new BusbarError('PARSE', `${path}: the arguments of ${req.method} are not JSON: ${(e as Error).message}`, { cause: e, details: { method: req.method } });
      }
    }
    const cid = h[GRPC_HEADERS.metadata + 'x-correlation-id'];
    return createMessage(body, typeof cid === 'string' && cid ? { headers: h, correlationId: cid } : { headers: h });
  };

  /**
   * A reply body as sent: refused with GRPC_REPLY_INVALID (status INTERNAL, the field named)
   * when it does not fit the response type, rather than coerced or cut by protobufjs.
   */
  const checked = (body: unknown): unknown => {
    if (isRpc || !def) return body;
    const t = runtime.cache(ctx).types(def).response;
    const problems = fitProblems(t, body ?? {});
    if (problems.length) {
      const name = t.fullName.replace(/^\./, '');
      throw new BusbarError('GRPC_REPLY_INVALID', `route "${ctx.routeId}": its reply to ${path} does not fit ${name}: ${problemText(problems)}`, { details: { routeId: ctx.routeId, method: path, type: name, problems } });
    }
    return body;
  };
  const replyBody = (reply: Message): unknown => (isRpc ? { json: JSON.stringify(reply.body ?? null) } : checked(reply.body));

  /** The route's run, bounded by the endpoint's timeoutMs and the call's own deadline. */
  const run = (call: AnyCall, msg: Message): Promise<Message> => {
    const deadline = call.getDeadline();
    const left = (deadline instanceof Date ? deadline.getTime() : deadline) - Date.now();
    const ms = Math.max(1, Math.min(opts.timeoutMs, Number.isFinite(left) ? left : Infinity));
    const p = ctx.process(msg);
    return new Promise<Message>((resolve, reject) => {
      let done = false;
      const t = ctx.clock.setTimeout(() => {
        if (done) return;
        done = true;
        reject(new BusbarError('TIMEOUT', `route "${ctx.routeId}" did not answer ${path} within ${Math.round(ms)} ms`, { details: { routeId: ctx.routeId, timeoutMs: Math.round(ms) } }));
      }, ms);
      p.then(
        (m) => {
          if (done) return;
          done = true;
          ctx.clock.clearTimeout(t);
          resolve(m);
        },
        (e: unknown) => {
          if (done) return;
          done = true;
          ctx.clock.clearTimeout(t);
          reject(e);
        },
      );
    });
  };

  const refusal = (): BusbarError | undefined => {
    if (stopping) return new BusbarError('ENGINE_STATE', `route "${ctx.routeId}" is stopping`, { details: { routeId: ctx.routeId } });
    if (ctx.available() <= 0) return new BusbarError('LIMIT_EXCEEDED', `route "${ctx.routeId}" is full (${ctx.maxInflight} calls in progress); retry later`, { details: { routeId: ctx.routeId, maxInflight: ctx.maxInflight } });
    return undefined;
  };

  const log = (err: unknown): void => {
    const s = toStatus(err);
    if (s.code === GRPC_STATUS.INTERNAL || s.code === GRPC_STATUS.UNKNOWN) ctx.logger.warn({ err, method: path }, 'grpc call failed');
    else ctx.logger.debug({ code: isBusbarError(err) ? err.code : undefined, method: path }, 'grpc call refused');
  };

  const unary = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>): void => {
    const refused = refusal();
    if (refused) return callback(statusOf(refused) as ServiceError);
    answer(call, call.request, callback);
  };

  /** Run the route on one request (`body`) and answer the call with its reply, or with the failure's status. */
  const answer = (call: ServerUnaryCall<unknown, unknown> | ServerReadableStream<unknown, unknown>, body: unknown, callback: sendUnaryData<unknown>): void => {
    (async () => {
      const reply = await run(call, message(call, body));
      const md = replyMetadata(reply.headers);
      if (md) call.sendMetadata(md);
      callback(null, replyBody(reply));
    })().catch((err: unknown) => {
      log(err);
      callback(statusOf(err) as ServiceError);
    });
  };

  const serverStream = (call: ServerWritableStream<unknown, unknown>): void => {
    const refused = refusal();
    if (refused) {
      call.emit('error', statusOf(refused));
      return;
    }
    (async () => {
      const reply = await run(call, message(call, call.request));
      const md = replyMetadata(reply.headers);
      if (md) call.sendMetadata(md);
      await writeAll(call, itemsOf(reply.body), checked);
      call.end();
    })().catch((err: unknown) => {
      log(err);
      call.emit('error', statusOf(err));
    });
  };

  /** Hold a stream (stop reading it) until the route has a free slot. */
  const holdWhileFull = (call: ServerReadableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>): void => {
    if (ctx.available() > 0) return;
    call.pause();
    void ctx.whenAvailable().then(() => call.resume());
  };

  const clientStream = (call: ServerReadableStream<unknown, unknown>, callback: sendUnaryData<unknown>): void => {
    if (stopping) return callback(statusOf(refusal()) as ServiceError);
    const items: unknown[] = [];
    let failed = false;
    holdWhileFull(call);
    call.on('data', (item: unknown) => {
      if (failed) return;
      if (items.length >= opts.maxItems) {
        failed = true;
        callback(statusOf(new BusbarError('LIMIT_EXCEEDED', `${path}: more than ${opts.maxItems} messages in one client stream (maxItems)`, { details: { maxItems: opts.maxItems } })) as ServiceError);
        return;
      }
      items.push(item);
    });
    call.on('error', () => {
      failed = true;
    });
    call.on('end', () => {
      if (failed) return;
      answer(call, items, callback);
    });
  };

  const bidi = (call: ServerDuplexStream<unknown, unknown>): void => {
    if (stopping) {
      call.emit('error', statusOf(refusal()));
      return;
    }
    // messages of one call in the route at once: bounded by the route's own bound, and small
    // enough that one client cannot take every slot of a shared route
    const window = Math.max(1, Math.min(16, Math.ceil(ctx.maxInflight / 2)));
    let index = 0;
    let pending = 0;
    let failed = false;
    let paused = false;
    let chain: Promise<void> = Promise.resolve();
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      log(err);
      call.emit('error', statusOf(err));
    };
    const maybeResume = (): void => {
      if (!paused || failed || pending >= window) return;
      if (ctx.available() > 0) {
        paused = false;
        call.resume();
      } else {
        void ctx.whenAvailable().then(maybeResume);
      }
    };
    holdWhileFull(call);
    call.on('data', (item: unknown) => {
      if (failed) return;
      let p: Promise<Message>;
      try {
        p = run(call, message(call, item, index++));
      } catch (e) {
        p = Promise.reject(e);
      }
      p.catch(() => undefined);
      pending++;
      if (pending >= window || ctx.available() <= 0) {
        paused = true;
        call.pause();
      }
      chain = chain.then(async () => {
        if (failed) return;
        try {
          const reply = await p;
          await writeAll(call, isRpc ? [replyBody(reply)] : itemsOf(reply.body), checked);
        } catch (e) {
          fail(e);
          return;
        }
        pending--;
        maybeResume();
      });
    });
    call.on('end', () => {
      void chain.then(() => {
        if (!failed) call.end();
      });
    });
    call.on('error', () => {
      failed = true;
    });
  };

  return {
    async start() {
      stopping = false;
      def = runtime.cache(ctx).method(path, opts.proto ? [opts.proto, ...runtime.protos] : runtime.protos, endpoint.uri);
      type = callTypeOf(def);
      const handler = (type === 'unary' ? unary : type === 'server-stream' ? serverStream : type === 'client-stream' ? clientStream : bidi) as Handler;
      server = hubOf(ctx).get(opts.host, opts.port, runtime, ctx.logger, opts.maxMessageBytes);
      await server.mount(def.path, handler, def, type, ctx.routeId);
      ctx.setStatus('connected');
    },
    async stop() {
      stopping = true;
      if (server && def) await server.unmount(def.path);
      server = undefined;
      ctx.setStatus('idle');
    },
  };
}
