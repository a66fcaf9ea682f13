import { expect } from 'chai';
import { AmqpClient } from '../../../adapters/amqp/client.js';
import { resolveConfig } from '../../../adapters/amqp/index.js';
import type { Clock, TimerHandle } from '../../../lib/index.js';
import { BusbarError } from '../../../lib/index.js';
import { testLogger } from '../../helpers.js';

/** A clock that records the delays asked for and fires them at once (time is not waited for). */
function recordingClock(): Clock & { delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    now: () => Date.now(),
    setTimeout: (fn, ms) => {
      delays.push(ms);
      return setImmediate(fn) as unknown as TimerHandle;
    },
    clearTimeout: (h) => clearImmediate(h as unknown as NodeJS.Immediate),
    setInterval: (fn, ms) => setInterval(fn, ms),
    clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
  };
}

describe('amqp connection: start attempts and backoff (nothing listening on the port)', () => {
  it('tries startAttempts times with exponential backoff on the engine clock, then fails with AMQP_CONNECTION', async () => {
    const config = resolveConfig({ url: 'amqp://u:pw-not-shown@127.0.0.1:1', reconnect: { startAttempts: 4, initialDelayMs: 100, factor: 3, maxDelayMs: 1000, jitter: 0 } });
    const clock = recordingClock();
    const client = new AmqpClient(config, 'consumer', testLogger(), clock);
    const statuses: string[] = [];
    client.listen({ status: (s) => statuses.push(s) });
    let err: BusbarError | undefined;
    try {
      await client.acquire();
    } catch (e) {
      err = e as BusbarError;
    }
    expect(err?.code).to.equal('BUSBAR_ERR_AMQP_CONNECTION');
    expect(err?.retryable).to.equal(true);
    expect(err?.message).to.not.include('pw-not-shown');
    // the backoff delays between the 4 attempts: 100, 300, 900 (the next would be capped at 1000)
    expect(clock.delays).to.deep.equal([100, 300, 900]);
    expect(statuses).to.include.members(['connecting', 'backing-off']);
    expect(statuses.at(-1)).to.equal('disconnected');
    expect(client.status).to.equal('disconnected');
  });
});
