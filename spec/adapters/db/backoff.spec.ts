import { expect } from 'chai';
import { createDbAdapter } from '../../../adapters/db/index.js';
import { Engine, from } from '../../../lib/index.js';
import { FakeClock, settle } from '../../../lib/testing.js';
import { testLogger, waitFor } from '../../helpers.js';
import { createJobs, dbFixture, insertJobs, type DbFixture } from './suite.js';

describe('db adapter: polling backoff on the engine clock', () => {
  let f: DbFixture;
  let engine: Engine | undefined;
  let clock: FakeClock;
  // the consumer is between polls when its sleep is the only timer
  const asleep = (): Promise<void> => waitFor(() => clock.pending() === 1, 5000, 'consumer waiting for its next poll');

  beforeEach(async () => {
    f = await dbFixture('sqlite');
    clock = new FakeClock(Date.now());
  });
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
    await f.cleanup();
  });

  it('doubles the delay while polls find nothing, up to maxIdleDelay', async () => {
    const t = await createJobs(f, 'jobs', 0);
    engine = new Engine({ logger: testLogger(), clock, adapters: [createDbAdapter(f.config)] });
    engine.addRoutes(from(`db:t?table=${t}&delay=100&maxIdleDelay=400`).to('mock:out'));
    const out = engine.mock('mock:out');
    await engine.start();
    await asleep(); // empty poll, waits 100
    await clock.tickAsync(100);
    await asleep(); // empty poll, waits 200
    await clock.tickAsync(200);
    await asleep(); // empty poll, waits 400
    await clock.tickAsync(400);
    await asleep(); // empty poll, waits 400 again: the cap
    await insertJobs(f, t, 1, 1);
    await clock.tickAsync(399);
    await settle(10);
    expect(out.received).to.have.length(0);
    await clock.tickAsync(1);
    await waitFor(() => out.received.length === 1, 5000, 'the row after the backoff');
  });

  it('backs off after a failed poll, reports it in stats, and resumes when the table is back', async () => {
    const t = await createJobs(f, 'jobs', 0);
    engine = new Engine({ logger: testLogger(), clock, adapters: [createDbAdapter(f.config)] });
    engine.addRoutes(from(`db:t?table=${t}&delay=10&maxIdleDelay=10&errorDelay=1000`).routeId('poll').to('mock:out'));
    const out = engine.mock('mock:out');
    await engine.start();
    await asleep();
    await f.admin.query(`DROP TABLE ${t}`);
    await clock.tickAsync(10);
    await asleep();
    const stats = engine.stats().routes.poll!.source;
    expect(stats.status).to.equal('backing-off');
    await createJobs(f, 'jobs', 1);
    await clock.tickAsync(999);
    await settle(10);
    expect(out.received).to.have.length(0);
    await clock.tickAsync(1);
    await waitFor(() => out.received.length === 1, 5000, 'the row after the error backoff');
    expect(engine.stats().routes.poll!.source.status).to.equal('connected');
  });
});
