/**
 * Run: npx tsx examples/grpc-soap-gateway/main.ts
 * Starts a SOAP and a REST backend and the gRPC gateway, calls GetOrder and ListOrders over gRPC once, prints both and stops.
 */
import { pino } from 'pino';
import { Engine } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { createGrpcAdapter } from '../../adapters/grpc/index.js';
import { backendRoutes, grpcToSoapRoutes, SHOP_PROTO } from './routes.js';

const engine = new Engine({ logger: pino({ level: 'warn' }), adapters: [httpAdapter, createGrpcAdapter({ protos: [SHOP_PROTO] })] });
engine.addRoutes(
  backendRoutes({ soapPort: 8095, restPort: 8096 }),
  grpcToSoapRoutes({ grpcPort: 50072, soapUrl: 'http://127.0.0.1:8095/legacy', restBaseUrl: 'http://127.0.0.1:8096' }),
);
await engine.start();
try {
  const order = await engine.request('grpc://127.0.0.1:50072/shop.Orders/GetOrder', { id: '7' });
  process.stdout.write(`shop.Orders/GetOrder over gRPC (SOAP behind) -> ${JSON.stringify(order)}\n`);
  const list = await engine.request('grpc://127.0.0.1:50072/shop.Orders/ListOrders', { id: 'acme' });
  process.stdout.write(`shop.Orders/ListOrders over gRPC (REST behind) -> ${JSON.stringify(list)}\n`);
} finally {
  await engine.stop();
}
