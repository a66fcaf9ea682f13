/**
 * The hub: the same routes as examples/topologies/routes.ts, their channels carried by
 * RabbitMQ so that thin clients (examples/topologies/spoke.ts) reach them.
 *
 *   bash scripts/rabbitmq.sh start
 *   npx busbar run examples/topologies/hub.ts
 */
import { defineRoutes } from '../../lib/index.js';
import { routes } from './routes.js';

export default defineRoutes({
  routes,
  adapters: { amqp: { url: process.env.BUSBAR_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672' } },
  channels: { transport: 'amqp', prefix: process.env.BUSBAR_CHANNEL_PREFIX ?? 'busbar' },
});
