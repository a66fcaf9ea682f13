/**
 * JSON-RPC 2.0 over HTTP (https://www.jsonrpc.org/specification): requests, notifications
 * and batches, the standard error codes. Every call is one message through the route
 * (body = params, `rpc.method` header = method); its reply body is the result.
 */
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import type { HeaderValue, Message } from '../../lib/message.js';
import { restoreRemoteError, RPC_HEADERS } from '../../lib/rpc.js';
import type { ProtocolClient, WireResponse } from './client.js';
import type { ProtocolServer, ServerEndpoint } from './consumer.js';
import type { Routed } from './server.js';

export const JSONRPC_CODES = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  /** -32000..-32099 are for implementation-defined server errors: a busbar error. */
  serverError: -32000,
} as const;

type Id = string | number | null;

interface RpcError {
  code: number;
  message: string;
  data?: unknown;
}

type RpcResponse = { jsonrpc: '2.0'; id: Id; result: unknown } | { jsonrpc: '2.0'; id: Id; error: RpcError };

/** A busbar error -> a JSON-RPC error object; `data.code` keeps the busbar code for busbar clients. */
export function toRpcError(err: unknown): RpcError {
  if (!isBusbarError(err)) return { code: JSONRPC_CODES.internalError, message: 'Internal error' };
  const data: Record<string, unknown> = { code: err.code, retryable: err.retryable };
  if (Array.isArray(err.details.problems)) data.problems = err.details.problems;
  const code =
    err.code === 'BUSBAR_ERR_RPC_METHOD_NOT_FOUND'
      ? JSONRPC_CODES.methodNotFound
      : err.code === 'BUSBAR_ERR_RPC_INVALID_REQUEST'
        ? JSONRPC_CODES.invalidRequest
        : err.code === 'BUSBAR_ERR_VALIDATION_FAILED'
          ? JSONRPC_CODES.invalidParams
          : err.code === 'BUSBAR_ERR_PARSE' && err.details.jsonrpc === true
            ? JSONRPC_CODES.parseError
            : JSONRPC_CODES.serverError;
  return { code, message: err.message, data };
}

/** A JSON-RPC error object -> a coded error (the remote busbar code when there is one). */
export function fromRpcError(e: unknown, method: string | undefined): BusbarError {
  const obj = (typeof e === 'object' && e !== null ? e : {}) as Partial<RpcError>;
  const code = typeof obj.code === 'number' ? obj.code : JSONRPC_CODES.internalError;
  const message = typeof obj.message === 'string' ? obj.message : 'JSON-RPC error';
  const data = obj.data as { code?: unknown; retryable?: unknown; problems?: unknown } | undefined;
  const details: Record<string, unknown> = { rpcCode: code, rpcMethod: method, data };
  if (Array.isArray(data?.problems)) details.problems = data.problems;
  const fallback =
    code === JSONRPC_CODES.methodNotFound ? 'RPC_METHOD_NOT_FOUND' : code === JSONRPC_CODES.invalidRequest ? 'RPC_INVALID_REQUEST' : code === JSONRPC_CODES.invalidParams ? 'VALIDATION_FAILED' : code === JSONRPC_CODES.parseError ? 'PARSE' : 'RPC_REMOTE_ERROR';
  return restoreRemoteError(data?.code, message, fallback, details, typeof data?.retryable === 'boolean' ? data.retryable : undefined);
}

function validId(id: unknown): id is Id {
  return id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
}

function invalid(id: Id, reason: string): RpcResponse {
  return { jsonrpc: '2.0', id, error: { code: JSONRPC_CODES.invalidRequest, message: `Invalid Request: ${reason}`, data: { code: 'BUSBAR_ERR_RPC_INVALID_REQUEST', reason } } };
}

