import { expect } from 'chai';
import { CircuitBreaker } from '../../lib/circuit-breaker.js';
import { FakeClock } from '../../lib/testing.js';

describe('CircuitBreaker.release (a call that never reached the protected side)', () => {
  it('counts neither way when closed: releases alone never open the circuit', () => {
    const b = new CircuitBreaker('t', new FakeClock(0), { windowSize: 4, minimumCalls: 2, openMs: 1000 });
    for (let i = 0; i < 10; i++) {
      expect(b.tryAcquire()).to.equal(true);
      b.release();
    }
    expect(b.state).to.equal('closed');
    expect(b.failureRate).to.equal(0);
  });

  it('gives a half-open trial back, so the next call can be the trial', () => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker('t', clock, { windowSize: 2, minimumCalls: 2, openMs: 1000, halfOpenCalls: 1 });
    b.tryAcquire();
    b.failure();
    b.tryAcquire();
    b.failure();
    expect(b.state).to.equal('open');
    clock.tick(1000);
    expect(b.tryAcquire()).to.equal(true);
    expect(b.tryAcquire()).to.equal(false); // the one trial is taken
    b.release();
    expect(b.tryAcquire()).to.equal(true);
    b.success();
    expect(b.state).to.equal('closed');
  });
});
