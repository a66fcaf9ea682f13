/**
 * The routes of examples/topologies/routes.ts on a bus: each application embeds its own
 * engine, and the channels are shared through RabbitMQ. This process is one application
 * (the one hosting the quote and order routes); run a second one with
 * `BUSBAR_ROLE=shop npx tsx examples/topologies/bus.ts` to ask for quotes, place an order and
 * watch accepted orders from its own engine.
 */
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { Engine, from, type ChannelBindings } from '../../lib/index.js';
import { routes, type AcceptedOrder, type Quote } from './routes.js';

const url = process.env.BUSBAR_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const channels: ChannelBindings = { transport: 'amqp', prefix: process.env.BUSBAR_CHANNEL_PREFIX ?? 'busbar' };
const engine = new Engine({ adapters: [createAmqpAdapter({ url })], channels });

if (process.env.BUSBAR_ROLE === 'shop') {
  engine.addRoutes(from<AcceptedOrder>('topic:orders.accepted').process((m) => (process.stdout.write(`accepted ${m.body.id}: ${m.body.total}\n`), m)));
  await engine.start();
  const quote = await engine.request<Quote>('direct:quote', { sku: 'apple', qty: 4 });
  process.stdout.write(`quote: ${quote.total}\n`);
  await engine.send('queue:orders', { id: 'o-1', sku: 'pear', qty: 2 });
  await new Promise((r) => setTimeout(r, 1000));
  await engine.stop();
} else {
  engine.addRoutes(routes);
  await engine.start();
  process.on('SIGINT', () => void engine.stop().then(() => process.exit(0)));
}
