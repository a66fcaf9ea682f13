/**
 * Transactional outbox and table polling on an embedded SQLite file (no server needed).
 *
 *   direct:place-order -> outbox step: INSERT the order row + the message into busbar_outbox,
 *                         in ONE transaction (both or neither)
 *   db:...?outbox=busbar_outbox (relay) -> log "published"   (any endpoint: amqp:, http:, ...)
 *   db:...?table=shipments (poll, claim, mark done) -> log "shipping"
 *
 *   node --import tsx examples/db-outbox/index.ts [./data/shop.db]
 *
 * With PostgreSQL, name a connection and use db:postgres:<name> instead of db:sqlite:<file>:
 *   createDbAdapter({ connections: { shop: { engine: 'postgres', url: process.env.DATABASE_URL! } } })
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { createDbAdapter, openDatabase } from '../../adapters/db/index.js';
import { Engine, from } from '../../lib/index.js';

interface Order { id: number; customer: string; amount: number }

const file = process.argv[2] ?? './data/shop.db';
mkdirSync(dirname(file), { recursive: true });
const db = `sqlite:${file}`;

// the business schema is the application's; busbar creates only its outbox table
const admin = openDatabase({ engine: 'sqlite', file });
await admin.query('CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount INTEGER NOT NULL)');
await admin.query('CREATE TABLE IF NOT EXISTS shipments (id INTEGER PRIMARY KEY, order_id INTEGER, status TEXT, error TEXT, retries INTEGER DEFAULT 0, claimed_by TEXT, claimed_until INTEGER)');
await admin.query('DELETE FROM orders');

const engine = new Engine({ logger: pino({ level: 'info' }), adapters: [createDbAdapter()] });
engine.addRoutes(
  from<Order>('direct:place-order')
    .routeId('place-order')
    .outbox({ db, statements: 'INSERT INTO orders (id, customer, amount) VALUES (:body.id, :body.customer, :body.amount)', topic: 'order.placed' })
    .to(`db:${db}?statement=${encodeURIComponent('INSERT INTO shipments (order_id) VALUES (:body.id)')}`),
  from<Order>(`db:${db}?outbox=busbar_outbox&delay=100`).routeId('relay').log('published {header.busbar.outbox.topic}: order {body.id} for {body.customer}'),
  from<{ id: number; order_id: number }>(`db:${db}?table=shipments&onConsume=mark&delay=100`).routeId('ship').log('shipping order {body.order_id}'),
);
await engine.start();
for (const [i, customer] of ['Acme BV', 'Globex GmbH', 'Initech SARL'].entries()) {
  await engine.send('direct:place-order', { id: i + 1, customer, amount: 100 * (i + 1) });
}
// the same order twice: the INSERT fails, so no outbox row and nothing is published
await engine.send('direct:place-order', { id: 1, customer: 'Acme BV', amount: 100 }).catch((err: { code: string }) => console.log(`rejected duplicate order: ${err.code}`));
await new Promise((r) => setTimeout(r, 1000));
await engine.stop();
const left = await admin.query('SELECT COUNT(*) AS n FROM busbar_outbox');
console.log(`orders: ${(await admin.query('SELECT COUNT(*) AS n FROM orders')).rows[0]!.n}, outbox rows left: ${left.rows[0]!.n}`);
await admin.close();
