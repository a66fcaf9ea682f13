/**
 * One routes file, three deployments. The routes name in-memory channels only
 * (`direct:quote`, `queue:orders`, `topic:orders.accepted`); where those channels live is
 * configuration:
 *
 *   in one process   examples/topologies/in-process.ts   (no bindings: all in memory)
 *   as a bus         examples/topologies/bus.ts          (each application embeds an engine,
 *                                                          channels bound to RabbitMQ)
 *   behind a hub     npx busbar run examples/topologies/hub.ts   (the routes in one process,
 *                    applications use connect('amqp://...'): examples/topologies/spoke.ts)
 */
import { defineRoutes, from } from '../../lib/index.js';

export interface QuoteRequest {
  sku: string;
  qty: number;
}
export interface Quote extends QuoteRequest {
  total: number;
}
export interface Order {
  id: string;
  sku: string;
  qty: number;
}
export interface AcceptedOrder extends Order {
  total: number;
}

const PRICES: Record<string, number> = { apple: 0.5, pear: 0.75 };

/** The channels of these routes and their types, for typed clients (`connect<Channels>(url)`). */
export interface Channels {
  [name: string]: { in: unknown; out?: unknown };
  'direct:quote': { in: QuoteRequest; out: Quote };
  'queue:orders': { in: Order };
  'topic:orders.accepted': { in: AcceptedOrder };
}

function price(sku: string, qty: number): number {
  return Math.round((PRICES[sku] ?? 1) * qty * 100) / 100;
}

export const routes = [
  // request-reply: the reply is the message at the end of the route
  from<QuoteRequest>('direct:quote')
    .routeId('quote')
    .transform((q): Quote => ({ ...q, total: price(q.sku, q.qty) })),
  // point to point, then publish-subscribe
  from<Order>('queue:orders')
    .routeId('orders')
    .transform((o): AcceptedOrder => ({ ...o, total: price(o.sku, o.qty) }))
    .to('topic:orders.accepted'),
];

export default defineRoutes({ routes });
