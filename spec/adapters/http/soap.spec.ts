import { expect } from 'chai';
import { Engine, from, type BusbarError } from '../../../lib/index.js';
import { httpAdapter } from '../../../adapters/http/index.js';
import { latch, testLogger, waitFor } from '../../helpers.js';
import { call, portOf } from './helpers.js';

const NS = 'urn:spec';

describe('http adapter: SOAP (busbar client and server)', () => {
  let e: Engine;
  afterEach(() => e.stop({ timeoutMs: 2000 }));

  it('round-trips SOAP 1.1 and 1.2, picking routes by operation on one path', async () => {
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e.addRoutes(
      from<{ a: string; b: string }>(`http:/ws?port=0&protocol=soap&operation=Add&namespace=${NS}`).transform((p) => ({ sum: String(Number(p.a) + Number(p.b)) })),
      from<{ text: string }>(`http:/ws?port=0&protocol=soap&operation=Echo`).transform((p, m) => ({ text: p.text, version: m.headers['soap.version'] })),
    );
    await e.start();
    const base = `http://127.0.0.1:${portOf(e)}/ws?protocol=soap&namespace=${NS}`;
    expect(await e.request(`${base}&operation=Add`, { a: '2', b: '3' })).to.deep.equal({ sum: '5' });
    expect(await e.request(`${base}&operation=Echo&soapVersion=1.2`, { text: 'hi' })).to.deep.equal({ text: 'hi', version: '1.2' });
    const none = (await e.request(`${base}&operation=Nope`, {}).catch((x: BusbarError) => x)) as BusbarError;
    expect(none.code).to.equal('BUSBAR_ERR_SOAP_FAULT');
    expect(none.details.remoteCode).to.equal('BUSBAR_ERR_RPC_METHOD_NOT_FOUND');
  });

  it('answers a full route with a retryable Server fault, 503 and Retry-After', async () => {
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    const { wait: gate, open: open } = latch();
    e.addRoutes(
      from(`http:/slow?port=0&protocol=soap&retryAfterS=2`)
        .routeId('slow')
        .maxInflight(1)
        .process(async (m) => {
          await gate;
          return m;
        }),
    );
    await e.start();
    const uri = `http://127.0.0.1:${portOf(e)}/slow?protocol=soap&operation=Work&retries=0`;
    const first = e.request(uri, { n: '1' });
    await waitFor(() => e.stats().routes.slow!.inflight === 1, 3000, 'first call in flight');
    const busy = (await e.request(uri, { n: '2' }).catch((x: BusbarError) => x)) as BusbarError;
    expect(busy.code).to.equal('BUSBAR_ERR_SOAP_FAULT');
    expect(busy.retryable).to.equal(true);
    expect(busy.details.status).to.equal(503);
    open();
    expect(await first).to.deep.equal({ n: '1' });
  });

  it('refuses a second route with the same action and operation, and 404s ?wsdl when none is configured', async () => {
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e.addRoutes(from('http:/ws?port=0&protocol=soap&operation=A').transform(() => 1), from('http:/ws?port=0&protocol=soap&operation=A').transform(() => 2));
    const err = (await e.start().catch((x: BusbarError) => x)) as BusbarError;
    expect((err.cause as BusbarError).code).to.equal('BUSBAR_ERR_HTTP_ROUTE');
    const e2 = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e2.addRoutes(from('http:/ws?port=0&protocol=soap').transform(() => 1));
    await e2.start();
    try {
      expect((await call(portOf(e2), 'GET', '/ws?wsdl')).status).to.equal(404);
    } finally {
      await e2.stop();
    }
  });

  it('fails to start when the WSDL file cannot be read', async () => {
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e.addRoutes(from('http:/ws?port=0&protocol=soap&wsdl=/nonexistent/x.wsdl').transform(() => 1));
    const err = (await e.start().catch((x: BusbarError) => x)) as BusbarError;
    expect((err.cause as BusbarError).code).to.equal('BUSBAR_ERR_INVALID_OPTION');
  });
});
