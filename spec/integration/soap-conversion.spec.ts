import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { Engine } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { testLogger } from '../helpers.js';
import { call, portOf } from '../adapters/http/helpers.js';
import { ORDERS_NS, restBackendRoutes, soapToRestRoutes } from '../../examples/soap-rest/routes.js';
import { restToSoapRoutes, soapBackendRoutes } from '../../examples/rest-soap/routes.js';
import { perlSoapCall, requireSoapLite, startPerlSoapServer } from './soap-perl.js';

/** A bare node:http JSON REST backend (not busbar): GET /orders/:id. */
async function jsonBackend(): Promise<{ port: number; server: Server }> {
  const orders: Record<string, unknown> = {
    '7': { id: '7', customer: { name: 'ACME' }, lines: [{ sku: 'bolt', qty: 10, price: 0.25 }, { sku: 'nut', qty: 4, price: 1 }] },
  };
  const server = createServer((req, res) => {
    const id = /^\/orders\/([^/?]+)$/.exec(req.url ?? '')?.[1];
    const o = id ? orders[decodeURIComponent(id)] : undefined;
    const text = JSON.stringify(o ?? { error: 'not found' });
    res.writeHead(o ? 200 : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server };
}

describe('example soap-rest: SOAP in -> JSON REST backend -> SOAP out', function () {
  this.timeout(30_000);
  let e: Engine;
  let backend: { port: number; server: Server };
  let url: string;
  before(async () => {
    await requireSoapLite();
    backend = await jsonBackend();
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e.addRoutes(soapToRestRoutes({ soapPort: 0, restBaseUrl: `http://127.0.0.1:${backend.port}` }));
    await e.start();
    url = `http://127.0.0.1:${portOf(e)}/ws/orders`;
  });
  after(async () => {
    await e?.stop({ timeoutMs: 2000 });
    backend?.server.closeAllConnections();
    await new Promise((r) => backend?.server.close(r));
  });

  it('answers a third-party SOAP client with data from the REST service', async () => {
    const r = await perlSoapCall(url, { operation: 'GetOrder', namespace: ORDERS_NS, action: `${ORDERS_NS}#GetOrder`, args: [['id', '7']] });
    expect(r.result).to.deep.equal({ id: '7', customer: 'ACME', total: '6.50' });
  });

  it('turns a REST 404 into a Client fault that names the code', async () => {
    const r = await perlSoapCall(url, { operation: 'GetOrder', namespace: ORDERS_NS, action: `${ORDERS_NS}#GetOrder`, args: [['id', '9']] });
    expect(r.faultcode).to.match(/Client$/);
    expect(r.busbarCode).to.equal('BUSBAR_ERR_HTTP_CLIENT_ERROR');
  });

  it('works the same with busbar\'s own SOAP client and a busbar REST backend', async () => {
    const e2 = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e2.addRoutes(restBackendRoutes({ port: 0, orders: { '5': { id: '5', customer: { name: 'Globex' }, lines: [{ sku: 'x', qty: 2, price: 2.5 }] } } }));
    await e2.start();
    const e3 = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e3.addRoutes(soapToRestRoutes({ soapPort: 0, restBaseUrl: `http://127.0.0.1:${portOf(e2)}` }));
    await e3.start();
    try {
      const soap = `http://127.0.0.1:${portOf(e3)}/ws/orders?protocol=soap&operation=GetOrder&namespace=${encodeURIComponent(ORDERS_NS)}&soapVersion=1.2`;
      expect(await e3.request(soap, { id: '5' })).to.deep.equal({ id: '5', customer: 'Globex', total: '5.00' });
    } finally {
      await e3.stop();
      await e2.stop();
    }
  });
});

describe('example rest-soap: REST in -> SOAP backend -> JSON/XML out', function () {
  this.timeout(30_000);
  let e: Engine;
  let legacy: Awaited<ReturnType<typeof startPerlSoapServer>>;
  let port: number;
  before(async () => {
    await requireSoapLite();
    legacy = await startPerlSoapServer();
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e.addRoutes(restToSoapRoutes({ restPort: 0, soapUrl: legacy.url }));
    await e.start();
    port = portOf(e);
  });
  after(async () => {
    await e?.stop({ timeoutMs: 2000 });
    await legacy?.stop();
  });

  it('answers GET /api/orders/:id in JSON from a Perl SOAP::Lite service', async () => {
    const r = await call(port, 'GET', '/api/orders/7');
    expect(r.status).to.equal(200);
    expect(r.json()).to.deep.equal({ id: '7', customer: 'ACME', total: 99.5 });
  });

  it('answers in XML when asked', async () => {
    const r = await call(port, 'GET', '/api/orders/8', undefined, { accept: 'application/xml' });
    expect(r.headers['content-type']).to.match(/^application\/xml/);
    expect(r.text).to.contain('<customer>Initech</customer>');
  });

  it('answers 502 with the fault when the SOAP service refuses', async () => {
    const r = await call(port, 'GET', '/api/orders/999');
    expect(r.status).to.equal(502);
    expect((r.json() as { error: { code: string; message: string } }).error.code).to.equal('BUSBAR_ERR_SOAP_FAULT');
    expect((r.json() as { error: { message: string } }).error.message).to.contain('no order 999');
  });

  it('passes a busbar SOAP backend\'s NOT_FOUND on as 404', async () => {
    const e2 = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e2.addRoutes(soapBackendRoutes({ port: 0, orders: { '1': { id: '1', customer: 'Hooli', total: '3.00' } } }));
    await e2.start();
    const e3 = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e3.addRoutes(restToSoapRoutes({ restPort: 0, soapUrl: `http://127.0.0.1:${portOf(e2)}/legacy` }));
    await e3.start();
    try {
      const ok = await call(portOf(e3), 'GET', '/api/orders/1');
      expect(ok.json()).to.deep.equal({ id: '1', customer: 'Hooli', total: 3 });
      const missing = await call(portOf(e3), 'GET', '/api/orders/2');
      expect(missing.status).to.equal(404);
    } finally {
      await e3.stop();
      await e2.stop();
    }
  });
});
