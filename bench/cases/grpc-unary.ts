import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { pino } from 'pino';
import { Engine, from } from '../../dist/lib/index.js';
import { createGrpcAdapter, grpcPort } from '../../dist/adapters/grpc/index.js';
import { round, type BenchCase } from '../harness.js';

const PROTO = fileURLToPath(new URL('../../examples/grpc-rest-facade/shop.proto', import.meta.url));
const LOAD = fileURLToPath(new URL('../children/grpc-load.mjs', import.meta.url));

/** The same work on both sides: look the order up and price it. */
function order(id: string): { id: string; customer: string; total: number; qty: string } {
  const n = Number(id) || 0;
  return { id, customer: n % 2 ? 'ACME' : 'Globex', total: Math.round(n * 1.21 * 100) / 100, qty: String(n % 10) };
}

/** The baseline: a hand-written grpc-js server of shop.Orders/GetOrder. */
async function bareServer(): Promise<{ server: grpc.Server; port: number }> {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true });
  const Orders = (grpc.loadPackageDefinition(def) as unknown as { shop: { Orders: grpc.ServiceClientConstructor } }).shop.Orders;
  const server = new grpc.Server();
  server.addService(Orders.service, {
    GetOrder(call: grpc.ServerUnaryCall<{ id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      cb(null, order(call.request.id));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { server, port };
}

/** Calls per second the load process got from the server on `port`. */
function load(port: number, count: number, window: number, maxSeconds: number): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [LOAD, String(port), PROTO, String(count), String(window), String(maxSeconds)], { timeout: (maxSeconds + 30) * 1000 }, (err, stdout) => {
      if (err) return reject(err);
      const r = JSON.parse(stdout.trim().split('\n').pop()!) as { calls: number; seconds: number; errors: number };
      if (r.errors > 0) return reject(new Error(`${r.errors} failed calls`));
      resolve(r.calls / r.seconds);
    });
  });
}

const bench: BenchCase = {
  name: 'grpc-unary',
  description: 'unary gRPC calls (shop.Orders/GetOrder: look up and price an order), 32 in flight from a grpc-js client in another process: a busbar grpc: route vs a hand-written grpc-js server doing the same work',
  async run({ quick }) {
    const count = quick ? 5_000 : 30_000;
    const maxSeconds = quick ? 5 : 15;
    const window = 32;
    const rounds = quick ? 1 : 2;
    const bare = await bareServer();
    const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [createGrpcAdapter()], maxInflight: 256 });
    engine.addRoutes(from<{ id: string }>(`grpc:shop.Orders/GetOrder?port=0&proto=${encodeURIComponent(PROTO)}`).routeId('orders').transform((req) => order(req.id)));
    await engine.start();
    const port = grpcPort(engine, 0)!;
    let baselinePerS = 0;
    let busbarPerS = 0;
    try {
      // one discarded run each, then rounds alternating which side goes first
      await load(bare.port, count / 5, window, maxSeconds);
      await load(port, count / 5, window, maxSeconds);
      for (let r = 0; r < rounds; r++) {
        const sides: Array<[number, (v: number) => void]> = [
          [bare.port, (v) => (baselinePerS = Math.max(baselinePerS, v))],
          [port, (v) => (busbarPerS = Math.max(busbarPerS, v))],
        ];
        if (r % 2 === 1) sides.reverse();
        for (const [p, keep] of sides) keep(await load(p, count, window, maxSeconds));
      }
    } finally {
      await engine.stop();
      bare.server.forceShutdown();
    }
    return { busbar_per_s: busbarPerS, baseline_per_s: baselinePerS, in_flight: window, busbar_us_per_call: round(1e6 / busbarPerS, 1), baseline_us_per_call: round(1e6 / baselinePerS, 1) };
  },
};
export default bench;
