import { expect } from 'chai';
import { from, to, withBody } from '../../../lib/index.js';
import { FakeClock, settle, testEngine } from '../../../lib/testing.js';
import { SCATTER_HEADERS, WIRE_TAP_HEADER, DYNAMIC_ROUTER_HOP_HEADER } from '../../../lib/steps/patterns/routing.js';

function failure(p: Promise<unknown>): Promise<{ code?: string; details?: Record<string, unknown> }> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as { code?: string; details?: Record<string, unknown> },
  );
}

describe('patterns: content-based router (choice)', () => {
  it('first match wins; no match without otherwise is NO_MATCH, unless the route says continue', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<number>('direct:strict').choice((c) => c.when((n) => n > 10, to('mock:big')).when((n) => n > 5, to('mock:medium'))),
      from<number>('direct:lenient').choice((c) => c.when((n) => n > 10, to('mock:big')).onNoMatch('continue')).to('mock:rest'),
    );
    await engine.start();
    await engine.send('direct:strict', 20);
    await engine.send('direct:strict', 7);
    expect(engine.mock('mock:big').bodies).to.deep.equal([20]);
    expect(engine.mock('mock:medium').bodies).to.deep.equal([7]);
    expect((await failure(engine.send('direct:strict', 1))).code).to.equal('BUSBAR_ERR_NO_MATCH');
    await engine.send('direct:lenient', 1);
    expect(engine.mock('mock:rest').bodies).to.deep.equal([1]);
    await engine.stop();
  });
});

describe('patterns: recipient list', () => {
  it('sends to a static list, in order, and the message goes on unchanged', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').recipientList(['mock:a', 'mock:b']).to('mock:after'));
    await engine.start();
    engine.mock('mock:a').whenReceived((m) => withBody(m, 'reply-a'));
    await engine.send('direct:in', 'x');
    expect(engine.mock('mock:a').bodies).to.deep.equal(['x']);
    expect(engine.mock('mock:b').bodies).to.deep.equal(['x']);
    expect(engine.mock('mock:after').bodies).to.deep.equal(['x']);
    await engine.stop();
  });

  it('computes recipients per message (array or comma-separated) and combines replies on request', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<{ to: string }>('direct:in')
        .recipientList<unknown[]>((b) => b.to, { parallel: true, strategy: 'array' })
        .to('mock:after'),
    );
    await engine.start();
    engine.mock('mock:x').whenReceived((m) => withBody(m, 'X'));
    engine.mock('mock:y').whenReceived((m) => withBody(m, 'Y'));
    await engine.send('direct:in', { to: 'mock:x, mock:y' });
    expect(engine.mock('mock:after').bodies).to.deep.equal([['X', 'Y']]);
    await engine.stop();
  });

  it('a computed URI with an unknown scheme fails with UNKNOWN_SCHEME and is dead-lettered', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<string>('direct:in').deadLetter('mock:dlq').recipientList((b) => [b]));
    await engine.start();
    const err = await failure(engine.send('direct:in', 'nosuch:thing'));
    expect(err.code).to.equal('BUSBAR_ERR_UNKNOWN_SCHEME');
    expect(engine.mock('mock:dlq').received[0]!.headers['busbar.error.code']).to.equal('BUSBAR_ERR_UNKNOWN_SCHEME');
    await engine.stop();
  });

  it('a wrong static URI fails when the route is added', () => {
    const { engine } = testEngine();
    expect(() => engine.addRoutes(from('direct:in').recipientList(['mock:a', 'mokc:b']))).to.throw().with.property('code', 'BUSBAR_ERR_UNKNOWN_SCHEME');
  });

  it('sequential: stops at the first failing recipient, naming the branch', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').recipientList(['mock:a', 'mock:b', 'mock:c']));
    await engine.start();
    engine.mock('mock:b').whenReceived(() => {
      throw new Error('b is down');
    });
    const err = await failure(engine.send('direct:in', 1));
    expect(err.details?.branch).to.equal(1);
    expect(engine.mock('mock:c').received).to.have.length(0);
    await engine.stop();
  });

  it('config form with an expression', async () => {
    const { engine } = testEngine();
    engine.addRoutes({ routes: [{ from: 'direct:in', steps: [{ recipientList: { expr: 'targets' } }] }] });
    await engine.start();
    await engine.send('direct:in', { targets: ['mock:c1', 'mock:c2'] });
    expect(engine.mock('mock:c1').received).to.have.length(1);
    expect(engine.mock('mock:c2').received).to.have.length(1);
    await engine.stop();
  });
});

