/**
 * Protocol conversion: a SOAP operation in front of a JSON REST service.
 *
 *   SOAP client --GetOrder--> [ http:/ws/orders (SOAP) ] --GET /orders/{id}--> JSON REST backend
 *               <--GetOrderResponse / Fault--            <--{ "id", "customer", "lines" }--
 *
 * The SOAP side is described by orders.wsdl (served at /ws/orders?wsdl). A REST 404
 * becomes a Client fault, a REST 5xx or an unreachable backend a Server fault.
 */
import { fileURLToPath } from 'node:url';
import { from, type RouteBuilder } from '../../lib/index.js';

export const ORDERS_NS = 'urn:busbar:orders';
export const WSDL_FILE = fileURLToPath(new URL('./orders.wsdl', import.meta.url));

/** What the REST backend returns. */
export interface RestOrder {
  id: string;
  customer: { name: string };
  lines: Array<{ sku: string; qty: number; price: number }>;
}

/** The SOAP response payload (GetOrderResponse in the WSDL). */
export interface SoapOrder {
  id: string;
  customer: string;
  total: string;
}

/** The SOAP request payload (GetOrder in the WSDL). */
export interface GetOrder {
  id: string;
}

export function soapToRestRoutes(opts: { soapPort: number; restBaseUrl: string }): RouteBuilder<unknown, never>[] {
  const soap = `http:/ws/orders?protocol=soap&port=${opts.soapPort}&operation=GetOrder&namespace=${encodeURIComponent(ORDERS_NS)}&wsdl=${encodeURIComponent(WSDL_FILE)}`;
  const rest = `${opts.restBaseUrl}/orders/{body.id}?method=GET&timeoutMs=5000`;
  const route = from<GetOrder>(soap)
    .routeId('soap-to-rest')
    .to<RestOrder>(rest)
    .transform(
      (o): SoapOrder => ({
        id: o.id,
        customer: o.customer.name,
        total: o.lines.reduce((sum, l) => sum + l.qty * l.price, 0).toFixed(2),
      }),
    );
  return [route];
}

/** A small JSON REST backend (also busbar, over http:) for the example to run on its own. */
export function restBackendRoutes(opts: { port: number; orders: Record<string, RestOrder> }): RouteBuilder<unknown, never>[] {
  const route = from<undefined>(`http:/orders/:id?port=${opts.port}&method=GET`)
    .routeId('rest-backend')
    .process<RestOrder | { error: string }>((m) => {
      const order = opts.orders[String(m.headers['http.param.id'])];
      if (!order) return { ...m, body: { error: 'not found' }, headers: { ...m.headers, 'http.reply.status': 404 } };
      return { ...m, body: order };
    });
  return [route];
}
