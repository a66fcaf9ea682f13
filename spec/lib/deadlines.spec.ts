import { expect } from 'chai';
import { Deadlines } from '../../lib/clock.js';
import { FakeClock } from '../../lib/testing.js';

describe('Deadlines (time limits of one length on one timer)', () => {
  it('fires each entry at its own deadline, never one that was cancelled, and re-arms for the next', () => {
    const clock = new FakeClock(0);
    const d = new Deadlines(clock, 100);
    const fired: string[] = [];
    d.add(() => fired.push('a')); // due at 100
    clock.tick(30);
    const cancelB = d.add(() => fired.push('b')); // due at 130
    clock.tick(30);
    d.add(() => fired.push('c')); // due at 160
    cancelB();
    clock.tick(39); // t = 99
    expect(fired).to.deep.equal([]);
    clock.tick(1); // t = 100
    expect(fired).to.deep.equal(['a']);
    clock.tick(59); // t = 159: b was cancelled
    expect(fired).to.deep.equal(['a']);
    expect(d.size).to.equal(1);
    clock.tick(1); // t = 160
    expect(fired).to.deep.equal(['a', 'c']);
    expect(d.size).to.equal(0);
    // after going empty, a new entry arms the timer again
    d.add(() => fired.push('d'));
    clock.tick(100);
    expect(fired).to.deep.equal(['a', 'c', 'd']);
  });

  it('a callback that throws does not stop the others due at the same time', () => {
    const clock = new FakeClock(0);
    const d = new Deadlines(clock, 10);
    const fired: number[] = [];
    d.add(() => {
      throw new Error('boom');
    });
    d.add(() => fired.push(2));
    clock.tick(10);
    expect(fired).to.deep.equal([2]);
  });
});
