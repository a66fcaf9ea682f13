import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { createFileAdapter } from '../../adapters/file/index.js';
import { createHttpAdapter } from '../../adapters/http/index.js';
import { createMessage, Engine, from, pipe, type RouteBuilder } from '../../lib/index.js';
import { Broker, uniqueName } from '../adapters/amqp/amqp-helpers.js';
import { call, portOf } from '../adapters/http/helpers.js';
import { AMQP_URL, rejection, tempDir, testLogger, waitFor } from '../helpers.js';

/**
 * The exchange pattern belongs to the step: enrich, scatterGather and request ask their
 * amqp endpoints for an answer from whatever source the route has; `to` is one-way whatever
 * entered the route; a request expires on the broker when nobody waits for it any more.
 */
describe('exchange model: request-reply is a property of the step (real RabbitMQ)', function () {
  this.timeout(30_000);
  let broker: Broker;
  let engine: Engine;
  let dir: ReturnType<typeof tempDir>;

  beforeEach(async () => {
    broker = await Broker.open();
    dir = tempDir('busbar-exchange-');
  });
  afterEach(async () => {
    await engine?.stop();
    await broker.cleanup();
    dir.cleanup();
  });

  function newEngine(): Engine {
    engine = new Engine({ logger: testLogger(), adapters: [createAmqpAdapter({ url: AMQP_URL }), createHttpAdapter(), createFileAdapter()], stopTimeoutMs: 5000 });
    return engine;
  }

  /** Three services answering over amqp, and the flow every source runs: enrich, scatter-gather, request. */
  function services(e: Engine): (source: string) => RouteBuilder<unknown, unknown> {
    const [customers, priceA, priceB, total] = ['customers', 'price-a', 'price-b', 'total'].map((n) => broker.track('queue', uniqueName(n)));
    const json = '?bodyType=json';
    e.addRoutes(
      from<{ id: number }>(`amqp:queue:${customers}${json}`).transform((b) => ({ name: `customer-${b.id}` })),
      from<{ id: number }>(`amqp:queue:${priceA}${json}`).transform(() => ({ vendor: 'a', price: 10 })),
      from<{ id: number }>(`amqp:queue:${priceB}${json}`).transform(() => ({ vendor: 'b', price: 12 })),
      from<Array<{ price: number }>>(`amqp:queue:${total}${json}`).transform((offers) => ({ best: Math.min(...offers.map((o) => o.price)), offers: offers.length })),
    );
    return (source) =>
      from(source)
        .transform(() => ({ id: 7 }))
        .enrich(`amqp:queue:${customers}${json}`, { into: 'customer' })
        .setHeader('customer', (b) => (b as { customer?: { name?: string } }).customer?.name ?? 'none')
        .scatterGather({ recipients: [`amqp:queue:${priceA}${json}`, `amqp:queue:${priceB}${json}`], timeoutMs: 5000, minReplies: 2 })
        .request(`amqp:queue:${total}${json}`, { timeoutMs: 5000 })
        .to('mock:out') as unknown as RouteBuilder<unknown, unknown>;
  }

  const expected = { best: 10, offers: 2 };

  it('from every source kind (http, SOAP, file, timer, amqp, direct) enrich / scatterGather / request get the services\' answers', async () => {
    const e = newEngine();
    const flow = services(e);
    const src = broker.track('queue', uniqueName('src'));
    e.addRoutes(
      flow('http:/quote?port=0').routeId('http'),
      flow('http:/soap-quote?port=0&protocol=soap').routeId('soap'),
      flow(`file:${dir.path}`).routeId('file'),
      flow('timer:quote?repeatCount=1&delay=50').routeId('timer'),
      flow(`amqp:queue:${src}`).routeId('amqp'),
      flow('direct:quote').routeId('direct'),
    );
    await e.start();
    const mock = e.mock('mock:out');
    const port = portOf(e);
    const rest = await call(port, 'POST', '/quote', '{"q":1}', { 'content-type': 'application/json' });
    expect(rest.status).to.equal(200);
    expect(rest.json()).to.deep.equal(expected);
    const soap = await call(port, 'POST', '/soap-quote', '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Quote><q>1</q></Quote></soap:Body></soap:Envelope>', { 'content-type': 'text/xml; charset=utf-8', soapaction: '"Quote"' });
    expect(soap.status).to.equal(200);
    expect(soap.text).to.contain('<best>10</best>');
    writeFileSync(join(dir.path, 'order.txt'), 'q');
    await e.send(`amqp:queue:${src}`, 'q');
    expect(await e.request('direct:quote', 'q')).to.deep.equal(expected);
    await waitFor(() => mock.received.length >= 6, 15_000, 'six quotes');
    expect(mock.bodies).to.deep.equal(new Array(6).fill(expected));
    // the enricher's answer arrived, whatever the source
    expect(mock.received.map((m) => m.headers.customer)).to.deep.equal(new Array(6).fill('customer-7'));
  });

  it('to is one-way whatever entered the route: engine.request on a route ending in to(amqp) answers at once, the message carries no replyTo', async () => {
    const e = newEngine();
    const q = broker.track('queue', uniqueName('oneway'));
    e.addRoutes(from('direct:publish').to(`amqp:queue:${q}`));
    await e.start();
    const t0 = Date.now();
    // a caller's header cannot switch a later producer to request-reply either
    const reply = await e.requestMessage('direct:publish', createMessage('hello', { headers: { 'busbar.exchangePattern': 'InOut' } }));
    expect(Date.now() - t0).to.be.below(5000);
    expect(reply.body).to.equal('hello');
    const got = await broker.drain(q);
    expect(got).to.have.length(1);
    expect(got[0]!.properties.replyTo).to.equal(undefined);
    expect(got[0]!.content.toString()).to.equal('hello');
  });

  it('a request publishes with expiration = the reply timeout; a request nobody answers in time is not processed later', async () => {
    const e = newEngine();
    const nobody = broker.track('queue', uniqueName('nobody'));
    const peek = broker.track('queue', uniqueName('peek'));
    e.addRoutes(from('direct:ask').request(`amqp:queue:${nobody}`, { timeoutMs: 300 }), from('direct:peek').request(`amqp:queue:${peek}`, { timeoutMs: 2500 }));
    await e.start();
    const err = await rejection(e.send('direct:ask', 'late?'));
    expect(err.code).to.equal('BUSBAR_ERR_TIMEOUT');
    // the broker dropped the expired request: a service starting now never sees it
    await waitFor(async () => (await broker.queueCount(nobody)).messageCount === 0, 5000, 'the expired request to be dropped');
    const pending = e.send('direct:peek', 'x').catch((x: unknown) => x);
    let got: Awaited<ReturnType<Broker['drain']>> = [];
    await waitFor(async () => (got = await broker.drain(peek)).length > 0, 2000, 'the request on the queue');
    expect(got[0]!.properties.expiration).to.equal('2500');
    expect(String(got[0]!.properties.replyTo)).to.match(/^amq\.rabbitmq\.reply-to/);
    expect(((await pending) as { code?: string }).code).to.equal('BUSBAR_ERR_TIMEOUT');
  });

  it('engine.request and stubs ask amqp for the answer with their own time limit', async () => {
    const e = newEngine();
    const q = broker.track('queue', uniqueName('upper'));
    e.addRoutes(from<string>(`amqp:queue:${q}`).transform((s) => s.toUpperCase()));
    await e.start();
    expect(await e.request(`amqp:queue:${q}`, 'abc', undefined, { timeoutMs: 3000 })).to.equal('ABC');
  });
});

