import { expect } from 'chai';
import { join } from 'node:path';
import { from } from '../../../lib/index.js';
import { patternState, AGGREGATE_HEADERS } from '../../../lib/steps/patterns/common.js';
import { FakeClock, settle, testEngine } from '../../../lib/testing.js';
import { openDatabase, SqlAggregationStore, SqlIdempotentRepository } from '../../../adapters/db/index.js';
import { tempDir } from '../../helpers.js';

// The patterns with the db adapter's persistent stores (real SQLite files, no server).
describe('patterns: persistent stores (SQLite)', () => {
  let dir: { path: string; cleanup: () => void };
  beforeEach(() => (dir = tempDir()));
  afterEach(() => dir.cleanup());

  it('aggregator groups survive a restart; the inactivity timeout is re-armed on start', async () => {
    const file = join(dir.path, 'stores.db');
    const route = (store: SqlAggregationStore) => from<string>('direct:in').routeId('agg').aggregate({ correlate: (b) => b.split(':')[0]!, size: 3, timeoutMs: 10_000, completeOnStop: false, store }).to('mock:out');

    const first = testEngine();
    const store1 = new SqlAggregationStore(openDatabase({ engine: 'sqlite', file }));
    first.engine.addRoutes(route(store1));
    await first.engine.start();
    await first.engine.send('direct:in', 'a:1');
    await first.engine.send('direct:in', 'a:2');
    await first.engine.stop();
    expect(first.engine.mock('mock:out').received).to.have.length(0);
    await store1.close();

    const clock = new FakeClock(first.clock.now() + 1000);
    const second = testEngine({ clock });
    const store2 = new SqlAggregationStore(openDatabase({ engine: 'sqlite', file }));
    second.engine.addRoutes(route(store2));
    await second.engine.start();
    await second.engine.send('direct:in', 'b:1');
    await clock.tickAsync(9000); // a's group was last touched 1 s before this engine's start
    await settle(10);
    const out = second.engine.mock('mock:out');
    await out.expectCount(1).satisfied();
    expect(out.bodies).to.deep.equal([['a:1', 'a:2']]);
    expect(out.received[0]!.headers[AGGREGATE_HEADERS.completedBy]).to.equal('timeout');
    await second.engine.stop();
    await store2.close();
  });

  it('idempotent consumer: two engines sharing a repository process a key once', async () => {
    const file = join(dir.path, 'idem.db');
    const repo1 = new SqlIdempotentRepository(openDatabase({ engine: 'sqlite', file }));
    const repo2 = new SqlIdempotentRepository(openDatabase({ engine: 'sqlite', file }));
    const a = testEngine().engine;
    const b = testEngine().engine;
    patternState(b).idempotentRepositories.set('sqlite', repo2);
    a.addRoutes(from<{ id: string }>('direct:in').routeId('orders').idempotent({ key: (o) => o.id, repository: repo1 }).to('mock:out'));
    b.addRoutes({ routes: [{ id: 'orders', from: 'direct:in', steps: [{ idempotent: { expr: 'id', repository: 'sqlite' } }, { to: 'mock:out' }] }] });
    await a.start();
    await b.start();
    await Promise.all(['1', '2', '1', '3'].map((id, i) => (i % 2 ? b : a).send('direct:in', { id })));
    await a.send('direct:in', { id: '2' });
    const processed = [...a.mock('mock:out').bodies, ...b.mock('mock:out').bodies].map((o) => (o as { id: string }).id).sort();
    expect(processed).to.deep.equal(['1', '2', '3']);
    expect((patternState(a).duplicates.get('orders/steps/0') ?? 0) + (patternState(b).duplicates.get('orders/steps/0') ?? 0)).to.equal(2);
    await a.stop();
    await b.stop();
    await repo1.close();
    await repo2.close();
  });
});