async function call(item: unknown, r: Routed, ep: ServerEndpoint): Promise<RpcResponse | undefined> {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return invalid(null, 'a request must be an object');
  const req = item as Record<string, unknown>;
  const id = validId(req.id) ? req.id : null;
  if (req.jsonrpc !== '2.0') return invalid(id, 'member "jsonrpc" must be exactly "2.0"');
  if (typeof req.method !== 'string' || req.method === '') return invalid(id, 'member "method" must be a non-empty string');
  if ('id' in req && !validId(req.id)) return invalid(null, 'member "id" must be a string, a number or null');
  if (req.params !== undefined && (typeof req.params !== 'object' || req.params === null)) return invalid(id, 'member "params" must be an array or an object');
  const notification = !('id' in req);
  const headers: Record<string, HeaderValue> = { [RPC_HEADERS.method]: req.method, [RPC_HEADERS.notification]: notification };
  if (!notification && id !== null) headers[RPC_HEADERS.id] = String(id);
  const msg = ep.message(r, req.params, headers);
  try {
    const reply = await ep.run(msg);
    return notification ? undefined : { jsonrpc: '2.0', id, result: reply.body === undefined ? null : reply.body };
  } catch (err) {
    if (notification) {
      ep.ctx.logger.warn({ err, messageId: msg.id, method: req.method }, 'JSON-RPC notification failed (no one to tell)');
      return undefined;
    }
    return { jsonrpc: '2.0', id, error: toRpcError(err) };
  }
}

function send(r: Routed, status: number, body: unknown): void {
  if (body === undefined) {
    r.res.statusCode = 204;
    r.res.end();
    return;
  }
  const text = JSON.stringify(body);
  r.res.statusCode = status;
  r.res.setHeader('Content-Type', 'application/json; charset=utf-8');
  r.res.setHeader('Content-Length', Buffer.byteLength(text));
  r.res.end(text);
}

/**
 * The server: one POST path answers single calls and batches. Answers are HTTP 200 with
 * the JSON-RPC response (errors included); 204 when everything was a notification; HTTP
 * 413/503 for limits and a full route, as for any other route.
 */
export const jsonRpcServer: ProtocolServer = {
  async handle(r, ep) {
    if (ep.refuseWhenBusy(r)) return;
    let bytes: Buffer;
    try {
      bytes = await ep.readBody(r.req);
    } catch (err) {
      ep.fail(r, err);
      return;
    }
    let doc: unknown;
    try {
      doc = ep.formats.json.decode(bytes);
    } catch (err) {
      const e = isBusbarError(err) ? err : new BusbarError('PARSE', String(err));
      send(r, 200, { jsonrpc: '2.0', id: null, error: { code: JSONRPC_CODES.parseError, message: `Parse error: ${e.message}`, data: { code: e.code } } });
      return;
    }
    if (!Array.isArray(doc)) {
      send(r, 200, await call(doc, r, ep));
      return;
    }
    if (doc.length === 0) return send(r, 200, invalid(null, 'empty batch'));
    if (doc.length > ep.opts.maxBatch) return send(r, 200, invalid(null, `batch of ${doc.length} calls exceeds the limit of ${ep.opts.maxBatch} (maxBatch)`));
    const out = (await Promise.all(doc.map((item) => call(item, r, ep)))).filter((x): x is RpcResponse => x !== undefined);
    send(r, 200, out.length ? out : undefined);
  },
};

interface BatchCall {
  method: string;
  params?: unknown;
  notify?: boolean;
}

function paramsOf(body: unknown): unknown {
  if (body === undefined) return undefined;
  if (Array.isArray(body) || (typeof body === 'object' && body !== null && !Buffer.isBuffer(body))) return body;
  return [body];
}

