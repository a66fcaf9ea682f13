import type { Client, ChannelCredentials, ClientDuplexStream, ClientReadableStream, ClientWritableStream, Metadata, ServiceError, StatusObject } from '@grpc/grpc-js';
import type { Endpoint, Producer, ProducerContext, RequestOptions } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import { merged, type HeaderValue, type Message } from '../../lib/message.js';
import { RPC_HEADERS, TIMEOUT_HEADER } from '../../lib/rpc.js';
import { fitProblems, problemText } from './fit.js';
import { forwardPolicy, metadataToHeaders, requestMetadata } from './metadata.js';
import { GRPC_HEADERS, type GrpcOptions } from './options.js';
import { callTypeOf, grpcJs, RPC_METHOD, type CallType, type MethodDef, type ProtoCache } from './protos.js';
import { ERROR_TRAILERS, fromStatus, GRPC_STATUS } from './status.js';

/** What a client endpoint needs from its adapter. */
export interface ClientRuntime {
  scheme: string;
  protos: readonly string[];
  credentials(): ChannelCredentials;
  channelOptions: Record<string, string | number>;
  cache(ctx: ProducerContext): ProtoCache;
}

/** Channels of one engine by address (HTTP/2 connections are shared by the endpoints calling one server). */
class Channels {
  readonly #clients = new Map<string, { client: Client; users: number }>();
  acquire(address: string, runtime: ClientRuntime, maxMessageBytes: number): Client {
    const key = `${address}|${maxMessageBytes}`;
    let c = this.#clients.get(key);
    if (!c) {
      const grpc = grpcJs();
      c = { client: new grpc.Client(address, runtime.credentials(), { ...runtime.channelOptions, 'grpc.max_receive_message_length': maxMessageBytes }), users: 0 };
      this.#clients.set(key, c);
    }
    c.users++;
    return c.client;
  }
  release(address: string, maxMessageBytes: number): void {
    const key = `${address}|${maxMessageBytes}`;
    const c = this.#clients.get(key);
    if (!c || --c.users > 0) return;
    this.#clients.delete(key);
    c.client.close();
  }
}

/** TLS failures a retry cannot fix. */
const TLS_FAILURE = /certificate|SSL|TLS|handshake|self.signed|altname/i;

function trailersOf(md: Metadata | undefined): { code?: string; retryable?: string } {
  const one = (k: string): string | undefined => {
    const v = md?.get(k)[0];
    return typeof v === 'string' ? v : undefined;
  };
  const out: { code?: string; retryable?: string } = {};
  const code = one(ERROR_TRAILERS.code);
  const retryable = one(ERROR_TRAILERS.retryable);
  if (code !== undefined) out.code = code;
  if (retryable !== undefined) out.retryable = retryable;
  return out;
}

/**
 * The client side of `grpc:`: `grpc://host:port/pkg.Service/Method`. Unary: the body is the
 * request, the response the new body. Server streaming: the responses as a list. Client
 * streaming: the body (a list) written as the request stream, with backpressure. Bidirectional:
 * both. Every call has an answer, so `to` and `request` both wait for it; its deadline is the
 * step's `timeoutMs` (request), else the `busbar.timeoutMs` header, else the endpoint's.
 */
