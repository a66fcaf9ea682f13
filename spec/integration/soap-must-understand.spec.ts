import { expect } from 'chai';
import { Engine, from, parseSoapEnvelope, type Message } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { testLogger } from '../helpers.js';
import { call, portOf } from '../adapters/http/helpers.js';

const WSSE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd';
const WSA = 'http://www.w3.org/2005/08/addressing';
const NS = 'urn:busbar:orders';

/** A SOAP 1.1 request with a WS-Security header, as JAX-WS (Metro, CXF) send it. */
function soap11(mustUnderstand: string, actor?: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">
  <S:Header>
    <wsse:Security xmlns:wsse="${WSSE}" S:mustUnderstand="${mustUnderstand}"${actor ? ` S:actor="${actor}"` : ''}>
      <wsse:UsernameToken><wsse:Username>bob</wsse:Username><wsse:Password>secret</wsse:Password></wsse:UsernameToken>
    </wsse:Security>
  </S:Header>
  <S:Body><ns2:GetOrder xmlns:ns2="${NS}"><id>7</id></ns2:GetOrder></S:Body>
</S:Envelope>`;
}

/** A SOAP 1.2 request with WS-Addressing headers, as WCF (wsHttpBinding) sends it. */
function soap12(): string {
  return `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="${WSA}">
  <s:Header>
    <a:Action s:mustUnderstand="1">${NS}/GetOrder</a:Action>
    <a:MessageID>urn:uuid:8b1a3a2e-0f0e-4c5e-9d8e-1f2a3b4c5d6e</a:MessageID>
    <a:To s:mustUnderstand="1">http://127.0.0.1/ws/orders</a:To>
    <x:Trace xmlns:x="urn:example:trace" s:mustUnderstand="true" s:role="urn:example:some-intermediary">hop-1</x:Trace>
  </s:Header>
  <s:Body><GetOrder xmlns="${NS}"><id>8</id></GetOrder></s:Body>
</s:Envelope>`;
}

describe('SOAP mustUnderstand header blocks (real HTTP on 127.0.0.1)', function () {
  this.timeout(20_000);
  let e: Engine;
  let port: number;
  const seen: Array<Message<unknown>> = [];

  before(async () => {
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    const handler = (m: Message<{ id: string }>): Message<unknown> => {
      seen.push(m);
      return { ...m, body: { id: m.body.id, status: 'shipped' } };
    };
    e.addRoutes(
      from<{ id: string }>(`http:/ws/plain?port=0&protocol=soap&namespace=${NS}`).routeId('plain').process(handler),
      from<{ id: string }>(`http:/ws/secure?port=0&protocol=soap&namespace=${NS}&soapUnderstood=${encodeURIComponent(`{${WSSE}}Security`)}`).routeId('secure').process(handler),
      from<{ id: string }>(`http:/ws/wcf?port=0&protocol=soap&namespace=${NS}&soapUnderstood=${encodeURIComponent(`{${WSA}}Action,{${WSA}}To`)}`).routeId('wcf').process(handler),
    );
    await e.start();
    port = portOf(e);
  });
  after(() => e?.stop({ timeoutMs: 2000 }));

  it('answers a mustUnderstand block the route does not process with a MustUnderstand fault, without running the route', async () => {
    seen.length = 0;
    const r = await call(port, 'POST', '/ws/plain', soap11('1'), { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: '""' });
    expect(r.status).to.equal(500);
    const fault = parseSoapEnvelope(r.text).fault!;
    expect(fault.code).to.equal('MustUnderstand');
    expect(fault.reason).to.contain(`{${WSSE}}Security`);
    expect(seen).to.have.length(0);
  });

  it('runs the route when it lists the block in soapUnderstood, and hands it the block', async () => {
    seen.length = 0;
    const r = await call(port, 'POST', '/ws/secure', soap11('1'), { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: '""' });
    expect(r.status).to.equal(200);
    expect(parseSoapEnvelope(r.text).payload).to.deep.equal({ id: '7', status: 'shipped' });
    expect(seen).to.have.length(1);
    expect(JSON.parse(String(seen[0]!.headers['soap.header.Security']))).to.deep.equal({ UsernameToken: { Username: 'bob', Password: 'secret' } });
  });

  it('ignores blocks with mustUnderstand="0" and blocks addressed to another actor', async () => {
    seen.length = 0;
    const a = await call(port, 'POST', '/ws/plain', soap11('0'), { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: '""' });
    const b = await call(port, 'POST', '/ws/plain', soap11('1', 'urn:example:gateway'), { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: '""' });
    expect([a.status, b.status]).to.deep.equal([200, 200]);
    expect(seen).to.have.length(2);
    // addressed to the next node: that is this one
    const c = await call(port, 'POST', '/ws/plain', soap11('1', 'http://schemas.xmlsoap.org/soap/actor/next'), { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: '""' });
    expect(c.status).to.equal(500);
  });

  it('SOAP 1.2: a NotUnderstood header block per block, qualified by its namespace; a block for another role is not ours', async () => {
    seen.length = 0;
    const r = await call(port, 'POST', '/ws/plain', soap12(), { 'Content-Type': `application/soap+xml; charset=utf-8; action="${NS}/GetOrder"` });
    expect(r.status).to.equal(500);
    const env = parseSoapEnvelope(r.text);
    expect(env.version).to.equal('1.2');
    expect(env.fault!.code).to.equal('MustUnderstand');
    // Action and To (not MessageID: not mustUnderstand; not Trace: another role)
    const blocks = ([] as Array<Record<string, string>>).concat(env.header!['soap:NotUnderstood'] as Record<string, string>);
    expect(blocks.map((b) => { const [prefix, local] = b['@qname']!.split(':'); return `{${b[`@xmlns:${prefix}`]}}${local}`; })).to.deep.equal([`{${WSA}}Action`, `{${WSA}}To`]);
    expect(seen).to.have.length(0);

    const ok = await call(port, 'POST', '/ws/wcf', soap12(), { 'Content-Type': `application/soap+xml; charset=utf-8; action="${NS}/GetOrder"` });
    expect(ok.status).to.equal(200);
    expect(seen.map((m) => m.headers['soap.header.Action'])).to.deep.equal([`${NS}/GetOrder`]);
  });
});
