import { expect } from 'chai';
import { from, withBody, type GatherResult, type Message } from '../../../lib/index.js';
import { FakeClock, settle, testEngine } from '../../../lib/testing.js';
import { SCATTER_HEADERS } from '../../../lib/steps/patterns/routing.js';
import { capturedLogger } from '../../helpers.js';

const WARN = 40;
const DEBUG = 20;

describe('patterns: scatter-gather results given to the strategy', () => {
  it('the strategy gets each reply with its recipient and index, the failed and timed-out recipients with codes, and sees busbar.scatter.* headers', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    let seen: { gather: GatherResult; headers: Message['headers']; replies: unknown[] } | undefined;
    engine.addRoutes(
      from('direct:in')
        .scatterGather({
          recipients: ['mock:a', 'mock:slow?delayMs=10000', 'mock:broken'],
          branches: [(b) => b.transform(() => 'from-branch')],
          timeoutMs: 1000,
          strategy: (replies, original, gather) => {
            seen = { gather, headers: { ...original.headers }, replies: replies.map((r) => r.body) };
            return gather.replies.map((r) => `${r.index}:${r.recipient}=${String(r.message.body)}`);
          },
        })
        .to('mock:out'),
    );
    await engine.start();
    engine.mock('mock:a').whenReceived((m) => withBody(m, 'A'));
    engine.mock('mock:broken').whenReceived(() => {
      throw new Error('down');
    });
    const sent = engine.send('direct:in', 'q');
    await settle();
    await clock.tickAsync(1000);
    await sent;
    expect(engine.mock('mock:out').bodies).to.deep.equal([['0:mock:a=A', '3:branches/0=from-branch']]);
    expect(seen!.replies).to.deep.equal(['A', 'from-branch']);
    expect(seen!.gather.failed).to.have.length(1);
    expect(seen!.gather.failed[0]).to.include({ index: 2, recipient: 'mock:broken', code: 'BUSBAR_ERR_STEP_FAILED' });
    expect(seen!.gather.timedOut).to.deep.equal([{ index: 1, recipient: 'mock:slow?delayMs=10000', code: 'BUSBAR_ERR_TIMEOUT' }]);
    // the headers are there before the strategy runs
    expect(seen!.headers[SCATTER_HEADERS.replies]).to.equal(2);
    expect(seen!.headers[SCATTER_HEADERS.failed]).to.equal(1);
    expect(seen!.headers[SCATTER_HEADERS.timedOut]).to.equal(true);
    expect(seen!.headers[SCATTER_HEADERS.errors]).to.deep.equal(['BUSBAR_ERR_STEP_FAILED']);
    await clock.runAllAsync();
    await engine.stop();
  });

  it('a strategy written for (replies, original) keeps working; a config strategy { fn } gets the gather result too', async () => {
    const { engine } = testEngine();
    engine.registerFunctions({
      who: ((bodies: unknown, _original: Message, gather: GatherResult) => ({ bodies, who: gather.replies.map((r) => r.recipient) })) as never,
    });
    engine.addRoutes(
      from('direct:two-args').scatterGather({ recipients: ['mock:x'], strategy: (replies, original) => `${replies.length}/${String(original.body)}` }).to('mock:two'),
      { id: 'cfg', from: 'direct:cfg', steps: [{ scatterGather: { recipients: ['mock:x', 'mock:y'], strategy: { fn: 'who' } } }, { to: 'mock:cfg' }] },
    );
    await engine.start();
    engine.mock('mock:x').whenReceived((m) => withBody(m, 'X'));
    engine.mock('mock:y').whenReceived((m) => withBody(m, 'Y'));
    await engine.send('direct:two-args', 'q');
    await engine.send('direct:cfg', 'q');
    expect(engine.mock('mock:two').bodies).to.deep.equal(['1/q']);
    expect(engine.mock('mock:cfg').bodies).to.deep.equal([{ bodies: ['X', 'Y'], who: ['mock:x', 'mock:y'] }]);
    await engine.stop();
  });
});

describe('patterns: scatter-gather partial results are counted, not warned about', () => {
  const route = (logPartial?: 'warn') =>
    from('direct:in')
      .scatterGather({ recipients: ['mock:ok', 'mock:slow?delayMs=10000', 'mock:broken'], timeoutMs: 500, ...(logPartial ? { logPartial } : {}) })
      .to('mock:out');

  async function run(logPartial?: 'warn'): Promise<{ lines: Array<{ level: number; msg: string }>; steps: unknown }> {
    const clock = new FakeClock();
    const { logger, lines } = capturedLogger();
    const { engine } = testEngine({ clock, logger });
    engine.addRoutes(route(logPartial).routeId('sg'));
    await engine.start();
    engine.mock('mock:ok').whenReceived((m) => withBody(m, 'ok'));
    engine.mock('mock:broken').whenReceived(() => {
      throw new Error('down');
    });
    for (let i = 0; i < 3; i++) {
      const sent = engine.send('direct:in', i);
      await settle();
      await clock.tickAsync(500);
      await sent;
    }
    expect(engine.mock('mock:out').bodies).to.deep.equal([['ok'], ['ok'], ['ok']]);
    const steps = engine.routeStats('sg').steps;
    await clock.runAllAsync();
    await engine.stop();
    return { lines, steps };
  }

  it('by default: no WARN per message, debug lines instead, and the misses counted in the route stats', async () => {
    const { lines, steps } = await run();
    const partial = lines.filter((l) => /scatter-gather/.test(l.msg));
    expect(partial.length).to.be.greaterThan(0);
    expect(partial.filter((l) => l.level >= WARN)).to.deep.equal([]);
    expect(partial.every((l) => l.level === DEBUG)).to.equal(true);
    expect(steps).to.deep.equal({ '/steps/0': { timedOutRecipients: 3, failedRecipients: 3, partialGathers: 3 } });
  });

  it('logPartial: "warn" logs them as warnings', async () => {
    const { lines } = await run('warn');
    expect(lines.filter((l) => /scatter-gather: partial/.test(l.msg) && l.level === WARN)).to.have.length(3);
  });
});
