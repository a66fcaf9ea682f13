import { closeSync, openSync, readdirSync, statSync, truncateSync, writeSync } from 'node:fs';
import { pbkdf2 } from 'node:crypto';
import { join } from 'node:path';
import { expect } from 'chai';
import { createEventlogAdapter, EventLog, offsetForTime, PartitionReader, seekGroup, type LogRecord, type RecordInput } from '../../../adapters/eventlog/index.js';
import { Engine, from } from '../../../lib/index.js';
import { codeOf, rejection, tempDir, testLogger, waitFor } from '../../helpers.js';

function rec(i: number, key: string | null = `k${i}`): RecordInput {
  return { key: key === null ? null : Buffer.from(key), value: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(i % 50) })), kind: 'json', headers: { n: i } };
}

async function readAll(dir: string, topic: string, partition: number, from = 0): Promise<LogRecord[]> {
  const r = new PartitionReader(join(dir, topic), partition, from);
  const out: LogRecord[] = [];
  for (;;) {
    const got = await r.read(1000);
    if (got.length === 0) break;
    out.push(...got);
  }
  r.close();
  return out;
}

/** A small deterministic PRNG so a failing damage point can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('eventlog: the embedded log', function () {
  this.timeout(30_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('busbar-evl-')));
  afterEach(() => tmp.cleanup());

  it('keeps key, value, headers, timestamp and consecutive offsets, in order per partition', async () => {
    const log = EventLog.open(tmp.path, 't', { partitions: 1 });
    const before = Date.now();
    const first = await log.append(0, [rec(0), rec(1, null), { key: Buffer.from('gone'), value: null, kind: 'buffer', headers: {} }]);
    const second = await log.append(0, [rec(3)]);
    await log.close();
    expect([first, second]).to.deep.equal([0, 3]);
    const all = await readAll(tmp.path, 't', 0);
    expect(all.map((r) => r.offset)).to.deep.equal([0, 1, 2, 3]);
    expect(all[0]!.key!.toString()).to.equal('k0');
    expect(all[1]!.key).to.equal(null);
    expect(all[2]!.value).to.equal(null);
    expect(JSON.parse(all[3]!.value!.toString())).to.deep.equal({ i: 3, pad: 'xxx' });
    expect(all[3]!.headers).to.deep.equal({ n: 3 });
    expect(all[0]!.timestamp).to.be.within(before, Date.now());
    // a reader can start anywhere (sparse index + scan)
    expect((await readAll(tmp.path, 't', 0, 2)).map((r) => r.offset)).to.deep.equal([2, 3]);
  });

  it('puts one key in one partition and rolls segments, readable across them', async () => {
    const log = EventLog.open(tmp.path, 't', { partitions: 4, segmentBytes: 2048, indexIntervalBytes: 256, fsync: 'none' });
    for (let i = 0; i < 400; i++) {
      const r = rec(i, `key-${i % 10}`);
      await log.append(log.partitionFor(r.key), [r]);
    }
    const segs = [0, 1, 2, 3].map((p) => log.segments(p).length);
    await log.close();
    expect(Math.max(...segs)).to.be.greaterThan(3);
    const seen = new Map<string, number>();
    let total = 0;
    for (let p = 0; p < 4; p++) {
      const all = await readAll(tmp.path, 't', p);
      total += all.length;
      let last = -1;
      for (const r of all) {
        const k = r.key!.toString();
        expect(seen.get(k) ?? p, `key ${k} in one partition`).to.equal(p);
        seen.set(k, p);
        const i = (JSON.parse(r.value!.toString()) as { i: number }).i;
        expect(i, 'order per partition').to.be.greaterThan(last);
        last = i;
      }
    }
    expect(total).to.equal(400);
  });

  it('one writer per topic: a second one fails with EVENTLOG_LOCKED; a different partition count with EVENTLOG_CONFIG', async () => {
    const log = EventLog.open(tmp.path, 't', { partitions: 2 });
    expect(codeOf(() => EventLog.open(tmp.path, 't', { partitions: 2 }))).to.equal('BUSBAR_ERR_EVENTLOG_LOCKED');
    await log.close();
    expect(codeOf(() => EventLog.open(tmp.path, 't', { partitions: 3 }))).to.equal('BUSBAR_ERR_EVENTLOG_CONFIG');
  });

  for (const fsync of ['batch', 'interval', 'none'] as const) {
    it(`fsync=${fsync}: concurrent appends are grouped and each confirms with its offset`, async () => {
      const log = EventLog.open(tmp.path, 't', { fsync, fsyncIntervalMs: 20 });
      const offsets = await Promise.all(Array.from({ length: 300 }, (_, i) => log.append(0, [rec(i)])));
      await log.close();
      expect([...offsets].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 300 }, (_, i) => i));
      expect((await readAll(tmp.path, 't', 0)).length).to.equal(300);
    });
  }

  it('fsync=batch: fast syncs run on the event loop (no wait for a busy thread pool); after a slow one, syncs go to the thread pool', async () => {
    // the thread pool kept busy: every worker (4 by default) runs a long key derivation
    const busy = (): Promise<number> => {
      const t0 = performance.now();
      const one = (): Promise<void> => new Promise((resolve) => pbkdf2('x', 'salt', 400_000, 64, 'sha512', () => resolve()));
      return Promise.all(Array.from({ length: Number(process.env.UV_THREADPOOL_SIZE ?? 4) }, one)).then(() => performance.now() - t0);
    };
    const timeAppend = async (log: EventLog): Promise<number> => {
      const t0 = performance.now();
      await log.append(0, [rec(1)]);
      return performance.now() - t0;
    };
    // inline: the append's sync does not queue behind the pool's work
    const inline = EventLog.open(join(tmp.path, 'a'), 't', { fsync: 'batch', inlineSyncMs: 1000 });
    await inline.append(0, [rec(0)]);
    let pool = busy();
    const fast = await timeAppend(inline);
    const poolBusy = await pool;
    expect(fast, `append with a busy pool (busy for ${Math.round(poolBusy)} ms)`).to.be.below(poolBusy / 2);
    await inline.close();
    // a sync slower than inlineSyncMs (here: any): the next ones wait in the thread pool
    const pooled = EventLog.open(join(tmp.path, 'b'), 't', { fsync: 'batch', inlineSyncMs: 0.000001 });
    await pooled.append(0, [rec(0)]);
    pool = busy();
    const slow = await timeAppend(pooled);
    const busyFor = await pool;
    expect(slow, `append queued behind the pool's work (busy for ${Math.round(busyFor)} ms)`).to.be.above(busyFor / 2);
    await pooled.close();
  });

  it('torn writes: truncating or corrupting the last segment at random points keeps everything before the damage, and appends continue', async () => {
    const rnd = prng(15);
    for (let round = 0; round < 30; round++) {
      const dir = join(tmp.path, `r${round}`);
      const log = EventLog.open(dir, 't', { segmentBytes: 8192, indexIntervalBytes: 200, fsync: 'none' });
      for (let b = 0; b < 30; b++) await log.append(0, Array.from({ length: 5 }, (_, j) => rec(b * 5 + j)));
      const bases = log.segments(0);
      await log.close();
      const before = await readAll(dir, 't', 0);
      expect(before.length).to.equal(150);
      const last = bases[bases.length - 1]!;
      const file = join(dir, 't', '0', `${String(last).padStart(20, '0')}.log`);
      const size = statSync(file).size;
      const at = Math.floor(rnd() * size);
      const corrupt = round % 2 === 1;
      if (corrupt) {
        const fd = openSync(file, 'r+');
        writeSync(fd, Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, at);
        closeSync(fd);
      } else truncateSync(file, at);
      // the damaged record is the one containing byte `at` (or, truncated exactly at a boundary, none of it)
      let pos = 0;
      let firstLost = 150;
      for (const r of before.filter((x) => x.offset >= last)) {
        if (at < pos + r.size && (corrupt || at > pos)) {
          firstLost = r.offset;
          break;
        }
        if (!corrupt && at === pos) {
          firstLost = r.offset;
          break;
        }
        pos += r.size;
      }
      const reopened = EventLog.open(dir, 't', { segmentBytes: 8192, indexIntervalBytes: 200 });
      expect(reopened.endOffsets()[0], `round ${round}: cut at ${at} of ${size}`).to.equal(firstLost);
      const next = await reopened.append(0, [rec(1000)]);
      await reopened.close();
      expect(next).to.equal(firstLost);
      const after = await readAll(dir, 't', 0);
      expect(after.map((r) => r.offset)).to.deep.equal([...Array.from({ length: firstLost }, (_, i) => i), firstLost]);
      for (let i = 0; i < firstLost; i++) expect(after[i]!.value!.equals(before[i]!.value!)).to.equal(true);
    }
  });

  it('a reader that saw a torn tail continues after recovery cut it and appends went on', async () => {
    const log = EventLog.open(tmp.path, 't', {});
    await log.append(0, [rec(0), rec(1)]);
    await log.close();
    const file = join(tmp.path, 't', '0', readdirSync(join(tmp.path, 't', '0')).find((n) => n.endsWith('.log'))!);
    // a crash mid-append: half a record at the end
    const fd = openSync(file, 'a');
    writeSync(fd, Buffer.from([0, 0, 0, 90, 1, 2, 3]));
    closeSync(fd);
    const reader = new PartitionReader(join(tmp.path, 't'), 0, 0);
    expect((await reader.read(10)).map((r) => r.offset)).to.deep.equal([0, 1]);
    expect(await reader.read(10)).to.deep.equal([]);
    const again = EventLog.open(tmp.path, 't', {});
    await again.append(0, [rec(2)]);
    await again.close();
    expect((await reader.read(10)).map((r) => r.offset)).to.deep.equal([2]);
    reader.close();
  });

  it('retention removes whole closed segments by time and by size, never the active one; readers skip to the first kept record', async () => {
    const log = EventLog.open(tmp.path, 't', { segmentBytes: 1024, fsync: 'none', retentionBytes: 3000 });
    for (let i = 0; i < 100; i++) await log.append(0, [rec(i)]);
    const before = log.segments(0).length;
    const { deletedSegments } = log.maintain();
    const after = log.segments(0);
    expect(deletedSegments).to.be.greaterThan(0);
    expect(after.length).to.equal(before - deletedSegments);
    const kept = await readAll(tmp.path, 't', 0, 0);
    expect(kept[0]!.offset).to.equal(after[0]);
    expect(kept[kept.length - 1]!.offset).to.equal(99);
    await log.close();
    const byTime = EventLog.open(tmp.path, 't', { segmentBytes: 1024, fsync: 'none', retentionMs: 1 });
    await new Promise((r) => setTimeout(r, 5));
    byTime.maintain();
    expect(byTime.segments(0)).to.have.length(1);
    await byTime.close();
  });

  it('compaction keeps the latest record per key, keyless ones, and tombstones only while young', async () => {
    const log = EventLog.open(tmp.path, 't', { segmentBytes: 512, fsync: 'none', compact: true, tombstoneRetentionMs: 60_000 });
    for (let i = 0; i < 60; i++) await log.append(0, [rec(i, `k${i % 5}`)]);
    await log.append(0, [{ key: Buffer.from('k0'), value: null, kind: 'buffer', headers: {} }]);
    for (let i = 0; i < 20; i++) await log.append(0, [rec(100 + i, null)]);
    log.maintain();
    const all = await readAll(tmp.path, 't', 0);
    const active = log.segments(0)[log.segments(0).length - 1]!;
    const closed = all.filter((r) => r.offset < active);
    const keys = closed.filter((r) => r.key).map((r) => r.key!.toString());
    expect(new Set(keys).size, 'one record per key in compacted segments').to.equal(keys.length);
    // the latest value of k1..k4 survives, k0 is a tombstone (still young)
    const latest = new Map(all.filter((r) => r.key).map((r) => [r.key!.toString(), r]));
    expect(latest.get('k0')!.value).to.equal(null);
    expect(JSON.parse(latest.get('k4')!.value!.toString()).i).to.equal(59);
    expect(all.filter((r) => r.key === null)).to.have.length(20);
    // offsets are kept (with gaps), in order
    for (let i = 1; i < all.length; i++) expect(all[i]!.offset).to.be.greaterThan(all[i - 1]!.offset);
    // an expired tombstone goes too
    log.maintain(Date.now() + 120_000);
    const later = await readAll(tmp.path, 't', 0);
    if (latest.get('k0')!.offset < active) expect(later.some((r) => r.key?.toString() === 'k0')).to.equal(false);
    await log.close();
  });

  it('replay from a timestamp gives exactly the records appended from then on (offsetForTime, seekGroup)', async () => {
    const log = EventLog.open(tmp.path, 't', { segmentBytes: 2048, indexIntervalBytes: 100, fsync: 'none' });
    for (let i = 0; i < 50; i++) await log.append(0, [rec(i)]);
    await new Promise((r) => setTimeout(r, 20));
    const t = Date.now();
    for (let i = 50; i < 120; i++) await log.append(0, [rec(i)]);
    await log.close();
    const at = offsetForTime(join(tmp.path, 't', '0'), t);
    expect(at).to.equal(50);
    const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path })] });
    const got: number[] = [];
    engine.addRoutes(
      from(`eventlog:t?group=replay&start=${new Date(t).toISOString()}&pollMs=5`).process((m) => {
        got.push(m.headers['eventlog.offset'] as number);
        return m;
      }),
    );
    await engine.start();
    await waitFor(() => got.length === 70, 5000, '70 records from the timestamp');
    await engine.stop();
    expect(got).to.deep.equal(Array.from({ length: 70 }, (_, i) => 50 + i));
    // the group committed 120; seekGroup moves it back to the time, and it reads the same again
    expect(seekGroup({ dir: tmp.path, topic: 't', group: 'replay', to: new Date(t) })).to.deep.equal([50]);
    got.length = 0;
    const again = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path })] });
    again.addRoutes(
      from('eventlog:t?group=replay&pollMs=5').process((m) => {
        got.push(m.headers['eventlog.offset'] as number);
        return m;
      }),
    );
    await again.start();
    await waitFor(() => got.length === 70, 5000, 'the replay');
    await again.stop();
    expect(got).to.deep.equal(Array.from({ length: 70 }, (_, i) => 50 + i));
  });
});

describe('eventlog: adapter', function () {
  this.timeout(30_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('busbar-evl-')));
  afterEach(() => tmp.cleanup());

  it('a route appends and another consumes with body, headers and record headers; a group resumes after its committed offset', async () => {
    const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path })] });
    const got: Array<{ body: unknown; p: unknown; o: unknown; h: unknown; id: string }> = [];
    engine.addRoutes(
      from('eventlog:orders?group=g&partitions=3').process((m) => {
        got.push({ body: m.body, p: m.headers['eventlog.partition'], o: m.headers['eventlog.offset'], h: m.headers.customer, id: m.id });
        return m;
      }),
    );
    await engine.start();
    await Promise.all(Array.from({ length: 60 }, (_, i) => engine.send('eventlog:orders?key={header.customer}', { i }, { customer: `c${i % 5}`, 'http.method': 'POST' })));
    await waitFor(() => got.length === 60, 5000, '60 records consumed');
    await engine.stop();
    expect(got.map((g) => (g.body as { i: number }).i).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 60 }, (_, i) => i));
    const byCustomer = new Map<unknown, Set<unknown>>();
    for (const g of got) byCustomer.set(g.h, (byCustomer.get(g.h) ?? new Set()).add(g.p));
    for (const ps of byCustomer.values()) expect(ps.size).to.equal(1);

    // restart: nothing is delivered again (offsets were committed on stop), new records are
    const engine2 = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path })] });
    const again: unknown[] = [];
    engine2.addRoutes(from('eventlog:orders?group=g').process((m) => {
      again.push(m.body);
      return m;
    }));
    await engine2.start();
    await engine2.send('eventlog:orders', { i: 60 });
    await waitFor(() => again.length >= 1, 5000, 'the new record');
    await new Promise((r) => setTimeout(r, 200));
    const stats = engine2.stats().routes[Object.keys(engine2.stats().routes)[0]!]!.source.details as { partitions: Record<string, { lag: number; end: number }> };
    await engine2.stop();
    expect(again).to.deep.equal([{ i: 60 }]);
    expect(Object.keys(stats.partitions)).to.have.length(3);
  });

  it('a transport header of another adapter is not written to the log', async () => {
    const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path })] });
    await engine.start();
    await engine.send('eventlog:t', 'x', { 'http.authorization': 'Bearer s3cret', keep: 'yes' });
    await engine.stop();
    const all = await readAll(tmp.path, 't', 0);
    expect(all[0]!.headers.keep).to.equal('yes');
    expect(JSON.stringify(all[0]!.headers)).not.to.contain('s3cret');
  });

  it('bad options fail at route creation with the option named', () => {
    const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path })] });
    expect(codeOf(() => engine.addRoutes(from('eventlog:t?delivery=twice').to('mock:x')))).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(codeOf(() => engine.addRoutes(from('eventlog:t?grup=a').to('mock:x')))).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(codeOf(() => engine.addRoutes(from('eventlog:t?delivery=effectively-once').to('mock:x')))).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(codeOf(() => engine.addRoutes(from('eventlog:../etc').to('mock:x')))).to.equal('BUSBAR_ERR_INVALID_URI');
  });

  it('an append after close fails with EVENTLOG_CLOSED', async () => {
    const log = EventLog.open(tmp.path, 't', {});
    await log.close();
    expect((await rejection(log.append(0, [rec(0)]))).code).to.equal('BUSBAR_ERR_EVENTLOG_CLOSED');
  });
});

describe('eventlog: reads and commits without copies or renames', function () {
  this.timeout(30_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('busbar-evl-')));
  afterEach(() => tmp.cleanup());

  it('records handed out by a reader keep their key and value while it reads on (the read buffer is never reused under them)', async () => {
    const log = EventLog.open(tmp.path, 't', { partitions: 1, fsync: 'none' });
    for (let i = 0; i < 3000; i += 100) await log.append(0, Array.from({ length: 100 }, (_, j) => rec(i + j)));
    const r = new PartitionReader(join(tmp.path, 't'), 0, 0);
    const kept: LogRecord[] = [];
    let appended = false;
    // small and odd reads: some stop at `max` with bytes left over, some at the buffer's end
    for (let n = 1; ; n = (n % 37) + 3) {
      const got = await r.read(n);
      if (got.length === 0) break;
      kept.push(...got);
      if (kept.length >= 1500 && !appended && (appended = true)) await log.append(0, Array.from({ length: 100 }, (_, j) => rec(3000 + j)));
    }
    r.close();
    await log.close();
    expect(kept.length).to.equal(3100);
    kept.forEach((k, i) => {
      expect(k.offset).to.equal(i);
      expect(k.key!.toString()).to.equal(`k${i}`);
      expect(JSON.parse(k.value!.toString()).i, `record ${i}`).to.equal(i);
    });
  });

  it('a record larger than the read buffer comes out whole, between small ones, whatever the read size', async () => {
    const log = EventLog.open(tmp.path, 't', { partitions: 1, fsync: 'none' });
    const big = (i: number): RecordInput => ({ key: Buffer.from(`k${i}`), value: Buffer.alloc(700 * 1024 + i, i % 251), kind: 'buffer', headers: {} });
    await log.append(0, [rec(0), big(1), rec(2), rec(3), big(4), rec(5)]);
    await log.close();
    for (const n of [1, 2, 1000]) {
      const r = new PartitionReader(join(tmp.path, 't'), 0, 0);
      const got: LogRecord[] = [];
      for (let guard = 0; guard < 20; guard++) {
        const part = await r.read(n);
        if (part.length === 0) break;
        got.push(...part);
      }
      r.close();
      expect(got.map((g) => g.offset), `read(${n})`).to.deep.equal([0, 1, 2, 3, 4, 5]);
      for (const i of [1, 4]) expect(got[i]!.value!.equals(big(i).value!), `record ${i}, read(${n})`).to.equal(true);
    }
  });

  it('a reader served from its buffer still lets timers run (a synchronous consumer does not starve heartbeats)', async () => {
    const log = EventLog.open(tmp.path, 't', { partitions: 1, fsync: 'none' });
    const one: RecordInput = { key: null, value: Buffer.from('x'), kind: 'string', headers: {} };
    for (let i = 0; i < 12_000; i += 1000) await log.append(0, Array.from({ length: 1000 }, () => one));
    await log.close();
    const r = new PartitionReader(join(tmp.path, 't'), 0, 0);
    const first = await r.read(1);
    // every record of the first file read (256 KiB) is in the buffer now: the rest come without I/O
    const perBuffer = Math.floor((256 * 1024) / first[0]!.size);
    let read = 1;
    let firedAt: number | undefined;
    setTimeout(() => (firedAt = read), 0);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (read < 12_000 && firedAt === undefined) {
      // a synchronous "route": at least ~10 µs of work per record
      Atomics.wait(pause, 0, 0, 0.01);
      read += (await r.read(1)).length;
    }
    r.close();
    expect(firedAt, 'the timer fired').to.be.a('number');
    expect(firedAt!, `records read before the timer could run (${perBuffer} per buffer)`).to.be.below(perBuffer);
  });

  it('committed offsets of many partitions (a slot body beyond one read) come back whole', async () => {
    const { GroupCoordinator, readGroup } = await import('../../../adapters/eventlog/group.js');
    const topicDir = join(tmp.path, 't');
    const g = new GroupCoordinator(topicDir, 'g', 1000, { sessionTimeoutMs: 60_000, memberId: 'a' });
    const owned = g.heartbeat().owned;
    const entries = [...owned].map(([p, epoch]) => [p, epoch, 1_000_000 + p] as const);
    expect(g.commit(entries)).to.deep.equal([]);
    expect(g.commit(entries.map(([p, e, n]) => [p, e, n + 1] as const))).to.deep.equal([]);
    const offsets = readGroup(join(topicDir, 'groups', 'g.json'))!.offsets;
    expect(Object.keys(offsets)).to.have.length(1000);
    for (let p = 0; p < 1000; p++) expect(offsets[p]).to.equal(1_000_001 + p);
    g.leave();
  });
});
