/**
 * Protocol conversion the other way: a JSON REST resource in front of a SOAP service.
 *
 *   REST client --GET /api/orders/7--> [ http:/api/orders/:id ] --GetOrder (SOAP 1.1)--> SOAP backend
 *               <--{ "id", "customer", "total" } (JSON or XML)-- <--GetOrderResponse / Fault--
 *
 * The REST client never sees SOAP: a fault from a busbar backend keeps its busbar code
 * (NOT_FOUND -> 404, VALIDATION_FAILED -> 422), any other fault is a 502 with code
 * BUSBAR_ERR_SOAP_FAULT and the fault's reason.
 */
import { BusbarError, from, type RouteBuilder } from '../../lib/index.js';

export const LEGACY_NS = 'urn:legacy:orders';

/** The backend's GetOrderResponse payload (every value a string, as XML gives them). */
export interface LegacyOrder {
  id: string;
  customer: string;
  total: string;
}

export interface ApiOrder {
  id: string;
  customer: string;
  total: number;
}

export function restToSoapRoutes(opts: { restPort: number; soapUrl: string }): RouteBuilder<unknown, never>[] {
  const soap = `${opts.soapUrl}?protocol=soap&operation=GetOrder&namespace=${encodeURIComponent(LEGACY_NS)}&soapAction=${encodeURIComponent(`${LEGACY_NS}#GetOrder`)}&timeoutMs=5000`;
  const route = from<undefined>(`http:/api/orders/:id?port=${opts.restPort}&method=GET`)
    .routeId('rest-to-soap')
    .transform((_b, m) => ({ id: String(m.headers['http.param.id']) }))
    .to<LegacyOrder>(soap)
    .transform((o): ApiOrder => ({ id: o.id, customer: o.customer, total: Number(o.total) }));
  return [route];
}

/** A SOAP backend (busbar's own SOAP server) for the example to run alone; tests use a Perl one. */
export function soapBackendRoutes(opts: { port: number; orders: Record<string, LegacyOrder> }): RouteBuilder<unknown, never>[] {
  const route = from<{ id: string }>(`http:/legacy?protocol=soap&port=${opts.port}&namespace=${encodeURIComponent(LEGACY_NS)}`)
    .routeId('soap-backend')
    .transform((req) => {
      const o = opts.orders[req.id];
      if (!o) throw new BusbarError('NOT_FOUND', `no order ${req.id}`);
      return o;
    });
  return [route];
}
