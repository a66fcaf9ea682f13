import { Type, type Static } from '@sinclair/typebox';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'ANY'] as const;
const FORMATS = ['auto', 'json', 'xml', 'text', 'raw'] as const;

/**
 * Endpoint options of `http:`. A consumer URI is a path on a local server
 * (`http:/orders/:id?port=8080&method=GET`); a producer URI is a URL
 * (`http://127.0.0.1:8080/orders/{body.id}?method=GET`). Options marked (server) or
 * (client) apply to that role only.
 */
export const httpOptions = Type.Object(
  {
    protocol: Type.Union([Type.Literal('rest'), Type.Literal('jsonrpc'), Type.Literal('soap')], {
      default: 'rest',
      description: 'What travels over HTTP: `rest` (the body as it is, by content type), `jsonrpc` (JSON-RPC 2.0 requests and responses) or `soap` (SOAP 1.1/1.2 envelopes).',
    }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: '(server) Port to listen on. Routes with the same host and port share one server; 0 picks a free port.' }),
    host: Type.String({ default: '127.0.0.1', minLength: 1, description: '(server) Address to listen on; 127.0.0.1 keeps the server local, 0.0.0.0 exposes it.' }),
    method: Type.Optional(Type.Union(METHODS.map((m) => Type.Literal(m)), {
      description: '(server) Method this route answers (default ANY; HEAD is answered by GET routes). (client) Method to call (default POST, or the `http.request.method` header).',
    })),
    timeoutMs: Type.Integer({ minimum: 1, default: 30000, description: '(server) Time the route has to produce the reply before the client gets 504. (client) Time limit of one call, per attempt (the `busbar.timeoutMs` header overrides it per message).' }),
    maxBodyBytes: Type.Integer({ minimum: 1, default: 1048576, description: '(server) Largest request body accepted (larger: 413). (client) Largest response body accepted.' }),
    bodyFormat: Type.Union(FORMATS.map((f) => Type.Literal(f)), {
      default: 'auto',
      description: '(rest) How an incoming body is decoded: `auto` by its Content-Type (JSON and XML parsed, text/* as a string, anything else as a Buffer), or always `json`, `xml`, `text`, `raw` (Buffer).',
    }),
    format: Type.Union(FORMATS.map((f) => Type.Literal(f)), {
      default: 'auto',
      description: '(rest) How an outgoing body is encoded: `auto` (objects as JSON, or XML when the client prefers it by its Accept header; strings and Buffers as they are), or always `json`, `xml`, `text`, `raw`.',
    }),
    retryAfterS: Type.Integer({ minimum: 0, default: 1, description: '(server) `Retry-After` seconds sent with 503 when the route is full or stopping.' }),
    retries: Type.Integer({ minimum: 0, maximum: 10, default: 2, description: '(client) Retries after a network error, 5xx, 429 or timeout; only for idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) or calls carrying an idempotency key.' }),
    retryDelayMs: Type.Integer({ minimum: 0, default: 100, description: '(client) First retry delay; doubles per retry (a `Retry-After` from the server, up to 10 s, wins when longer).' }),
    idempotencyKey: Type.Optional(Type.String({ minLength: 1, description: '(client) Template of an idempotency key sent in `idempotencyHeader` (e.g. `{id}`: the message id, the same on every redelivery); makes POST/PATCH calls retryable.' })),
    idempotencyHeader: Type.String({ minLength: 1, default: 'Idempotency-Key', description: '(client) Header carrying the idempotency key.' }),
    query: Type.Optional(Type.String({ description: '(client) Query string of the called URL, a template: `status={body.status}&limit=10` (write it URL-encoded inside the endpoint URI: `query=status%3D{body.status}%26limit%3D10`). Values are URL-encoded.' })),
    headers: Type.Optional(Type.String({ minLength: 1, description: '(client) Headers of the message forwarded onto the call besides the `http.request.header.*` ones the route sets: comma-separated `http.header.NAME` (a header the route received), a trailing `*` for a prefix (`http.header.x-trace-*`). Credentials (`authorization`, `cookie`, `proxy-authorization`) go only when named exactly. See docs/exchange-model.md.' })),
    rpcMethod: Type.Optional(Type.String({ minLength: 1, description: '(jsonrpc client) Method to call; the `rpc.method` header overrides it.' })),
    notify: Type.Boolean({ default: false, description: '(jsonrpc client) Send notifications (no id, no reply expected).' }),
    batch: Type.Boolean({ default: false, description: '(jsonrpc client) The body is a list of calls `{ method, params?, notify? }` sent as one batch; the reply is the list of `{ result }` or `{ error }` in the same order.' }),
    maxBatch: Type.Integer({ minimum: 1, default: 100, description: '(jsonrpc server) Largest batch accepted.' }),
    soapVersion: Type.Union([Type.Literal('1.1'), Type.Literal('1.2')], { default: '1.1', description: '(soap client) SOAP version of the requests; (soap server) version of faults for requests that are not SOAP at all (replies use the request\'s version).' }),
    faultReason: Type.Optional(
      Type.String({
        minLength: 1,
        description: '(soap server) Reason (faultstring / Reason text) of the Faults this route\'s failures are answered with, instead of the error\'s text (which never names route ids or steps); the busbar code stays in the detail, the whole error in the logs.',
      }),
    ),
    soapUnderstood: Type.Optional(
      Type.String({
        description: '(soap server) Header blocks this route processes, comma-separated: `{namespace}Name`, or `Name` in any namespace. A request with a `mustUnderstand` header block addressed to it that is not listed gets a MustUnderstand fault (HTTP 500) and never reaches the route, as SOAP requires.',
      }),
    ),
    soapAction: Type.Optional(Type.String({ description: '(soap client) SOAPAction to send (1.1 header, 1.2 `action` parameter); the `soap.action` header overrides it. (soap server) Only take requests with this action: several SOAP routes can share one path, picked by action and operation.' })),
    operation: Type.Optional(Type.String({ minLength: 1, description: '(soap client) Operation element to send the body in when the body is plain data; the `soap.operation` header overrides it. (soap server) Only take requests whose first Body element is this operation.' })),
    namespace: Type.Optional(Type.String({ description: '(soap) Namespace of the operation element written (client request, server reply).' })),
    wsdl: Type.Optional(Type.String({ minLength: 1, description: '(soap server) Path of a WSDL file served at `?wsdl` (read when the route starts).' })),
  },
  { additionalProperties: false },
);

