import { closeSync, fsyncSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { EventLog, GroupCoordinator, PartitionReader } from '../../dist/adapters/eventlog/index.js';
import { tempDir } from '../../spec/helpers.js';
import { round, type BenchCase } from '../harness.js';

const READ = 1000;
const VALUE = Buffer.from(JSON.stringify({ id: 123456, amount: 42.5, country: 'NL', note: 'an order of about a hundred bytes'.padEnd(40, '.') }));

/** The hand-written reader: whole records with a good CRC from the segment file, an offset file written (and synced) after each read. */
function baseline(segment: string, commitFile: string, n: number): number {
  const fd = openSync(segment, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let pos = 0;
  let len = 0;
  let seen = 0;
  let sum = 0;
  while (seen < n) {
    const got = readSync(fd, buf, len, buf.length - len, pos + len);
    len += got;
    let at = 0;
    let batch = 0;
    while (at + 8 <= len && batch < READ) {
      const size = buf.readUInt32BE(at) + 4;
      if (at + size > len) break;
      if (crc32(buf.subarray(at + 8, at + size)) !== buf.readUInt32BE(at + 4)) throw new Error('bad crc');
      sum += buf[at + 24]!;
      at += size;
      batch++;
      seen++;
    }
    pos += at;
    buf.copy(buf, 0, at, len);
    len -= at;
    // a durable commit, as busbar's (write a temp file, fsync, rename)
    const c = openSync(`${commitFile}.tmp`, 'w');
    writeSync(c, String(seen));
    fsyncSync(c);
    closeSync(c);
    renameSync(`${commitFile}.tmp`, commitFile);
    if (got === 0 && batch === 0) break;
  }
  closeSync(fd);
  return sum + seen;
}

const bench: BenchCase = {
  name: 'eventlog-consume',
  description: 'Read a partition (~100-byte records) 1000 at a time and commit the group offset after each read; busbar PartitionReader + GroupCoordinator vs a hand-written reader of the same segment format',
  async run({ quick }) {
    const n = quick ? 50_000 : 300_000;
    const tmp = tempDir('busbar-bench-evl-');
    try {
      const log = EventLog.open(tmp.path, 't', { fsync: 'none' });
      const records = Array.from({ length: 1000 }, () => ({ key: null, value: VALUE, kind: 'json' as const, headers: {} }));
      for (let i = 0; i < n; i += 1000) await log.append(0, records);
      await log.close();
      const segment = join(tmp.path, 't', '0', `${'0'.repeat(20)}.log`);
      let baselinePerS = 0;
      let busbarPerS = 0;
      for (let r = 0; r < (quick ? 2 : 3); r++) {
        const t0 = process.hrtime.bigint();
        baseline(segment, join(tmp.path, 'offset'), n);
        baselinePerS = Math.max(baselinePerS, n / (Number(process.hrtime.bigint() - t0) / 1e9));
        const group = new GroupCoordinator(join(tmp.path, 't'), `g${r}`, 1, { sessionTimeoutMs: 60_000, memberId: 'bench' });
        const epoch = group.heartbeat().owned.get(0)!;
        const reader = new PartitionReader(join(tmp.path, 't'), 0, 0);
        const t1 = process.hrtime.bigint();
        let seen = 0;
        while (seen < n) {
          const got = await reader.read(READ);
          if (got.length === 0) break;
          seen += got.length;
          group.commit([[0, epoch, got[got.length - 1]!.offset + 1]]);
        }
        busbarPerS = Math.max(busbarPerS, seen / (Number(process.hrtime.bigint() - t1) / 1e9));
        reader.close();
        group.leave();
      }
      return { busbar_per_s: round(busbarPerS), baseline_per_s: round(baselinePerS), ratio: round(busbarPerS / baselinePerS, 2), records: n, read: READ };
    } finally {
      tmp.cleanup();
    }
  },
};
export default bench;