describe('patterns: multicast', () => {
  it('each branch gets its own copy; replies combined into an array in branch order', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<{ n: number; tags: string[] }>('direct:in')
        .multicast([
          (b) =>
            b.process((m) => {
              m.body.tags.push('mutated by branch 0'); // a misbehaving branch
              return m;
            }).transform((o) => o.tags.length),
          (b) => b.transform((o) => o.tags.length),
        ], { parallel: true })
        .to('mock:out'),
    );
    await engine.start();
    await engine.send('direct:in', { n: 1, tags: ['a'] });
    expect(engine.mock('mock:out').bodies).to.deep.equal([[2, 1]]);
    await engine.stop();
  });

  it('sequential multicast with a custom strategy; a failing branch fails the message with its index', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<number>('direct:in')
        .multicast<number>([(b) => b.transform((n) => n + 1), (b) => b.transform((n) => n * 10)], { strategy: (replies) => replies.reduce((a, r) => a + (r.body as number), 0) })
        .to('mock:out'),
      from<number>('direct:bad').multicast([(b) => b.to('mock:ok'), (b) => b.transform(() => { throw new Error('no'); })]),
    );
    await engine.start();
    await engine.send('direct:in', 2);
    expect(engine.mock('mock:out').bodies).to.deep.equal([23]);
    const err = await failure(engine.send('direct:bad', 1));
    expect(err.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(err.details?.branch).to.equal(1);
    await engine.stop();
  });

  it('config form', async () => {
    const { engine } = testEngine();
    engine.addRoutes({ routes: [{ from: 'direct:in', steps: [{ multicast: { branches: [[{ transform: '$ * 2' }], [{ transform: '$ + 1' }]], strategy: 'array' } }, { to: 'mock:out' }] }] });
    await engine.start();
    await engine.send('direct:in', 5);
    expect(engine.mock('mock:out').bodies).to.deep.equal([[10, 6]]);
    await engine.stop();
  });
});

describe('patterns: scatter-gather', () => {
  it('gathers every reply when all answer', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').scatterGather({ recipients: ['mock:q1', 'mock:q2'] }).to('mock:out'));
    await engine.start();
    engine.mock('mock:q1').whenReceived((m) => withBody(m, 1));
    engine.mock('mock:q2').whenReceived((m) => withBody(m, 2));
    await engine.send('direct:in', 'quote?');
    const out = engine.mock('mock:out').received[0]!;
    expect(out.body).to.deep.equal([1, 2]);
    expect(out.headers[SCATTER_HEADERS.replies]).to.equal(2);
    expect(out.headers[SCATTER_HEADERS.timedOut]).to.equal(false);
    await engine.stop();
  });

  it('goes on with partial results after the timeout, and says what is missing (fake time)', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from('direct:in').scatterGather({ recipients: ['mock:fast', 'mock:slow?delayMs=10000', 'mock:broken'], timeoutMs: 1000 }).to('mock:out'));
    await engine.start();
    engine.mock('mock:fast').whenReceived((m) => withBody(m, 'fast'));
    engine.mock('mock:broken').whenReceived(() => {
      throw new Error('down');
    });
    const sent = engine.send('direct:in', 'q');
    await settle();
    await clock.tickAsync(1000);
    await sent;
    const out = engine.mock('mock:out').received[0]!;
    expect(out.body).to.deep.equal(['fast']);
    expect(out.headers[SCATTER_HEADERS.timedOut]).to.equal(true);
    expect(out.headers[SCATTER_HEADERS.failed]).to.equal(1);
    expect(out.headers[SCATTER_HEADERS.errors]).to.deep.equal(['BUSBAR_ERR_STEP_FAILED']);
    await clock.runAllAsync();
    await engine.stop();
  });

  it('fails with NO_REPLIES when fewer replies than minReplies arrive', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').scatterGather({ branches: [(b) => b.transform(() => { throw new Error('x'); })], minReplies: 1 }));
    await engine.start();
    expect((await failure(engine.send('direct:in', 1))).code).to.equal('BUSBAR_ERR_NO_REPLIES');
    await engine.stop();
  });
});

describe('patterns: wire tap', () => {
  it('a copy goes to the tap; the main flow is unaffected, even when the tap fails (the tap failure goes to the dead letter)', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<{ v: number }>('direct:in').deadLetter('mock:dlq').wireTap('mock:tap').transform((b) => ({ v: b.v + 1 })).to('mock:main'));
    await engine.start();
    engine.mock('mock:tap').whenReceived((m) => {
      (m.body as { v: number }).v = 999; // cannot reach the main flow's body
      throw new Error('tap down');
    });
    const reply = await engine.request('direct:in', { v: 1 });
    expect(reply).to.deep.equal({ v: 2 });
    expect(engine.mock('mock:main').bodies).to.deep.equal([{ v: 2 }]);
    const tap = engine.mock('mock:tap').received;
    expect(tap).to.have.length(1);
    expect(tap[0]!.headers[WIRE_TAP_HEADER]).to.equal('mock:tap');
    const dlq = engine.mock('mock:dlq');
    await dlq.expectCount(1).satisfied();
    expect(dlq.received[0]!.headers['busbar.error.message']).to.match(/tap down/);
    await engine.stop();
  });
});

