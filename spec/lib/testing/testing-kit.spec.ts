import { expect } from 'chai';
import { from, to, type RouteConfig } from '../../../lib/index.js';
import { FakeClock, replaceEndpoints, settle, testEngine } from '../../../lib/testing.js';
import { sleep } from '../../../lib/clock.js';

describe('testing kit: FakeClock', () => {
  it('drives timers by hand and never touches the global timers', async () => {
    const clock = new FakeClock(1000);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 50);
    const h = clock.setTimeout(() => fired.push(-1), 60);
    clock.clearTimeout(h);
    const iv = clock.setInterval(() => fired.push(clock.now()), 100);
    expect(clock.pending()).to.equal(2);
    clock.tick(250);
    clock.clearInterval(iv);
    expect(fired).to.deep.equal([1050, 1100, 1200]);
    expect(clock.pending()).to.equal(0);
    // real time goes on as usual
    const before = Date.now();
    await new Promise((r) => setTimeout(r, 1));
    expect(Date.now()).to.be.at.least(before);
  });

  it('tickAsync lets promise chains run between timers (sleep, then another sleep)', async () => {
    const clock = new FakeClock();
    const steps: string[] = [];
    const work = (async () => {
      await sleep(clock, 100);
      steps.push('a');
      await sleep(clock, 100);
      steps.push('b');
    })();
    await clock.tickAsync(200);
    await work;
    expect(steps).to.deep.equal(['a', 'b']);
  });
});

describe('testing kit: replaceEndpoints (AdviceWith)', () => {
  it('swaps the source, destinations, dead letter and endpoints inside patterns of a builder route, keeping its settings', async () => {
    const { engine } = testEngine();
    const route = from<number>('amqp:queue:orders?prefetch=10')
      .routeId('orders')
      .deadLetter('amqp:queue:orders.dlq')
      .recipientList(['http://billing.example/api', 'amqp:queue:audit'])
      .choice((c) => c.when((n) => n > 5, to('amqp:queue:big')).otherwise(to('log:small')))
      .transform((n) => {
        if (n === 0) throw new Error('zero');
        return n;
      });
    engine.addRoutes(
      replaceEndpoints(route, {
        'amqp:queue:orders': 'direct:orders',
        'amqp:queue:orders.dlq': 'mock:dlq',
        'amqp:*': (uri) => `mock:${uri.slice('amqp:queue:'.length)}`,
        'http://billing.example/api': 'mock:billing',
        'log:small': 'mock:small',
      }),
    );
    expect(engine.routeIds()).to.deep.equal(['orders']);
    await engine.start();
    await engine.send('direct:orders', 9);
    await engine.send('direct:orders', 1);
    await engine.send('direct:orders', 0).catch(() => undefined);
    expect(engine.mock('mock:billing').bodies).to.deep.equal([9, 1, 0]);
    expect(engine.mock('mock:audit').bodies).to.deep.equal([9, 1, 0]);
    expect(engine.mock('mock:big').bodies).to.deep.equal([9]);
    expect(engine.mock('mock:small').bodies).to.deep.equal([1, 0]);
    expect(engine.mock('mock:dlq').bodies).to.deep.equal([0]);
    await engine.stop();
  });

  it('swaps endpoints of config routes without changing the original', async () => {
    const { engine } = testEngine();
    const config: RouteConfig = { id: 'c', from: 'file:inbox', steps: [{ multicast: { branches: [[{ to: 'amqp:queue:a' }], [{ to: 'direct:b' }]] } }], errorPolicy: { deadLetter: 'file:failed' } };
    const replaced = replaceEndpoints(config, { 'file:inbox': 'direct:in', 'amqp:queue:a': 'mock:a', 'direct:b': 'mock:b', 'file:failed': 'mock:failed' });
    expect(config.from).to.equal('file:inbox');
    engine.addRoutes(replaced);
    await engine.start();
    await engine.send('direct:in', 'x');
    expect(engine.mock('mock:a').bodies).to.deep.equal(['x']);
    expect(engine.mock('mock:b').bodies).to.deep.equal(['x']);
    await engine.stop();
  });

  it('keeps every route setting (in-flight bound, history, description)', async () => {
    const { engine } = testEngine();
    engine.addRoutes(replaceEndpoints(from<number>('amqp:queue:x').routeId('kept').maxInflight(3).history().description('d').to('amqp:queue:y'), { 'amqp:*': (u) => u.replace('amqp:queue:', 'direct:') }));
    expect(engine.stats().routes.kept!.maxInflight).to.equal(3);
    expect(engine.stats().routes.kept!.source.uri).to.equal('direct:x');
    engine.addRoutes(from('direct:y').to('mock:y'));
    await engine.start();
    await engine.send('direct:x', 1);
    expect(engine.mock('mock:y').received[0]!.headers['busbar.history']).to.have.length(1);
    await engine.stop();
  });

  it('a builder without an id stays without one (the engine assigns it)', () => {
    const { engine } = testEngine();
    engine.addRoutes(replaceEndpoints([from('amqp:queue:x').to('mock:y')], { 'amqp:queue:x': 'direct:x' }));
    expect(engine.routeIds()).to.have.length(1);
    expect(engine.routeIds()[0]).to.match(/^route-\d+$/);
  });
});

describe('testing kit: mock expectations with a test engine', () => {
  it('satisfied() passes when the expectations hold and fails with MOCK_ASSERTION otherwise', async () => {
    const { engine, clock } = testEngine();
    engine.addRoutes(from<number>('direct:in').delay(1000).to('mock:out'));
    await engine.start();
    const out = engine.mock('mock:out').expectBodies([1, 2]);
    const sends = [engine.send('direct:in', 1), engine.send('direct:in', 2)];
    await settle();
    await clock.tickAsync(1000);
    await Promise.all(sends);
    await out.satisfied();
    out.reset().expectBodies([3]);
    const err = await out.satisfied({ timeoutMs: 10 }).then(() => undefined, (e: unknown) => e);
    expect(err).to.have.property('code', 'BUSBAR_ERR_MOCK_ASSERTION');
    await engine.stop();
  });
});
