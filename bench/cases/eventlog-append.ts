import { closeSync, fdatasyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { EventLog } from '../../dist/adapters/eventlog/index.js';
import { bestRounds, inTempDir, KEY, VALUE } from '../eventlog-fixture.js';
import { round, type BenchCase } from '../harness.js';

const BATCH = 100;

const INDEX_INTERVAL = 4096;

/**
 * The hand-written appender: the same record format (length, CRC-32, offset, timestamp,
 * attributes, key, value, headers) into one segment file, a batch per write, fdatasync per
 * batch; and, as busbar's segments have them, the sparse offset and time index entries (one
 * every 4 KiB of log, written with the batch, not synced).
 */
function baselineAppend(dir: string, n: number): void {
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, 'seg.log'), 'w');
  const ixFd = openSync(join(dir, 'seg.index'), 'w');
  const tixFd = openSync(join(dir, 'seg.timeindex'), 'w');
  const h = Buffer.from('{}');
  const size = 4 + 4 + 8 + 8 + 1 + 4 + KEY.length + 4 + VALUE.length + 4 + h.length;
  let pos = 0;
  let ixPos = 0;
  let tixPos = 0;
  let lastIndexed = -Infinity;
  const ix = Buffer.allocUnsafe(8 * BATCH);
  const tix = Buffer.allocUnsafe(12 * BATCH);
  for (let off = 0; off < n; off += BATCH) {
    const buf = Buffer.allocUnsafe(size * BATCH);
    const ts = Date.now();
    let entries = 0;
    for (let i = 0; i < BATCH; i++) {
      const at = i * size;
      if (pos + at - lastIndexed >= INDEX_INTERVAL) {
        lastIndexed = pos + at;
        ix.writeUInt32BE(off + i, entries * 8);
        ix.writeUInt32BE(pos + at, entries * 8 + 4);
        tix.writeUInt32BE(Math.floor(ts / 2 ** 32), entries * 12);
        tix.writeUInt32BE(ts >>> 0, entries * 12 + 4);
        tix.writeUInt32BE(off + i, entries * 12 + 8);
        entries++;
      }
      let p = at + 8;
      buf.writeUInt32BE(0, p);
      buf.writeUInt32BE(off + i, p + 4);
      buf.writeUInt32BE(Math.floor(ts / 2 ** 32), p + 8);
      buf.writeUInt32BE(ts >>> 0, p + 12);
      buf[p + 16] = 8;
      p += 17;
      buf.writeUInt32BE(KEY.length, p);
      p += 4 + KEY.copy(buf, p + 4);
      buf.writeUInt32BE(VALUE.length, p);
      p += 4 + VALUE.copy(buf, p + 4);
      buf.writeUInt32BE(h.length, p);
      p += 4 + h.copy(buf, p + 4);
      buf.writeUInt32BE(size - 4, at);
      buf.writeUInt32BE(crc32(buf.subarray(at + 8, at + size)), at + 4);
    }
    pos += writeSync(fd, buf, 0, buf.length, pos);
    if (entries) {
      ixPos += writeSync(ixFd, ix, 0, entries * 8, ixPos);
      tixPos += writeSync(tixFd, tix, 0, entries * 12, tixPos);
    }
    fdatasyncSync(fd);
  }
  closeSync(fd);
  closeSync(ixFd);
  closeSync(tixFd);
}

const bench: BenchCase = {
  name: 'eventlog-append',
  description: 'Append records (~100-byte JSON value, a key) in batches of 100 with fdatasync per batch; busbar EventLog (fsync=batch) vs a hand-written appender of the same segment format (log and sparse indexes)',
  async run({ quick }) {
    const n = quick ? 20_000 : 200_000;
    return inTempDir(async (dir) => {
      const records = Array.from({ length: BATCH }, () => ({ key: KEY, value: VALUE, kind: 'json' as const, headers: {} }));
      const { busbar, baseline, busbarCpu, baselineCpu } = await bestRounds(quick ? 2 : 5, n, {
        baseline: (r) => {
          baselineAppend(join(dir, `base-${r}`), n);
          return n;
        },
        busbar: async (r) => {
          const log = EventLog.open(join(dir, `bb-${r}`), 't', { fsync: 'batch' });
          for (let off = 0; off < n; off += BATCH) await log.append(0, records);
          await log.close();
          return n;
        },
      });
      return { busbar_per_s: round(busbar), baseline_per_s: round(baseline), ratio: round(busbar / baseline, 2), busbar_per_cpu_s: round(busbarCpu), baseline_per_cpu_s: round(baselineCpu), cpu_ratio: round(busbarCpu / baselineCpu, 2), records: n, batch: BATCH };
    });
  },
};
export default bench;
