/**
 * The one error catalogue. Every error busbar throws is a BusbarError with a stable
 * `code` (tests and users match on codes, never on messages), a `retryable` flag that
 * error policies read, and the original `cause`.
 *
 * To add a code: add an entry here; README's table is generated from this object
 * (`npm run docs`), and a test fails when README is out of date.
 */
export const errorCatalogue = {
  // --- configuration: found when routes are created, never at message time
  INVALID_URI: { retryable: false, description: 'An endpoint URI is not of the form `scheme:path?option=value`.' },
  UNKNOWN_SCHEME: { retryable: false, description: 'No adapter is registered for the endpoint\'s scheme.' },
  INVALID_OPTION: { retryable: false, description: 'An endpoint option is unknown or has a wrong value (the error names the option, what was expected and the nearest valid name).' },
  UNSUPPORTED_ENDPOINT: { retryable: false, description: 'The adapter cannot consume (or produce) on this endpoint.' },
  REPLY_UNSUPPORTED: { retryable: false, description: 'A step that needs an answer (`enrich`, `scatterGather`, `request`, a reply-combining strategy, `engine.request`) names an endpoint that cannot reply (a `queue:`, `topic:`, `file:`, `log:` endpoint...). Use `to` for one-way sends.' },
  INVALID_ROUTE: { retryable: false, description: 'A route declaration (builder or config data) is invalid; `details.problems` lists each problem with its path.' },
  DUPLICATE_ROUTE: { retryable: false, description: 'Two routes have the same id.' },
  ROUTES_FILE: { retryable: false, description: 'A routes file cannot be loaded (missing, syntax error, or exports no routes).' },
  // --- lifecycle
  ENGINE_STATE: { retryable: false, description: 'An operation is not allowed in the engine\'s current state (e.g. adding routes while stopping).' },
  ROUTE_START_FAILED: { retryable: false, description: 'A route failed to start; the routes started before it were stopped again.' },
  STOP_TIMEOUT: { retryable: false, description: 'Graceful stop timed out with messages still in flight.' },
  // --- message time
  STEP_FAILED: { retryable: true, description: 'User code in a step threw; `cause` is the original error, `details` names the route and step.' },
  NO_CONSUMER: { retryable: true, description: 'A `direct:` endpoint was sent to while no route consumes from it.' },
  NO_MATCH: { retryable: false, description: 'A content-based router matched no branch and has no `otherwise`.' },
  EXPRESSION: { retryable: false, description: 'An expression (JSONata) in a config route failed to compile or evaluate.' },
  TIMEOUT: { retryable: true, description: 'An operation did not finish within its time limit.' },
  CHANNEL_CLOSED: { retryable: true, description: 'An in-memory channel was closed while a message was waiting on it.' },
  MOCK_ASSERTION: { retryable: false, description: 'A `mock:` endpoint expectation was not satisfied in time.' },
  DEAD_LETTER_FAILED: { retryable: true, description: 'Sending a failed message to its dead-letter endpoint failed too; the source is nacked.' },
  VALIDATION_FAILED: { retryable: false, description: 'A message violated a schema contract; `details.problems` lists every problem with its JSON pointer.' },
  PARSE: { retryable: false, description: 'A body could not be decoded (JSON, XML, CSV, SOAP); the message says where.' },
  LIMIT_EXCEEDED: { retryable: false, description: 'An input exceeded a configured limit (size, depth, count).' },
  // --- patterns (EIPs)
  CIRCUIT_OPEN: { retryable: true, description: 'A circuit breaker is open (too many recent failures) and the step has no fallback; retry after its open time.' },
  NO_REPLIES: { retryable: true, description: 'A scatter-gather got no reply at all (every branch failed or none answered before the timeout).' },
  CLAIM_NOT_FOUND: { retryable: false, description: 'A claim-check checkout found no body parked under the message\'s claim key.' },
  WORKER_FAILED: { retryable: false, description: 'A worker thread of a map/reduce step failed to load its module or crashed.' },
  SPLIT_INPUT: { retryable: false, description: 'A splitter got something it cannot split (not an array, iterable, async iterable, or tokenizable text).' },
  CORRELATION_KEY: { retryable: false, description: 'An aggregator, resequencer or idempotent consumer computed no key (undefined or null) for a message.' },
  // --- codecs, transformation, contracts
  INPUT_TOO_LARGE: { retryable: false, description: 'A document (JSON, XML, SOAP, CSV) is larger than the codec\'s `maxBytes` limit; `details` has the size and the limit.' },
  INPUT_TOO_DEEP: { retryable: false, description: 'A document nests deeper than the codec\'s `maxDepth` limit (stack-exhaustion protection).' },
  XML_ENTITY_FORBIDDEN: { retryable: false, description: 'An XML document declares entities in a DOCTYPE (entity expansion, "billion laughs"); refused before parsing.' },
  XML_EXTERNAL_ENTITY: { retryable: false, description: 'An XML document refers to an external DTD or entity (SYSTEM/PUBLIC); never fetched, refused.' },
  SOAP_ENVELOPE: { retryable: false, description: 'A body is not a usable SOAP envelope (`details.reason`: not-envelope, version, no-body).' },
  SOAP_FAULT: { retryable: false, description: 'A SOAP Fault was received; `details.fault` has code, subcodes, reason, actor and detail. Retryable when the fault is a Server/Receiver fault.' },
  ENCODE: { retryable: false, description: 'A value cannot be encoded in the requested format (e.g. CSV of a non-array, XML without one root element).' },
  UNSUPPORTED_FORMAT: { retryable: false, description: 'No codec for a message\'s content type (automatic conversion at a route edge), or a conversion the codecs cannot do.' },
  // --- file adapter
  PATH_TRAVERSAL: { retryable: false, description: 'A file name (from a template or a header) would leave the endpoint\'s directory (`../`, an absolute path).' },
  FILE_NAME: { retryable: false, description: 'A file name template rendered an empty or invalid name, or a placeholder had no value (a missing header).' },
  FILE_EXISTS: { retryable: false, description: 'The target file exists and the producer has `fileExist=fail` (or no unique name was free).' },
  FILE_IO: { retryable: true, description: 'A file operation failed (read, write, rename, mkdir); `details` names the operation, the path and the errno code.' },
  // --- db adapter
  DB_CONFIG: { retryable: false, description: 'A `db:` endpoint or store refers to an unknown named connection, or its statement has a bad `:parameter`.' },
  DB_DRIVER: { retryable: false, description: 'The database driver (`better-sqlite3` or `pg`) is not installed; install it to use `db:`.' },
  DB_CONNECTION: { retryable: true, description: 'The database cannot be reached or the connection was lost (the consumer backs off and reconnects).' },
  DB_SCHEMA: { retryable: false, description: 'A table or column a `db:` endpoint needs does not exist; the error names it and the database.' },
  DB_QUERY: { retryable: false, description: 'A statement failed (constraint, syntax, type); `details.sqlState` has the database\'s code. Deadlocks and serialization failures are retryable.' },
  // --- http, json-rpc, soap, stubs
  NOT_FOUND: { retryable: false, description: 'The requested resource or record does not exist (an HTTP route answers 404).' },
  HTTP_CLIENT_ERROR: { retryable: false, description: 'An HTTP call got a 4xx response; `details` has the status, method, URL (credentials removed) and the start of the response body.' },
  HTTP_SERVER_ERROR: { retryable: true, description: 'An HTTP call got a 5xx response (or 503/429 with `Retry-After`); `details` has the status, method and URL.' },
  HTTP_NETWORK: { retryable: true, description: 'An HTTP call failed below HTTP: connection refused or reset, DNS failure, the server closed the connection mid-response.' },
  HTTP_ROUTE: { retryable: false, description: 'Two HTTP routes claim the same method and path on one server, or a server could not listen (port in use).' },
  RPC_METHOD_NOT_FOUND: { retryable: false, description: 'A remote call named a method the skeleton does not expose (JSON-RPC -32601, HTTP 404).' },
  RPC_INVALID_REQUEST: { retryable: false, description: 'A JSON-RPC request or response is not valid JSON-RPC 2.0 (JSON-RPC -32600); `details.reason` says what is wrong.' },
  RPC_REMOTE_ERROR: { retryable: false, description: 'A remote procedure answered with an error whose code is not in this catalogue; `details.rpcCode` and `details.data` carry what the server said.' },
  // --- amqp adapter
  AMQP_CONFIG: { retryable: false, description: 'The amqp adapter configuration (URL, reconnect, topology) is invalid; `details.problems` lists each problem with its path.' },
  AMQP_CONNECTION: { retryable: true, description: 'RabbitMQ is unreachable or the connection/channel was lost; the adapter reconnects with backoff.' },
  AMQP_TOPOLOGY_CONFLICT: { retryable: false, description: 'A declared exchange or queue exists on the broker with other properties or arguments (`details` names it and what the broker said).' },
  AMQP_NACKED: { retryable: true, description: 'RabbitMQ refused a published message (publisher confirm nack).' },
  AMQP_UNROUTABLE: { retryable: false, description: 'A mandatory message was returned by RabbitMQ: no queue is bound for its exchange and routing key.' },
  AMQP_POISON: { retryable: false, description: 'A message was delivered more times than `maxDeliveries` (or could not be decoded) and was dead-lettered instead of processed again.' },
  AMQP_REMOTE_ERROR: { retryable: false, description: 'An AMQP request-reply call failed in the replying route; `details` carries the remote error code.' },
  // --- eventlog adapter
  EVENTLOG_IO: { retryable: true, description: 'An event log file operation failed (segment, index, group file); `details` names the path and the errno code.' },
  EVENTLOG_CONFIG: { retryable: false, description: 'An event log topic exists with another partition count, or an effectively-once route\'s db destination does not commit its offsets (`eventlogOffsets`).' },
  EVENTLOG_LOCKED: { retryable: false, description: 'Another live process is writing the event log topic (one writer per topic; `details.holder` names it).' },
  EVENTLOG_FENCED: { retryable: false, description: 'An offset commit was refused: the partition belongs to another group member now (or a newer epoch), so a zombie owner cannot move it.' },
  EVENTLOG_CLOSED: { retryable: true, description: 'An append reached an event log partition after it was closed.' },
  // --- management API
  ROUTE_STATE: { retryable: false, description: 'A route operation (stop, start, suspend, resume) is not possible in the route\'s current state; `details.state` has it.' },
  MANAGEMENT_CONFIG: { retryable: false, description: 'The management API cannot start as configured: a non-loopback address without a token, a bad address or port, the port in use.' },
  UNAUTHORIZED: { retryable: false, description: 'A management request had no bearer token or the wrong one (HTTP 401).' },
  MANAGEMENT_REQUEST: { retryable: false, description: 'A management request is malformed (bad JSON body, unknown parameter, wrong method); the message says what (HTTP 400/405).' },
  RELOAD_FAILED: { retryable: false, description: 'A hot reload was refused: the new routes did not validate or a changed route did not start; the running version stays (`details.phase`: validate or start; `details.problems` or `details.routeId`). HTTP 422.' },
  // --- p2p (peer-to-peer bus)
  P2P_CONFIG: { retryable: false, description: 'The p2p adapter configuration is invalid (no cluster secret, a bad listen or seed address); `details.problems` lists each problem.' },
  P2P_NO_PROVIDER: { retryable: true, description: 'No live peer serves the `direct:`/`queue:` channel of a p2p request.' },
  P2P_PEER_LOST: { retryable: true, description: 'The peer handling a p2p request or delivery died or became unreachable before it answered (the request may or may not have run).' },
  // --- service registry and API gateway
  SERVICE_UNAVAILABLE: { retryable: true, description: 'No passing instance of the named service is in the registry view (none registered, all unhealthy, draining, expired, or their circuits open); HTTP 503 at the gateway.' },
  SERVICE_INSTANCE_LOST: { retryable: true, description: 'The service instance handling a call left the registry (its heartbeats stopped or it deregistered) before it answered; the call may or may not have run (idempotent methods are retried on another instance); HTTP 502 at the gateway.' },
  GATEWAY_NOT_FOUND: { retryable: false, description: 'An API gateway request names a path, service or method that is not on the gateway\'s allow-list (HTTP 404).' },
  GATEWAY_RATE_LIMITED: { retryable: true, description: 'An API gateway route\'s rate limit is used up; `details.retryAfterMs` says when to try again (HTTP 429 with Retry-After).' },
  GATEWAY_FORBIDDEN: { retryable: false, description: 'The API gateway\'s auth hook refused the request (HTTP 401 without credentials, 403 with wrong ones).' },
  GATEWAY_BAD_REQUEST: { retryable: false, description: 'An API gateway request is malformed: not JSON, too large, or a wrong method (HTTP 400/405/413).' },
  // --- fn adapter (functions on worker threads)
  FN_NOT_FOUND: { retryable: false, description: 'A `fn:` endpoint names a function that is not registered (or was removed); `details.fn` names it, `details.known` lists the registered ones.' },
  FN_LOAD: { retryable: false, description: 'A function module could not be loaded in its worker (missing file, syntax error, no exported handler); `details.module` names it.' },
  FN_FAILED: { retryable: true, description: 'A function threw (or rejected); `details.fn` names it, `details.error` has the name, message and stack from the worker.' },
  FN_CRASHED: { retryable: false, description: 'A function\'s worker thread died while running it (process.exit, out of memory, a native crash); only that message fails and the worker is replaced.' },
  // --- grpc adapter
  GRPC_CONFIG: { retryable: false, description: 'A `grpc:` endpoint cannot be set up: its `.proto` file does not load, it names a service or method the protos do not declare, or its server cannot listen (port in use); the message names the file, service or address.' },
  GRPC_UNAVAILABLE: { retryable: true, description: 'A gRPC call could not reach its server or the connection broke (status UNAVAILABLE): refused, reset, TLS handshake failed (then not retryable).' },
  GRPC_REMOTE_ERROR: { retryable: false, description: 'A gRPC call failed with a status that has no busbar code of its own; `details.grpcCode` / `details.grpcStatus` carry it (retryable for ABORTED).' },
  GRPC_REPLY_INVALID: { retryable: false, description: 'A gRPC server route\'s reply does not fit the RPC\'s response type (a field of the wrong type, a field the message does not have): the caller gets INTERNAL and `details.problems` names each field; nothing is coerced or dropped silently.' },
  // --- graph and console
  GRAPH_LAYOUT: { retryable: false, description: 'The route graph could not be laid out as SVG (the `elkjs` package is missing or failed); JSON and Mermaid need no layout.' },
} as const satisfies Record<string, { retryable: boolean; description: string }>;

