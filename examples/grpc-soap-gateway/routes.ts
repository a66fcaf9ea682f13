/**
 * Protocol conversion the other way: a gRPC service in front of a SOAP service and a REST one.
 *
 *   gRPC client --shop.Orders/GetOrder-->   [ grpc:shop.Orders/GetOrder ]   --GetOrder (SOAP 1.1)-->     SOAP backend
 *               <--Order / status--                                         <--GetOrderResponse / Fault--
 *   gRPC client --shop.Orders/ListOrders--> [ grpc:shop.Orders/ListOrders ] --GET /customers/:id/orders--> REST backend
 *               <--stream of Order--                                        <--[ { "id", "total" } ]--
 *
 * The gRPC client never sees SOAP or HTTP: a SOAP fault is a gRPC UNKNOWN with the fault's
 * reason (BUSBAR_ERR_SOAP_FAULT in the trailers) unless it carries a busbar code (a busbar SOAP
 * backend's NOT_FOUND is NOT_FOUND), a REST 404 is NOT_FOUND, an unreachable backend UNAVAILABLE.
 */
import { fileURLToPath } from 'node:url';
import { BusbarError, from, type RouteBuilder } from '../../lib/index.js';

export const SHOP_PROTO = fileURLToPath(new URL('../grpc-rest-facade/shop.proto', import.meta.url));
export const LEGACY_NS = 'urn:legacy:orders';

export function grpcToSoapRoutes(opts: { grpcPort: number; soapUrl: string; restBaseUrl: string }): RouteBuilder<unknown, never>[] {
  const proto = `proto=${encodeURIComponent(SHOP_PROTO)}`;
  const soap = `${opts.soapUrl}?protocol=soap&operation=GetOrder&namespace=${encodeURIComponent(LEGACY_NS)}&soapAction=${encodeURIComponent(`${LEGACY_NS}#GetOrder`)}&timeoutMs=5000`;
  const getOrder = from<{ id: string }>(`grpc:shop.Orders/GetOrder?port=${opts.grpcPort}&${proto}`)
    .routeId('grpc-to-soap')
    .transform((req) => ({ id: req.id }))
    .to<{ id: string; customer: string; total: string }>(soap)
    .transform((o) => ({ id: String(o.id), customer: String(o.customer), total: Number(o.total), qty: '0' }));
  const listOrders = from<{ id: string }>(`grpc:shop.Orders/ListOrders?port=${opts.grpcPort}&${proto}`)
    .routeId('grpc-to-rest')
    // a REST 404 fails the call as HTTP_CLIENT_ERROR with status 404: NOT_FOUND to the gRPC client
    .to<Array<{ id: string; total: number }>>(`${opts.restBaseUrl}/customers/{body.id}/orders?method=GET&timeoutMs=5000`)
    .transform((list) => list.map((o) => ({ id: o.id, customer: '', total: o.total, qty: '1' })));
  return [getOrder, listOrders];
}

/** Backends for the example to run alone (busbar's own SOAP server and REST route); the tests use Perl SOAP::Lite and node:http. */
export function backendRoutes(opts: { soapPort: number; restPort: number }): RouteBuilder<unknown, never>[] {
  return [
    from<{ id: string }>(`http:/legacy?protocol=soap&port=${opts.soapPort}&namespace=${encodeURIComponent(LEGACY_NS)}`)
      .routeId('soap-backend')
      .transform((req) => {
        if (req.id !== '7') throw new BusbarError('NOT_FOUND', `no order ${req.id}`);
        return { id: '7', customer: 'ACME', total: '99.50' };
      }),
    from<undefined>(`http:/customers/:id/orders?port=${opts.restPort}&method=GET`)
      .routeId('rest-backend')
      .transform((_b, m) => [1, 2, 3].map((i) => ({ id: `${String(m.headers['http.param.id'])}-${i}`, total: i * 10 }))),
  ];
}
