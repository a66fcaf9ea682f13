import { Type, type Static } from '@sinclair/typebox';

/**
 * Endpoint options of `grpc:` / `grpcs:`. A server URI names the RPC it serves
 * (`grpc:orders.Orders/GetOrder?proto=protos/orders.proto&port=50051`); a client URI is the
 * server's address followed by the RPC (`grpc://127.0.0.1:50051/orders.Orders/GetOrder?proto=...`).
 * Options marked (server) or (client) apply to that role only.
 */
export const grpcOptions = Type.Object(
  {
    proto: Type.Optional(Type.String({ minLength: 1, description: 'The `.proto` file that declares the service (loaded at runtime when the endpoint starts; relative paths from the working directory, imports through the adapter\'s `includeDirs`). Not needed for `busbar.rpc.Rpc/Call`, the built-in service of `expose`/`proxy`, nor for services of the adapter\'s `protos`.' })),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 50051, description: '(server) Port to listen on. Routes with the same host and port share one gRPC server; 0 picks a free port.' }),
    host: Type.String({ default: '127.0.0.1', minLength: 1, description: '(server) Address to listen on; 127.0.0.1 keeps the server local, 0.0.0.0 exposes it.' }),
    timeoutMs: Type.Integer({ minimum: 1, default: 30000, description: '(server) Time the route has to answer a call (the client\'s own deadline wins when sooner); then DEADLINE_EXCEEDED. (client) Deadline of a call; a `request` step\'s `timeoutMs` and the `busbar.timeoutMs` header win.' }),
    maxItems: Type.Integer({ minimum: 1, default: 10000, description: 'Largest number of stream messages gathered into one body: a client stream a server route receives, a response stream a client collects (more: RESOURCE_EXHAUSTED / LIMIT_EXCEEDED).' }),
    maxMessageBytes: Type.Integer({ minimum: 1, default: 4194304, description: 'Largest single gRPC message accepted (the server\'s and the client\'s receive limit).' }),
    headers: Type.Optional(Type.String({ minLength: 1, description: '(client) Message headers sent as request metadata besides the `grpc.request.metadata.*` ones the route sets: comma-separated names, a trailing `*` for a prefix (`grpc.metadata.x-tenant`, `http.header.x-trace-*`); the metadata key is the name after `grpc.metadata.` / `http.header.`. Credentials (`authorization`, `cookie`) go only when named exactly.' })),
  },
  { additionalProperties: false },
);
export type GrpcOptions = Static<typeof grpcOptions>;

/** Adapter configuration: protos known to every endpoint, include directories, TLS (`grpcs:`). */
export const grpcConfigSchema = Type.Object(
  {
    protos: Type.Array(Type.String({ minLength: 1 }), { default: [], description: '`.proto` files whose services every endpoint of this adapter may name without a `proto` option.' }),
    includeDirs: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Directories `import` statements of the protos are resolved in.' }),
    stopTimeoutMs: Type.Integer({ minimum: 0, default: 5000, description: 'On stop, how long a server lets calls in progress finish before cancelling them.' }),
    tls: Type.Optional(
      Type.Object(
        {
          cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM file with the certificate (chain) servers present; with `key`, clients present it when a server asks (mutual TLS).' })),
          key: Type.Optional(Type.String({ minLength: 1, description: 'PEM file with its private key.' })),
          ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM file with the authorities clients verify servers against (default: Node\'s built-in list), and servers verify client certificates against.' })),
          clientAuth: Type.Union([Type.Literal('none'), Type.Literal('require')], { default: 'none', description: 'Servers: `require` refuses clients without a certificate that verifies against `ca` (mutual TLS).' }),
          serverName: Type.Optional(Type.String({ minLength: 1, description: 'Clients: the name the server certificate must carry when it differs from the host of the URI.' })),
        },
        { additionalProperties: false, description: 'TLS of the `grpcs:` adapter (`createGrpcsAdapter`).' },
      ),
    ),
  },
  { additionalProperties: false },
);
export type GrpcConfig = Static<typeof grpcConfigSchema>;
export type GrpcConfigInput = Partial<Omit<GrpcConfig, 'tls'>> & { tls?: Partial<NonNullable<GrpcConfig['tls']>> };

/** Headers of a message a gRPC call became (server) or of a call's answer (client). */
export const GRPC_HEADERS = {
  /** `/package.Service/Method` */
  method: 'grpc.method',
  /** `unary`, `server-stream`, `client-stream` or `bidi` */
  callType: 'grpc.call.type',
  /** The caller's address (`ipv4:127.0.0.1:53422`). */
  peer: 'grpc.peer',
  /** The call's deadline (ms since the epoch), when the client set one. */
  deadline: 'grpc.deadline',
  /** Position of a stream message in its call (bidirectional streams: one message per item). */
  index: 'grpc.stream.index',
  /** Request metadata received (server): `grpc.metadata.<key>`. */
  metadata: 'grpc.metadata.',
  /** Metadata the client sends: a route sets `grpc.request.metadata.<key>`. */
  requestMetadata: 'grpc.request.metadata.',
  /** Response metadata a server route sends: `grpc.reply.metadata.<key>` on the reply. */
  replyMetadata: 'grpc.reply.metadata.',
  /** Response metadata (headers and trailers) a client received: `grpc.response.metadata.<key>`. */
  responseMetadata: 'grpc.response.metadata.',
  /** The status code a client received (0 = OK). */
  responseStatus: 'grpc.response.status',
} as const;
