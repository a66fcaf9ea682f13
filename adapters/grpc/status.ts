/**
 * Busbar error codes <-> gRPC status codes, one table used by both sides: a server route's
 * failure becomes its status (and `busbar-error-code` / `busbar-error-retryable` trailers, so
 * a busbar client restores the exact code), a client turns a status without those trailers
 * into the code of `FROM_STATUS`. docs/grpc.md shows both tables (a spec checks they match).
 */
import { BusbarError, isBusbarError, type ErrorName } from '../../lib/errors.js';
import { restoreRemoteError } from '../../lib/rpc.js';

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusName = keyof typeof GRPC_STATUS;

/** Busbar code -> gRPC status of a failed server call. Codes not listed: INTERNAL; a non-busbar error: UNKNOWN. */
export const TO_STATUS: Partial<Record<ErrorName, GrpcStatusName>> = {
  VALIDATION_FAILED: 'INVALID_ARGUMENT',
  PARSE: 'INVALID_ARGUMENT',
  INPUT_TOO_DEEP: 'INVALID_ARGUMENT',
  XML_ENTITY_FORBIDDEN: 'INVALID_ARGUMENT',
  XML_EXTERNAL_ENTITY: 'INVALID_ARGUMENT',
  SOAP_ENVELOPE: 'INVALID_ARGUMENT',
  RPC_INVALID_REQUEST: 'INVALID_ARGUMENT',
  UNSUPPORTED_FORMAT: 'INVALID_ARGUMENT',
  NOT_FOUND: 'NOT_FOUND',
  CLAIM_NOT_FOUND: 'NOT_FOUND',
  FN_NOT_FOUND: 'NOT_FOUND',
  FILE_EXISTS: 'ALREADY_EXISTS',
  RPC_METHOD_NOT_FOUND: 'UNIMPLEMENTED',
  TIMEOUT: 'DEADLINE_EXCEEDED',
  LIMIT_EXCEEDED: 'RESOURCE_EXHAUSTED',
  INPUT_TOO_LARGE: 'RESOURCE_EXHAUSTED',
  CIRCUIT_OPEN: 'UNAVAILABLE',
  NO_CONSUMER: 'UNAVAILABLE',
  ENGINE_STATE: 'UNAVAILABLE',
  HTTP_NETWORK: 'UNAVAILABLE',
  AMQP_CONNECTION: 'UNAVAILABLE',
  DB_CONNECTION: 'UNAVAILABLE',
  P2P_NO_PROVIDER: 'UNAVAILABLE',
  GRPC_UNAVAILABLE: 'UNAVAILABLE',
  UNAUTHORIZED: 'UNAUTHENTICATED',
  NO_MATCH: 'FAILED_PRECONDITION',
  GRPC_REMOTE_ERROR: 'UNKNOWN',
  SOAP_FAULT: 'UNKNOWN',
  RPC_REMOTE_ERROR: 'UNKNOWN',
  AMQP_REMOTE_ERROR: 'UNKNOWN',
  HTTP_CLIENT_ERROR: 'FAILED_PRECONDITION',
  HTTP_SERVER_ERROR: 'UNAVAILABLE',
};

/**
 * A backend's HTTP status behind a gateway route (HTTP_CLIENT_ERROR / HTTP_SERVER_ERROR with
 * `details.status`), as google.rpc.Code maps them; other statuses take the code's row above.
 */
export const HTTP_TO_STATUS: Readonly<Record<number, GrpcStatusName>> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  422: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  501: 'UNIMPLEMENTED',
  504: 'DEADLINE_EXCEEDED',
};

/** Codes under which another transport carries a remote busbar code (`details.remoteCode`). */
const REMOTE_WRAPPERS = new Set<ErrorName>(['SOAP_FAULT', 'RPC_REMOTE_ERROR', 'AMQP_REMOTE_ERROR']);

/**
 * gRPC status -> busbar code of a failed client call, when the server sent no
 * `busbar-error-code` trailer (a server busbar did not write). Statuses not listed: GRPC_REMOTE_ERROR.
 */
export const FROM_STATUS: Partial<Record<GrpcStatusName, ErrorName>> = {
  INVALID_ARGUMENT: 'VALIDATION_FAILED',
  OUT_OF_RANGE: 'VALIDATION_FAILED',
  NOT_FOUND: 'NOT_FOUND',
  UNIMPLEMENTED: 'RPC_METHOD_NOT_FOUND',
  DEADLINE_EXCEEDED: 'TIMEOUT',
  RESOURCE_EXHAUSTED: 'LIMIT_EXCEEDED',
  UNAVAILABLE: 'GRPC_UNAVAILABLE',
  UNAUTHENTICATED: 'UNAUTHORIZED',
  PERMISSION_DENIED: 'UNAUTHORIZED',
};

/** Statuses a client may retry (gRPC's own guidance): the call did not run, or can run again. */
const RETRYABLE = new Set<GrpcStatusName>(['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'ABORTED']);

const NAMES = Object.fromEntries(Object.entries(GRPC_STATUS).map(([k, v]) => [v, k])) as Record<number, GrpcStatusName>;

export function statusName(code: number): GrpcStatusName {
  return NAMES[code] ?? 'UNKNOWN';
}

/** The trailers that carry the busbar code across a gRPC call. */
export const ERROR_TRAILERS = { code: 'busbar-error-code', retryable: 'busbar-error-retryable' } as const;

/** A server route's failure as a gRPC status: code, message (never a stack), the busbar code for busbar clients. */
export function toStatus(err: unknown): { code: number; details: string; busbarCode?: string; retryable?: boolean } {
  if (!isBusbarError(err)) return { code: GRPC_STATUS.UNKNOWN, details: 'internal error' };
  const name = err.code.slice('BUSBAR_ERR_'.length) as ErrorName;
  // a failure that came from another gRPC server keeps its status
  const passed = name === 'GRPC_REMOTE_ERROR' && typeof err.details.grpcCode === 'number' ? err.details.grpcCode : undefined;
  // a backend's fault that carries its busbar code (a busbar SOAP/JSON-RPC/AMQP backend) answers by that code
  const remote = REMOTE_WRAPPERS.has(name) && typeof err.details.remoteCode === 'string' ? TO_STATUS[err.details.remoteCode.slice('BUSBAR_ERR_'.length) as ErrorName] : undefined;
  const http = (name === 'HTTP_CLIENT_ERROR' || name === 'HTTP_SERVER_ERROR') && typeof err.details.status === 'number' ? HTTP_TO_STATUS[err.details.status] : undefined;
  const code = passed ?? GRPC_STATUS[remote ?? http ?? TO_STATUS[name] ?? 'INTERNAL'];
  return { code, details: err.message, busbarCode: err.code, retryable: err.retryable };
}

/** A failed client call (status and trailers) as a coded error. */
export function fromStatus(code: number, message: string, trailers: { code?: string; retryable?: string }, where: Record<string, unknown>): BusbarError {
  const name = statusName(code);
  const details: Record<string, unknown> = { ...where, grpcCode: code, grpcStatus: name };
  const retryable = trailers.retryable === 'true' ? true : trailers.retryable === 'false' ? false : RETRYABLE.has(name);
  return restoreRemoteError(trailers.code, `${String(where.method ?? 'gRPC call')}: ${name}: ${message}`, FROM_STATUS[name] ?? 'GRPC_REMOTE_ERROR', details, retryable);
}
