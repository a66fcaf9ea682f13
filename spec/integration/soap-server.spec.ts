import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { Engine, from, BusbarError, type Message } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { testLogger } from '../helpers.js';
import { call, portOf } from '../adapters/http/helpers.js';
import { perlSoapCall, perlWsdlCall, requireSoapLite } from './soap-perl.js';

const WSDL = fileURLToPath(new URL('../../examples/soap-rest/orders.wsdl', import.meta.url));
const NS = 'urn:busbar:orders';

interface GetOrder {
  id: string;
  qty?: string;
}

describe('SOAP server, called by Perl SOAP::Lite (a third-party client)', function () {
  this.timeout(30_000);
  let e: Engine;
  let url: string;
  const seen: Array<Record<string, unknown>> = [];

  before(async () => {
    await requireSoapLite();
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e.addRoutes(
      from<GetOrder>(`http:/ws/orders?port=0&protocol=soap&operation=GetOrder&namespace=${NS}&wsdl=${encodeURIComponent(WSDL)}`)
        .routeId('get-order')
        .process((m: Message<GetOrder>) => {
          seen.push({ action: m.headers['soap.action'], version: m.headers['soap.version'], operation: m.headers['soap.operation'], body: m.body });
          if (m.body.id === '404') throw new BusbarError('NOT_FOUND', `no order ${m.body.id}`);
          if (m.body.id === 'bad') throw new BusbarError('VALIDATION_FAILED', 'id must be numeric', { details: { problems: [{ path: '/id', message: 'must be numeric' }] } });
          if (m.body.id === 'crash') throw new Error('database on fire');
          return { ...m, body: { id: m.body.id, customer: 'ACME', total: '99.50' } };
        }),
      // a second operation on the same path, picked by SOAPAction
      from<unknown>(`http:/ws/orders?port=0&protocol=soap&soapAction=${encodeURIComponent(`${NS}#Ping`)}`)
        .routeId('ping')
        .transform(() => ({ pong: 'yes' })),
    );
    await e.start();
    url = `http://127.0.0.1:${portOf(e)}/ws/orders`;
  });
  after(() => e?.stop({ timeoutMs: 2000 }));

  it('answers a SOAP 1.1 call with the operation\'s response element', async () => {
    seen.length = 0;
    const r = await perlSoapCall(url, { operation: 'GetOrder', namespace: NS, action: `${NS}#GetOrder`, args: [['id', '7'], ['qty', 3]] });
    expect(r.status).to.match(/^200/);
    expect(r.result).to.deep.equal({ id: '7', customer: 'ACME', total: '99.50' });
    expect(seen[0]).to.deep.include({ action: `${NS}#GetOrder`, version: '1.1', operation: 'GetOrder' });
    expect(seen[0]!.body).to.deep.equal({ id: '7', qty: '3' });
  });

  it('answers a SOAP 1.2 call in SOAP 1.2', async () => {
    seen.length = 0;
    const r = await perlSoapCall(url, { version: '1.2', operation: 'GetOrder', namespace: NS, action: `${NS}#GetOrder`, args: [['id', '8']] });
    expect(r.status).to.match(/^200/);
    expect(r.result).to.deep.equal({ id: '8', customer: 'ACME', total: '99.50' });
    expect(seen[0]).to.deep.include({ version: '1.2' });
  });

  it('routes by SOAPAction to the route that takes it', async () => {
    const r = await perlSoapCall(url, { operation: 'Ping', namespace: NS, action: `${NS}#Ping`, args: [] });
    expect(r.result).to.deep.equal({ pong: 'yes' });
    const none = await perlSoapCall(url, { operation: 'Nothing', namespace: NS, action: `${NS}#Nothing`, args: [] });
    expect(none.faultcode).to.match(/Client$/);
    expect(none.busbarCode).to.equal('BUSBAR_ERR_RPC_METHOD_NOT_FOUND');
  });

  it('sends Faults with the right code and status: Client for bad input, Server for failures (1.1: HTTP 500)', async () => {
    const nf = await perlSoapCall(url, { operation: 'GetOrder', namespace: NS, action: `${NS}#GetOrder`, args: [['id', '404']] });
    expect(nf.status).to.match(/^500/);
    expect(nf.faultcode).to.match(/Client$/);
    expect(nf.busbarCode).to.equal('BUSBAR_ERR_NOT_FOUND');
    const crash = await perlSoapCall(url, { operation: 'GetOrder', namespace: NS, action: `${NS}#GetOrder`, args: [['id', 'crash']] });
    expect(crash.faultcode).to.match(/Server$/);
    expect(String(crash.faultstring)).not.to.match(/\n\s+at /);
  });

  it('SOAP 1.2 faults: Sender -> 400, Receiver -> 500', async () => {
    const bad = await perlSoapCall(url, { version: '1.2', operation: 'GetOrder', namespace: NS, action: `${NS}#GetOrder`, args: [['id', 'bad']] });
    expect(bad.status).to.match(/^400/);
    expect(bad.faultcode).to.match(/Sender$/);
    const crash = await perlSoapCall(url, { version: '1.2', operation: 'GetOrder', namespace: NS, action: `${NS}#GetOrder`, args: [['id', 'crash']] });
    expect(crash.status).to.match(/^500/);
    expect(crash.faultcode).to.match(/Receiver$/);
  });

  it('serves the WSDL at ?wsdl, and SOAP::Lite builds a working stub from it', async () => {
    const doc = await call(portOf(e), 'GET', '/ws/orders?wsdl');
    expect(doc.status).to.equal(200);
    expect(doc.headers['content-type']).to.match(/^text\/xml/);
    expect(doc.text).to.contain('<definitions name="Orders"');
    // the WSDL's soap:address points at the real port
    const live = doc.text.replace('http://127.0.0.1:8080/ws/orders', url);
    const dir = (await import('../helpers.js')).tempDir('busbar-wsdl-');
    try {
      const file = `${dir.path}/orders.wsdl`;
      (await import('node:fs')).writeFileSync(file, live);
      seen.length = 0;
      const r = await perlWsdlCall(`file://${file}`);
      // SOAP::Lite's generated stub returns the first element of the response
      expect(r.result).to.equal('7');
      // it took the action and the address from the WSDL
      expect(seen).to.have.length(1);
      expect(seen[0]).to.deep.include({ action: `${NS}#GetOrder`, operation: 'GetOrder' });
    } finally {
      dir.cleanup();
    }
  });

  it('answers malformed XML, a non-envelope and an entity bomb with Client faults, never a crash', async () => {
    const port = portOf(e);
    const post = (body: string): ReturnType<typeof call> => call(port, 'POST', '/ws/orders', body, { 'content-type': 'text/xml; charset=utf-8', soapaction: `"${NS}#GetOrder"` });
    const broken = await post('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetOrder>');
    expect(broken.status).to.equal(500);
    expect(broken.text).to.contain('Client').and.contain('BUSBAR_ERR_PARSE');
    const notEnvelope = await post('<order><id>1</id></order>');
    expect(notEnvelope.text).to.contain('BUSBAR_ERR_SOAP_ENVELOPE');
    const bomb = await post('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetOrder><id>&b;</id></GetOrder></soap:Body></soap:Envelope>');
    expect(bomb.text).to.contain('BUSBAR_ERR_XML_ENTITY_FORBIDDEN');
    const ok = await perlSoapCall(url, { operation: 'GetOrder', namespace: NS, action: `${NS}#GetOrder`, args: [['id', '7']] });
    expect(ok.result).to.have.property('customer', 'ACME');
  });
});
