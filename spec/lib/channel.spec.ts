import { expect } from 'chai';
import { getEventListeners } from 'node:events';
import { BoundedQueue } from '../../lib/channel.js';

describe('BoundedQueue: waiting takers and abort signals', () => {
  it('an aborted take rejects with the reason and takes nothing: the next item goes to the next taker', async () => {
    const q = new BoundedQueue<number>(4);
    const ac = new AbortController();
    const aborted = q.take(ac.signal);
    const other = q.take();
    ac.abort(new Error('stopping'));
    let why: unknown;
    await aborted.catch((e: unknown) => (why = e));
    expect((why as Error).message).to.equal('stopping');
    await q.put(7);
    expect(await other).to.equal(7);
    await q.put(8);
    expect(q.size).to.equal(1);
    expect(q.poll()).to.equal(8);
  });

  it('one abort listener per signal however many takes wait with it, and every waiting taker of it is rejected', async () => {
    const q = new BoundedQueue<number>(4);
    const ac = new AbortController();
    // takes served one after the other, as a consumer loop does
    for (let i = 0; i < 50; i++) {
      const t = q.take(ac.signal);
      await q.put(i);
      expect(await t).to.equal(i);
    }
    expect(getEventListeners(ac.signal, 'abort')).to.have.length(1);
    const waiting = [q.take(ac.signal), q.take(ac.signal)];
    const unrelated = new AbortController();
    const kept = q.take(unrelated.signal);
    ac.abort(new Error('gone'));
    const results = await Promise.allSettled(waiting);
    expect(results.map((r) => r.status)).to.deep.equal(['rejected', 'rejected']);
    await q.put(1);
    expect(await kept).to.equal(1);
  });

  it('a take served before the abort stays served', async () => {
    const q = new BoundedQueue<string>(1);
    const ac = new AbortController();
    const t = q.take(ac.signal);
    await q.put('a');
    ac.abort(new Error('late'));
    expect(await t).to.equal('a');
  });
});
