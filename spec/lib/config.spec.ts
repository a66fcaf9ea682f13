import { expect } from 'chai';
import { BusbarError, Engine, type Problem } from '../../lib/index.js';
import { testLogger } from '../helpers.js';

describe('routes as plain data (config form)', () => {
  let engine: Engine;
  afterEach(async () => {
    await engine?.stop();
  });

  it('runs the same route as the builder: JSONata expressions, named functions, choice', async () => {
    engine = new Engine({ logger: testLogger(), functions: { vat: (b) => ({ ...(b as object), vat: 0.21 }) } });
    engine.addRoutes({
      routes: [
        {
          id: 'orders',
          from: 'direct:in',
          steps: [
            { unmarshal: 'json' },
            { transform: { fn: 'vat' } },
            { transform: '$merge([$, { "total": amount * (1 + vat) }])' },
            { setHeader: { name: 'customer', expr: 'customer' } },
            {
              choice: {
                when: [
                  { if: 'total > 400', steps: [{ to: 'mock:big' }] },
                  { if: '$headers.customer = "acme"', steps: [{ to: 'mock:acme' }] },
                ],
                otherwise: [{ to: 'mock:other' }],
              },
            },
          ],
        },
      ],
    });
    await engine.start();
    await engine.send('direct:in', '{"amount":1000,"customer":"x"}');
    await engine.send('direct:in', '{"amount":10,"customer":"acme"}');
    await engine.send('direct:in', '{"amount":10,"customer":"y"}');
    expect(engine.mock('mock:big').bodies).to.deep.equal([{ amount: 1000, customer: 'x', vat: 0.21, total: 1210 }]);
    expect(engine.mock('mock:acme').received[0]!.headers.customer).to.equal('acme');
    expect(engine.mock('mock:other').received).to.have.length(1);
  });

  it('reports every problem at once, each with its path and a suggestion', () => {
    engine = new Engine({ logger: testLogger(), functions: { enrich: (b) => b } });
    const problems: Problem[] = engine.check({
      routes: [
        {
          from: 'queue:in?sise=10',
          steps: [{ trasform: 'x' }, { to: 'mok:out' }],
        },
        {
          id: 'b',
          frm: 'queue:x',
        } as never,
        {
          from: 'direct:c',
          steps: [{ transform: { fn: 'enrch' } }, { filter: 'amount >' }, { to: 'log:x', log: 'y' }, { choice: { when: [{ if: 'a', steps: [{ too: 'x' }] }] } }],
        },
      ],
    });
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p]));
    expect(byPath['/routes/0/steps/0/trasform']?.suggestion).to.equal('did you mean "transform"?');
    expect(byPath['/routes/1/frm']?.suggestion).to.equal('did you mean "from"?');
    expect(byPath['/routes/1/from']?.message).to.contain('required');
    expect(byPath['/routes/2/steps/0/transform/fn']?.suggestion).to.equal('did you mean "enrich"?');
    expect(byPath['/routes/2/steps/1/filter']?.message).to.contain('cannot compile expression');
    expect(byPath['/routes/2/steps/2']?.message).to.contain('exactly one key');
    expect(byPath['/routes/2/steps/3/choice/when/0/steps/0/too']?.suggestion).to.equal('did you mean "to"?');
    expect(byPath['/routes/0/from']?.suggestion).to.equal('did you mean "size"?');
    // the same route's second bad endpoint too: one pass finds every problem
    expect(byPath['/routes/0/steps/1']?.message).to.contain('did you mean "mock"?');
    expect(problems).to.have.length(9);
  });

  it('checks endpoints of otherwise valid routes, naming the option and the nearest name', () => {
    engine = new Engine({ logger: testLogger() });
    const problems = engine.check({ routes: [{ id: 'a', from: 'queue:in?sise=10', steps: [{ to: 'log:x' }] }, { id: 'b', from: 'direct:b', steps: [{ to: 'mok:out' }] }] });
    expect(problems).to.have.length(2);
    expect(problems[0]).to.deep.include({ path: '/routes/0/from', suggestion: 'did you mean "size"?' });
    expect(problems[1]!.path).to.equal('/routes/1/steps/0');
    expect(problems[1]!.message).to.contain('did you mean "mock"?');
  });

  it('fails addRoutes with one coded error listing all problems', () => {
    engine = new Engine({ logger: testLogger() });
    try {
      engine.addRoutes({ routes: [{ from: 'direct:x', steps: [{ transform: 'a +' }, { filter: { fn: 'process.exit' } }] }] });
      expect.fail('should throw');
    } catch (e) {
      expect((e as BusbarError).code).to.equal('BUSBAR_ERR_INVALID_ROUTE');
      expect(((e as BusbarError).details.problems as Problem[]).map((p) => p.path)).to.deep.equal(['/routes/0/steps/0/transform', '/routes/0/steps/1/filter/fn']);
    }
    expect(engine.routeIds()).to.deep.equal([]);
  });

  it('never evaluates config strings as JavaScript: expressions are JSONata over the body', async () => {
    engine = new Engine({ logger: testLogger() });
    (globalThis as { pwned?: boolean }).pwned = false;
    engine.addRoutes({ routes: [{ from: 'direct:x', steps: [{ transform: 'globalThis.pwned = true' }] }] });
    await engine.start();
    const reply = await engine.request('direct:x', { globalThis: { pwned: 'no' } });
    expect(reply).to.equal(false); // a JSONata comparison of the body's fields, not an assignment
    expect((globalThis as { pwned?: boolean }).pwned).to.equal(false);
  });

  it('accepts a route error policy as data', async () => {
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes({
      routes: [{ id: 'p', from: 'queue:in', errorPolicy: { deadLetter: 'mock:dlq', redelivery: { maxAttempts: 2 } }, steps: [{ unmarshal: 'json' }, { to: 'mock:ok' }] }],
    });
    await engine.start();
    await engine.send('queue:in', 'not json');
    const dlq = engine.mock('mock:dlq').expectCount(1);
    await dlq.satisfied({ timeoutMs: 2000 });
    expect(dlq.received[0]!.body).to.equal('not json');
    expect(dlq.received[0]!.headers).to.include({ 'busbar.error.code': 'BUSBAR_ERR_PARSE', 'busbar.error.routeId': 'p', 'busbar.error.attempts': 1 });
  });
});
