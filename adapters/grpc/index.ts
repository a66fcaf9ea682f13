import { readFileSync } from 'node:fs';
import type { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';
import type { Adapter, ConsumerContext } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import { createAjv, formatProblem, toProblems } from '../../lib/schema.js';
import { createGrpcProducer, type ClientRuntime } from './client.js';
import { grpcConfigSchema, grpcOptions, type GrpcConfig, type GrpcConfigInput, type GrpcOptions } from './options.js';
import { grpcJs, ProtoCache } from './protos.js';
import { createGrpcConsumer, hubOf, type ServerRuntime } from './server.js';

export { grpcOptions, grpcConfigSchema, GRPC_HEADERS, type GrpcOptions, type GrpcConfig, type GrpcConfigInput } from './options.js';
export { GRPC_STATUS, TO_STATUS, FROM_STATUS, HTTP_TO_STATUS, ERROR_TRAILERS, toStatus, fromStatus, statusName, type GrpcStatusName } from './status.js';
export { RPC_METHOD, rpcProtoFile } from './protos.js';

let validator: ReturnType<ReturnType<typeof createAjv>['compile']> | undefined;

function readPem(what: string, file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (e) {
    throw new BusbarError('INVALID_OPTION', `grpcs adapter configuration: cannot read tls.${what} "${file}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { details: { option: `tls.${what}`, file } });
  }
}

/**
 * `grpc:` — gRPC over HTTP/2 (grpc-js), services declared by `.proto` files loaded at
 * runtime. A server route serves one RPC, a client endpoint calls one:
 *
 * - server: `from('grpc:orders.Orders/GetOrder?proto=protos/orders.proto&port=50051')`
 * - client: `to('grpc://127.0.0.1:50051/orders.Orders/GetOrder?proto=protos/orders.proto')`
 *
 * grpc-js and proto-loader load when the first endpoint starts.
 */
export function createGrpcAdapter(config: GrpcConfigInput = {}): Adapter<GrpcOptions> {
  return create('grpc', config);
}

/**
 * `grpcs:` — the same over TLS: servers need `tls.cert` and `tls.key`; clients verify servers
 * against Node's authorities or `tls.ca`, and present `cert`/`key` to servers that require them.
 */
export function createGrpcsAdapter(config: GrpcConfigInput = {}): Adapter<GrpcOptions> {
  return create('grpcs', config);
}

function create(scheme: 'grpc' | 'grpcs', config: GrpcConfigInput): Adapter<GrpcOptions> {
  const c = structuredClone(config) as GrpcConfig;
  validator ??= createAjv().compile(grpcConfigSchema);
  if (!validator(c)) {
    const problems = toProblems(validator.errors, grpcConfigSchema, '', 'option');
    throw new BusbarError('INVALID_OPTION', `${scheme} adapter configuration: ${problems.map((p) => formatProblem(p)).join('; ')}`, { details: { problems } });
  }
  if (scheme === 'grpc' && c.tls) throw new BusbarError('INVALID_OPTION', 'grpc adapter configuration: `tls` belongs to the grpcs adapter (createGrpcsAdapter)', { details: { option: 'tls' } });
  const tls = c.tls;
  const [cert, key, ca] = [readPem('cert', tls?.cert), readPem('key', tls?.key), readPem('ca', tls?.ca)];
  if (tls?.clientAuth === 'require' && !ca) throw new BusbarError('INVALID_OPTION', 'grpcs adapter configuration: tls.clientAuth "require" needs tls.ca, the authorities client certificates are verified against', { details: { option: 'tls.ca' } });
  const cacheOf = (ctx: { state<T>(key: string, init: () => T): T }): ProtoCache => ctx.state('protos', () => new ProtoCache(c.includeDirs));
  const server: ServerRuntime = {
    scheme,
    protos: c.protos,
    stopTimeoutMs: c.stopTimeoutMs,
    cache: cacheOf,
    credentials(): ServerCredentials {
      const g = grpcJs();
      if (scheme === 'grpc') return g.ServerCredentials.createInsecure();
      return g.ServerCredentials.createSsl(ca ?? null, [{ private_key: key!, cert_chain: cert! }], tls?.clientAuth === 'require');
    },
  };
  const client: ClientRuntime = {
    scheme,
    protos: c.protos,
    cache: cacheOf,
    channelOptions: tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {},
    credentials(): ChannelCredentials {
      const g = grpcJs();
      if (scheme === 'grpc') return g.credentials.createInsecure();
      return g.credentials.createSsl(ca ?? null, cert && key ? key : null, cert && key ? cert : null);
    },
  };
  return {
    scheme,
    description:
      scheme === 'grpc'
        ? 'gRPC over HTTP/2 (grpc-js), services from .proto files loaded at runtime: server routes for unary, server-, client- and bidirectional-streaming RPCs (on 127.0.0.1, backpressure by the route\'s in-flight bound) and a client (deadlines, metadata, status codes mapped to busbar codes).'
        : 'The grpc adapter over TLS: servers with a certificate and key (mutual TLS with tls.clientAuth), clients verifying servers against Node\'s authorities or tls.ca.',
    optionsSchema: grpcOptions,
    createConsumer(endpoint, ctx: ConsumerContext) {
      if (scheme === 'grpcs' && !(cert && key)) {
        throw new BusbarError('INVALID_OPTION', `route "${ctx.routeId}": endpoint "${endpoint.uri}": a grpcs server route needs tls.cert and tls.key in the grpcs adapter configuration`, { details: { uri: endpoint.uri, routeId: ctx.routeId, option: 'tls' } });
      }
      return createGrpcConsumer(endpoint, ctx, server);
    },
    createProducer(endpoint, ctx) {
      return createGrpcProducer(endpoint, ctx, client);
    },
  };
}

/** The adapter with the default configuration. */
export const grpcAdapter: Adapter<GrpcOptions> = createGrpcAdapter();
export default grpcAdapter;

/** The port a gRPC server of this engine listens on (useful with `port=0`): `grpcPort(engine, 0)`. */
export function grpcPort(engine: { adapterState<T>(scheme: string, key: string, init: () => T): T }, port: number, host = '127.0.0.1', scheme = 'grpc'): number | undefined {
  return hubOf({ state: <T>(key: string, init: () => T) => engine.adapterState<T>(scheme, key, init) }).find(host, port)?.boundPort;
}
