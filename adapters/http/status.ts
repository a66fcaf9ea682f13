import type { IncomingMessage, ServerResponse } from 'node:http';
import { isBusbarError, type ErrorName } from '../../lib/errors.js';
import { encodeXml } from './formats.js';

/**
 * Busbar error code -> HTTP status. Input problems are the client's (4xx), a slow or
 * unreachable backend is a gateway problem (502/504), a full route or open circuit is
 * 503; anything else is 500.
 */
const STATUS: Partial<Record<ErrorName, number>> = {
  VALIDATION_FAILED: 422,
  PARSE: 400,
  INPUT_TOO_DEEP: 400,
  XML_ENTITY_FORBIDDEN: 400,
  XML_EXTERNAL_ENTITY: 400,
  SOAP_ENVELOPE: 400,
  RPC_INVALID_REQUEST: 400,
  INPUT_TOO_LARGE: 413,
  LIMIT_EXCEEDED: 413,
  NOT_FOUND: 404,
  CLAIM_NOT_FOUND: 404,
  RPC_METHOD_NOT_FOUND: 404,
  UNSUPPORTED_FORMAT: 415,
  TIMEOUT: 504,
  CIRCUIT_OPEN: 503,
  NO_CONSUMER: 503,
  ENGINE_STATE: 503,
  HTTP_SERVER_ERROR: 502,
  HTTP_NETWORK: 502,
  GRPC_UNAVAILABLE: 502,
  GRPC_REMOTE_ERROR: 502,
};

/** A backend's 4xx that means the same to our caller is passed on; others are our fault (502). */
const PASSED_ON = new Set([404, 409, 410, 412]);
/** Remote busbar codes passed on as they are (the caller's input, not our failure). */
const PASSED_ON_CODES = new Set([404, 422, 400]);

export function statusOf(err: unknown): number {
  if (!isBusbarError(err)) return 500;
  const name = err.code.slice('BUSBAR_ERR_'.length) as ErrorName;
  if (name === 'SOAP_FAULT' || name === 'RPC_REMOTE_ERROR') {
    // a backend's fault: its busbar code (when the backend is busbar) says what the
    // caller did wrong; anything else is the backend's problem, so ours as a gateway
    const remote = err.details.remoteCode;
    const s = typeof remote === 'string' ? STATUS[remote.slice('BUSBAR_ERR_'.length) as ErrorName] : undefined;
    return s !== undefined && PASSED_ON_CODES.has(s) ? s : 502;
  }
  if (name === 'HTTP_CLIENT_ERROR') {
    const s = err.details.status;
    return typeof s === 'number' && PASSED_ON.has(s) ? s : 502;
  }
  return STATUS[name] ?? 500;
}

/** The error as a response body: code, message, problems; never a stack trace. */
export function errorBody(err: unknown): { code: string; message: string; problems?: unknown } {
  if (!isBusbarError(err)) return { code: 'BUSBAR_ERR_STEP_FAILED', message: 'internal error' };
  const out: { code: string; message: string; problems?: unknown } = { code: err.code, message: err.message };
  if (Array.isArray(err.details.problems)) out.problems = err.details.problems;
  return out;
}

/** Which representation the client prefers among the ones we can write. */
export function prefersXml(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  if (!accept) return false;
  let best = { xml: -1, json: -1 };
  for (const part of accept.split(',')) {
    const [type = '', ...ps] = part.trim().toLowerCase().split(';');
    const qp = ps.find((p) => p.trim().startsWith('q='));
    const q = qp ? Number(qp.trim().slice(2)) : 1;
    if (type === 'application/json' || type.endsWith('+json')) best = { ...best, json: Math.max(best.json, q) };
    else if (type === 'application/xml' || type === 'text/xml' || type.endsWith('+xml')) best = { ...best, xml: Math.max(best.xml, q) };
    else if (type === '*/*' || type === 'application/*') best = { json: Math.max(best.json, q - 0.001), xml: Math.max(best.xml, q - 0.002) };
  }
  return best.xml > best.json;
}

export function sendError(req: IncomingMessage, res: ServerResponse, status: number, err: unknown, opts: { retryAfterS?: number } = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(err);
  let text: string;
  if (prefersXml(req)) {
    res.setHeader('Content-Type', 'application/xml; charset=utf-8');
    text = encodeXml({ error: body });
  } else {
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    text = JSON.stringify({ error: body });
  }
  if (opts.retryAfterS !== undefined) res.setHeader('Retry-After', String(opts.retryAfterS));
  res.statusCode = status;
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(req.method === 'HEAD' ? undefined : text);
}
