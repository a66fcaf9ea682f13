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

describe('BoundedQueue: consumers that park (no promise per item)', () => {
  it('a parked consumer is woken once, by the put that brought an item, and the item stays queued for it; promise takers are served first', async () => {
    const q = new BoundedQueue<number>(4);
    let wakes = 0;
    const wake = (): void => void wakes++;
    q.park(wake);
    expect(wakes).to.equal(0);
    const taker = q.take();
    q.offer(1); // the waiting take gets it: nobody is woken
    expect(await taker).to.equal(1);
    expect(wakes).to.equal(0);
    q.offer(2);
    q.offer(3);
    expect(wakes, 'woken once for the burst').to.equal(1);
    expect([q.poll(), q.poll(), q.poll()]).to.deep.equal([2, 3, undefined]);
  });

  it('parking with items queued wakes at once; an unparked consumer is not woken; the first parked is woken first; close wakes every parked one', () => {
    const q = new BoundedQueue<string>(4);
    const woken: string[] = [];
    q.offer('x');
    q.park(() => woken.push('now'));
    expect(woken).to.deep.equal(['now']);
    q.poll();
    const a = (): void => void woken.push('a');
    const b = (): void => void woken.push('b');
    const c = (): void => void woken.push('c');
    q.park(a);
    q.park(b);
    q.park(c);
    q.unpark(a);
    q.offer('y');
    expect(woken).to.deep.equal(['now', 'b']);
    q.wakeOne();
    expect(woken).to.deep.equal(['now', 'b', 'c']);
    q.park(a);
    q.close();
    expect(woken).to.deep.equal(['now', 'b', 'c', 'a']);
  });
});

describe('BoundedQueue: a parked consumer whose wake-up throws', () => {
  it('does not fail the send that brought the item (it is queued) and becomes a process warning', async () => {
    const q = new BoundedQueue<number>(2);
    const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
    q.park(() => {
      throw new Error('consumer bug');
    });
    expect(q.offer(1)).to.equal(true);
    expect(q.size).to.equal(1);
    const w = await warned;
    expect(w.message).to.include('consumer bug');
    expect((w as Error & { code?: string }).code).to.equal('BUSBAR_QUEUE_WAKE');
  });
});