export type HttpOptions = Static<typeof httpOptions>;

/** Adapter configuration (not endpoint options): server limits and the client pool. */
export const httpConfigSchema = Type.Object(
  {
    maxHeaderBytes: Type.Integer({ minimum: 1024, default: 16384, description: 'Largest request header block a server accepts (larger: 431).' }),
    headersTimeoutMs: Type.Integer({ minimum: 1, default: 10000, description: 'Time a client has to send the request headers (slow-client protection; then 408).' }),
    requestTimeoutMs: Type.Integer({ minimum: 1, default: 30000, description: 'Time a client has to send the whole request, body included (then 408).' }),
    keepAliveTimeoutMs: Type.Integer({ minimum: 1, default: 5000, description: 'How long a server keeps an idle keep-alive connection open.' }),
    idleTimeoutMs: Type.Integer({ minimum: 1, default: 120000, description: 'A connection with no traffic either way for this long is closed (a client that stops reading its response cannot hold a socket and its buffers for ever). Keep it above the routes\' `timeoutMs`.' }),
    maxConnections: Type.Integer({ minimum: 1, default: 1024, description: 'Connections a server accepts at once; more are refused.' }),
    maxConnectionsPerClient: Type.Optional(Type.Integer({ minimum: 1, description: 'Connections a server accepts at once from one client address; more from that address are refused, so one client cannot take every connection. Off by default (clients behind one proxy or NAT share an address).' })),
    maxDrainBytes: Type.Integer({ minimum: 0, default: 134217728, description: 'A request body over `maxBodyBytes` is read and discarded up to this many more bytes before the 413 goes out, so a client that sends its whole body before reading gets the 413 rather than a connection reset. Bodies declared larger are answered at once.' }),
    drainTimeoutMs: Type.Integer({ minimum: 0, default: 5000, description: 'How long a server keeps reading a refused body (see `maxDrainBytes`) before answering and closing.' }),
    stopTimeoutMs: Type.Integer({ minimum: 0, default: 10000, description: 'On stop, how long a server lets requests in progress finish before cutting their connections.' }),
    maxSockets: Type.Integer({ minimum: 1, default: 64, description: 'Client: open connections per origin (keep-alive pool).' }),
    maxFreeSockets: Type.Integer({ minimum: 0, default: 16, description: 'Client: idle connections kept per origin.' }),
    tls: Type.Optional(
      Type.Object(
        {
          cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM file with the server certificate (and chain) of `https:` server routes.' })),
          key: Type.Optional(Type.String({ minLength: 1, description: 'PEM file with its private key.' })),
          passphrase: Type.Optional(Type.String({ description: 'Passphrase of an encrypted key.' })),
          ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM file with the certificate authorities `https:` clients trust, instead of Node\'s built-in list (a private CA).' })),
          rejectUnauthorized: Type.Boolean({ default: true, description: 'Clients refuse servers whose certificate does not verify. Turning it off removes the protection TLS gives; for tests only.' }),
          clientAuth: Type.Union([Type.Literal('none'), Type.Literal('request'), Type.Literal('require')], {
            default: 'none',
            description: 'Servers: client certificates (mutual TLS), verified against `ca`. `require`: a client without a valid one is refused in the handshake; `request`: the route decides, from `http.tls.authorized`. Clients present `cert`/`key` when a server asks.',
          }),
        },
        { additionalProperties: false, description: 'TLS of the `https:` adapter (`createHttpsAdapter`).' },
      ),
    ),
    freeSocketTimeoutMs: Type.Integer({ minimum: 1, default: 4000, description: 'Client: close an idle pooled connection after this long (keep it below the servers\' keep-alive timeout).' }),
  },
  { additionalProperties: false },
);

export type HttpConfig = Static<typeof httpConfigSchema>;
export type HttpConfigInput = Partial<Omit<HttpConfig, 'tls'>> & { tls?: Partial<NonNullable<HttpConfig['tls']>> };

/** Certificates and keys read from the files `tls` names, when the adapter is created. */
export interface TlsMaterial {
  cert?: Buffer;
  key?: Buffer;
  passphrase?: string;
  ca?: Buffer;
  rejectUnauthorized: boolean;
  clientAuth: 'none' | 'request' | 'require';
}

/** What the server and client parts of one adapter share: its configuration, its scheme, its TLS material. */
export type HttpRuntime = HttpConfig & { scheme: 'http' | 'https'; secure?: TlsMaterial };

export const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);
