import { expect } from 'chai';
import { StepCounters } from '../../../lib/console/step-counters.js';
import { createMessage, Engine, from } from '../../../lib/index.js';
import { latch, testLogger } from '../../helpers.js';

/**
 * The console's per-step figures (issue #18): counts from the route's own step counters,
 * failures at the step the exchange last reached in its route, in-flight positions only for
 * exchanges that wait.
 */
describe('console step counters', () => {
  let engine: Engine | undefined;
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
  });

  function fixture(): { engine: Engine; steps: StepCounters } {
    const e = new Engine({ logger: testLogger() });
    const steps = new StepCounters((id) => e.stepHits(id));
    e.observe(steps);
    return { engine: e, steps };
  }

  it('counts the exchanges that reached each step and the failures of the step they failed at, synchronous or not', async () => {
    const f = fixture();
    engine = f.engine;
    engine.addRoutes(
      from<number>('direct:sync')
        .routeId('sync')
        .transform((n) => n + 1)
        .process((m) => {
          if (m.body === 4) throw new Error('four');
          return m;
        })
        .transform((n) => n),
      from<number>('direct:later')
        .routeId('later')
        .transform((n) => n)
        .process(async (m) => {
          await new Promise((r) => setImmediate(r));
          if (m.body === 2) throw new Error('two');
          return m;
        }),
      // a failure in a route called over direct: is the calling step's in the caller
      from<number>('direct:outer').routeId('outer').transform((n) => n).to('direct:sync'),
    );
    await engine.start();
    for (let i = 0; i < 5; i++) {
      await engine.send('direct:sync', i).catch(() => undefined);
      await engine.send('direct:later', i).catch(() => undefined);
    }
    await engine.send('direct:outer', 3).catch(() => undefined);
    const sync = f.steps.of('sync');
    expect(sync.get('/steps/0')).to.deep.equal({ messages: 6, failures: 0, inflight: 0 });
    expect(sync.get('/steps/1')).to.deep.equal({ messages: 6, failures: 2, inflight: 0 });
    expect(sync.get('/steps/2')).to.deep.equal({ messages: 4, failures: 0, inflight: 0 });
    expect(Object.fromEntries(f.steps.of('later'))).to.deep.equal({ '/steps/0': { messages: 5, failures: 0, inflight: 0 }, '/steps/1': { messages: 5, failures: 1, inflight: 0 } });
    expect(Object.fromEntries(f.steps.of('outer'))).to.deep.equal({ '/steps/0': { messages: 1, failures: 0, inflight: 0 }, '/steps/1': { messages: 1, failures: 1, inflight: 0 } });
    const failures = f.steps.failures();
    expect(failures.map((x) => [x.routeId, x.step])).to.deep.equal([['outer', '/steps/1'], ['sync', '/steps/1'], ['sync', '/steps/1'], ['later', '/steps/1']]);
    expect(f.steps.inflight()).to.deep.equal([]);
  });

  it('shows an exchange that waits at the step it waits in, and no more once it is done', async () => {
    const f = fixture();
    engine = f.engine;
    const { wait: gate, open: release } = latch();
    engine.addRoutes(
      from('direct:slow')
        .routeId('slow')
        .transform((b) => b)
        .process(async (m) => {
          await gate;
          return m;
        }),
    );
    await engine.start();
    const msg = createMessage('x');
    const done = engine.sendMessage('direct:slow', msg);
    await new Promise((r) => setImmediate(r));
    expect(f.steps.inflight().map((x) => [x.routeId, x.messageId, x.step, x.kind])).to.deep.equal([['slow', msg.id, '/steps/1', 'process']]);
    expect(f.steps.of('slow').get('/steps/1')).to.deep.equal({ messages: 1, failures: 0, inflight: 1 });
    release();
    await done;
    expect(f.steps.inflight()).to.deep.equal([]);
    expect(f.steps.of('slow').get('/steps/1')).to.deep.equal({ messages: 1, failures: 0, inflight: 0 });
  });
});
