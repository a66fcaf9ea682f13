import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const SHOP_PROTO = fileURLToPath(new URL('../../../examples/grpc-rest-facade/shop.proto', import.meta.url));

/** grpc-js's own generic client and service definition for shop.Orders (no busbar code involved). */
export function shopPackage(): { Orders: grpc.ServiceClientConstructor; service: grpc.ServiceDefinition } {
  const def = protoLoader.loadSync(SHOP_PROTO, { keepCase: true, longs: String, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { shop: { Orders: grpc.ServiceClientConstructor } };
  return { Orders: pkg.shop.Orders, service: pkg.shop.Orders.service };
}

export type ShopClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export function shopClient(port: number, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}): ShopClient {
  const { Orders } = shopPackage();
  return new Orders(`127.0.0.1:${port}`, creds, options) as unknown as ShopClient;
}

/** A unary call through the generic client, as a promise of { value } or { error }. */
export function unary<T>(client: ShopClient, method: string, req: unknown, md = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<{ value?: T; error?: grpc.ServiceError; headers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    const call = client[method]!(req, md, options, (error: grpc.ServiceError | null, value: T) => resolve(error ? { error, ...(headers ? { headers } : {}) } : { value, ...(headers ? { headers } : {}) })) as grpc.ClientUnaryCall;
    call.on('metadata', (m) => (headers = m));
  });
}

/** A hand-written grpc-js server for shop.Orders (the peer busbar's client is tested against). */
export async function foreignServer(impl: grpc.UntypedServiceImplementation, creds = grpc.ServerCredentials.createInsecure()): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(shopPackage().service, impl);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  return { port, server };
}

/** The local address a TCP port listens on, from /proc/net/tcp (e.g. "127.0.0.1"); undefined when nothing listens. */
export function listeningAddress(port: number): string | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4 || cols[3] !== '0A') continue; // 0A = LISTEN
    const [addr, p] = cols[1]!.split(':');
    if (p !== hexPort) continue;
    const bytes = addr!.match(/../g)!.map((h) => parseInt(h, 16)).reverse();
    return bytes.join('.');
  }
  return undefined;
}
