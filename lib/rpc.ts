/**
 * The broker pattern: a server skeleton (`expose`) makes an object's methods callable over
 * any request-reply endpoint, a client stub (`proxy`) is a typed TypeScript proxy of the
 * same interface. The transport is just a URI (`direct:calc`,
 * `http://host:8080/rpc?protocol=jsonrpc`, an AMQP request-reply queue...), so the same
 * interface works over each. What stays visible, because the call is remote: every method
 * returns a Promise, has a time limit, and fails with a coded BusbarError.
 */
import { from, type RouteBuilder } from './builder.js';
import { BusbarError, errorCatalogue, isBusbarError, type ErrorName } from './errors.js';
import { createMessage, merged, withBody, type Headers, type Message } from './message.js';

/** Headers of a call: the method (`<service>.<method>`) and, over JSON-RPC, the id. */
export const RPC_HEADERS = {
  method: 'rpc.method',
  id: 'rpc.id',
  /** `true` for a JSON-RPC notification (no reply expected). */
  notification: 'rpc.notification',
} as const;

/** Per-message time limit header (ms) that request-reply transports honour. */
export const TIMEOUT_HEADER = 'busbar.timeoutMs';

/** Any function (a parameter of type `never` accepts every parameter list). */
type AnyFn = (...args: never[]) => unknown;

/** The methods of `T`, each returning a Promise of its (awaited) result. */
export type Remote<T> = {
  [K in keyof T as T[K] extends AnyFn ? K : never]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** What a stub needs from an engine: request-reply to a URI. `Engine` has it. */
export interface RequestReply {
  requestMessage(uri: string, msg: Message, opts?: { timeoutMs?: number }): Promise<Message>;
}

export interface Transport<T> {
  engine: RequestReply;
  /** Where the skeleton listens: `direct:calc`, `http://127.0.0.1:8080/rpc?protocol=jsonrpc`... */
  uri: string;
  /** Time limit of every call (default 30 s). */
  timeoutMs?: number;
  /** Per-method time limits. */
  methods?: { [K in keyof Remote<T>]?: { timeoutMs?: number } };
  /** Extra headers on every call (credentials for the transport, tenant...). */
  headers?: Headers;
}

/**
 * A client stub: `const calc = proxy<Calc>('calc', { engine, uri: 'direct:calc' });
 * await calc.add(1, 2)`. Arguments travel as the message body (a list), the method name
 * in the `rpc.method` header. Errors: the remote side's busbar code (NOT_FOUND,
 * VALIDATION_FAILED, STEP_FAILED... with `details.remote` when it crossed a network),
 * TIMEOUT when the method's time limit passes, the transport's codes (HTTP_NETWORK...).
 */
export function proxy<T extends object>(name: string, transport: Transport<T>): Remote<T> {
  const { engine, uri } = transport;
  const defaultTimeout = transport.timeoutMs ?? 30_000;
  const perMethod = (transport.methods ?? {}) as Record<string, { timeoutMs?: number } | undefined>;
  const cache = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  const call = (method: string) => (...args: unknown[]): Promise<unknown> => {
    const timeoutMs = perMethod[method]?.timeoutMs ?? defaultTimeout;
    const msg = createMessage(args, { headers: merged(transport.headers ?? {}, { [RPC_HEADERS.method]: `${name}.${method}`, [TIMEOUT_HEADER]: timeoutMs }) });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new BusbarError('TIMEOUT', `${name}.${method}: no reply within ${timeoutMs} ms (via ${safeUri(uri)})`, { details: { service: name, method, timeoutMs, uri: safeUri(uri) } }));
      }, timeoutMs);
      let p: Promise<Message>;
      try {
        p = engine.requestMessage(uri, msg, { timeoutMs });
      } catch (e) {
        p = Promise.reject(e);
      }
      p.then(
        (reply) => {
          clearTimeout(timer);
          resolve(reply.body);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(asCallError(e, name, method));
        },
      );
    });
  };
  return new Proxy(Object.create(null) as object, {
    get(_t, prop) {
      // not a thenable, not inspectable as a promise: `await stub` must not call the remote
      if (typeof prop !== 'string' || prop === 'then' || prop === 'toJSON') return undefined;
      let f = cache.get(prop);
      if (!f) cache.set(prop, (f = call(prop)));
      return f;
    },
  }) as Remote<T>;
}

function safeUri(uri: string): string {
  return uri.replace(/\/\/[^/@?]*@/, '//***@');
}

