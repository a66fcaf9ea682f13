/**
 * Protocol conversion with in-memory endpoints: a SOAP request (from .NET, Java JAX-WS or
 * Perl SOAP::Lite clients) becomes a JSON call to a REST-style service, and the JSON reply
 * becomes a SOAP response in the version the client spoke. Failures become SOAP Faults.
 *
 * `direct:rest-orders` stands in for the REST service; with the HTTP adapter it would be
 * `http://orders.internal/api/orders/{orderId}`. `direct:soap-orders` stands in for the SOAP
 * endpoint (HTTP POST with `SOAPAction`).
 */
import { Type, type Static } from '@sinclair/typebox';
import { BusbarError, from, type SoapEnvelope, type SoapReply } from '../../lib/index.js';

/** What the SOAP side asks, whatever client wrote it: .NET/SOAP::Lite name it orderId, JAX-WS arg0. */
export const StatusRequest = Type.Object({
  orderId: Type.String({ pattern: '^[0-9]{1,10}$', description: 'order number; leading zeros matter' }),
  includeLines: Type.Boolean(),
});
export type StatusRequest = Static<typeof StatusRequest>;

/** The REST service's JSON reply. */
export const StatusReply = Type.Object({
  orderId: Type.String(),
  status: Type.Union([Type.Literal('OPEN'), Type.Literal('SHIPPED'), Type.Literal('CANCELLED')]),
  lines: Type.Optional(Type.Array(Type.Object({ sku: Type.String(), qty: Type.Integer({ minimum: 1 }) }))),
});
export type StatusReply = Static<typeof StatusReply>;

/** The in-memory "database" of the stand-in REST service. */
export const ORDERS: Record<string, StatusReply> = {
  '00042': { orderId: '00042', status: 'SHIPPED', lines: [{ sku: 'A-100', qty: 2 }, { sku: 'B-200', qty: 1 }] },
  '00043': { orderId: '00043', status: 'OPEN', lines: [] },
};

function truthy(v: unknown): boolean {
  return v === true || v === 'true' || v === '1';
}

/** SOAP payload (any client style) -> the REST request. */
export function toRestRequest(env: SoapEnvelope): StatusRequest & { soap: { version: SoapEnvelope['version']; namespace: string | undefined; operation: string | undefined } } {
  const p = (env.payload ?? {}) as Record<string, unknown>;
  return {
    orderId: String(p.orderId ?? p.arg0 ?? ''),
    includeLines: truthy(p.includeLines ?? p.arg2),
    soap: { version: env.version, namespace: env.namespace, operation: env.operation },
  };
}

export function soapToRestRoutes() {
  return [
    // the SOAP facade: SOAP in, JSON call, SOAP out
    from<string>('direct:soap-orders')
      .routeId('soap-orders')
      .soapFaultOnError('auto')
      .unmarshal<SoapEnvelope>('soap')
      .transform(toRestRequest)
      .process((m) => ({ ...m, headers: { ...m.headers, 'x-soap-version': m.body.soap.version, 'x-soap-namespace': m.body.soap.namespace ?? '', 'x-soap-operation': m.body.soap.operation ?? '' } }))
      .transform(({ soap: _soap, ...request }) => request)
      .validate(StatusRequest)
      .marshal('json')
      .setHeaders({ 'http.method': 'POST', 'http.path': '/api/orders/status' })
      .to<string>('direct:rest-orders')
      .unmarshal('json')
      .validate(StatusReply, { name: 'REST reply' })
      .transform((r, m): SoapReply => ({
        operation: `${String(m.headers['x-soap-operation'])}Response`,
        namespace: String(m.headers['x-soap-namespace']),
        version: m.headers['x-soap-version'] === '1.2' ? '1.2' : '1.1',
        payload: { orderId: r.orderId, status: r.status, ...(r.lines ? { line: r.lines.map((l) => ({ sku: l.sku, qty: String(l.qty) })) } : {}) },
      }))
      .marshal('soap'),

    // the stand-in REST service: JSON in, JSON out, 404-like coded error for unknown orders
    from<string>('direct:rest-orders')
      .routeId('rest-orders')
      .unmarshal<StatusRequest>('json')
      .transform((req): StatusReply => {
        const order = ORDERS[req.orderId];
        if (!order) throw new BusbarError('VALIDATION_FAILED', `order ${req.orderId} does not exist`, { details: { problems: [{ pointer: '/orderId', message: 'no such order', keyword: 'exists' }] } });
        return req.includeLines ? order : { orderId: order.orderId, status: order.status };
      })
      .marshal('json'),
  ];
}
