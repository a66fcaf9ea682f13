/**
 * Run: npx tsx examples/soap-rest/main.ts
 * Starts the REST backend and the SOAP facade, calls GetOrder over SOAP once with busbar's
 * own SOAP client, prints the answer and stops.
 */
import { pino } from 'pino';
import { Engine } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { ORDERS_NS, restBackendRoutes, soapToRestRoutes } from './routes.js';

const engine = new Engine({ logger: pino({ level: 'warn' }), adapters: [httpAdapter] });
engine.addRoutes(
  restBackendRoutes({ port: 8091, orders: { '7': { id: '7', customer: { name: 'ACME' }, lines: [{ sku: 'bolt', qty: 10, price: 0.25 }, { sku: 'nut', qty: 4, price: 1 }] } } }),
  soapToRestRoutes({ soapPort: 8090, restBaseUrl: 'http://127.0.0.1:8091' }),
);
await engine.start();
try {
  const reply = await engine.request(`http://127.0.0.1:8090/ws/orders?protocol=soap&operation=GetOrder&namespace=${encodeURIComponent(ORDERS_NS)}&soapAction=${encodeURIComponent(`${ORDERS_NS}#GetOrder`)}`, { id: '7' });
  process.stdout.write(`GetOrder(7) over SOAP -> ${JSON.stringify(reply)}\n`);
} finally {
  await engine.stop();
}
