/**
 * File transfer with the delivery contract: JSON orders dropped in `inbox/` are priced and
 * written atomically to `outbox/`; each original goes to `inbox/.done/<date>/` only after its
 * output is safely written. A file that is not valid JSON goes to `inbox/.error/` with a
 * `.error.json` reason next to it. Run several of these processes on one inbox: each file is
 * still processed exactly once.
 *
 *   npx busbar run examples/file-orders/routes.ts
 *   echo '{"id":"A1","country":"NL","amount":100}' > /tmp/busbar-orders/staging.json \
 *     && mv /tmp/busbar-orders/staging.json /tmp/busbar-orders/inbox/a1.json
 *   cat /tmp/busbar-orders/outbox/NL/a1.json
 */
import { createFileAdapter } from '../../adapters/file/index.js';
import { defineRoutes, from } from '../../lib/index.js';

interface Order {
  id: string;
  country: string;
  amount: number;
}

export default defineRoutes({
  adapters: [createFileAdapter({ baseDir: process.env.BUSBAR_FILE_DIR ?? '/tmp/busbar-orders' })],
  routes: [
    from<Buffer>('file:inbox?include=*.json&readLock=rename&delay=200&move=.done/{date}/{name}')
      .routeId('price-orders')
      .unmarshal<Order>('json')
      .transform((o) => ({ ...o, vat: Math.round(o.amount * 21) / 100 }))
      .setHeader('country', (o) => o.country)
      .marshal('json')
      .to('file:outbox?fileName={header.country}/{name}&fsync=true'),
  ],
});