export type ErrorName = keyof typeof errorCatalogue;
export type ErrorCode = `BUSBAR_ERR_${ErrorName}`;

export interface BusbarErrorOptions {
  cause?: unknown;
  /** Structured facts about the failure (route id, endpoint, option, problems...). */
  details?: Record<string, unknown>;
  /** Override the catalogue's default. */
  retryable?: boolean;
}

export class BusbarError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(name: ErrorName, message: string, options: BusbarErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BusbarError';
    this.code = `BUSBAR_ERR_${name}`;
    this.retryable = options.retryable ?? errorCatalogue[name].retryable;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, retryable: this.retryable, details: this.details };
  }
}

export function isBusbarError(err: unknown, name?: ErrorName): err is BusbarError {
  if (!(err instanceof Error) || typeof (err as { code?: unknown }).code !== 'string') return false;
  const code = (err as unknown as { code: string }).code;
  if (!code.startsWith('BUSBAR_ERR_') || !('retryable' in err)) return false;
  return name === undefined || code === `BUSBAR_ERR_${name}`;
}

/**
 * Wrap anything thrown by user code so it names where it happened, keeping the
 * original error (and so its stack) as `cause`. BusbarErrors pass through unchanged.
 */
export function wrapStepError(err: unknown, routeId: string, step: string): BusbarError {
  if (isBusbarError(err)) {
    if (err.details.routeId === undefined) err.details.routeId = routeId;
    if (err.details.step === undefined) err.details.step = step;
    return err;
  }
  const text = err instanceof Error ? err.message : String(err);
  return new BusbarError('STEP_FAILED', `route "${routeId}", step ${step}: ${text}`, {
    cause: err,
    details: { routeId, step },
  });
}

/** `true` when an error (of any kind) should be retried by a redelivery policy. */
export function isRetryable(err: unknown): boolean {
  return isBusbarError(err) ? err.retryable : true;
}

/**
 * An error's message with the messages of its causes, each named once: busbar's errors
 * quote the error they wrap (`route "x" failed to start: <the cause's message>`), so a cause
 * whose message is already there is not appended again (pino's own serializer appends every
 * cause, and the log would say everything twice).
 */
export function messageWithCauses(err: Error): string {
  let message = err.message;
  const seen = new Set<unknown>([err]);
  for (let c: unknown = err.cause; c instanceof Error && !seen.has(c); c = c.cause) {
    seen.add(c);
    if (c.message && !message.includes(c.message)) message += `: ${c.message}`;
  }
  return message;
}
