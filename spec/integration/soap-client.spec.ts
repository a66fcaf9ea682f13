import { expect } from 'chai';
import { Engine, from, type BusbarError } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { testLogger } from '../helpers.js';
import { requireSoapLite, startPerlSoapServer } from './soap-perl.js';

const NS = 'urn:legacy:orders';

describe('SOAP client, calling a Perl SOAP::Lite server', function () {
  this.timeout(30_000);
  let e: Engine;
  let server: Awaited<ReturnType<typeof startPerlSoapServer>>;
  let base: string;

  before(async () => {
    await requireSoapLite();
    server = await startPerlSoapServer();
    base = `http:${server.url.replace(/^http:/, '')}?protocol=soap&namespace=${encodeURIComponent(NS)}`;
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e.addRoutes(from('direct:get-order').to(`${base}&operation=GetOrder&soapAction=${encodeURIComponent(`${NS}#GetOrder`)}`));
    await e.start();
  });
  after(async () => {
    await e?.stop({ timeoutMs: 2000 });
    await server?.stop();
  });

  it('calls an operation with plain data and gets the response payload', async () => {
    expect(await e.request('direct:get-order', { id: '7' })).to.deep.equal({ id: '7', customer: 'ACME', total: '99.50' });
  });

  it('takes the operation from the soap.operation header and full Body content too', async () => {
    expect(await e.request(base, { id: '8' }, { 'soap.operation': 'GetOrder' })).to.deep.include({ customer: 'Initech' });
    const body = { 'm:GetOrder': { '@xmlns:m': NS, id: '7' } };
    expect(await e.request(base, body)).to.deep.include({ customer: 'ACME' });
  });

  it('turns a Client fault into SOAP_FAULT (not retryable) with the fault', async () => {
    const err = (await e.request('direct:get-order', { id: '999' }).catch((x: BusbarError) => x)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_SOAP_FAULT');
    expect(err.retryable).to.equal(false);
    expect(err.details.fault).to.deep.include({ code: 'Client', reason: 'no order 999' });
    expect(err.details.status).to.equal(500);
  });

  it('turns a Server fault into a retryable SOAP_FAULT', async () => {
    const err = (await e.request(`${base}&operation=Crash`, {}).catch((x: BusbarError) => x)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_SOAP_FAULT');
    expect(err.retryable).to.equal(true);
    expect((err.details.fault as { reason: string }).reason).to.contain('legacy system exploded');
  });

  it('reports a server that is gone as HTTP_NETWORK', async () => {
    await server.stop();
    const err = (await e.request('direct:get-order', { id: '7' }).catch((x: BusbarError) => x)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_HTTP_NETWORK');
  });
});
