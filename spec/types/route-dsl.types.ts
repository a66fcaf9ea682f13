/**
 * Type tests for the route builder, checked by `tsc --noEmit` (part of `npm test`).
 * Every `@ts-expect-error` line MUST be a type error: if one compiled, tsc would report the
 * directive as unused and the suite fails. The lines without it must compile.
 */
import { from, pipe, to, type Message } from '../../lib/index.js';

interface Order { id: string; amount: number; country: string }
interface Invoice { orderId: string; total: number }

const toInvoice = (o: Order): Invoice => ({ orderId: o.id, total: o.amount * 1.21 });

// the body type flows: Order -> Invoice -> string
from<Order>('direct:orders')
  .filter((o) => o.amount > 0)
  .transform(toInvoice)
  .transform((i) => i.total.toFixed(2))
  .transform((s: string) => s.length);

// async transforms unwrap the promise
from<Order>('direct:a')
  .transform(async (o) => toInvoice(o))
  .transform((i: Invoice) => i.total);

// a step that expects another type does not compile
// @ts-expect-error the body is an Invoice here, not an Order
from<Order>('direct:b').transform(toInvoice).transform((o: Order) => o.country);

// @ts-expect-error an Order has no `total`
from<Order>('direct:c').filter((o) => o.total > 10);

// @ts-expect-error after marshal the body is a string
from<Order>('direct:d').marshal('json').transform((o: Order) => o.id);

// @ts-expect-error unmarshal gives the stated type
from<string>('direct:e').unmarshal<Order>('json').transform((s: string) => s.trim());

// choice branches start with the current body type
from<Order>('direct:f').choice((c) => c.when((o) => o.amount > 400, to('mock:big')).otherwise(pipe<Order>().to('mock:small')));

// @ts-expect-error a branch that starts with another type is rejected
from<Order>('direct:g').choice((c) => c.when((o) => o.amount > 400, pipe<Invoice>().to('mock:big')));

// branches that change the body must say what the choice yields; all branches must agree
from<Order>('direct:h')
  .choice<Invoice>((c) => c.when((o) => o.amount > 400, (b) => b.transform(toInvoice)).otherwise((b) => b.transform(toInvoice)))
  .transform((i) => i.total);

// @ts-expect-error a branch yielding an Order where the choice yields Invoices
from<Order>('direct:i').choice<Invoice>((c) => c.when((o) => o.amount > 400, (b) => b.filter(() => true)));

// setHeader's function sees the body type
from<Order>('direct:j').setHeader('country', (o) => o.country);
// @ts-expect-error header values must be header values, not objects
from<Order>('direct:k').setHeader('order', (o) => o);

// process works on whole messages of the current type
from<Order>('direct:l').process((m: Message<Order>) => ({ ...m, body: toInvoice(m.body) })).transform((i) => i.orderId);
// @ts-expect-error process must return a message, not a body
from<Order>('direct:m').process((m: Message<Order>) => m.body.amount);
