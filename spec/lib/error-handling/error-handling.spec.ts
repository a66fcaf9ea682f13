import { expect } from 'chai';
import { BusbarError, ERROR_HEADERS, ATTEMPT_HEADER, createMessage, from, shouldAck, to } from '../../../lib/index.js';
import { TestSource } from '../source-adapter.js';
import { CircuitBreaker } from '../../../lib/circuit-breaker.js';
import { patternState } from '../../../lib/steps/patterns/common.js';
import { CIRCUIT_HEADER } from '../../../lib/steps/patterns/resilience.js';
import { backoff } from '../../../lib/route.js';
import { FakeClock, settle, testEngine } from '../../../lib/testing.js';

function failure(p: Promise<unknown>): Promise<{ code?: string; details?: Record<string, unknown>; cause?: unknown; stack?: string }> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as { code?: string; details?: Record<string, unknown> },
  );
}

class PaymentDeclined extends Error {}

describe('error handling: route redelivery and dead letter', () => {
  it('redelivers with exponential backoff on the engine clock, the attempt in a header, then dead-letters the ORIGINAL message with the reason', async () => {
    const clock = new FakeClock(Date.UTC(2030, 0, 1));
    const { engine } = testEngine({ clock });
    const attempts: unknown[] = [];
    engine.addRoutes(
      from<string>('direct:in')
        .routeId('pay')
        .deadLetter('mock:dlq')
        .redelivery({ maxAttempts: 3, delayMs: 100, multiplier: 2 })
        .transform((s) => s.toUpperCase())
        .process((m) => {
          attempts.push(m.headers[ATTEMPT_HEADER] ?? 1);
          throw new Error('gateway down');
        }),
    );
    await engine.start();
    const sent = failure(engine.send('direct:in', 'order-1'));
    await settle();
    expect(attempts).to.deep.equal([1]);
    await clock.tickAsync(99);
    expect(attempts).to.deep.equal([1]);
    await clock.tickAsync(1);
    expect(attempts).to.deep.equal([1, 2]);
    await clock.tickAsync(200);
    expect(attempts).to.deep.equal([1, 2, 3]);
    const err = await sent;
    expect(err.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(err.details?.deadLettered).to.equal(true);
    const dead = engine.mock('mock:dlq').received;
    expect(dead).to.have.length(1);
    expect(dead[0]!.body).to.equal('order-1'); // not the upper-cased one
    expect(dead[0]!.headers[ERROR_HEADERS.code]).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(dead[0]!.headers[ERROR_HEADERS.step]).to.equal('/steps/1 (process)');
    expect(dead[0]!.headers[ERROR_HEADERS.routeId]).to.equal('pay');
    expect(dead[0]!.headers[ERROR_HEADERS.attempts]).to.equal(3);
    expect(dead[0]!.headers[ERROR_HEADERS.failedAt]).to.equal('2030-01-01T00:00:00.300Z');
    expect(engine.stats().routes.pay!.redelivered).to.equal(2);
    await engine.stop();
  });

  it('user errors keep their stack and class as cause, wrapped with route and step', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').routeId('r1').transform(function parseOrder() {
      throw new RangeError('amount out of range');
    }));
    await engine.start();
    const err = await failure(engine.send('direct:in', 1));
    expect(err.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(err.details).to.include({ routeId: 'r1', step: '/steps/0 (transform)' });
    expect(err.cause).to.be.instanceOf(RangeError);
    expect((err.cause as Error).stack).to.match(/parseOrder/);
    await engine.stop();
  });

  it('backoff: multiplier, cap and bounded jitter', () => {
    expect([1, 2, 3, 4].map((a) => backoff({ maxAttempts: 9, delayMs: 100, multiplier: 3, maxDelayMs: 1000 }, a))).to.deep.equal([100, 300, 900, 1000]);
    for (let i = 0; i < 50; i++) expect(backoff({ maxAttempts: 2, delayMs: 1000, jitter: 0.5 }, 1)).to.be.within(750, 1250);
  });

  it('non-retryable errors are not redelivered unless the policy says so', async () => {
    const { engine } = testEngine();
    let calls = 0;
    engine.addRoutes(from('direct:in').redelivery({ maxAttempts: 5 }).process(() => {
      calls++;
      throw new BusbarError('VALIDATION_FAILED', 'bad order');
    }));
    await engine.start();
    expect((await failure(engine.send('direct:in', 1))).code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    expect(calls).to.equal(1);
    await engine.stop();
  });
});

