/**
 * Protocol conversion: a JSON REST API in front of a gRPC service.
 *
 *   REST client --GET /api/orders/7-->        [ http:/api/orders/:id ] --shop.Orders/GetOrder (unary)--> gRPC service
 *               <--{ "id", "customer", "total" }--                    <--Order / status--
 *   REST client --POST /api/uploads [items]--> [ http:/api/uploads ]   --shop.Orders/Upload (client stream)-->
 *               <--{ "count", "total" }--
 *
 * The REST client never sees gRPC: NOT_FOUND from the service is a 404 (BUSBAR_ERR_NOT_FOUND),
 * INVALID_ARGUMENT a 422, an unreachable service a 502 (BUSBAR_ERR_GRPC_UNAVAILABLE). The
 * caller's X-Tenant header travels as `x-tenant` metadata (allow-listed), its Authorization does not.
 */
import { fileURLToPath } from 'node:url';
import { BusbarError, from, type RouteBuilder } from '../../lib/index.js';

export const SHOP_PROTO = fileURLToPath(new URL('./shop.proto', import.meta.url));

/** shop.Order as proto-loader gives it (int64 as a string). */
export interface GrpcOrder {
  id: string;
  customer: string;
  total: number;
  qty: string;
}

export interface ApiOrder {
  id: string;
  customer: string;
  total: number;
  quantity: number;
}

export function restToGrpcRoutes(opts: { restPort: number; grpcAddress: string }): RouteBuilder<unknown, never>[] {
  const proto = `proto=${encodeURIComponent(SHOP_PROTO)}`;
  const getOrder = from<undefined>(`http:/api/orders/:id?port=${opts.restPort}&method=GET`)
    .routeId('rest-to-grpc-get')
    .transform((_b, m) => ({ id: String(m.headers['http.param.id']) }))
    .to<GrpcOrder>(`grpc://${opts.grpcAddress}/shop.Orders/GetOrder?${proto}&timeoutMs=5000&headers=http.header.x-tenant`)
    .transform((o): ApiOrder => ({ id: o.id, customer: o.customer, total: o.total, quantity: Number(o.qty) }));
  const upload = from<Array<{ sku: string; qty: number }>>(`http:/api/uploads?port=${opts.restPort}&method=POST`)
    .routeId('rest-to-grpc-upload')
    .to<{ count: number; total: number }>(`grpc://${opts.grpcAddress}/shop.Orders/Upload?${proto}&timeoutMs=5000`);
  return [getOrder, upload];
}

/** A gRPC service (busbar's own gRPC server) for the example to run alone; the tests use grpc-js and Python ones. */
export function grpcServiceRoutes(opts: { port: number; orders: Record<string, GrpcOrder> }): RouteBuilder<unknown, never>[] {
  const proto = `proto=${encodeURIComponent(SHOP_PROTO)}`;
  return [
    from<{ id: string }>(`grpc:shop.Orders/GetOrder?port=${opts.port}&${proto}`)
      .routeId('grpc-service-get')
      .transform((req) => {
        const o = opts.orders[req.id];
        if (!o) throw new BusbarError('NOT_FOUND', `no order ${req.id}`);
        return o;
      }),
    from<Array<{ qty: number }>>(`grpc:shop.Orders/Upload?port=${opts.port}&${proto}`)
      .routeId('grpc-service-upload')
      .transform((items) => ({ count: items.length, total: items.reduce((s, i) => s + i.qty, 0) })),
  ];
}
