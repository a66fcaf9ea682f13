/**
 * The demo integration: runs with no external server.
 *
 *   timer:orders (every 300 ms) -> sample order -> enrich (VAT, priority)
 *     -> content-based router:  amount > 400       -> topic:orders.big
 *                               country NL         -> topic:orders.domestic
 *                               otherwise          -> topic:orders.export
 *   subscribers: topic:orders.*  -> audit log (every order)
 *                topic:orders.big -> "approval needed" log
 *
 * Run it with `npm run demo` (or `npx busbar run routes/demo.ts`).
 */
import { defineRoutes, from, type TimerTick } from 'busbar';

interface Order {
  id: string;
  customer: string;
  country: string;
  amount: number;
}

interface PricedOrder extends Order {
  vat: number;
  total: number;
  priority: 'high' | 'normal';
}

const customers = ['Acme BV', 'Globex GmbH', 'Initech SARL', 'Umbrella NV', 'Hooli Inc'];
const countries = ['NL', 'DE', 'FR', 'NL', 'US'];

function sampleOrder(tick: TimerTick): Order {
  const n = tick.count;
  return { id: `ORD-${String(n).padStart(4, '0')}`, customer: customers[n % 5]!, country: countries[(n * 3) % 5]!, amount: (n * 137) % 900 + 25 };
}

export default defineRoutes({
  routes: [
    from<TimerTick>('timer:orders?period=300&repeatCount=15')
      .routeId('order-intake')
      .transform(sampleOrder)
      .transform((o): PricedOrder => {
        const vat = Math.round(o.amount * 0.21 * 100) / 100;
        return { ...o, vat, total: Math.round((o.amount + vat) * 100) / 100, priority: o.amount > 400 ? 'high' : 'normal' };
      })
      .setHeader('order.id', (o) => o.id)
      .choice((c) =>
        c
          .when((o) => o.amount > 400, (b) => b.to('topic:orders.big'))
          .when((o) => o.country === 'NL', (b) => b.to('topic:orders.domestic'))
          .otherwise((b) => b.to('topic:orders.export')),
      ),
    from<PricedOrder>('topic:orders.*').routeId('audit').log('{header.order.id} -> {header.busbar.topic}: {body.customer} ({body.country}) total {body.total} EUR [{body.priority}]'),
    from<PricedOrder>('topic:orders.big').routeId('approvals').log('approval needed for {body.id}: {body.total} EUR from {body.customer}', 'warn'),
  ],
});