describe('error handling: policies by error code or class, per route and engine-wide', () => {
  it('engine-wide rules apply to every route; a route\'s own rules win', async () => {
    const { engine } = testEngine({
      errorPolicy: {
        deadLetter: 'mock:engine-dlq',
        on: [{ codes: ['BUSBAR_ERR_VALIDATION_FAILED'], deadLetter: 'mock:invalid' }, { codes: ['PaymentDeclined'], handled: true }],
      },
    });
    engine.addRoutes(
      from<string>('direct:a').process((m) => {
        if (m.body === 'invalid') throw new BusbarError('VALIDATION_FAILED', 'invalid');
        if (m.body === 'declined') throw new PaymentDeclined('declined');
        throw new Error('other');
      }),
      from('direct:b').onError('BUSBAR_ERR_VALIDATION_FAILED', { deadLetter: 'mock:b-invalid' }).process(() => {
        throw new BusbarError('VALIDATION_FAILED', 'invalid');
      }),
    );
    await engine.start();
    await failure(engine.send('direct:a', 'invalid'));
    await failure(engine.send('direct:a', 'other'));
    const declined = await failure(engine.send('direct:a', 'declined'));
    await failure(engine.send('direct:b', 'x'));
    expect(engine.mock('mock:invalid').received).to.have.length(1);
    expect(engine.mock('mock:engine-dlq').bodies).to.deep.equal(['other']);
    expect(declined.details?.handled).to.equal(true);
    expect(engine.mock('mock:b-invalid').received).to.have.length(1);
    await engine.stop();
  });

  it('code prefixes with * match a family of codes (config form)', async () => {
    const { engine } = testEngine();
    engine.addRoutes({
      routes: [{ from: 'direct:in', steps: [{ choice: { when: [{ if: 'false', steps: [] }] } }], errorPolicy: { on: [{ codes: ['BUSBAR_ERR_NO_*'], deadLetter: 'mock:nomatch' }] } }],
    });
    await engine.start();
    await failure(engine.send('direct:in', 1));
    expect(engine.mock('mock:nomatch').received[0]!.headers[ERROR_HEADERS.code]).to.equal('BUSBAR_ERR_NO_MATCH');
    await engine.stop();
  });
});

describe('error handling: step-level redelivery (retry)', () => {
  it('re-runs only the wrapped steps, with backoff and the attempt header; then the route goes on', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    let before = 0;
    let calls = 0;
    engine.addRoutes(
      from<number>('direct:in')
        .process((m) => {
          before++;
          return m;
        })
        .retry({ maxAttempts: 3, delayMs: 50 }, (b) =>
          b.process((m) => {
            calls++;
            if (calls < 3) throw new Error('flaky');
            return m;
          }).to('mock:call'),
        )
        .to('mock:after'),
    );
    await engine.start();
    const sent = engine.send('direct:in', 7);
    await settle();
    await clock.tickAsync(50);
    await clock.tickAsync(100);
    await sent;
    expect(before).to.equal(1);
    expect(calls).to.equal(3);
    expect(engine.mock('mock:call').received.map((m) => m.headers[ATTEMPT_HEADER])).to.deep.equal([3]);
    expect(engine.mock('mock:after').bodies).to.deep.equal([7]);
    await engine.stop();
  });

  it('attempts exhausted: the error goes to the route policy (dead letter) with stepAttempts; `on` limits what is retried', async () => {
    const { engine } = testEngine();
    let calls = 0;
    let other = 0;
    engine.addRoutes(
      from('direct:in').deadLetter('mock:dlq').retry({ maxAttempts: 2 }, (b) => b.process(() => {
        calls++;
        throw new Error('always');
      })),
      from('direct:only').retry({ maxAttempts: 5, on: ['BUSBAR_ERR_TIMEOUT'] }, (b) => b.process(() => {
        other++;
        throw new Error('not a timeout');
      })),
    );
    await engine.start();
    const err = await failure(engine.send('direct:in', 1));
    expect(calls).to.equal(2);
    expect(err.details?.stepAttempts).to.equal(2);
    expect(engine.mock('mock:dlq').received).to.have.length(1);
    await failure(engine.send('direct:only', 1));
    expect(other).to.equal(1);
    await engine.stop();
  });

  it('config form', async () => {
    const { engine } = testEngine();
    engine.addRoutes({ routes: [{ from: 'direct:in', steps: [{ retry: { maxAttempts: 3, steps: [{ to: 'mock:flaky' }] } }, { to: 'mock:out' }] }] });
    await engine.start();
    engine.mock('mock:flaky').whenReceived((_m, i) => {
      if (i < 2) throw new Error('flaky');
    });
    await engine.send('direct:in', 'x');
    expect(engine.mock('mock:flaky').received).to.have.length(3);
    expect(engine.mock('mock:out').bodies).to.deep.equal(['x']);
    await engine.stop();
  });
});

