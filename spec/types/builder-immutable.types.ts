/**
 * Type tests for the immutable builder and the body type after enrich({ into }) and a
 * `mergeInto` endpoint; checked by `tsc --noEmit` (`npm run typecheck`). Every
 * `@ts-expect-error` line MUST be a type error, the others must compile.
 */
import { from, type RouteBuilder } from '../../lib/index.js';

interface Order { id: string; amount: number }
interface Customer { name: string; tier: 'gold' | 'plain' }

// a shared prefix keeps its type; each continuation has its own
const front: RouteBuilder<Order, Order> = from<Order>('direct:orders').filter((o) => o.amount > 0);
const a: RouteBuilder<string, Order> = front.transform((o) => o.id);
const b: RouteBuilder<number, Order> = front.transform((o) => o.amount);
// @ts-expect-error the prefix is still an Order route after a continuation was built from it
const wrong: RouteBuilder<string, Order> = front;
void a;
void b;
void wrong;

// enrich({ into }) adds the reply under that field, keeping the rest of the body
from<Order>('direct:e1')
  .enrich('direct:customers', { into: 'customer' })
  .transform((o) => `${o.id} ${o.amount} ${String(o.customer)}`);
// the reply's type can be stated
from<Order>('direct:e2')
  .enrich<'customer', Customer>('direct:customers', { into: 'customer' })
  .transform((o) => o.customer.tier === 'gold' && o.amount > 10);
// @ts-expect-error the enriched body has `customer`, not `client`
from<Order>('direct:e3').enrich('direct:customers', { into: 'customer' }).transform((o) => o.client);
// @ts-expect-error a Customer has no `age`
from<Order>('direct:e4').enrich<'customer', Customer>('direct:customers', { into: 'customer' }).transform((o) => o.customer.age);

// a db query with mergeInto puts its result under that property
from<Order>('direct:m1')
  .to('db:main?query=SELECT%201&outputType=first&mergeInto=customer')
  .transform((o) => [o.id, o.customer]);
from<Order>('direct:m2')
  .to('db:main?mergeInto=extra&outputType=first')
  .transform((o) => [o.amount, o.extra]);
// @ts-expect-error mergeInto=customer does not give `client`
from<Order>('direct:m3').to('db:main?query=SELECT%201&mergeInto=customer').transform((o) => o.client);
// without mergeInto the body type is the stated reply type (default: unchanged)
from<Order>('direct:m4').to('mock:x').transform((o) => o.amount);
from<Order>('direct:m5').to<Customer>('http://127.0.0.1:1/c').transform((c) => c.tier);
