/**
 * A thin spoke of the hub (examples/topologies/hub.ts): no routes, a typed client.
 *
 *   npx tsx examples/topologies/spoke.ts
 */
import { connect } from '../../lib/index.js';
import type { Channels } from './routes.js';

const bus = await connect<Channels>(process.env.BUSBAR_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', { prefix: process.env.BUSBAR_CHANNEL_PREFIX ?? 'busbar' });
const accepted = await bus.subscribe('topic:orders.accepted', (o) => {
  process.stdout.write(`accepted ${o.id}: ${o.total}\n`);
});
const quote = await bus.request('direct:quote', { sku: 'apple', qty: 4 });
process.stdout.write(`quote: ${quote.total}\n`);
await bus.send('queue:orders', { id: 'o-1', sku: 'pear', qty: 2 });
await new Promise((r) => setTimeout(r, 1000));
await accepted.close();
await bus.close();