describe('error handling: per-step timeout', () => {
  it('fails with TIMEOUT past the limit (fake time); in time it goes on', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from('direct:in').deadLetter('mock:dlq').timeout(1000, to('mock:slow?delayMs=5000')).to('mock:out'), from('direct:ok').timeout(1000, to('mock:quick?delayMs=10')).to('mock:out'));
    await engine.start();
    const slow = failure(engine.send('direct:in', 'late'));
    await settle();
    await clock.tickAsync(1000);
    const err = await slow;
    expect(err.code).to.equal('BUSBAR_ERR_TIMEOUT');
    expect(engine.mock('mock:dlq').received[0]!.headers[ERROR_HEADERS.code]).to.equal('BUSBAR_ERR_TIMEOUT');
    const ok = engine.send('direct:ok', 'fine');
    await settle();
    await clock.tickAsync(10);
    await ok;
    expect(engine.mock('mock:out').bodies).to.deep.equal(['fine']);
    await clock.runAllAsync();
    await engine.stop();
  });
});

describe('error handling: circuit breaker', () => {
  it('unit: closed -> open at the failure rate -> half-open after openMs -> closed on a good trial, open again on a bad one', () => {
    const clock = new FakeClock();
    const states: string[] = [];
    const b = new CircuitBreaker('b', clock, { failureRateThreshold: 0.5, windowSize: 4, minimumCalls: 4, openMs: 1000 });
    b.onStateChange((s) => states.push(s));
    for (const ok of [true, false, true]) {
      expect(b.tryAcquire()).to.equal(true);
      if (ok) b.success();
      else b.failure();
    }
    expect(b.state).to.equal('closed');
    b.tryAcquire();
    b.failure(); // 2 of 4 failed
    expect(b.state).to.equal('open');
    expect(b.tryAcquire()).to.equal(false);
    clock.tick(1000);
    expect(b.state).to.equal('half-open');
    expect(b.tryAcquire()).to.equal(true);
    expect(b.tryAcquire()).to.equal(false); // one trial at a time
    b.failure();
    expect(b.state).to.equal('open');
    clock.tick(1000);
    expect(b.tryAcquire()).to.equal(true);
    b.success();
    expect(b.state).to.equal('closed');
    expect(states).to.deep.equal(['open', 'half-open', 'open', 'half-open', 'closed']);
    expect(() => new CircuitBreaker('bad', clock, { failureRateThreshold: 2 })).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_ROUTE');
  });

  it('step: opens after failures and then refuses with CIRCUIT_OPEN without calling; fallback when given', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(
      from('direct:in').circuitBreaker({ name: 'svc', windowSize: 2, minimumCalls: 2, openMs: 5000 }, to('mock:svc')).to('mock:out'),
      from('direct:fb').circuitBreaker({ name: 'svc2', windowSize: 1, minimumCalls: 1 }, to('mock:svc2'), (b) => b.setHeader('fallback', true).to('mock:fallback')),
    );
    await engine.start();
    engine.mock('mock:svc').whenReceived(() => {
      throw new Error('svc down');
    });
    engine.mock('mock:svc2').whenReceived(() => {
      throw new Error('svc2 down');
    });
    await failure(engine.send('direct:in', 1));
    await failure(engine.send('direct:in', 2));
    expect(patternState(engine).breakers.get('svc')!.state).to.equal('open');
    const refused = await failure(engine.send('direct:in', 3));
    expect(refused.code).to.equal('BUSBAR_ERR_CIRCUIT_OPEN');
    expect(engine.mock('mock:svc').received).to.have.length(2);
    await clock.tickAsync(5000);
    engine.mock('mock:svc').whenReceived(() => undefined);
    await engine.send('direct:in', 4);
    expect(patternState(engine).breakers.get('svc')!.state).to.equal('closed');
    expect(engine.mock('mock:out').bodies).to.deep.equal([4]);

    await engine.send('direct:fb', 'a'); // fails -> opens -> fallback
    await engine.send('direct:fb', 'b'); // open -> fallback without calling
    expect(engine.mock('mock:svc2').received).to.have.length(1);
    const fb = engine.mock('mock:fallback').received;
    expect(fb.map((m) => m.body)).to.deep.equal(['a', 'b']);
    expect(fb[1]!.headers[CIRCUIT_HEADER]).to.equal('open');
    expect(fb[1]!.headers[ERROR_HEADERS.code]).to.equal('BUSBAR_ERR_CIRCUIT_OPEN');
    await engine.stop();
  });

  it('config form', async () => {
    const { engine } = testEngine();
    engine.addRoutes({ routes: [{ from: 'direct:in', steps: [{ circuitBreaker: { name: 'cfg', minimumCalls: 1, windowSize: 1, steps: [{ to: 'mock:x' }], fallback: [{ to: 'mock:fb' }] } }] }] });
    await engine.start();
    engine.mock('mock:x').whenReceived(() => {
      throw new Error('x');
    });
    await engine.send('direct:in', 1);
    expect(engine.mock('mock:fb').bodies).to.deep.equal([1]);
    expect(patternState(engine).breakers.get('cfg')!.state).to.equal('open');
    await engine.stop();
  });
});

