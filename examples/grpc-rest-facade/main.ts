/**
 * Run: npx tsx examples/grpc-rest-facade/main.ts
 * Starts a gRPC service and the REST facade, GETs /api/orders/7 and POSTs an upload once, prints both and stops.
 */
import { pino } from 'pino';
import { Engine } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { createGrpcAdapter } from '../../adapters/grpc/index.js';
import { grpcServiceRoutes, restToGrpcRoutes } from './routes.js';

const engine = new Engine({ logger: pino({ level: 'warn' }), adapters: [httpAdapter, createGrpcAdapter()] });
engine.addRoutes(
  grpcServiceRoutes({ port: 50071, orders: { '7': { id: '7', customer: 'ACME', total: 12.5, qty: '3' } } }),
  restToGrpcRoutes({ restPort: 8094, grpcAddress: '127.0.0.1:50071' }),
);
await engine.start();
try {
  const order = await engine.request('http://127.0.0.1:8094/api/orders/7?method=GET', undefined);
  process.stdout.write(`GET /api/orders/7 over REST -> ${JSON.stringify(order)}\n`);
  const summary = await engine.request('http://127.0.0.1:8094/api/uploads?method=POST', [{ sku: 'a', qty: 2 }, { sku: 'b', qty: 5 }]);
  process.stdout.write(`POST /api/uploads over REST -> ${JSON.stringify(summary)}\n`);
} finally {
  await engine.stop();
}
