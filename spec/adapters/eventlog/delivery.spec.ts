import { expect } from 'chai';
import { createEventlogAdapter, EventLog, groupLag } from '../../../adapters/eventlog/index.js';
import { createMetrics } from '../../../lib/management/metrics.js';
import { Engine, from, type Message } from '../../../lib/index.js';
import { latch, tempDir, testLogger, waitFor } from '../../helpers.js';

async function fill(dir: string, partitions: number, perPartition: number, from = 0): Promise<void> {
  const log = EventLog.open(dir, 't', { partitions, fsync: 'none' });
  for (let p = 0; p < partitions; p++) {
    await log.append(p, Array.from({ length: perPartition }, (_, i) => ({ key: null, value: Buffer.from(JSON.stringify({ p, i: from + i })), kind: 'json' as const, headers: {} })));
  }
  await log.close();
}

const bodies = (got: Message[]): Array<{ p: number; i: number }> => got.map((m) => m.body as { p: number; i: number }).sort((a, b) => a.p - b.p || a.i - b.i);

describe('eventlog: start positions, independent groups, lag', function () {
  this.timeout(30_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('busbar-evl-')));
  afterEach(() => tmp.cleanup());

  it('start=earliest | latest | <offset> picks where a partition with no committed offset begins', async () => {
    await fill(tmp.path, 2, 10);
    const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path })] });
    const got: Record<string, Message[]> = { earliest: [], latest: [], offset: [] };
    engine.addRoutes(
      from('eventlog:t?group=a&start=earliest&pollMs=5').routeId('earliest').process((m) => (got.earliest!.push(m), m)),
      from('eventlog:t?group=b&start=latest&pollMs=5').routeId('latest').process((m) => (got.latest!.push(m), m)),
      from('eventlog:t?group=c&start=7&pollMs=5').routeId('offset').process((m) => (got.offset!.push(m), m)),
    );
    await engine.start();
    try {
      await waitFor(() => got.earliest!.length === 20 && got.offset!.length === 6, 10_000, 'earliest and offset readers');
      // latest: only what is appended after the start
      await new Promise((r) => setTimeout(r, 100));
      expect(got.latest).to.have.length(0);
      await engine.send('eventlog:t', { p: -1, i: 100 });
      await waitFor(() => got.latest!.length === 1, 10_000, 'the record appended after the start');
      expect((got.latest![0]!.body as { i: number }).i).to.equal(100);
      expect(bodies(got.offset!).filter((b) => b.p >= 0)).to.deep.equal([0, 1].flatMap((p) => [7, 8, 9].map((i) => ({ p, i }))));
      expect(bodies(got.earliest!).filter((b) => b.p >= 0)).to.deep.equal([0, 1].flatMap((p) => Array.from({ length: 10 }, (_, i) => ({ p, i }))));
    } finally {
      await engine.stop();
    }
  });

  it('two groups read the same records independently: each gets all of them, each commits its own offsets', async () => {
    await fill(tmp.path, 3, 20);
    const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path })] });
    const a: Message[] = [];
    const b: Message[] = [];
    engine.addRoutes(
      from('eventlog:t?group=billing&pollMs=5&commitIntervalMs=20').process((m) => (a.push(m), m)),
      from('eventlog:t?group=audit&pollMs=5&commitIntervalMs=20').process((m) => (b.push(m), m)),
    );
    await engine.start();
    await waitFor(() => a.length === 60 && b.length === 60, 10_000, 'both groups read everything');
    await engine.stop();
    expect(bodies(a)).to.deep.equal(bodies(b));
    for (const g of ['billing', 'audit']) {
      const lag = groupLag({ dir: tmp.path, topic: 't', group: g });
      expect(Object.values(lag).map((p) => p.committed), g).to.deep.equal([20, 20, 20]);
    }
  });

  it('lag per partition is in engine.stats() and the busbar_endpoint_lag_messages metric, and drains to 0', async () => {
    await fill(tmp.path, 2, 30);
    const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path })] });
    const { wait: gate, open: open } = latch();
    let seen = 0;
    engine.addRoutes(
      from('eventlog:t?group=slow&pollMs=5&commitIntervalMs=20')
        .routeId('slow')
        .process(async (m) => {
          seen++;
          await gate;
          return m;
        }),
    );
    await engine.start();
    const metrics = await createMetrics(engine, { processMetrics: false });
    const lagMetric = async (): Promise<number> => {
      const line = (await metrics.text()).split('\n').find((l) => l.startsWith('busbar_endpoint_lag_messages{endpoint="eventlog:t?group=slow'));
      return line === undefined ? NaN : Number(line.split(' ').pop());
    };
    const details = (): { lag: number; partitions: Record<string, { lag: number; end: number; committed: number }> } => engine.stats().routes.slow!.source.details as never;
    try {
      await waitFor(() => seen > 0, 10_000, 'records in flight');
      // nothing finished: every record of both partitions is behind
      const d = details();
      expect(Object.keys(d.partitions).sort()).to.deep.equal(['0', '1']);
      for (const p of ['0', '1']) expect(d.partitions[p], `partition ${p}`).to.include({ end: 30, committed: 0, lag: 30 });
      expect(d.lag).to.equal(60);
      expect(await lagMetric()).to.equal(60);
      open();
      await waitFor(() => details().lag === 0, 10_000, 'lag drained');
      expect(await lagMetric()).to.equal(0);
      expect(Object.values(details().partitions).map((p) => p.committed)).to.deep.equal([30, 30]);
      // the log end follows appends (it is cached per last segment and its size)
      const more = EventLog.open(tmp.path, 't', { fsync: 'none' });
      await more.append(0, Array.from({ length: 5 }, () => ({ key: null, value: Buffer.from('x'), kind: 'string' as const, headers: {} })));
      await more.close();
      await waitFor(() => details().partitions['0']!.end === 35 && details().lag === 0, 10_000, 'the new end seen and drained');
    } finally {
      open();
      metrics.close();
      await engine.stop();
    }
  });
});