describe('error handling: messages a source rejects without running the route', () => {
  it('go to the policy\'s dead letter for their code with the reason; without one the source gets the error back', async () => {
    const src = new TestSource();
    const { engine } = testEngine({ adapters: [src.adapter()] });
    engine.addRoutes(
      from('src:in')
        .routeId('guarded')
        .errorPolicy({ deadLetter: 'mock:dlq', on: [{ codes: ['BUSBAR_ERR_AMQP_POISON'], deadLetter: 'mock:poison' }, { codes: ['BUSBAR_ERR_TIMEOUT'], handled: true }] })
        .to('mock:out'),
    );
    await engine.start();
    const ctx = src.ctx!;
    await ctx.reject(createMessage('p', { id: 'p' }), new BusbarError('AMQP_POISON', 'delivered 6 times', { details: { attempts: 6, step: 'amqp consumer' } }));
    await ctx.reject(createMessage('g', { id: 'g' }), new BusbarError('PARSE', 'not JSON'));
    await ctx.reject(createMessage('t', { id: 't' }), new BusbarError('TIMEOUT', 'too slow'));
    const poison = engine.mock('mock:poison').received;
    expect(poison.map((m) => m.id)).to.deep.equal(['p']);
    expect(poison[0]!.headers).to.include({ [ERROR_HEADERS.code]: 'BUSBAR_ERR_AMQP_POISON', [ERROR_HEADERS.attempts]: 6, [ERROR_HEADERS.step]: 'amqp consumer', [ERROR_HEADERS.routeId]: 'guarded' });
    expect(engine.mock('mock:dlq').received.map((m) => [m.id, m.headers[ERROR_HEADERS.code], m.headers[ERROR_HEADERS.attempts]])).to.deep.equal([['g', 'BUSBAR_ERR_PARSE', 1]]);
    expect(engine.mock('mock:out').received).to.have.length(0);
    expect(engine.stats().routes.guarded).to.include({ received: 3, completed: 0, failed: 3, deadLettered: 2 });
    await engine.stop();

    const bare = new TestSource();
    const e2 = testEngine({ adapters: [bare.adapter()] }).engine;
    e2.addRoutes(from('src:in').routeId('bare').to('mock:out'));
    await e2.start();
    const err = new BusbarError('AMQP_POISON', 'delivered 6 times');
    const got = await bare.ctx!.reject(createMessage('x'), err).then(() => undefined, (e: unknown) => e);
    expect(got).to.equal(err);
    expect(shouldAck(got)).to.equal(false);
    expect(e2.stats().routes.bare).to.include({ failed: 1, deadLettered: 0 });
    await e2.stop();
  });
});