function asCallError(e: unknown, service: string, method: string): BusbarError {
  if (isBusbarError(e)) {
    // transports that report a remote failure under their own code (AMQP_REMOTE_ERROR,
    // SOAP_FAULT) keep the remote busbar code in details.remoteCode: give the caller that one
    const remoteCode = e.details.remoteCode;
    if (typeof remoteCode === 'string' && e.details.remote !== true && remoteCode !== e.code) {
      const msg = typeof e.details.remoteMessage === 'string' ? e.details.remoteMessage : e.message;
      const restored = restoreRemoteError(remoteCode, msg, 'RPC_REMOTE_ERROR', { ...e.details, service, method });
      if (restored.code !== 'BUSBAR_ERR_RPC_REMOTE_ERROR') return restored;
    }
    e.details.service ??= service;
    e.details.method ??= method;
    return e;
  }
  return new BusbarError('STEP_FAILED', `${service}.${method}: ${e instanceof Error ? e.message : String(e)}`, { cause: e, details: { service, method } });
}

/**
 * A remote error as the busbar error it was on the other side when its code is in this
 * catalogue (so a stub sees NOT_FOUND whether the service is local or remote), else
 * `fallback`. `details.remote` marks it as having crossed the network.
 */
export function restoreRemoteError(remoteCode: unknown, message: string, fallback: ErrorName, details: Record<string, unknown>, retryable?: boolean): BusbarError {
  const name = typeof remoteCode === 'string' && remoteCode.startsWith('BUSBAR_ERR_') ? remoteCode.slice(11) : undefined;
  const known = name !== undefined && Object.hasOwn(errorCatalogue, name) ? (name as ErrorName) : undefined;
  const opts: { details: Record<string, unknown>; retryable?: boolean } = { details: { ...details, remote: true } };
  if (retryable !== undefined) opts.retryable = retryable;
  return new BusbarError(known ?? fallback, message, opts);
}

export interface ExposeOptions {
  /** Endpoint the skeleton serves: `direct:calc`, `http:/rpc?protocol=jsonrpc&port=8080`, an AMQP queue... */
  from: string;
  /** Only these methods (default: every method of the object and its prototypes, except `constructor` and `_private` ones). */
  methods?: readonly string[];
}

/** The callable methods of an object: own and inherited, not Object.prototype's, not `_x`. */
export function methodsOf(impl: object): Set<string> {
  const out = new Set<string>();
  for (let o: object | null = impl; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (k === 'constructor' || k.startsWith('_')) continue;
      const d = Object.getOwnPropertyDescriptor(o, k);
      if (d && typeof d.value === 'function') out.add(k);
    }
  }
  return out;
}

/**
 * A server skeleton: a route from `opts.from` that calls `impl`'s method named by the
 * `rpc.method` header (`<name>.<method>`, or just `<method>` for foreign clients) with
 * the body as arguments (a list; a JSON-RPC object of named parameters is one argument),
 * and replies with its result. An unknown method fails with RPC_METHOD_NOT_FOUND. A failure
 * is the caller's answer (the route marks it handled: the source acknowledges, no redelivery).
 * Add it like any route: `engine.addRoutes(expose<Calc>('calc', impl, { from: 'direct:calc' }))`.
 */
export function expose<T extends object>(name: string, impl: T, opts: ExposeOptions): RouteBuilder<unknown, unknown> {
  const all = methodsOf(impl);
  const allowed = opts.methods ? new Set(opts.methods.filter((m) => all.has(m))) : all;
  for (const m of opts.methods ?? []) {
    if (!all.has(m)) throw new BusbarError('INVALID_ROUTE', `expose("${name}"): the implementation has no method "${m}"`, { details: { service: name, method: m } });
  }
  const prefix = `${name}.`;
  const target = impl as unknown as Record<string, (...a: unknown[]) => unknown>;
  return from<unknown>(opts.from)
    .routeId(`rpc.${name}`)
    // a failed call is answered to its caller (who decides about retrying), never redelivered
    // by the source: over AMQP a nack would come back again and again until it is poison
    .onError('BUSBAR_ERR_*', { handled: true })
    .process(async (msg: Message<unknown>) => {
      const full = msg.headers[RPC_HEADERS.method];
      const raw = typeof full === 'string' ? full : '';
      const method = raw.startsWith(prefix) ? raw.slice(prefix.length) : raw.includes('.') ? undefined : raw;
      if (!method || !allowed.has(method)) {
        throw new BusbarError('RPC_METHOD_NOT_FOUND', `service "${name}" has no method ${JSON.stringify(raw)}${allowed.size ? `; it has: ${[...allowed].join(', ')}` : ''}`, {
          details: { service: name, method: raw },
        });
      }
      const body = msg.body;
      const args = Array.isArray(body) ? body : body === undefined || body === null ? [] : [body];
      const result = await target[method]!.apply(impl, args);
      return withBody(msg, result);
    });
}
