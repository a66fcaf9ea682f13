// What the eventlog-* bench cases share: the record they write, a temp directory, a log filled
// with records, the hand-written segment reader, and best-of-rounds timing.
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { EventLog } from '../dist/adapters/eventlog/index.js';
import { tempDir } from '../spec/helpers.js';

/** A ~100-byte JSON order, the value of every record. */
export const VALUE = Buffer.from(JSON.stringify({ id: 123456, amount: 42.5, country: 'NL', note: 'an order of about a hundred bytes'.padEnd(40, '.') }));
export const KEY = Buffer.from('customer-1234');

/** Run `fn` in a fresh temp directory, removed afterwards. */
export async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const tmp = tempDir('busbar-bench-evl-');
  try {
    return await fn(tmp.path);
  } finally {
    tmp.cleanup();
  }
}

/** Topic `t` under `dir` with `n` records per partition (no fsync: set-up, not measured). */
export async function filledLog(dir: string, n: number, partitions = 1): Promise<void> {
  const log = EventLog.open(dir, 't', { fsync: 'none', partitions });
  const records = Array.from({ length: 1000 }, () => ({ key: null, value: VALUE, kind: 'json' as const, headers: {} }));
  for (let p = 0; p < partitions; p++) for (let i = 0; i < n; i += 1000) await log.append(p, records.slice(0, Math.min(1000, n - i)));
  await log.close();
}

/** The first segment file of a partition of topic `t`. */
export const firstSegment = (dir: string, partition = 0): string => join(dir, 't', String(partition), `${'0'.repeat(20)}.log`);

/**
 * The hand-written reader of the segment format: whole records with a good CRC, up to `batch`
 * at a time, `onBatch(offsets of the records, their values)` after each.
 */
export function readSegment(segment: string, n: number, batch: number, onBatch: (first: number, values: Buffer[]) => void): number {
  const fd = openSync(segment, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let pos = 0;
  let len = 0;
  let seen = 0;
  try {
    while (seen < n) {
      const got = readSync(fd, buf, len, buf.length - len, pos + len);
      len += got;
      let at = 0;
      const values: Buffer[] = [];
      while (at + 8 <= len && values.length < batch) {
        const size = buf.readUInt32BE(at) + 4;
        if (at + size > len) break;
        if (crc32(buf.subarray(at + 8, at + size)) !== buf.readUInt32BE(at + 4)) throw new Error('bad crc');
        // offset(8) timestamp(8) attrs(1) key length(4) key, value length(4) value
        let p = at + 8 + 17;
        p += 4 + buf.readUInt32BE(p);
        const vl = buf.readUInt32BE(p);
        values.push(buf.subarray(p + 4, p + 4 + vl));
        at += size;
      }
      if (values.length) onBatch(seen, values);
      seen += values.length;
      pos += at;
      buf.copy(buf, 0, at, len);
      len -= at;
      if (got === 0 && values.length === 0) break;
    }
  } finally {
    closeSync(fd);
  }
  return seen;
}

/**
 * Records per second of each side over `rounds` runs, alternating (A B A B: the machine's noise
 * hits both), as medians: wall-clock rate, and records per CPU second of this process (on a
 * shared, loaded machine the CPU figure is steadier; it leaves out time waiting on the disk).
 */
export async function bestRounds(
  rounds: number,
  n: number,
  sides: { baseline: (round: number) => Promise<number> | number; busbar: (round: number) => Promise<number> | number },
): Promise<{ busbar: number; baseline: number; busbarCpu: number; baselineCpu: number }> {
  const wall = { busbar: [] as number[], baseline: [] as number[] };
  const cpu = { busbar: [] as number[], baseline: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    for (const side of ['baseline', 'busbar'] as const) {
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const got = (await sides[side](r)) || n;
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const c = process.cpuUsage(c0);
      wall[side].push(got / secs);
      cpu[side].push(got / ((c.user + c.system) / 1e6));
    }
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  return { busbar: median(wall.busbar), baseline: median(wall.baseline), busbarCpu: median(cpu.busbar), baselineCpu: median(cpu.baseline) };
}
