/**
 * An at-least-once bridge over RabbitMQ, with its topology as code.
 *
 *   orders.in (quorum) --> parse, add VAT --> exchange "orders" (topic, key orders.<country>)
 *                                               |--> queue orders.nl   (orders.NL)
 *                                               '--> queue orders.all  (orders.#)
 *   poison messages (5 deliveries) --> queue orders.poison
 *
 * Start RabbitMQ (`bash scripts/rabbitmq.sh start`), then:
 *   npx busbar topology plan examples/amqp-bridge/routes.ts   # what would be declared
 *   npx busbar run examples/amqp-bridge/routes.ts
 * and publish JSON orders to the queue `orders.in` (e.g. with the management UI or amqplib).
 */
import { createAmqpAdapter, type AmqpConfig } from '../../adapters/amqp/index.js';
import { defineRoutes, from } from '../../lib/index.js';

interface Order {
  id: string;
  country: string;
  amount: number;
}

export const amqpConfig: AmqpConfig = {
  url: process.env.BUSBAR_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  topology: {
    exchanges: [{ name: 'orders', type: 'topic' }],
    queues: [
      { name: 'orders.in', type: 'quorum' },
      { name: 'orders.nl' },
      { name: 'orders.all', maxLength: 100_000 },
      { name: 'orders.poison' },
    ],
    bindings: [
      { exchange: 'orders', queue: 'orders.nl', routingKey: 'orders.NL' },
      { exchange: 'orders', queue: 'orders.all', routingKey: 'orders.#' },
    ],
  },
};

export default defineRoutes({
  adapters: [createAmqpAdapter(amqpConfig)],
  routes: [
    from<string>('amqp:queue:orders.in?maxDeliveries=5&deadLetter=amqp:queue:orders.poison')
      .routeId('price-orders')
      .unmarshal<Order>('json')
      .transform((o) => ({ ...o, vat: Math.round(o.amount * 21) / 100 }))
      .setHeader('country', (o) => o.country)
      .marshal('json')
      .to('amqp:exchange:orders?routingKey=orders.{header.country}&mandatory=true'),
  ],
});