export function createGrpcProducer(endpoint: Endpoint<GrpcOptions>, ctx: ProducerContext, runtime: ClientRuntime): Producer {
  const opts = endpoint.options;
  const m = /^\/\/([^/]+)\/(.+)$/.exec(endpoint.path);
  if (!m) {
    throw new BusbarError('INVALID_URI', `endpoint "${endpoint.uri}": a gRPC client endpoint is ${runtime.scheme}://host:port/<package.Service>/<Method>`, { details: { uri: endpoint.uri } });
  }
  const address = m[1]!;
  const rpcPath = `/${m[2]!}`;
  const isRpc = rpcPath === `/${RPC_METHOD}`;
  const forward = forwardPolicy(opts.headers);
  let client: Client | undefined;
  let def: MethodDef | undefined;
  let type: CallType = 'unary';

  const ensure = (): { client: Client; def: MethodDef } => {
    def ??= runtime.cache(ctx).method(rpcPath, opts.proto ? [opts.proto, ...runtime.protos] : runtime.protos, endpoint.uri);
    type = callTypeOf(def);
    client ??= ctx.state('channels', () => new Channels()).acquire(address, runtime, opts.maxMessageBytes);
    return { client, def };
  };

  const where = { method: rpcPath, address };

  const failure = (e: Partial<ServiceError>): BusbarError => {
    const code = typeof e.code === 'number' ? e.code : GRPC_STATUS.UNKNOWN;
    const text = e.details ?? e.message ?? 'failed';
    const err = fromStatus(code, text, trailersOf(e.metadata), where);
    if (code === GRPC_STATUS.UNAVAILABLE && TLS_FAILURE.test(text)) return new BusbarError('GRPC_UNAVAILABLE', err.message, { details: err.details, retryable: false });
    return err;
  };

  /** A request body that protobufjs would coerce or drop silently is refused, before the call. */
  const fits = (d: MethodDef, body: unknown, streamed: boolean): void => {
    if (isRpc) return;
    const type = runtime.cache(ctx).types(d).request;
    const items = streamed ? (Array.isArray(body) ? body : body === undefined || body === null ? [] : [body]) : [body ?? {}];
    const problems = items.flatMap((item, i) => fitProblems(type, item).map((p) => (streamed ? { path: `/${i}${p.path === '/' ? '' : p.path}`, message: p.message } : p)));
    if (problems.length) {
      throw new BusbarError('VALIDATION_FAILED', `${rpcPath}: the body does not fit ${type.fullName.replace(/^\./, '')}: ${problemText(problems)}`, { details: { ...where, type: type.fullName.replace(/^\./, ''), problems } });
    }
  };

  const call = (msg: Message, timeoutMs: number): Promise<Message> => {
    const { client: c, def: d } = ensure();
    try {
      fits(d, msg.body, type === 'client-stream' || type === 'bidi');
    } catch (e) {
      return Promise.reject(e);
    }
    const md = requestMetadata(msg.headers, msg.correlationId, forward);
    const options = { deadline: Date.now() + timeoutMs };
    const ser = d.requestSerialize as (v: unknown) => Buffer;
    const de = d.responseDeserialize as (b: Buffer) => unknown;
    const request = isRpc ? { method: String(msg.headers[RPC_HEADERS.method] ?? ''), json: JSON.stringify(msg.body ?? []) } : msg.body;
    const received: Record<string, HeaderValue> = {};
    const onMeta = (h: Metadata): void => void metadataToHeaders(h, GRPC_HEADERS.responseMetadata, received);
    const onStatus = (s: StatusObject): void => {
      metadataToHeaders(s.metadata, GRPC_HEADERS.responseMetadata, received);
      received[GRPC_HEADERS.responseStatus] = s.code;
    };
    const answer = (body: unknown): Message => {
      let b = body;
      if (isRpc) {
        const json = (body as { json?: string }).json;
        try {
          b = json ? JSON.parse(json) : undefined;
        } catch (e) {
          throw new BusbarError('PARSE', `${rpcPath}: the result is not JSON: ${(e as Error).message}`, { cause: e, details: where });
        }
      }
      return { ...msg, body: b, headers: merged(msg.headers, received) };
    };
    return new Promise<Message>((resolve, reject) => {
      const settle = (err: ServiceError | null, value?: unknown): void => {
        if (err) return reject(failure(err));
        // the status comes after the value; wait a tick so its trailers are in the headers
        setImmediate(() => {
          try {
            resolve(answer(value));
          } catch (e) {
            reject(e);
          }
        });
      };
      const collect = (stream: ClientReadableStream<unknown> | ClientDuplexStream<unknown, unknown>): void => {
        const items: unknown[] = [];
        let failed = false;
        stream.on('data', (item: unknown) => {
          if (failed) return;
          if (items.length >= opts.maxItems) {
            failed = true;
            stream.cancel();
            reject(new BusbarError('LIMIT_EXCEEDED', `${rpcPath}: more than ${opts.maxItems} messages in the response stream (maxItems)`, { details: { ...where, maxItems: opts.maxItems } }));
            return;
          }
          items.push(item);
        });
        stream.on('error', (e: ServiceError) => {
          if (!failed) reject(failure(e));
          failed = true;
        });
        stream.on('status', (s: StatusObject) => {
          onStatus(s);
          if (!failed && s.code === GRPC_STATUS.OK) resolve(answer(items));
        });
        stream.on('metadata', onMeta);
      };
      const writeAll = async (stream: ClientWritableStream<unknown> | ClientDuplexStream<unknown, unknown>): Promise<void> => {
        const body = msg.body;
        const items = Array.isArray(body) ? body : body === undefined || body === null ? [] : typeof body === 'object' && Symbol.iterator in body ? [...(body as Iterable<unknown>)] : [body];
        for (const item of items) {
          if (!stream.write(item)) await new Promise<void>((r) => stream.once('drain', r));
        }
        stream.end();
      };
      try {
        if (type === 'unary') {
          const u = c.makeUnaryRequest(d.path, ser, de, request, md, options, settle);
          u.on('metadata', onMeta);
          u.on('status', onStatus);
        } else if (type === 'server-stream') {
          collect(c.makeServerStreamRequest(d.path, ser, de, request, md, options));
        } else if (type === 'client-stream') {
          const w = c.makeClientStreamRequest(d.path, ser, de, md, options, settle);
          w.on('metadata', onMeta);
          w.on('status', onStatus);
          writeAll(w).catch(reject);
        } else {
          const s = c.makeBidiStreamRequest(d.path, ser, de, md, options);
          collect(s);
          writeAll(s).catch(reject);
        }
      } catch (e) {
        // serialization of a body that does not fit the request type
        reject(new BusbarError('VALIDATION_FAILED', `${rpcPath}: the body does not fit the request message: ${(e as Error).message}`, { cause: e, details: where }));
      }
    });
  };

  const timeoutOf = (msg: Message, opt?: RequestOptions): number => {
    if (opt?.timeoutMs !== undefined) return opt.timeoutMs;
    const perMessage = Number(msg.headers[TIMEOUT_HEADER]);
    return perMessage > 0 ? perMessage : opts.timeoutMs;
  };

  return {
    async start() {
      ensure();
    },
    async stop() {
      if (client) ctx.state('channels', () => new Channels()).release(address, opts.maxMessageBytes);
      client = undefined;
    },
    send: (msg) => call(msg, timeoutOf(msg)),
    request: (msg, o) => call(msg, timeoutOf(msg, o)),
  };
}
