import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as GrpcJs from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import { BusbarError } from '../../lib/errors.js';
import { lazy } from '../../lib/lazy.js';

/** grpc-js and proto-loader load when the first gRPC endpoint starts, never with the engine. */
export const grpcJs = lazy<typeof GrpcJs>('@grpc/grpc-js');
export const protoLoader = lazy<typeof ProtoLoader>('@grpc/proto-loader');

export type MethodDef = ProtoLoader.MethodDefinition<object, object>;
export type CallType = 'unary' | 'server-stream' | 'client-stream' | 'bidi';

/** The service of `expose` / `proxy` over gRPC. */
export const RPC_METHOD = 'busbar.rpc.Rpc/Call';

/** The bundled busbar-rpc.proto: next to this file in the sources, under adapters/grpc/ from dist/. */
export function rpcProtoFile(): string {
  for (const rel of ['./busbar-rpc.proto', '../../../adapters/grpc/busbar-rpc.proto']) {
    const f = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(f)) return f;
  }
  throw new BusbarError('GRPC_CONFIG', 'busbar-rpc.proto is missing from the installed package (adapters/grpc/busbar-rpc.proto)', { details: {} });
}

/** How messages look on our side: field names as in the .proto, 64-bit integers and enums as strings, defaults filled in. */
const LOAD_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

/** Loaded protos of one engine (per-engine adapter state), by absolute file name. */
export class ProtoCache {
  readonly #loaded = new Map<string, ProtoLoader.PackageDefinition>();
  readonly #includeDirs: string[];

  constructor(includeDirs: readonly string[]) {
    this.#includeDirs = includeDirs.map((d) => resolve(d));
  }

  load(file: string): ProtoLoader.PackageDefinition {
    const abs = isAbsolute(file) ? file : resolve(file);
    let def = this.#loaded.get(abs);
    if (!def) {
      try {
        def = protoLoader().loadSync(abs, { ...LOAD_OPTIONS, includeDirs: this.#includeDirs });
      } catch (e) {
        throw new BusbarError('GRPC_CONFIG', `cannot load the proto file "${file}": ${(e as Error).message}`, { cause: e, details: { proto: file } });
      }
      this.#loaded.set(abs, def);
    }
    return def;
  }

  /**
   * The method `pkg.Service/Method` from the endpoint's proto, or else the adapter's protos.
   * Unknown service or method: GRPC_CONFIG naming what the files declare.
   */
  method(path: string, files: readonly string[], uri: string): MethodDef {
    const m = /^\/?([A-Za-z_][\w.]*)\/([A-Za-z_]\w*)$/.exec(path);
    if (!m) throw new BusbarError('INVALID_URI', `endpoint "${uri}": a gRPC endpoint names its RPC as <package.Service>/<Method> (e.g. grpc:orders.Orders/GetOrder), got "${path}"`, { details: { uri } });
    const [, service, method] = m as unknown as [string, string, string];
    const all = path.replace(/^\//, '') === RPC_METHOD ? [rpcProtoFile(), ...files] : files;
    if (all.length === 0) throw new BusbarError('GRPC_CONFIG', `endpoint "${uri}": no .proto file declares ${service}: give the endpoint a \`proto\` option or the adapter \`protos\``, { details: { uri, service } });
    const services: string[] = [];
    for (const f of all) {
      const pkg = this.load(f);
      const s = pkg[service] as Record<string, unknown> | undefined;
      for (const [k, v] of Object.entries(pkg)) if (typeof v === 'object' && v !== null && !('format' in v) && !('type' in v)) services.push(k);
      if (!s || 'format' in s || 'type' in s) continue;
      const def = s[method] as MethodDef | undefined;
      if (!def || typeof def.path !== 'string') {
        throw new BusbarError('GRPC_CONFIG', `endpoint "${uri}": service ${service} has no method ${method}; it has: ${Object.keys(s).join(', ')}`, { details: { uri, service, method, methods: Object.keys(s) } });
      }
      return def;
    }
    throw new BusbarError('GRPC_CONFIG', `endpoint "${uri}": no service ${service} in ${all.join(', ')}; services there: ${[...new Set(services)].join(', ') || 'none'}`, { details: { uri, service, services } });
  }
}

export function callTypeOf(def: MethodDef): CallType {
  return def.requestStream ? (def.responseStream ? 'bidi' : 'client-stream') : def.responseStream ? 'server-stream' : 'unary';
}
