import { expect } from 'chai';
import { clockShared, createMessage, newMessageId } from '../../lib/message.js';

/**
 * Ids and timestamps made cheaply (issue #18): ids from a table-written counter, one clock
 * read shared by the messages made within the same millisecond tick.
 */
describe('message ids and timestamps', () => {
  it('gives every message its own id, across the points where the id counter rolls over', () => {
    const ids = new Set<string>();
    // 36^2 ids per head: three heads' worth crosses two rollovers
    for (let i = 0; i < 3 * 1296 + 5; i++) ids.add(newMessageId());
    for (let i = 0; i < 100; i++) ids.add(createMessage(i).id);
    expect(ids.size).to.equal(3 * 1296 + 105);
    expect([...ids].filter((id) => !/^[0-9a-f]{24}-[0-9a-z]+$/.test(id))).to.deep.equal([]);
  });

  it('stamps a message made after a pause with the time it was made, not a time read for earlier ones', async () => {
    createMessage('earlier');
    for (let round = 0; round < 3; round++) {
      await new Promise((r) => setTimeout(r, 5));
      const before = Date.now();
      const m = createMessage('later');
      expect(m.timestamp).to.be.at.least(before);
      expect(m.timestamp).to.be.at.most(Date.now());
    }
  });

  it('keeps timestamps in order and within the clock in a long synchronous stretch', () => {
    const start = Date.now();
    const times: number[] = [];
    for (let i = 0; i < 5000; i++) times.push(createMessage(i).timestamp);
    const end = Date.now();
    expect(times.filter((t, i) => t < (times[i - 1] ?? 0) || t < start - 1 || t > end)).to.deep.equal([]);
  });

  it('shares one clock read only while messages come fast; made slowly, each reads the clock (no timer waking the process)', async () => {
    const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    await pause(5); // whatever came before: the sharing timer has stopped
    expect(clockShared(), 'after a pause').to.equal(false);
    for (let i = 0; i < 10; i++) {
      const before = Date.now();
      const m = createMessage(i);
      expect(m.timestamp).to.be.within(before, Date.now());
      expect(clockShared(), 'one message every 2 ms').to.equal(false);
      await pause(2);
    }
    const start = Date.now();
    const times: number[] = [];
    for (let i = 0; i < 200; i++) times.push(createMessage(i).timestamp);
    const end = Date.now();
    expect(clockShared(), 'a burst').to.equal(true);
    expect(times.filter((t) => t < start || t > end)).to.deep.equal([]);
    await pause(5);
    expect(clockShared(), 'after the burst').to.equal(false);
  });

  it('keeps no timer alive for the clock it shares (the process can exit with messages made)', () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    for (let i = 0; i < 100; i++) createMessage(i);
    expect(timers()).to.equal(before);
  });
});
