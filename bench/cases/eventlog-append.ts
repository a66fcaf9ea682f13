import { closeSync, fdatasyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { EventLog } from '../../dist/adapters/eventlog/index.js';
import { tempDir } from '../../spec/helpers.js';
import { round, type BenchCase } from '../harness.js';

const BATCH = 100;
const VALUE = Buffer.from(JSON.stringify({ id: 123456, amount: 42.5, country: 'NL', note: 'an order of about a hundred bytes'.padEnd(40, '.') }));
const KEY = Buffer.from('customer-1234');

/**
 * The hand-written appender: the same record format (length, CRC-32, offset, timestamp,
 * attributes, key, value, headers) into one segment file, a batch per write, fdatasync per batch.
 */
function baseline(dir: string, n: number): void {
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, 'seg.log'), 'w');
  const h = Buffer.from('{}');
  const size = 4 + 4 + 8 + 8 + 1 + 4 + KEY.length + 4 + VALUE.length + 4 + h.length;
  let pos = 0;
  for (let off = 0; off < n; off += BATCH) {
    const buf = Buffer.allocUnsafe(size * BATCH);
    const ts = Date.now();
    for (let i = 0; i < BATCH; i++) {
      const at = i * size;
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
    fdatasyncSync(fd);
  }
  closeSync(fd);
}

const bench: BenchCase = {
  name: 'eventlog-append',
  description: 'Append records (~100-byte JSON value, a key) in batches of 100 with fdatasync per batch; busbar EventLog (fsync=batch) vs a hand-written appender of the same segment format',
  async run({ quick }) {
    const n = quick ? 20_000 : 200_000;
    const tmp = tempDir('busbar-bench-evl-');
    try {
      let baselinePerS = 0;
      let busbarPerS = 0;
      for (let round_ = 0; round_ < (quick ? 2 : 3); round_++) {
        const t0 = process.hrtime.bigint();
        baseline(join(tmp.path, `base-${round_}`), n);
        baselinePerS = Math.max(baselinePerS, n / (Number(process.hrtime.bigint() - t0) / 1e9));
        const log = EventLog.open(join(tmp.path, `bb-${round_}`), 't', { fsync: 'batch' });
        const records = Array.from({ length: BATCH }, () => ({ key: KEY, value: VALUE, kind: 'json' as const, headers: {} }));
        const t1 = process.hrtime.bigint();
        for (let off = 0; off < n; off += BATCH) await log.append(0, records);
        busbarPerS = Math.max(busbarPerS, n / (Number(process.hrtime.bigint() - t1) / 1e9));
        await log.close();
      }
      return { busbar_per_s: round(busbarPerS), baseline_per_s: round(baselinePerS), ratio: round(busbarPerS / baselinePerS, 2), records: n, batch: BATCH };
    } finally {
      tmp.cleanup();
    }
  },
};
export default bench;
