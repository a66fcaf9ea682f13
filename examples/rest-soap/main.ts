/**
 * Run: npx tsx examples/rest-soap/main.ts
 * Starts a SOAP backend and the REST facade, GETs /api/orders/7 once, prints it and stops.
 */
import { pino } from 'pino';
import { Engine } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { restToSoapRoutes, soapBackendRoutes } from './routes.js';

const engine = new Engine({ logger: pino({ level: 'warn' }), adapters: [httpAdapter] });
engine.addRoutes(
  soapBackendRoutes({ port: 8093, orders: { '7': { id: '7', customer: 'ACME', total: '12.50' } } }),
  restToSoapRoutes({ restPort: 8092, soapUrl: 'http://127.0.0.1:8093/legacy' }),
);
await engine.start();
try {
  const order = await engine.request('http://127.0.0.1:8092/api/orders/7?method=GET', undefined);
  process.stdout.write(`GET /api/orders/7 over REST -> ${JSON.stringify(order)}\n`);
} finally {
  await engine.stop();
}
