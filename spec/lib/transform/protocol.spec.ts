import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { Engine, ERROR_HEADERS, from, parseSoapEnvelope, soapFaultToError, type Message, type SoapEnvelope } from '../../../lib/index.js';
import { SOAP_FAULT_HEADER } from '../../../lib/steps/transform.js';
import type { BusbarError } from '../../../lib/errors.js';
import { soapToRestRoutes } from '../../../examples/soap-to-rest-inmemory/routes.js';
import { testLogger } from '../../helpers.js';

const fixture = (name: string): string => readFileSync(new URL(`../../fixtures/soap/${name}`, import.meta.url), 'utf8');

describe('protocol conversion: SOAP -> JSON REST -> SOAP (in-memory endpoints)', () => {
  let engine: Engine;
  beforeEach(async () => {
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes(soapToRestRoutes());
    await engine.start();
  });
  afterEach(async () => {
    await engine.stop();
  });

  const clients = [
    { file: 'dotnet-asmx-request.xml', version: '1.1', operation: 'GetOrderStatusResponse', namespace: 'http://tempuri.org/', lines: true },
    { file: 'wcf-request-12.xml', version: '1.2', operation: 'GetOrderStatusResponse', namespace: 'http://tempuri.org/', lines: false },
    { file: 'jaxws-request.xml', version: '1.1', operation: 'getOrderStatusResponse', namespace: 'http://ws.orders.example.com/', lines: true },
    { file: 'soaplite-request.xml', version: '1.1', operation: 'getOrderStatusResponse', namespace: 'urn:OrderService', lines: true },
  ] as const;

  for (const c of clients) {
    it(`answers a ${c.file.replace('.xml', '')} request in its own version, operation and namespace`, async () => {
      const reply = await engine.requestMessage('direct:soap-orders', { id: c.file, body: fixture(c.file), headers: {}, timestamp: 0, correlationId: c.file });
      const env = parseSoapEnvelope(String(reply.body), { arrays: ['..line'] });
      expect(env.fault).to.equal(undefined);
      expect([env.version, env.operation, env.namespace]).to.deep.equal([c.version, c.operation, c.namespace]);
      const expected: Record<string, unknown> = { orderId: '00042', status: 'SHIPPED' };
      if (c.lines) expected.line = [{ sku: 'A-100', qty: '2' }, { sku: 'B-200', qty: '1' }];
      expect(env.payload).to.deep.equal(expected);
      expect(reply.headers[SOAP_FAULT_HEADER]).to.equal(undefined);
      expect(reply.headers['content-type']).to.equal(c.version === '1.2' ? 'application/soap+xml' : 'text/xml');
    });
  }

  it('an unknown order: the REST error comes back as a Client fault with the busbar code and problem pointers', async () => {
    const request = fixture('dotnet-asmx-request.xml').replace('<orderId>00042</orderId>', '<orderId>00099</orderId>');
    const reply = await engine.requestMessage('direct:soap-orders', { id: 'x', body: request, headers: {}, timestamp: 0, correlationId: 'x' });
    expect(reply.headers[SOAP_FAULT_HEADER]).to.equal(true);
    expect(reply.headers['content-type']).to.equal('text/xml');
    const fault = parseSoapEnvelope(String(reply.body)).fault!;
    expect(fault.code).to.equal('Client');
    expect(fault.reason).to.contain('order 00099 does not exist');
    const err = soapFaultToError(fault);
    expect(err.details.remoteCode).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    expect(err.details.problems).to.deep.equal([{ pointer: '/orderId', message: 'no such order' }]);
  });

  it('a request that violates the request contract gets a SOAP 1.2 Sender fault listing the problem', async () => {
    const request = fixture('wcf-request-12.xml').replace('<orderId>00042</orderId>', '<orderId>42-A</orderId>');
    const reply = await engine.requestMessage('direct:soap-orders', { id: 'y', body: request, headers: {}, timestamp: 0, correlationId: 'y' });
    const env = parseSoapEnvelope(String(reply.body));
    expect(env.version).to.equal('1.2');
    expect(env.fault!.code).to.equal('Sender');
    expect(reply.headers['content-type']).to.equal('application/soap+xml');
    const err = soapFaultToError(env.fault!);
    expect(err.details.remoteCode).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    expect((err.details.problems as Array<{ pointer: string }>).map((p) => p.pointer)).to.deep.equal(['/orderId']);
  });

  it('a body that is not SOAP gets a Client fault; a Fault sent as a request is passed back as it was', async () => {
    const notSoap = await engine.requestMessage('direct:soap-orders', { id: 'z', body: '<order><id>1</id></order>', headers: {}, timestamp: 0, correlationId: 'z' });
    const f1 = parseSoapEnvelope(String(notSoap.body)).fault!;
    expect(f1.code).to.equal('Client');
    expect(soapFaultToError(f1).details.remoteCode).to.equal('BUSBAR_ERR_SOAP_ENVELOPE');
    const fault = await engine.requestMessage('direct:soap-orders', { id: 'f', body: fixture('soaplite-fault.xml'), headers: {}, timestamp: 0, correlationId: 'f' });
    const f2 = parseSoapEnvelope(String(fault.body)).fault!;
    expect(f2.code).to.equal('Client');
    expect(f2.reason).to.contain('Failed to locate method (getOrderStatu)');
  });

  it('a client route calling the SOAP service turns a received Fault into SOAP_FAULT and dead-letters it', async () => {
    const client = new Engine({ logger: testLogger() });
    client.addRoutes(soapToRestRoutes());
    client.addRoutes(
      from<{ orderId: string }>('direct:client')
        .routeId('soap-client')
        .deadLetter('mock:client-dlq')
        .transform((q) => ({ operation: 'GetOrderStatus', namespace: 'http://tempuri.org/', payload: { orderId: q.orderId, includeLines: 'false' } }))
        .marshal('soap')
        .to<string>('direct:soap-orders')
        .unmarshal<SoapEnvelope>('soap')
        .transform((env) => env.payload)
        .to('mock:client-out'),
    );
    await client.start();
    await client.send('direct:client', { orderId: '00043' });
    const err = await client.send('direct:client', { orderId: '00077' }).then(
      () => undefined,
      (e: unknown) => e as BusbarError,
    );
    await client.stop();
    expect(client.mock('mock:client-out').bodies).to.deep.equal([{ orderId: '00043', status: 'OPEN' }]);
    expect(err?.code).to.equal('BUSBAR_ERR_SOAP_FAULT');
    expect(err?.retryable).to.equal(false);
    const [dead] = client.mock('mock:client-dlq').received as Message[];
    expect(dead!.headers[ERROR_HEADERS.code]).to.equal('BUSBAR_ERR_SOAP_FAULT');
    expect(dead!.body).to.deep.equal({ orderId: '00077' });
  });

  it('the same conversion as plain config data (JSONata mapping, headers from the envelope, fault replies)', async () => {
    const cfg = new Engine({ logger: testLogger() });
    cfg.addRoutes({
      routes: [
        {
          id: 'soap-facade',
          from: 'direct:cfg-soap',
          steps: [
            { soapFaultOnError: 'auto' },
            { unmarshal: 'soap' },
            { setHeaders: { 'x-ns': { expr: 'namespace' }, 'x-op': { expr: 'operation' }, 'x-version': { expr: 'version' } } },
            { transform: '{ "orderId": payload.(orderId ? orderId : arg0) }' },
            { validate: { schema: { type: 'object', required: ['orderId'], properties: { orderId: { type: 'string', pattern: '^[0-9]+$' } } }, name: 'StatusRequest' } },
            { marshal: 'json' },
            { to: 'direct:cfg-rest' },
            { unmarshal: 'json' },
            { transform: '{ "operation": $headers."x-op" & "Response", "namespace": $headers."x-ns", "version": $headers."x-version", "payload": { "status": status } }' },
            { marshal: 'soap' },
          ],
        },
        { id: 'rest', from: 'direct:cfg-rest', steps: [{ unmarshal: 'json' }, { transform: '{ "orderId": orderId, "status": orderId = "00042" ? "SHIPPED" : "UNKNOWN" }' }, { marshal: 'json' }] },
      ],
    });
    await cfg.start();
    const ok = await cfg.request<string>('direct:cfg-soap', fixture('jaxws-request.xml'));
    const ok12 = await cfg.requestMessage('direct:cfg-soap', { id: 'w', body: fixture('wcf-request-12.xml'), headers: {}, timestamp: 0, correlationId: 'w' });
    const bad = await cfg.request<string>('direct:cfg-soap', fixture('jaxws-request.xml').replace('<arg0>00042</arg0>', '<arg0>x1</arg0>'));
    await cfg.stop();
    const env = parseSoapEnvelope(ok);
    expect([env.version, env.operation, env.namespace, env.payload]).to.deep.equal(['1.1', 'getOrderStatusResponse', 'http://ws.orders.example.com/', { status: 'SHIPPED' }]);
    const env12 = parseSoapEnvelope(String(ok12.body));
    expect([env12.version, env12.operation, env12.payload]).to.deep.equal(['1.2', 'GetOrderStatusResponse', { status: 'SHIPPED' }]);
    expect(ok12.headers['content-type']).to.equal('application/soap+xml');
    const fault = parseSoapEnvelope(bad).fault!;
    expect(fault.code).to.equal('Client');
    expect(soapFaultToError(fault).details.problems).to.deep.equal([{ pointer: '/orderId', message: 'must match pattern "^[0-9]+$", got "x1"' }]);
  });
});
