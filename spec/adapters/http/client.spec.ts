import { expect } from 'chai';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Engine, from, createMessage, type BusbarError } from '../../../lib/index.js';
import { httpAdapter } from '../../../adapters/http/index.js';
import { testLogger } from '../../helpers.js';

interface Hit {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  socket: Socket;
}

/** A bare node:http backend whose answer per request is decided by the test. */
async function backend(answer: (hit: Hit, n: number, res: ServerResponse) => void): Promise<{ port: number; hits: Hit[]; server: Server; close: () => Promise<void> }> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hit: Hit = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), socket: req.socket };
      hits.push(hit);
      answer(hit, hits.length, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    hits,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

describe('http adapter: client (REST)', () => {
  let e: Engine;
  let b: Awaited<ReturnType<typeof backend>> | undefined;
  beforeEach(() => {
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
  });
  afterEach(async () => {
    await e.stop({ timeoutMs: 2000 });
    await b?.close();
    b = undefined;
  });

  it('fills the URL template (encoded) and query, sends headers, decodes the JSON reply, reuses the connection', async () => {
    b = await backend((hit, _n, res) => json(res, 200, { url: hit.url, auth: hit.headers['x-api-key'] }));
    const uri = `http://127.0.0.1:${b.port}/orders/{body.id}?method=GET&query=${encodeURIComponent('expand={body.expand}&v=2')}`;
    await e.start();
    const r1 = await e.requestMessage(uri, createMessage({ id: 'a/b c', expand: 'items' }, { headers: { 'http.request.header.x-api-key': 'k1' } }));
    expect(r1.body).to.deep.equal({ url: '/orders/a%2Fb%20c?expand=items&v=2', auth: 'k1' });
    expect(r1.headers['http.response.status']).to.equal(200);
    expect(r1.headers['http.response.header.content-type']).to.equal('application/json');
    await e.request(uri, { id: 2, expand: 'none' });
    await e.request(uri, { id: 3, expand: 'none' });
    expect(b.hits).to.have.length(3);
    // keep-alive: the three calls went over one connection
    expect(new Set(b.hits.map((h) => h.socket)).size).to.equal(1);
  });

  it('POSTs objects as JSON, strings as text, and XML when format=xml', async () => {
    b = await backend((hit, _n, res) => json(res, 200, { type: hit.headers['content-type'], body: hit.body }));
    await e.start();
    const base = `http://127.0.0.1:${b.port}/in`;
    expect(await e.request(base, { a: 1 })).to.deep.equal({ type: 'application/json; charset=utf-8', body: '{"a":1}' });
    expect(await e.request(base, 'plain')).to.deep.equal({ type: 'text/plain; charset=utf-8', body: 'plain' });
    const x = (await e.request(`${base}?format=xml`, { order: { id: '1' } })) as { type: string; body: string };
    expect(x.type).to.match(/^application\/xml/);
    expect(x.body).to.contain('<order><id>1</id></order>');
  });

  it('gives distinct codes for 4xx, 5xx and network errors, with the status and without credentials', async () => {
    b = await backend((hit, _n, res) => (hit.url === '/missing' ? json(res, 404, { error: 'nope' }) : json(res, 500, { error: 'bug' })));
    await e.start();
    const notFound = (await e.request(`http://user:secret@127.0.0.1:${b.port}/missing?method=GET`, undefined).catch((x: BusbarError) => x)) as BusbarError;
    expect(notFound.code).to.equal('BUSBAR_ERR_HTTP_CLIENT_ERROR');
    expect(notFound.details.status).to.equal(404);
    expect(notFound.message).not.to.contain('secret');
    expect(JSON.stringify(notFound.details)).not.to.contain('secret');
    expect(b.hits[0]!.headers.authorization).to.equal(`Basic ${Buffer.from('user:secret').toString('base64')}`);
    const broken = (await e.request(`http://127.0.0.1:${b.port}/bug?method=GET&retries=0`, undefined).catch((x: BusbarError) => x)) as BusbarError;
    expect(broken.code).to.equal('BUSBAR_ERR_HTTP_SERVER_ERROR');
    expect(broken.details.status).to.equal(500);
    expect(broken.retryable).to.equal(true);
    // a port nobody listens on any more (not b's: the pool may still hold a socket to it)
    const gone = await backend(() => undefined);
    const port = gone.port;
    await gone.close();
    const refused = (await e.request(`http://127.0.0.1:${port}/x?method=GET&retries=0`, undefined).catch((x: BusbarError) => x)) as BusbarError;
    expect(refused.code).to.equal('BUSBAR_ERR_HTTP_NETWORK');
    expect(refused.details.errno).to.equal('ECONNREFUSED');
  });

  it('times out a call with TIMEOUT (per endpoint and per message)', async () => {
    b = await backend((_hit, _n, res) => setTimeout(() => json(res, 200, {}), 1500));
    await e.start();
    const slow = (await e.request(`http://127.0.0.1:${b.port}/slow?method=POST&timeoutMs=100`, {}).catch((x: BusbarError) => x)) as BusbarError;
    expect(slow.code).to.equal('BUSBAR_ERR_TIMEOUT');
    const perMessage = (await e.request(`http://127.0.0.1:${b.port}/slow?method=POST`, {}, { 'busbar.timeoutMs': 100 }).catch((x: BusbarError) => x)) as BusbarError;
    expect(perMessage.code).to.equal('BUSBAR_ERR_TIMEOUT');
    expect(perMessage.details.timeoutMs).to.equal(100);
  });

  it('retries idempotent calls on 5xx, never a plain POST, and a POST with an idempotency key', async () => {
    b = await backend((_hit, n, res) => (n % 3 === 0 ? json(res, 200, { ok: n }) : json(res, 503, { busy: true })));
    await e.start();
    const base = `http://127.0.0.1:${b.port}/r`;
    expect(await e.request(`${base}?method=PUT&retryDelayMs=1`, { a: 1 })).to.deep.equal({ ok: 3 });
    expect(b.hits).to.have.length(3);
    const post = (await e.request(`${base}?method=POST&retryDelayMs=1`, { a: 1 }).catch((x: BusbarError) => x)) as BusbarError;
    expect(post.code).to.equal('BUSBAR_ERR_HTTP_SERVER_ERROR');
    expect(b.hits).to.have.length(4);
    expect(await e.request(`${base}?method=POST&retryDelayMs=1&idempotencyKey={id}`, { a: 1 })).to.deep.equal({ ok: 6 });
    const keys = b.hits.slice(4).map((h) => h.headers['idempotency-key']);
    expect(keys).to.have.length(2);
    expect(keys[0]).to.be.a('string').and.equal(keys[1]);
  });

  it('refuses a response larger than maxBodyBytes', async () => {
    b = await backend((_hit, _n, res) => json(res, 200, { big: 'x'.repeat(10_000) }));
    await e.start();
    const err = (await e.request(`http://127.0.0.1:${b.port}/big?method=GET&maxBodyBytes=1000`, undefined).catch((x: BusbarError) => x)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
  });

  it('is usable as a step in a route: a backend 404 becomes the route\'s 404', async () => {
    b = await backend((hit, _n, res) => (hit.url === '/items/1' ? json(res, 200, { id: 1, name: 'bolt' }) : json(res, 404, {})));
    e.addRoutes(from('direct:item').to(`http://127.0.0.1:${b.port}/items/{body}?method=GET`));
    await e.start();
    expect(await e.request('direct:item', 1)).to.deep.equal({ id: 1, name: 'bolt' });
    const err = (await e.request('direct:item', 2).catch((x: BusbarError) => x)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_HTTP_CLIENT_ERROR');
    expect(err.details.status).to.equal(404);
  });

  it('rejects a client endpoint that is not a URL when the route is added', () => {
    expect(() => e.addRoutes(from('direct:b').to('http:/relative'))).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
  });
});