describe('patterns: routing slip and dynamic router', () => {
  it('routing slip: through the endpoints of the header, in order, replies feeding the next', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').routingSlip().to('mock:out'), from<number>('direct:double').transform((n) => n * 2), from<number>('direct:inc').transform((n) => n + 1));
    await engine.start();
    await engine.send('direct:in', 5, { 'busbar.routingSlip': 'direct:double,direct:inc' });
    await engine.send('direct:in', 5, { 'busbar.routingSlip': ['direct:inc', 'direct:double'] });
    expect(engine.mock('mock:out').bodies).to.deep.equal([11, 12]);
    await engine.stop();
  });

  it('dynamic router: asks for the next hop until nothing is left; a loop hits LIMIT_EXCEEDED', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<number>('direct:in')
        .dynamicRouter((body, msg) => ((msg.headers[DYNAMIC_ROUTER_HOP_HEADER] as number) < 3 ? 'direct:inc' : undefined))
        .to('mock:out'),
      from<number>('direct:inc').transform((n) => n + 1),
      from('direct:loop').dynamicRouter(() => 'mock:again', { maxHops: 5 }),
    );
    await engine.start();
    await engine.send('direct:in', 0);
    expect(engine.mock('mock:out').bodies).to.deep.equal([3]);
    const err = await failure(engine.send('direct:loop', 0));
    expect(err.code).to.equal('BUSBAR_ERR_LIMIT_EXCEEDED');
    expect(engine.mock('mock:again').received).to.have.length(5);
    await engine.stop();
  });
});

describe('patterns: load balancer', () => {
  it('round robin, weighted (smooth), random over all targets', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from('direct:rr').loadBalance(['mock:r1', 'mock:r2', 'mock:r3']),
      from('direct:w').loadBalance(['mock:w1', 'mock:w2'], { strategy: 'weighted', weights: [3, 1] }),
      from('direct:rnd').loadBalance(['mock:x1', 'mock:x2'], { strategy: 'random' }),
    );
    await engine.start();
    for (let i = 0; i < 6; i++) await engine.send('direct:rr', i);
    for (let i = 0; i < 8; i++) await engine.send('direct:w', i);
    for (let i = 0; i < 200; i++) await engine.send('direct:rnd', i);
    expect(engine.mock('mock:r1').bodies).to.deep.equal([0, 3]);
    expect(engine.mock('mock:r2').bodies).to.deep.equal([1, 4]);
    expect(engine.mock('mock:r3').bodies).to.deep.equal([2, 5]);
    expect(engine.mock('mock:w1').received).to.have.length(6);
    expect(engine.mock('mock:w2').received).to.have.length(2);
    const x1 = engine.mock('mock:x1').received.length;
    expect(x1 + engine.mock('mock:x2').received.length).to.equal(200);
    expect(x1).to.be.within(1, 199); // 2^-199 chance of a false failure
    await engine.stop();
  });

  it('failover: tries the next target when one fails; all failing fails the message', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').loadBalance(['mock:p', 'mock:s'], { strategy: 'failover' }).to('mock:out'));
    await engine.start();
    engine.mock('mock:p').whenReceived(() => {
      throw new Error('primary down');
    });
    await engine.send('direct:in', 'a');
    expect(engine.mock('mock:s').bodies).to.deep.equal(['a']);
    expect(engine.mock('mock:out').bodies).to.deep.equal(['a']);
    engine.mock('mock:s').whenReceived(() => {
      throw new Error('secondary down');
    });
    const err = await failure(engine.send('direct:in', 'b'));
    expect(err.details?.failover).to.deep.equal(['mock:p', 'mock:s']);
    await engine.stop();
  });

  it('config form rejects weights that do not match the targets', () => {
    const { engine } = testEngine();
    const problems = engine.check({ routes: [{ id: 'lb', from: 'direct:in', steps: [{ loadBalance: { targets: ['mock:a', 'mock:b'], strategy: 'weighted', weights: [1] } }] }] });
    expect(problems.map((p) => p.path)).to.include('/routes/0/steps/0/loadBalance/weights');
  });
});

describe('patterns: throttler and delayer (fake time)', () => {
  it('throttle: at most max per period, the rest wait in order (nothing dropped)', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from('direct:in').throttle(2, 1000).to('mock:out'));
    await engine.start();
    const sends = [1, 2, 3, 4, 5].map((n) => engine.send('direct:in', n));
    await settle();
    const out = engine.mock('mock:out');
    expect(out.bodies).to.deep.equal([1, 2]);
    await clock.tickAsync(1000);
    expect(out.bodies).to.deep.equal([1, 2, 3, 4]);
    await clock.tickAsync(1000);
    await Promise.all(sends);
    expect(out.bodies).to.deep.equal([1, 2, 3, 4, 5]);
    await engine.stop();
  });

  it('delay: fixed and computed', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from<number>('direct:in').delay((n) => n).to('mock:out'));
    await engine.start();
    const a = engine.send('direct:in', 500);
    const b = engine.send('direct:in', 100);
    await settle();
    await clock.tickAsync(100);
    expect(engine.mock('mock:out').bodies).to.deep.equal([100]);
    await clock.tickAsync(400);
    await Promise.all([a, b]);
    expect(engine.mock('mock:out').bodies).to.deep.equal([100, 500]);
    const bad = await failure(engine.send('direct:in', -1));
    expect(bad.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    await engine.stop();
  });
});