/** The client: a call per message (or a batch per message with `batch=true`). */
export const jsonRpcClient: ProtocolClient = {
  encode(msg, call) {
    const o = call.opts;
    let doc: unknown;
    if (o.batch) {
      if (!Array.isArray(msg.body)) throw new BusbarError('RPC_INVALID_REQUEST', 'jsonrpc batch: the body must be a list of { method, params?, notify? }', { details: { reason: 'batch-body' } });
      doc = (msg.body as BatchCall[]).map((c, i) => {
        if (typeof c?.method !== 'string') throw new BusbarError('RPC_INVALID_REQUEST', `jsonrpc batch: call ${i} has no method`, { details: { reason: 'batch-method', index: i } });
        const req: Record<string, unknown> = { jsonrpc: '2.0', method: c.method };
        const p = paramsOf(c.params);
        if (p !== undefined) req.params = p;
        if (!c.notify) req.id = i;
        return req;
      });
    } else {
      const method = msg.headers[RPC_HEADERS.method] ?? o.rpcMethod;
      if (typeof method !== 'string' || !method) {
        throw new BusbarError('RPC_INVALID_REQUEST', 'jsonrpc: no method to call: set the rpcMethod option or the rpc.method header', { details: { reason: 'no-method' } });
      }
      const req: Record<string, unknown> = { jsonrpc: '2.0', method };
      const p = paramsOf(msg.body);
      if (p !== undefined) req.params = p;
      if (!(o.notify || msg.headers[RPC_HEADERS.notification] === true)) req.id = msg.id;
      doc = req;
    }
    return { data: JSON.stringify(doc), contentType: 'application/json', method: 'POST', headers: { accept: 'application/json' } };
  },
  decode(res: WireResponse, msg: Message, call) {
    const o = call.opts;
    const method = o.batch ? undefined : String(msg.headers[RPC_HEADERS.method] ?? o.rpcMethod);
    const notify = !o.batch && (o.notify || msg.headers[RPC_HEADERS.notification] === true);
    if (res.status >= 300) return undefined; // HTTP-level failure: HTTP_* error
    if (res.body.length === 0) {
      if (notify || o.batch) return { ...msg, body: o.batch ? (msg.body as unknown[]).map(() => null) : undefined };
      throw new BusbarError('RPC_INVALID_REQUEST', `jsonrpc: empty response to ${method}`, { details: { reason: 'empty-response', method } });
    }
    let doc: unknown;
    try {
      doc = call.formats.json.decode(res.body);
    } catch (e) {
      throw new BusbarError('PARSE', `jsonrpc: response is not JSON: ${(e as Error).message}`, { cause: e, details: { method } });
    }
    if (o.batch) {
      const calls = msg.body as BatchCall[];
      const byId = new Map<unknown, Record<string, unknown>>();
      for (const r of Array.isArray(doc) ? doc : [doc]) if (r && typeof r === 'object') byId.set((r as { id?: unknown }).id, r as Record<string, unknown>);
      const whole = !Array.isArray(doc) ? (doc as { error?: unknown }).error : undefined;
      if (whole !== undefined && byId.size === 1 && byId.has(null)) throw fromRpcError(whole, undefined);
      return {
        ...msg,
        body: calls.map((c, i) => {
          if (c.notify) return null;
          const r = byId.get(i);
          if (!r) return { error: { code: 'BUSBAR_ERR_RPC_INVALID_REQUEST', message: `no response for call ${i}` } };
          if ('error' in r) {
            const e = fromRpcError(r.error, c.method);
            return { error: { code: e.code, message: e.message, rpcCode: e.details.rpcCode } };
          }
          return { result: r.result };
        }),
      };
    }
    const r = doc as Record<string, unknown>;
    if (typeof r !== 'object' || r === null || r.jsonrpc !== '2.0' || (!('result' in r) && !('error' in r))) {
      throw new BusbarError('RPC_INVALID_REQUEST', `jsonrpc: not a JSON-RPC 2.0 response to ${method}`, { details: { reason: 'bad-response', method } });
    }
    if ('error' in r) throw fromRpcError(r.error, method);
    return { ...msg, body: r.result };
  },
};
