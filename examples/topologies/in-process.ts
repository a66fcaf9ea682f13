/**
 * The routes of examples/topologies/routes.ts in one process: every channel in memory.
 *
 *   npx tsx examples/topologies/in-process.ts
 */
import { Engine, from } from '../../lib/index.js';
import { routes, type AcceptedOrder, type Quote } from './routes.js';

const engine = new Engine();
engine.addRoutes(routes, from<AcceptedOrder>('topic:orders.accepted').process((m) => (process.stdout.write(`accepted ${m.body.id}: ${m.body.total}\n`), m)));
await engine.start();
const quote = await engine.request<Quote>('direct:quote', { sku: 'apple', qty: 4 });
process.stdout.write(`quote: ${quote.total}\n`);
await engine.send('queue:orders', { id: 'o-1', sku: 'pear', qty: 2 });
await new Promise((r) => setTimeout(r, 200));
await engine.stop();
