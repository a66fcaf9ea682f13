/**
 * The demo integration: all four integration styles on embedded defaults, no server.
 *
 *   messaging (in-memory channels)
 *     timer:orders (every 300 ms) -> sample order -> price (VAT, priority)
 *       -> content-based router:  amount > 400 -> topic:orders.big
 *                                 country NL   -> topic:orders.domestic
 *                                 otherwise    -> topic:orders.export
 *     topic:orders.* -> audit log; topic:orders.big -> "approval needed" log
 *   file transfer
 *     topic:orders.export -> a JSON file per order in data/demo/drop/ -> picked up once, moved to .done/
 *   remote procedure call (HTTP on 127.0.0.1)
 *     each dropped order asks the customs service (an http: route) for its duty: POST /customs
 *   shared database (SQLite file data/demo/orders.db)
 *     the order with its duty is inserted into table shipments; another route polls the table
 *     (claiming each row once) and ships it
 *
 * With the management API and the console on 127.0.0.1 (the URL is printed; port
 * BUSBAR_DEMO_MANAGEMENT, default a free one). Run it with `npm run demo`, or keep it
 * running with `npx busbar run routes/demo.ts --summary 2s`.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
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
const DB = 'data/demo/orders.db';

function sampleOrder(tick: TimerTick): Order {
  const n = tick.count;
  return { id: `ORD-${String(n).padStart(4, '0')}`, customer: customers[n % 5]!, country: countries[(n * 3) % 5]!, amount: ((n * 137) % 900) + 25 };
}

/** A free port on 127.0.0.1 for the customs service, so the demo never collides with what runs here. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const q = encodeURIComponent;
const CREATE = 'CREATE TABLE IF NOT EXISTS shipments (id TEXT PRIMARY KEY, customer TEXT, country TEXT, total REAL, duty REAL, retries INTEGER NOT NULL DEFAULT 0, claimed_by TEXT, claimed_until INTEGER)';
const INSERT = 'INSERT INTO shipments (id, customer, country, total, duty) VALUES (:body.id, :body.customer, :body.country, :body.total, :body.duty)';

export default async function demo() {
  // a fresh demo each run: the folders and the database file are the demo's own
  rmSync('data/demo', { recursive: true, force: true });
  mkdirSync('data/demo/drop', { recursive: true });
  // the polling source checks its table when it starts: create it first (the same SQLite driver the db: adapter uses)
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(DB);
  db.exec(CREATE);
  db.close();
  const customs = await freePort();
  return defineRoutes({
    management: process.env.BUSBAR_DEMO_MANAGEMENT ?? '127.0.0.1:0',
    routes: [
      // ---- messaging: in-memory channels
      from<TimerTick>('timer:orders?period=300&repeatCount=20')
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
      from<PricedOrder>('topic:orders.big').routeId('approvals').log('approval needed for {body.id}: {body.total} EUR from {body.customer}', 'info'),
      // ---- file transfer: a file per export order, written atomically, picked up once
      from<PricedOrder>('topic:orders.export').routeId('file-drop').marshal('json').to('file:data/demo/drop?fileName={header.order.id}.json'),
      // ---- remote procedure call: the customs service over HTTP on 127.0.0.1
      from<PricedOrder>(`http:/customs?port=${customs}&method=POST`)
        .routeId('customs')
        .transform((o) => ({ duty: Math.round(o.total * (o.country === 'US' ? 0.05 : 0.02) * 100) / 100 })),
      from<string>('file:data/demo/drop?include=*.json&bodyType=string')
        .routeId('file-intake')
        .unmarshal<PricedOrder>('json')
        .enrich<PricedOrder & { customs: { duty: number } }>(`http://127.0.0.1:${customs}/customs?method=POST`, { into: 'customs' })
        .transform((o) => ({ id: o.id, customer: o.customer, country: o.country, total: o.total, duty: o.customs.duty }))
        // ---- shared database: the shipment goes into a SQLite table (created on first use)
        .to(`db:sqlite:${DB}?statement=${q(INSERT)}`),
      from<{ id: string; duty: number; total: number }>(`db:sqlite:${DB}?table=shipments&onConsume=delete&delay=200`)
        .routeId('shipping')
        .log('shipped {body.id} ({body.customer}, {body.country}): {body.total} EUR + {body.duty} EUR duty'),
    ],
  });
}
