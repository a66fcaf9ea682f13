import { expect } from 'chai';
import { createMessage, Engine, from } from '../../../lib/index.js';
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
});
