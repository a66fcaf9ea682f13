import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { createFileAdapter } from '../../adapters/file/index.js';
import { createHttpAdapter } from '../../adapters/http/index.js';
import { Engine, from, headerPolicy, type Message } from '../../lib/index.js';
import { Broker, uniqueName } from '../adapters/amqp/amqp-helpers.js';
import { call, portOf } from '../adapters/http/helpers.js';
import { AMQP_URL, tempDir, testLogger, waitFor } from '../helpers.js';

const CALLER = { authorization: 'Bearer caller-secret', cookie: 'sid=caller', 'x-tenant': 'acme', 'x-trace-id': 't-1', 'content-type': 'application/json' };

/** What an http server route received, as `http.header.*` without the prefix. */
function received(m: Message): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m.headers)) if (k.startsWith('http.header.')) out[k.slice(12)] = v;
  return out;
}

describe('header propagation policy: headers stay on their side of a transport', function () {
  this.timeout(30_000);
  let broker: Broker;
  let engine: Engine;
  let dir: ReturnType<typeof tempDir>;

  beforeEach(async () => {
    broker = await Broker.open();
    dir = tempDir('busbar-headers-');
    engine = new Engine({ logger: testLogger(), adapters: [createAmqpAdapter({ url: AMQP_URL }), createHttpAdapter(), createFileAdapter()], stopTimeoutMs: 5000 });
  });
  const others: Engine[] = [];
  /** A second engine answering with the headers it received (its own http server). */
  async function echoServer(): Promise<number> {
    const e = new Engine({ logger: testLogger(), adapters: [createHttpAdapter()] });
    others.push(e);
    e.addRoutes(from('http:/echo?port=0').transform((_b, m) => received(m)));
    await e.start();
    return portOf(e);
  }
  afterEach(async () => {
    await engine.stop();
    for (const e of others.splice(0)) await e.stop();
    await broker.cleanup();
    dir.cleanup();
  });

  it('the policy: transport headers and credentials stay, allow-lists let named ones through (credentials only by exact name)', () => {
    const none = headerPolicy();
    expect(['http.header.x-tenant', 'soap.header.Security', 'busbar.file.absolutePath', 'busbar.db.key', 'amqp.routingKey', 'authorization', 'http.request.header.cookie'].filter((h) => none.outbound(h))).to.deep.equal([]);
    expect(['x-tenant', 'busbar.split.index', 'rpc.method'].every((h) => none.outbound(h))).to.equal(true);
    const some = headerPolicy('http.header.x-*,http.header.cookie');
    expect(some.outbound('http.header.x-tenant')).to.equal(true);
    expect(some.outbound('http.header.cookie')).to.equal(true);
    expect(some.outbound('http.header.authorization')).to.equal(false);
    expect(headerPolicy('http.header.*').outbound('http.header.authorization')).to.equal(false);
    expect(none.inbound('http.request.header.cookie')).to.equal(false);
    expect(none.inbound('authorization')).to.equal(true); // a credential that came in stays readable on this side
  });

  it('http -> amqp: no http.* header and no credential is published (nor dead-lettered); the allow-list publishes what it names', async () => {
    const [plain, listed, pattern, dlq] = ['plain', 'listed', 'pattern', 'dlq'].map((n) => broker.track('queue', uniqueName(n)));
    engine.addRoutes(
      from('http:/plain?port=0').to(`amqp:queue:${plain}`),
      from('http:/listed?port=0').to(`amqp:queue:${listed}?headers=${encodeURIComponent('http.header.x-tenant,http.header.authorization')}`),
      from('http:/pattern?port=0').to(`amqp:queue:${pattern}?headers=${encodeURIComponent('http.header.*')}`),
      from('http:/fails?port=0').deadLetter(`amqp:queue:${dlq}`).transform(() => {
        throw new Error('down');
      }),
    );
    await engine.start();
    const port = portOf(engine);
    for (const path of ['/plain', '/listed', '/pattern', '/fails']) await call(port, 'POST', path, '{"a":1}', CALLER);
    const headersOf = async (q: string): Promise<Record<string, unknown>> => {
      let got: Awaited<ReturnType<Broker['drain']>> = [];
      await waitFor(async () => (got = await broker.drain(q)).length > 0, 5000, `a message on ${q}`);
      return (got[0]!.properties.headers ?? {}) as Record<string, unknown>;
    };
    const leaked = (h: Record<string, unknown>): string[] => Object.keys(h).filter((k) => k.startsWith('http.') || /authorization|cookie/i.test(k) || JSON.stringify(h[k]).includes('caller'));
    expect(leaked(await headersOf(plain))).to.deep.equal([]);
    const dead = await headersOf(dlq);
    expect(leaked(dead)).to.deep.equal([]);
    expect(dead['busbar.error.code']).to.equal('BUSBAR_ERR_STEP_FAILED');
    const l = await headersOf(listed);
    expect(l['http.header.x-tenant']).to.equal('acme');
    expect(l['http.header.authorization']).to.equal('Bearer caller-secret');
    expect(l['http.header.cookie']).to.equal(undefined);
    const p = await headersOf(pattern);
    expect(p['http.header.x-trace-id']).to.equal('t-1');
    expect(Object.keys(p).filter((k) => /authorization|cookie/.test(k))).to.deep.equal([]);
  });

  it('http -> http: the caller\'s headers are not forwarded; headers=http.header.x-* forwards those (never credentials by a pattern)', async () => {
    const port = await echoServer();
    engine.addRoutes(
      from('http:/front?port=0').to(`http://127.0.0.1:${port}/echo?method=POST`),
      from('http:/front-listed?port=0').to(`http://127.0.0.1:${port}/echo?method=POST&headers=${encodeURIComponent('http.header.x-*,http.header.cookie')}`),
    );
    await engine.start();
    const plain = (await call(portOf(engine), 'POST', '/front', '{}', CALLER)).json() as Record<string, unknown>;
    expect(Object.keys(plain).filter((k) => ['authorization', 'cookie', 'x-tenant', 'x-trace-id'].includes(k))).to.deep.equal([]);
    const listed = (await call(portOf(engine), 'POST', '/front-listed', '{}', CALLER)).json() as Record<string, unknown>;
    expect(listed).to.include({ 'x-tenant': 'acme', 'x-trace-id': 't-1', cookie: 'sid=caller' });
    expect(listed.authorization).to.equal(undefined);
  });

  it('amqp -> http: http.* headers on an AMQP message (a foreign publisher) do not steer the http call', async () => {
    const q = broker.track('queue', uniqueName('inbound'));
    const port = await echoServer();
    engine.addRoutes(from(`amqp:queue:${q}`).to(`http://127.0.0.1:${port}/echo?method=POST`).to('mock:out'));
    await engine.start();
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true });
    ch.sendToQueue(q, Buffer.from('{}'), {
      contentType: 'application/json',
      headers: { 'http.request.header.cookie': 'sid=stolen', 'http.request.header.x-forwarded-for': '6.6.6.6', authorization: 'Bearer amqp-side', 'x-tenant': 'acme' },
    });
    const mock = engine.mock('mock:out');
    await waitFor(() => mock.received.length === 1, 10_000, 'the forwarded call');
    const seen = mock.received[0]!.body as Record<string, unknown>;
    expect(seen.cookie).to.equal(undefined);
    expect(seen['x-forwarded-for']).to.equal(undefined);
    expect(seen.authorization).to.equal(undefined);
  });

  it('http -> file: only the body is written; no header of the request reaches the file or its name', async () => {
    engine.addRoutes(from('http:/upload?port=0').to(`file:${dir.path}`));
    await engine.start();
    const res = await call(portOf(engine), 'POST', '/upload', '{"a":1}', CALLER);
    expect(res.status).to.be.below(300);
    const files = readdirSync(dir.path).filter((f) => !f.startsWith('.'));
    expect(files).to.have.length(1);
    const text = readFileSync(join(dir.path, files[0]!), 'utf8');
    expect(JSON.parse(text)).to.deep.equal({ a: 1 });
    expect(`${files[0]} ${text}`).not.to.match(/caller|acme/);
  });
});
