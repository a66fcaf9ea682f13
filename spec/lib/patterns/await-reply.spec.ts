import { expect } from 'chai';
import { createMessage, Engine, from, type Adapter } from '../../../lib/index.js';
import { FakeClock, settle, testEngine } from '../../../lib/testing.js';
import { AWAIT_REPLY_HEADERS } from '../../../lib/steps/patterns/await-reply.js';
import { rejection, testLogger } from '../../helpers.js';

describe('patterns: awaitReply (return address / correlation), in-memory channels', () => {
  it('a request-reply caller gets the answer that arrives on another channel, matched by correlation id', async () => {
    const engine = new Engine({ logger: testLogger() }); // real time: the worker's delays answer out of order
    engine.addRoutes(
      from<number>('direct:ask').routeId('ask').awaitReply<number>('queue:answers', { send: 'queue:work', timeoutMs: 5000 }),
      // the worker answers on its own channel, out of order, with nothing but the correlation id
      from<number>('queue:work').delay((n) => (5 - n) * 5).transform((n) => n * 10).to('queue:answers'),
    );
    await engine.start();
    const answers = await Promise.all([1, 2, 3, 4].map((n) => engine.request<number>('direct:ask', n)));
    expect(answers).to.deep.equal([10, 20, 30, 40]);
    expect(engine.routeStats('ask').steps!['/steps/0']).to.deep.equal({ waiting: 0, matched: 4, timedOut: 0, lateReplies: 0 });
    await engine.stop();
  });

  it('no answer in time: BUSBAR_ERR_TIMEOUT under the error policy (dead letter), and the answer arriving later is counted and routed as late', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from('direct:ask').routeId('ask').deadLetter('mock:dlq').awaitReply('queue:answers', { send: 'mock:work', timeoutMs: 1000, lateReplies: 'mock:late' }));
    await engine.start();
    const asked = engine.request('direct:ask', 'q');
    const failed = rejection(asked);
    await settle();
    await clock.tickAsync(1000);
    const err = await failed;
    expect(err.code).to.equal('BUSBAR_ERR_TIMEOUT');
    expect(engine.mock('mock:dlq').received[0]!.headers['busbar.error.code']).to.equal('BUSBAR_ERR_TIMEOUT');
    const request = engine.mock('mock:work').received[0]!;
    await engine.sendMessage('queue:answers', createMessage('too late', { correlationId: request.correlationId }));
    await settle();
    const late = engine.mock('mock:late').received;
    expect(late.map((m) => m.body)).to.deep.equal(['too late']);
    expect(late[0]!.headers[AWAIT_REPLY_HEADERS.late]).to.equal(true);
    expect(engine.routeStats('ask').steps!['/steps/0']).to.deep.equal({ waiting: 0, matched: 0, timedOut: 1, lateReplies: 1 });
    await engine.stop();
  });

  it('a request that could not be sent fails at once and gives its place back: nothing is left waiting, and the same key can ask again', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from('direct:ask').routeId('ask').awaitReply('queue:answers', { send: 'mock:work', timeoutMs: 1000 }));
    await engine.start();
    let refuse = true;
    engine.mock('mock:work').whenReceived(() => {
      if (refuse) throw new Error('work queue refused it');
    });
    const msg = createMessage('q', { correlationId: 'same-key' });
    const err = await rejection(engine.requestMessage('direct:ask', msg));
    expect(err.message).to.contain('work queue refused it');
    expect(engine.routeStats('ask').steps!['/steps/0']).to.deep.equal({ waiting: 0, matched: 0, timedOut: 0, lateReplies: 0 });
    // the key is free again (not CORRELATION_KEY), and no timer of the failed wait is left to time it out
    refuse = false;
    const again = engine.requestMessage('direct:ask', createMessage('q2', { correlationId: 'same-key' }));
    await settle();
    await engine.sendMessage('queue:answers', createMessage('answer', { correlationId: 'same-key' }));
    expect((await again).body).to.equal('answer');
    await clock.tickAsync(5000);
    expect(engine.routeStats('ask').steps!['/steps/0']).to.deep.equal({ waiting: 0, matched: 1, timedOut: 0, lateReplies: 0 });
    await engine.stop();
  });

  it('config form: correlate by a header on both sides; a reply without the key is a late reply, not a crash', async () => {
    const { engine } = testEngine();
    engine.addRoutes({
      routes: [
        { id: 'ask', from: 'direct:ask', steps: [{ setHeader: { name: 'ticket', value: 'T-1' } }, { awaitReply: { uri: 'queue:answers', correlate: { header: 'ticket' }, timeoutMs: 5000, send: 'mock:work' } }] },
      ],
    });
    await engine.start();
    const asked = engine.request('direct:ask', 'q');
    await settle();
    expect(engine.mock('mock:work').received).to.have.length(1);
    await engine.send('queue:answers', 'no key at all');
    await engine.send('queue:answers', 'wrong key', { ticket: 'T-2' });
    await engine.send('queue:answers', 'the answer', { ticket: 'T-1' });
    expect(await asked).to.equal('the answer');
    expect(engine.routeStats('ask').steps!['/steps/1']).to.deep.include({ matched: 1, lateReplies: 2 });
    await engine.stop();
  });

  it('a route whose source fails to start closes the reply listener its awaitReply step opened', async () => {
    const listener = { started: 0, stopped: 0 };
    const probe: Adapter = {
      scheme: 'probe',
      description: 'a reply endpoint that records its consumer starting and stopping',
      optionsSchema: { type: 'object', properties: {}, additionalProperties: false },
      createConsumer: () => ({ start: async () => void listener.started++, stop: async () => void listener.stopped++ }),
      createProducer: () => ({ send: () => undefined }),
    };
    const broken: Adapter = {
      scheme: 'broken',
      description: 'a source that cannot start',
      optionsSchema: { type: 'object', properties: {}, additionalProperties: false },
      createConsumer: () => ({ start: async () => { throw new Error('no such broker'); }, stop: async () => undefined }),
    };
    const engine = new Engine({ logger: testLogger(), adapters: [probe, broken] });
    engine.addRoutes(from('broken:in').routeId('ask').awaitReply('probe:answers', { send: 'mock:work', timeoutMs: 1000 }));
    const err = await rejection(engine.start());
    expect(err.code).to.equal('BUSBAR_ERR_ROUTE_START_FAILED');
    expect(listener.started, 'the step opened its listener').to.equal(1);
    expect(listener.stopped, 'and closed it when the route failed to start').to.equal(1);
  });
});
