import { expect } from 'chai';
import { connect } from 'node:net';
import { createServer } from 'node:http';
import { Engine, from, BusbarError, type Message } from '../../../lib/index.js';
import { httpAdapter, createHttpAdapter } from '../../../adapters/http/index.js';
import { systemClock, type Clock } from '../../../lib/clock.js';
import { latch, testLogger, waitFor } from '../../helpers.js';
import { call, portOf } from './helpers.js';

function engine(adapter = httpAdapter): Engine {
  return new Engine({ logger: testLogger(), adapters: [adapter] });
}

describe('http adapter: server (REST)', () => {
  let e: Engine;
  afterEach(async () => {
    await e?.stop({ timeoutMs: 2000 });
  });

  it('routes by method and path, with path parameters, query and headers on the message', async () => {
    e = engine();
    e.addRoutes(
      from('http:/orders/:id/items/:item?port=0&method=GET').transform((_b, m) => ({
        id: m.headers['http.param.id'],
        item: m.headers['http.param.item'],
        tags: m.headers['http.query.tag'],
        limit: m.headers['http.query.limit'],
        agent: m.headers['http.header.x-client'],
        method: m.headers['http.method'],
      })),
    );
    await e.start();
    const r = await call(portOf(e), 'GET', '/orders/a%20b/items/42?tag=x&tag=y&limit=5', undefined, { 'x-client': 'spec' });
    expect(r.status).to.equal(200);
    expect(r.headers['content-type']).to.match(/^application\/json/);
    expect(r.json()).to.deep.equal({ id: 'a b', item: '42', tags: ['x', 'y'], limit: '5', agent: 'spec', method: 'GET' });
  });

  it('shares one server between routes: 404 for unknown paths, 405 with Allow for other methods, literal segments win', async () => {
    e = engine();
    e.addRoutes(
      from('http:/orders/:id?port=0&method=GET').transform(() => 'by id'),
      from('http:/orders/new?port=0&method=GET').transform(() => 'new form'),
      from('http:/orders?port=0&method=POST').transform((b) => ({ created: b })),
    );
    await e.start();
    const port = portOf(e);
    expect((await call(port, 'GET', '/orders/new')).text).to.equal('new form');
    expect((await call(port, 'GET', '/orders/9')).text).to.equal('by id');
    const created = await call(port, 'POST', '/orders', JSON.stringify({ a: 1 }), { 'content-type': 'application/json' });
    expect(created.json()).to.deep.equal({ created: { a: 1 } });
    const missing = await call(port, 'GET', '/nothing');
    expect(missing.status).to.equal(404);
    expect((missing.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_NOT_FOUND');
    const wrong = await call(port, 'DELETE', '/orders');
    expect(wrong.status).to.equal(405);
    expect(wrong.headers.allow).to.equal('POST');
  });

  it('negotiates the reply format (JSON, XML, 406) and decodes XML request bodies', async () => {
    e = engine();
    e.addRoutes(from<Record<string, unknown>>('http:/echo?port=0').transform((b) => ({ order: { got: b ?? null } })));
    await e.start();
    const port = portOf(e);
    const xml = await call(port, 'POST', '/echo', '<order><id>7</id></order>', { 'content-type': 'application/xml', accept: 'application/xml' });
    expect(xml.status).to.equal(200);
    expect(xml.headers['content-type']).to.match(/^application\/xml/);
    expect(xml.text).to.contain('<order><got><order><id>7</id></order></got></order>');
    const json = await call(port, 'POST', '/echo', '{"id":7}', { 'content-type': 'application/json', accept: 'text/html;q=0.5, application/json' });
    expect(json.json()).to.deep.equal({ order: { got: { id: 7 } } });
    // the endpoint remembers the last content type's format: a change back is decoded as what it is
    for (const id of [8, 9]) {
      const again = await call(port, 'POST', '/echo', `<order><id>${id}</id></order>`, { 'content-type': 'application/xml', accept: 'application/xml' });
      expect(again.text).to.contain(`<order><got><order><id>${id}</id></order></got></order>`);
    }
    expect((await call(port, 'POST', '/echo', '{"id":10}', { 'content-type': 'application/json' })).json()).to.deep.equal({ order: { got: { id: 10 } } });
    expect((await call(port, 'POST', '/echo', 'plain words', { 'content-type': 'text/plain' })).json()).to.deep.equal({ order: { got: 'plain words' } });
    const none = await call(port, 'GET', '/echo', undefined, { accept: 'image/png' });
    expect(none.status).to.equal(406);
  });

  it('maps busbar errors to statuses, lists validation problems, never sends a stack trace', async () => {
    e = engine();
    e.addRoutes(
      from('http:/invalid?port=0').process(() => {
        throw new BusbarError('VALIDATION_FAILED', 'order is invalid', { details: { problems: [{ path: '/amount', message: 'must be >= 0' }] } });
      }),
      from('http:/missing?port=0').process(() => {
        throw new BusbarError('NOT_FOUND', 'order 9 does not exist');
      }),
      from('http:/bug?port=0').process(() => {
        throw new TypeError('cannot read properties of undefined');
      }),
      from('http:/slow?port=0&timeoutMs=50').process(async (m) => {
        await new Promise((r) => setTimeout(r, 400));
        return m;
      }),
      from('http:/backend?port=0').process(() => {
        throw new BusbarError('HTTP_NETWORK', 'GET http://backend/: ECONNREFUSED');
      }),
    );
    await e.start();
    const port = portOf(e);
    const invalid = await call(port, 'POST', '/invalid', '{}', { 'content-type': 'application/json' });
    expect(invalid.status).to.equal(422);
    const body = invalid.json() as { error: { code: string; problems: Array<{ path: string }> } };
    expect(body.error.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    expect(body.error.problems[0]!.path).to.equal('/amount');
    expect((await call(port, 'GET', '/missing')).status).to.equal(404);
    const bug = await call(port, 'GET', '/bug');
    expect(bug.status).to.equal(500);
    expect((bug.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(bug.text).not.to.match(/\n\s+at /);
    expect(bug.text).not.to.contain('.ts:');
    const slow = await call(port, 'GET', '/slow');
    expect(slow.status).to.equal(504);
    expect((slow.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_TIMEOUT');
    expect((await call(port, 'GET', '/backend')).status).to.equal(502);
  });

  it('answers 400 for malformed JSON and XML bodies, with the PARSE code', async () => {
    e = engine();
    e.addRoutes(from('http:/in?port=0').transform(() => 'ok'));
    await e.start();
    const port = portOf(e);
    const badJson = await call(port, 'POST', '/in', '{"a":', { 'content-type': 'application/json' });
    expect(badJson.status).to.equal(400);
    expect((badJson.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_PARSE');
    const badXml = await call(port, 'POST', '/in', '<a><b></a>', { 'content-type': 'application/xml' });
    expect(badXml.status).to.equal(400);
    expect((badXml.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_PARSE');
    const bomb = await call(port, 'POST', '/in', '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', { 'content-type': 'application/xml' });
    expect(bomb.status).to.equal(400);
    expect((bomb.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_XML_ENTITY_FORBIDDEN');
  });

  it('sets the status and headers a route asks for, and 204 for no body', async () => {
    e = engine();
    e.addRoutes(
      from('http:/orders?port=0&method=POST').process((m: Message) => ({
        ...m,
        body: { id: 'o-1' },
        headers: { ...m.headers, 'http.reply.status': 201, 'http.reply.header.location': '/orders/o-1', 'http.reply.header.transfer-encoding': 'evil' },
      })),
      from('http:/orders/:id?port=0&method=DELETE').transform(() => undefined),
    );
    await e.start();
    const port = portOf(e);
    const r = await call(port, 'POST', '/orders', '{}', { 'content-type': 'application/json', 'x-correlation-id': 'corr-7' });
    expect(r.status).to.equal(201);
    expect(r.headers.location).to.equal('/orders/o-1');
    expect(r.headers['x-correlation-id']).to.equal('corr-7');
    expect(r.headers['transfer-encoding']).to.equal(undefined);
    const deleted = await call(port, 'DELETE', '/orders/o-1', undefined, { 'x-correlation-id': 'corr-8' });
    expect(deleted.status).to.equal(204);
    expect(deleted.headers['x-correlation-id']).to.equal('corr-8');
  });

  it('answers a route that finished synchronously at once, with no time-limit timer; an asynchronous one gets its time limit', async () => {
    // timers of the endpoints' time limit (timeoutMs=7777) on the engine's clock
    let limits = 0;
    const clock: Clock = { ...systemClock, setTimeout: (fn, ms) => (ms === 7777 && limits++, systemClock.setTimeout(fn, ms)) };
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter], clock });
    e.addRoutes(
      from<{ n: number }>('http:/sync?port=0&method=POST&timeoutMs=7777').transform((b) => ({ n: b.n + 1 })),
      from('http:/bad-reply?port=0&format=text&timeoutMs=7777').transform(() => ({ not: 'text' })),
      from('http:/async?port=0&timeoutMs=7777').process(async (m) => m),
    );
    await e.start();
    const port = portOf(e);
    for (let i = 0; i < 5; i++) {
      const r = await call(port, 'POST', '/sync', JSON.stringify({ n: i }), { 'content-type': 'application/json', 'x-correlation-id': `c-${i}` });
      expect(r.status).to.equal(200);
      expect(r.json()).to.deep.equal({ n: i + 1 });
      expect(r.headers['x-correlation-id']).to.equal(`c-${i}`);
    }
    // a reply that cannot be written in the synchronous path is still that request's failure, answered
    const bad = await call(port, 'GET', '/bad-reply');
    expect(bad.status).to.equal(500);
    expect((bad.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_ENCODE');
    expect(limits).to.equal(0);
    expect((await call(port, 'GET', '/async')).status).to.equal(204);
    expect(limits).to.equal(1);
  });

  it('refuses bodies over maxBodyBytes with 413 (declared or streamed)', async () => {
    e = engine();
    e.addRoutes(from('http:/upload?port=0&maxBodyBytes=1000').transform((b) => ({ size: String(b).length })));
    await e.start();
    const port = portOf(e);
    const declared = await call(port, 'POST', '/upload', 'x'.repeat(5000), { 'content-type': 'text/plain' });
    expect(declared.status).to.equal(413);
    expect((declared.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
    const streamed = await new Promise<number>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        s.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n');
        for (let i = 0; i < 5; i++) s.write(`3e8\r\n${'y'.repeat(1000)}\r\n`);
        s.write('0\r\n\r\n');
      });
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        const m = /^HTTP\/1\.1 (\d+)/.exec(buf);
        if (m) {
          resolve(Number(m[1]));
          s.destroy();
        }
      });
      s.on('error', reject);
      s.setTimeout(3000, () => reject(new Error('no answer')));
    });
    expect(streamed).to.equal(413);
    expect((await call(port, 'POST', '/upload', 'small', { 'content-type': 'text/plain' })).json()).to.deep.equal({ size: 5 });
  });

  it('refuses oversized headers (431) and slow clients (408)', async () => {
    e = engine(createHttpAdapter({ maxHeaderBytes: 2048, headersTimeoutMs: 300, requestTimeoutMs: 600 }));
    e.addRoutes(from('http:/x?port=0').transform(() => 'ok'));
    await e.start();
    const port = portOf(e);
    const big = await call(port, 'GET', '/x', undefined, { 'x-big': 'z'.repeat(4000) }).catch((err: Error) => err);
    expect(big instanceof Error ? 'closed' : big.status).to.be.oneOf([431, 'closed']);
    if (!(big instanceof Error)) expect(big.status).to.equal(431);
    // slowloris: headers that never finish
    const answer = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write('GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n'));
      let buf = '';
      s.on('data', (d) => (buf += d.toString()));
      s.on('close', () => resolve(buf || 'closed'));
      s.on('error', () => resolve(buf || 'closed'));
      s.setTimeout(5000, () => {
        resolve('still open');
        s.destroy();
      });
    });
    expect(answer).not.to.equal('still open');
    if (answer !== 'closed') expect(answer).to.match(/^HTTP\/1\.1 408/);
  });

  it('drops a client that stops reading its response (idleTimeoutMs)', async () => {
    e = engine(createHttpAdapter({ idleTimeoutMs: 300 }));
    e.addRoutes(from('http:/big?port=0').transform(() => 'x'.repeat(16 * 1024 * 1024)));
    await e.start();
    const port = portOf(e);
    const size = 16 * 1024 * 1024;
    const received = await new Promise<number>((resolve) => {
      let bytes = 0;
      const s = connect(port, '127.0.0.1', () => {
        s.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
        s.pause(); // never read: the server's writes stall once the socket buffers are full
        // long past idleTimeoutMs, read what is left: a dropped connection ends short
        setTimeout(() => s.resume(), 1500);
      });
      s.on('data', (d: Buffer) => (bytes += d.length));
      s.on('close', () => resolve(bytes));
      s.on('error', () => undefined);
      setTimeout(() => {
        resolve(Number.POSITIVE_INFINITY);
        s.destroy();
      }, 10_000).unref();
    });
    expect(received).to.be.below(size);
    expect(e.stats().routes['route-1']!.completed).to.equal(1);
  });

  it('keeps a connection that goes on working past idleTimeoutMs, and closes it once it falls silent', async () => {
    e = engine(createHttpAdapter({ idleTimeoutMs: 200 }));
    e.addRoutes(from('http:/ping?port=0').transform(() => 'pong'));
    await e.start();
    const port = portOf(e);
    // one keep-alive connection, a request every 50 ms for 700 ms: never silent for 200 ms
    const s = connect(port, '127.0.0.1');
    let text = '';
    let closedAt = 0;
    s.on('data', (d: Buffer) => (text += d.toString()));
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve(void (closedAt = Date.now()))));
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    for (let i = 0; i < 14; i++) {
      s.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(closedAt, 'closed while in use').to.equal(0);
    expect(text.match(/pong/g)?.length).to.equal(14);
    // then silent: closed after about idleTimeoutMs (the sweep runs every quarter of it)
    const silentFrom = Date.now();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
    expect(closedAt, 'still open long after idleTimeoutMs').to.be.above(0);
    expect(closedAt - silentFrom).to.be.within(100, 1500);
  });

  it('answers 503 with Retry-After when the route is full', async () => {
    e = engine();
    const g = latch();
    e.addRoutes(
      from('http:/busy?port=0&retryAfterS=3')
        .maxInflight(1)
        .process(async (m) => {
          await g.wait;
          return m;
        }),
    );
    await e.start();
    const port = portOf(e);
    const first = call(port, 'POST', '/busy', 'a', { 'content-type': 'text/plain' });
    await waitFor(() => e.stats().routes['route-1']!.inflight === 1, 3000, 'first request in flight');
    const second = await call(port, 'POST', '/busy', 'b', { 'content-type': 'text/plain' });
    expect(second.status).to.equal(503);
    expect(second.headers['retry-after']).to.equal('3');
    g.open();
    expect((await first).status).to.equal(200);
  });

  it('stops gracefully: the request in progress gets its reply, then the port is closed', async () => {
    e = engine();
    const g = latch();
    e.addRoutes(
      from('http:/work?port=0').process(async (m) => {
        await g.wait;
        return { ...m, body: 'finished' };
      }),
    );
    await e.start();
    const port = portOf(e);
    const pending = call(port, 'GET', '/work');
    await waitFor(() => e.stats().routes['route-1']!.inflight === 1, 3000, 'request in flight');
    const stopping = e.stop({ timeoutMs: 3000 });
    await new Promise((r) => setTimeout(r, 50));
    g.open();
    const r = await pending;
    expect(r.status).to.equal(200);
    expect(r.text).to.equal('finished');
    const report = await stopping;
    expect(report.timedOut).to.equal(false);
    const after = await call(port, 'GET', '/work').catch((err: NodeJS.ErrnoException) => err.code);
    expect(after).to.equal('ECONNREFUSED');
  });

  it('serves again on the same port after a stop and a start; GET routes answer HEAD without a body', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    e = engine();
    e.addRoutes(from(`http:/ping?port=${port}&method=GET`).transform(() => ({ pong: true })));
    await e.start();
    expect((await call(port, 'GET', '/ping')).json()).to.deep.equal({ pong: true });
    await e.stop();
    expect(await call(port, 'GET', '/ping').catch((err: NodeJS.ErrnoException) => err.code)).to.equal('ECONNREFUSED');
    await e.start();
    const head = await call(port, 'HEAD', '/ping');
    expect(head.status).to.equal(200);
    expect(head.text).to.equal('');
    expect(head.headers['content-type']).to.match(/^application\/json/);
  });

  it('rejects bad endpoints when routes are added and clashes when they start', async () => {
    e = engine();
    expect(() => e.addRoutes(from('http:/x?prot=8080'))).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
    expect(() => e.addRoutes(from('http://127.0.0.1:8080/x'))).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
    e.addRoutes(from('http:/same?port=0&method=GET').transform(() => 1), from('http:/same?port=0').transform(() => 2));
    const err = await e.start().catch((x: BusbarError) => x);
    expect(err).to.have.property('code', 'BUSBAR_ERR_ROUTE_START_FAILED');
    expect((err as BusbarError).cause).to.have.property('code', 'BUSBAR_ERR_HTTP_ROUTE');
  });

  it('fails to start with HTTP_ROUTE when the port is taken', async () => {
    const other = createServer();
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as { port: number }).port;
    try {
      e = engine();
      e.addRoutes(from(`http:/x?port=${port}`).transform(() => 1));
      const err = await e.start().catch((x: BusbarError) => x);
      expect((err as BusbarError).cause).to.have.property('code', 'BUSBAR_ERR_HTTP_ROUTE');
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('rejects a bad adapter configuration with INVALID_OPTION', () => {
    expect(() => createHttpAdapter({ maxHeaderBytes: 10 })).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
  });
});
