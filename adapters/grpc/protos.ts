import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as GrpcJs from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import type * as Protobuf from 'protobufjs';
import { BusbarError } from '../../lib/errors.js';
import { lazy } from '../../lib/lazy.js';

/** grpc-js and proto-loader load when the first gRPC endpoint starts, never with the engine. */
export const grpcJs = lazy<typeof GrpcJs>('@grpc/grpc-js');
export const protoLoader = lazy<typeof ProtoLoader>('@grpc/proto-loader');
/** protobufjs (what proto-loader is built on): its reflection types check a body against its message type (fit.ts). */
export const protobufjs = lazy<typeof Protobuf>('protobufjs');

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
  readonly #roots = new Map<string, Protobuf.Root>();
  readonly #types = new WeakMap<MethodDef, { request: Protobuf.Type; response: Protobuf.Type }>();
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

  /** The message types of a method `method()` returned: what its bodies are checked against. */
  types(def: MethodDef): { request: Protobuf.Type; response: Protobuf.Type } {
    const t = this.#types.get(def);
    if (!t) throw new BusbarError('GRPC_CONFIG', `${def.path}: not a method of this engine's protos`, { details: { method: def.path } });
    return t;
  }

  /** The file loaded as protobufjs reflection (the same includes as proto-loader's). */
  #root(file: string): Protobuf.Root {
    const abs = isAbsolute(file) ? file : resolve(file);
    let root = this.#roots.get(abs);
    if (!root) {
      const pb = protobufjs();
      root = new pb.Root();
      const dirs = this.#includeDirs;
      root.resolvePath = (origin: string, target: string): string => {
        if (isAbsolute(target)) return target;
        for (const d of dirs) if (existsSync(join(d, target))) return join(d, target);
        return pb.util.path.resolve(origin, target);
      };
      root.loadSync(abs, { keepCase: true }).resolveAll();
      this.#roots.set(abs, root);
    }
    return root;
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
      if (!this.#types.has(def)) {
        const m = this.#root(f).lookupService(service).methods[method]!;
        m.resolve();
        this.#types.set(def, { request: m.resolvedRequestType!, response: m.resolvedResponseType! });
      }
      return def;
    }
    throw new BusbarError('GRPC_CONFIG', `endpoint "${uri}": no service ${service} in ${all.join(', ')}; services there: ${[...new Set(services)].join(', ') || 'none'}`, { details: { uri, service, services } });
  }
}

export function callTypeOf(def: MethodDef): CallType {
  return def.requestStream ? (def.responseStream ? 'bidi' : 'client-stream') : def.responseStream ? 'server-stream' : 'unary';
}
