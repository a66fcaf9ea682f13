import { expect } from 'chai';
import { BusbarError, Engine, from, pipe, to } from '../../lib/index.js';
import { testLogger } from '../helpers.js';

interface Order { id: number; amount: number; country: string }

describe('typed route builder', () => {
  let engine: Engine;
  afterEach(async () => {
    await engine.stop();
  });

  it('flows the body through unmarshal, transform, filter, setHeader and marshal', async () => {
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes(
      from<string>('direct:in')
        .unmarshal<Order>('json')
        .filter((o) => o.amount > 0)
        .transform((o) => ({ ...o, total: Math.round(o.amount * 121) / 100 }))
        .setHeader('country', (o) => o.country)
        .marshal('json')
        .to('mock:out'),
    );
    await engine.start();
    await engine.send('direct:in', JSON.stringify({ id: 1, amount: 100, country: 'NL' }));
    await engine.send('direct:in', JSON.stringify({ id: 2, amount: 0, country: 'NL' }));
    const mock = engine.mock('mock:out');
    mock.expectBodies([JSON.stringify({ id: 1, amount: 100, country: 'NL', total: 121 })]);
    await mock.satisfied({ timeoutMs: 1000 });
    expect(mock.received[0]!.headers).to.include({ country: 'NL', 'content-type': 'application/json' });
  });

  it('routes by content: first matching branch wins, then the route goes on', async () => {
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes(
      from<Order>('direct:in')
        .choice((c) =>
          c
            .when((o) => o.amount > 400, to('mock:big'))
            .when((o) => o.country === 'NL', (b) => b.setHeader('domestic', true).to('mock:nl'))
            .otherwise(to('mock:other')),
        )
        .to('mock:all'),
    );
    await engine.start();
    for (const o of [{ id: 1, amount: 500, country: 'NL' }, { id: 2, amount: 10, country: 'NL' }, { id: 3, amount: 10, country: 'DE' }]) await engine.send('direct:in', o);
    expect(engine.mock('mock:big').bodies.map((o) => (o as Order).id)).to.deep.equal([1]);
    expect(engine.mock('mock:nl').bodies.map((o) => (o as Order).id)).to.deep.equal([2]);
    expect(engine.mock('mock:nl').received[0]!.headers.domestic).to.equal(true);
    expect(engine.mock('mock:other').bodies.map((o) => (o as Order).id)).to.deep.equal([3]);
    expect(engine.mock('mock:all').received).to.have.length(3);
  });

  it('makes a message that matches no branch and has no otherwise an error, unless told to continue', async () => {
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes(
      from<Order>('direct:strict').choice((c) => c.when((o) => o.amount > 400, to('mock:big'))),
      from<Order>('direct:lenient').choice((c) => c.when((o) => o.amount > 400, to('mock:big')).onNoMatch('continue')).to('mock:after'),
    );
    await engine.start();
    let err: BusbarError | undefined;
    await engine.send('direct:strict', { id: 1, amount: 1, country: 'NL' }).catch((e: BusbarError) => (err = e));
    expect(err?.code).to.equal('BUSBAR_ERR_NO_MATCH');
    expect(err?.details.routeId).to.equal('route-1');
    await engine.send('direct:lenient', { id: 2, amount: 1, country: 'NL' });
    expect(engine.mock('mock:after').received).to.have.length(1);
  });

  it('returns the end of the route as the reply of a request, through direct: hops', async () => {
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes(
      from<number>('direct:double').transform((n) => n * 2),
      from<number>('direct:calc').to<number>('direct:double').transform((n) => n + 1),
    );
    await engine.start();
    expect(await engine.request<number>('direct:calc', 20)).to.equal(41);
  });

  it('wraps an exception thrown by user code with route and step, keeping the original as cause', async () => {
    engine = new Engine({ logger: testLogger() });
    const boom = new TypeError('bad order');
    engine.addRoutes(from<Order>('direct:in').routeId('orders').transform(() => { throw boom; }));
    await engine.start();
    const err = (await engine.request('direct:in', {}).catch((e: unknown) => e)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(err.details).to.include({ routeId: 'orders', step: '/steps/0 (transform)' });
    expect(err.cause).to.equal(boom);
    expect((err.cause as Error).stack).to.contain('builder.spec.ts');
  });

  it('builds reusable fragments with pipe()', () => {
    const f = pipe<Order>().filter((o) => o.amount > 1).to('mock:x');
    expect(f.steps.map((s) => s.kind)).to.deep.equal(['filter', 'to']);
    expect(() => f.toDefinition('x')).to.throw(BusbarError).with.property('code', 'BUSBAR_ERR_INVALID_ROUTE');
  });

  it('records message history when asked', async () => {
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes(from<number>('direct:h').history().transform((n) => n + 1).to('mock:h'));
    await engine.start();
    await engine.send('direct:h', 1);
    const history = engine.mock('mock:h').received[0]!.headers['busbar.history'] as string[];
    expect(history).to.have.length(2);
    expect(history[0]).to.match(/^\/steps\/0 transform \d{4}-/);
    expect(history[1]).to.match(/^\/steps\/1 to /);
  });
});
