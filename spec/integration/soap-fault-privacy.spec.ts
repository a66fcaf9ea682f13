import { expect } from 'chai';
import { Engine, from, BusbarError } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { capturedLogger } from '../helpers.js';
import { call, portOf } from '../adapters/http/helpers.js';
import { perlSoapCall, requireSoapLite } from './soap-perl.js';

const NS = 'urn:busbar:orders';

function envelope(id: string): string {
  return `<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:GetOrder xmlns:m="${NS}"><id>${id}</id></m:GetOrder></soap:Body></soap:Envelope>`;
}

/** A raw SOAP 1.1 POST over 127.0.0.1 (no busbar client in between): status and faultstring. */
async function soapCall(port: number, path: string, id: string): Promise<{ status: number; text: string; faultstring: string }> {
  const r = await call(port, 'POST', path, envelope(id), { 'content-type': 'text/xml; charset=utf-8', soapaction: `"${NS}#GetOrder"` });
  return { status: r.status, text: r.text, faultstring: /<faultstring>([\s\S]*?)<\/faultstring>/.exec(r.text)?.[1] ?? '' };
}

describe('SOAP faults to external clients name no route ids or steps (real SOAP over 127.0.0.1)', function () {
  this.timeout(30_000);
  let e: Engine;
  let port: number;
  let lines: ReturnType<typeof capturedLogger>['lines'];

  before(async () => {
    const captured = capturedLogger('info');
    lines = captured.lines;
    e = new Engine({ logger: captured.logger, adapters: [httpAdapter] });
    const failing = (id: string): never => {
      if (id === 'bad') throw new BusbarError('VALIDATION_FAILED', 'id must be numeric', { details: { problems: [{ path: '/id', message: 'must be numeric' }] } });
      throw new Error('database on fire');
    };
    e.addRoutes(
      from<{ id: string }>(`http:/ws/plain?port=0&protocol=soap&operation=GetOrder&namespace=${NS}`)
        .routeId('billing-internal-7')
        .transform((b) => b)
        .process((m) => failing(m.body.id)),
      from<{ id: string }>(`http:/ws/reasoned?port=0&protocol=soap&operation=GetOrder&namespace=${NS}&faultReason=${encodeURIComponent('Order service unavailable')}`)
        .routeId('billing-internal-8')
        .process((m) => failing(m.body.id)),
      // the in-route form: soapFaultOnError with its own reason
      from<{ id: string }>('http:/ws/in-route?port=0')
        .routeId('billing-internal-9')
        .soapFaultOnError('1.1', { reason: 'Try again later' })
        .unmarshal('soap')
        .process((m) => failing((m.body as { id: string }).id)),
    );
    await e.start();
    port = portOf(e);
  });
  after(() => e?.stop({ timeoutMs: 2000 }));

  it('by default the fault reason is the error without route id and step; the busbar code stays in the detail; the details are in the logs', async () => {
    const crash = await soapCall(port, '/ws/plain', 'crash');
    expect(crash.status).to.equal(500);
    expect(crash.text).to.contain('<faultcode>soap:Server</faultcode>');
    expect(crash.faultstring).to.equal('database on fire');
    expect(crash.text).not.to.contain('billing-internal-7');
    expect(crash.text).not.to.match(/\/steps\//);
    expect(crash.text).to.contain('BUSBAR_ERR_STEP_FAILED');
    const bad = await soapCall(port, '/ws/plain', 'bad');
    expect(bad.text).to.contain('<faultcode>soap:Client</faultcode>');
    expect(bad.faultstring).to.equal('id must be numeric');
    expect(bad.text).not.to.contain('billing-internal-7');
    expect(bad.text).not.to.match(/\/steps\//);
    // what the client does not see, the operator does
    const logged = lines.filter((l) => l.route === 'billing-internal-7' && /SOAP request failed/.test(l.msg));
    expect(logged).to.have.length(2);
    expect(JSON.stringify(logged[0])).to.contain('route \\"billing-internal-7\\", step /steps/1 (process)');
  });

  it('faultReason on the SOAP source sets the reason of every fault of that route', async () => {
    const crash = await soapCall(port, '/ws/reasoned', 'crash');
    expect(crash.status).to.equal(500);
    expect(crash.faultstring).to.equal('Order service unavailable');
    expect(crash.text).not.to.contain('database on fire');
    expect(crash.text).to.contain('BUSBAR_ERR_STEP_FAILED');
  });

  it('soapFaultOnError in a route: no route id or step in the fault, and its reason option', async () => {
    const r = await soapCall(port, '/ws/in-route', 'crash');
    // a Fault reply is answered with 500, as docs/transformation.md says
    expect(r.status).to.equal(500);
    expect(r.faultstring).to.equal('Try again later');
    expect(r.text).not.to.contain('billing-internal-9');
    expect(r.text).not.to.match(/\/steps\//);
  });

  it('a third-party client (Perl SOAP::Lite) reads the fault: code, reason, busbar code', async () => {
    await requireSoapLite();
    const r = await perlSoapCall(`http://127.0.0.1:${port}/ws/plain`, { operation: 'GetOrder', namespace: NS, action: `${NS}#GetOrder`, args: [['id', 'crash']] });
    expect(r.faultcode).to.match(/Server$/);
    expect(r.faultstring).to.equal('database on fire');
    expect(r.busbarCode).to.equal('BUSBAR_ERR_STEP_FAILED');
  });
});
