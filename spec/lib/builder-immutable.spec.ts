import { expect } from 'chai';
import { Engine, from } from '../../lib/index.js';
import { testLogger } from '../helpers.js';

describe('the route builder is immutable', () => {
  it('a shared prefix starts several routes without either getting the other\'s tail', async () => {
    const front = from<{ n: number }>('direct:unused').filter((b) => b.n > 0).setHeader('seen', true);
    const fan = front.routeId('fan').recipientList(['mock:fan']);
    const sg = front.routeId('sg').scatterGather({ recipients: ['mock:sg'] }).to('mock:sg-out');
    expect(front.steps.map((s) => s.kind)).to.deep.equal(['filter', 'setHeader']);
    expect(fan.steps.map((s) => s.kind)).to.deep.equal(['filter', 'setHeader', 'recipientList']);
    expect(sg.steps.map((s) => s.kind)).to.deep.equal(['filter', 'setHeader', 'scatterGather', 'to']);
    expect(front.toDefinition('prefix').id).to.equal('prefix'); // settings of a continuation stay there
    expect(fan.toDefinition().id).to.equal('fan');

    // and as running routes: one message each, each to its own tail only
    const engine = new Engine({ logger: testLogger() });
    const base = from<{ n: number }>('direct:x').deadLetter('mock:dlq').filter((b) => b.n > 0);
    engine.addRoutes(
      base.routeId('a').to('mock:a'),
      from<{ n: number }>('direct:y').routeId('b').to('mock:b'),
    );
    const extra = base.routeId('c');
    expect(extra.toDefinition().from).to.equal('direct:x');
    await engine.start();
    await engine.send('direct:x', { n: 1 });
    expect(engine.mock('mock:a').received).to.have.length(1);
    expect(engine.mock('mock:b').received).to.have.length(0);
    await engine.stop();
  });

  it('settings return new builders too: the error policy of one continuation is not the other\'s', () => {
    const base = from('direct:in').redelivery({ maxAttempts: 3 });
    const withDlq = base.deadLetter('mock:dlq');
    expect(base.toDefinition('x').errorPolicy).to.deep.equal({ redelivery: { maxAttempts: 3 } });
    expect(withDlq.toDefinition('y').errorPolicy).to.deep.equal({ redelivery: { maxAttempts: 3 }, deadLetter: 'mock:dlq' });
    const onErr = base.onError('BUSBAR_ERR_TIMEOUT', { handled: true });
    expect(base.toDefinition('z').errorPolicy?.on).to.equal(undefined);
    expect(onErr.toDefinition('w').errorPolicy?.on).to.have.length(1);
  });
});
