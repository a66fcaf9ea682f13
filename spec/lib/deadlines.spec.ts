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
    const b = (): void => void fired.push('b');
    d.add(b); // due at 130
    clock.tick(30);
    d.add(() => fired.push('c')); // due at 160
    d.delete(b);
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

  it('touch pushes a key back to the end, add keeps a waiting key its time, and each fires its key once', () => {
    const clock = new FakeClock(0);
    const fired: Array<[string, number]> = [];
    const d = new Deadlines<string>(clock, 100, { fire: (k) => fired.push([k, clock.now()]) });
    d.add('a'); // due at 100
    d.add('b'); // due at 100
    clock.tick(50);
    d.touch('a'); // due at 150 now
    d.add('b'); // waiting already: still due at 100
    clock.tick(50); // t = 100
    expect(fired).to.deep.equal([['b', 100]]);
    d.touch('a'); // due at 200
    clock.tick(99);
    expect(fired).to.deep.equal([['b', 100]]);
    clock.tick(1);
    expect(fired).to.deep.equal([['b', 100], ['a', 200]]);
    expect(d.size).to.equal(0);
  });

  it('add at an earlier time (restored entries) fires then; clear forgets everything and stops the timer', () => {
    const clock = new FakeClock(1000);
    const fired: string[] = [];
    const d = new Deadlines<string>(clock, 100, { fire: (k) => fired.push(k) });
    d.add('old', 900); // overdue already
    d.add('soon', 1040);
    d.add('new');
    clock.tick(0);
    expect(fired).to.deep.equal(['old']);
    clock.tick(40);
    expect(fired).to.deep.equal(['old', 'soon']);
    d.clear();
    expect(d.size).to.equal(0);
    clock.tick(1000);
    expect(fired).to.deep.equal(['old', 'soon']);
    expect(clock.pending()).to.equal(0);
  });
});