describe('exchange model: in-memory channels', () => {
  function engine(): Engine {
    return new Engine({ logger: testLogger() });
  }

  it('an endpoint that cannot reply, asked for one, is REPLY_UNSUPPORTED when the route is created', () => {
    const cases: Array<[string, RouteBuilder<unknown, unknown>]> = [
      ['enrich', from('direct:a').enrich('queue:lookup')],
      ['request', from('direct:a').request('topic:prices')],
      ['scatterGather', from('direct:a').scatterGather({ recipients: ['direct:ok', 'log:x'] })],
      ['recipientList', from('direct:a').recipientList(['queue:x'], { strategy: 'array' })],
    ];
    for (const [what, route] of cases) {
      let code: string | undefined;
      try {
        engine().addRoutes(route);
      } catch (e) {
        code = (e as { code?: string }).code;
      }
      expect(code, what).to.equal('BUSBAR_ERR_REPLY_UNSUPPORTED');
    }
    // config form too, reported by check() with the step's path
    const problems = engine().check({ routes: [{ id: 'c', from: 'direct:a', steps: [{ to: 'mock:x' }, { request: 'queue:q' }] }] });
    expect(problems).to.have.length(1);
    expect(problems[0]!.path).to.equal('/routes/0/steps/1');
    expect(problems[0]!.message).to.contain('cannot reply');
    // one-way use of the same endpoints is fine
    engine().addRoutes(from('direct:a').to('queue:lookup').recipientList(['queue:x']));
  });

  it('engine.request to an endpoint that cannot reply is REPLY_UNSUPPORTED, not a silent echo', async () => {
    const e = engine();
    e.addRoutes(from('queue:work').to('mock:sink'));
    await e.start();
    const err = await rejection(e.request('queue:work', 1));
    expect(err.code).to.equal('BUSBAR_ERR_REPLY_UNSUPPORTED');
    await e.stop();
  });

  it('request(uri) from timer and queue sources uses the direct route\'s answer; to(direct) keeps its result too', async () => {
    const e = engine();
    e.addRoutes(
      from<number>('direct:double').transform((n) => n * 2),
      from('timer:t?repeatCount=1').transform(() => 21).request<number>('direct:double').to('mock:out'),
      from('queue:in').transform(() => 5).request<number>('direct:double').to('mock:out'),
    );
    await e.start();
    await e.send('queue:in', 'x');
    await waitFor(() => e.mock('mock:out').received.length === 2, 5000, 'two answers');
    expect([...e.mock('mock:out').bodies].sort()).to.deep.equal([10, 42]);
    await e.stop();
  });

  it('config form: { request: { uri, timeoutMs } } and enrich timeoutMs', async () => {
    const e = engine();
    e.addRoutes(
      { routes: [{ id: 'cfg', from: 'direct:in', steps: [{ request: { uri: 'direct:svc', timeoutMs: 1000 } }, { enrich: { uri: 'direct:svc', into: 'again', timeoutMs: 1000 } }] }] },
      from<unknown>('direct:svc').transform(() => ({ ok: true })),
    );
    await e.start();
    expect(await e.request('direct:in', {})).to.deep.equal({ ok: true, again: { ok: true } });
    await e.stop();
  });

  it('a pipe() fragment with request() works as a branch', async () => {
    const e = engine();
    e.addRoutes(from<number>('direct:svc').transform((n) => n + 1), from<number>('direct:in').multicast([pipe<number>().request('direct:svc'), pipe<number>().request('direct:svc')]));
    await e.start();
    expect(await e.request('direct:in', 1)).to.deep.equal([2, 2]);
    await e.stop();
  });
});
