import { closeSync, existsSync, fstatSync, ftruncateSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseRecord, type LogRecord } from './record.js';

/**
 * Segment files of one partition directory: `<base offset, 20 digits>.log` with its sparse
 * `.index` (u32 relative offset, u32 file position; an entry every `indexIntervalBytes`)
 * and `.timeindex` (u32 tsHi, u32 tsLo, u32 relative offset: the largest timestamp up to
 * that record, so it only grows). Indexes are hints, rebuilt from the log when missing or
 * after recovery; the log file is the truth.
 */
export const INDEX_ENTRY = 8;
export const TIME_ENTRY = 12;
const TWO32 = 2 ** 32;

export function segmentName(base: number): string {
  return String(base).padStart(20, '0');
}

export function logPath(dir: string, base: number): string {
  return join(dir, `${segmentName(base)}.log`);
}

export function indexPath(dir: string, base: number): string {
  return join(dir, `${segmentName(base)}.index`);
}

export function timeIndexPath(dir: string, base: number): string {
  return join(dir, `${segmentName(base)}.timeindex`);
}

/** Base offsets of the partition's segments, oldest first. */
export function listSegments(dir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: number[] = [];
  for (const n of names) if (/^\d{20}\.log$/.test(n)) out.push(Number(n.slice(0, 20)));
  return out.sort((a, b) => a - b);
}

/** The segment holding `offset` (the last whose base is at or below it), or the first one. */
export function segmentFor(bases: readonly number[], offset: number): number | undefined {
  let lo = 0;
  let hi = bases.length - 1;
  let found: number | undefined = bases[0];
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (bases[mid]! <= offset) {
      found = bases[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

function readWhole(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    return readAll(fd);
  } finally {
    closeSync(fd);
  }
}

/** Write all of `buf` at `pos`: into the page cache, microseconds (the disk is waited for by a sync). */
export function writeAll(fd: number, buf: Buffer, pos: number): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, pos + done);
}

/** What an open file holds, from its start (as much as is there). */
export function readAll(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  while (got < size) {
    const n = readSync(fd, buf, got, size - got, got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/** File position to start scanning for `offset` in segment `base` (from its sparse index). */
export function positionFor(dir: string, base: number, offset: number): number {
  const idx = readWhole(indexPath(dir, base));
  const n = Math.floor(idx.length / INDEX_ENTRY);
  const rel = offset - base;
  let lo = 0;
  let hi = n - 1;
  let pos = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (idx.readUInt32BE(mid * INDEX_ENTRY) <= rel) {
      pos = idx.readUInt32BE(mid * INDEX_ENTRY + 4);
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return pos;
}

/**
 * An offset in segment `base` from which every record with a timestamp at or after `ts`
 * lies: the record after the last time-index entry whose largest timestamp is still below `ts`.
 */
export function offsetBeforeTime(dir: string, base: number, ts: number): number {
  const idx = readWhole(timeIndexPath(dir, base));
  const n = Math.floor(idx.length / TIME_ENTRY);
  let lo = 0;
  let hi = n - 1;
  let off = base;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const t = idx.readUInt32BE(mid * TIME_ENTRY) * TWO32 + idx.readUInt32BE(mid * TIME_ENTRY + 4);
    if (t < ts) {
      off = base + idx.readUInt32BE(mid * TIME_ENTRY + 8) + 1;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return off;
}

/** The largest timestamp in a segment (from its time index, else by scanning), or undefined when empty. */
export function maxTimestamp(dir: string, base: number): number | undefined {
  let max: number | undefined;
  scanSegment(logPath(dir, base), 0, (r) => {
    if (max === undefined || r.timestamp > max) max = r.timestamp;
  });
  return max;
}

export interface ScanResult {
  /** Position after the last good record. */
  end: number;
  /** Offset of the last good record, or undefined when none. */
  lastOffset: number | undefined;
  /** Why scanning stopped before the end of the file (damage), if it did. */
  damage: string | undefined;
  fileSize: number;
}

/**
 * Read a segment's records from `from` in 1 MiB chunks, calling `onRecord` for each good
 * one, until the end or the first bad record (wrong length, CRC, offsets not increasing).
 */
export function scanSegment(path: string, from: number, onRecord: (r: LogRecord, position: number) => void): ScanResult {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { end: 0, lastOffset: undefined, damage: undefined, fileSize: 0 };
  }
  try {
    const fileSize = fstatSync(fd).size;
    // a tail scan (the log end, from the last index entry) reads a few KiB: no 1 MiB buffer for it
    let buf = Buffer.allocUnsafe(Math.max(64 * 1024, Math.min(1 << 20, fileSize - from)));
    let pos = from;
    let lastOffset: number | undefined;
    while (pos < fileSize) {
      const want = Math.min(buf.length, fileSize - pos);
      const n = readSync(fd, buf, 0, want, pos);
      let at = 0;
      let progressed = false;
      for (;;) {
        const r = parseRecord(buf, at, n);
        if (r.kind === 'partial') break;
        if (r.kind === 'bad') return { end: pos + at, lastOffset, damage: r.reason, fileSize };
        if (lastOffset !== undefined && r.record.offset <= lastOffset) return { end: pos + at, lastOffset, damage: `offset ${r.record.offset} after ${lastOffset}`, fileSize };
        onRecord(r.record, pos + at);
        lastOffset = r.record.offset;
        at += r.record.size;
        progressed = true;
      }
      if (!progressed) {
        // a record larger than the buffer, or a torn tail
        if (n < want || pos + n >= fileSize) return { end: pos, lastOffset, damage: 'incomplete record at the end', fileSize };
        buf = Buffer.allocUnsafe(buf.length * 2);
        continue;
      }
      pos += at;
    }
    return { end: pos, lastOffset, damage: undefined, fileSize };
  } finally {
    closeSync(fd);
  }
}

/** Index entries for a scan: appended by `add` when `interval` bytes passed since the last one. */
export class IndexBuilder {
  readonly #base: number;
  readonly #interval: number;
  #lastPos = -Infinity;
  #maxTs = 0;
  index: Buffer[] = [];
  time: Buffer[] = [];

  constructor(base: number, interval: number, lastIndexedPos = -Infinity, maxTs = 0) {
    this.#base = base;
    this.#interval = interval;
    this.#lastPos = lastIndexedPos;
    this.#maxTs = maxTs;
  }

  get maxTs(): number {
    return this.#maxTs;
  }

  add(offset: number, position: number, ts: number): void {
    if (ts > this.#maxTs) this.#maxTs = ts;
    if (position - this.#lastPos < this.#interval) return;
    this.#lastPos = position;
    const rel = offset - this.#base;
    const e = Buffer.allocUnsafe(INDEX_ENTRY);
    e.writeUInt32BE(rel, 0);
    e.writeUInt32BE(position, 4);
    this.index.push(e);
    const t = Buffer.allocUnsafe(TIME_ENTRY);
    t.writeUInt32BE(Math.floor(this.#maxTs / TWO32), 0);
    t.writeUInt32BE(this.#maxTs >>> 0, 4);
    t.writeUInt32BE(rel, 8);
    this.time.push(t);
  }

  take(): { index: Buffer; time: Buffer } {
    const out = { index: Buffer.concat(this.index), time: Buffer.concat(this.time) };
    this.index = [];
    this.time = [];
    return out;
  }
}

/** Write a file whole and fsync it (replacing by rename, so a crash leaves the old or the new one). */
export function writeFileDurable(path: string, data: Buffer): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, data, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Rebuild both indexes of a segment from its log file. */
export function rebuildIndexes(dir: string, base: number, interval: number): { maxTs: number; lastIndexedPos: number } {
  const b = new IndexBuilder(base, interval);
  let lastIndexedPos = -Infinity;
  scanSegment(logPath(dir, base), 0, (r, pos) => {
    const before = b.index.length;
    b.add(r.offset, pos, r.timestamp);
    if (b.index.length !== before) lastIndexedPos = pos;
  });
  const maxTs = b.maxTs;
  const { index, time } = b.take();
  writeFileDurable(indexPath(dir, base), index);
  writeFileDurable(timeIndexPath(dir, base), time);
  return { maxTs, lastIndexedPos };
}

export interface Recovered {
  bases: number[];
  nextOffset: number;
  activeSize: number;
  /** Set when a torn or damaged tail was cut off. */
  cut: { at: number; reason: string; bytes: number } | undefined;
  maxTs: number;
  lastIndexedPos: number;
}

/**
 * Open a partition for writing after whatever happened before: the last segment is scanned
 * and cut at its first bad record (a torn write of a crash), so everything before the damage
 * stays and appends continue right after it; its indexes are rebuilt.
 */
export function recoverPartition(dir: string, interval: number): Recovered {
  mkdirSync(dir, { recursive: true });
  for (const n of readdirSync(dir)) if (n.endsWith('.tmp') || n.endsWith('.cleaned')) unlinkSync(join(dir, n));
  let bases = listSegments(dir);
  if (bases.length === 0) {
    closeSync(openSync(logPath(dir, 0), 'a'));
    bases = [0];
  }
  // an empty last segment (rolled, nothing written yet) is skipped back over only for the next offset
  const base = bases[bases.length - 1]!;
  const path = logPath(dir, base);
  const scan = scanSegment(path, 0, () => undefined);
  let cut: Recovered['cut'];
  if (scan.end < scan.fileSize) {
    cut = { at: scan.end, reason: scan.damage ?? 'damaged tail', bytes: scan.fileSize - scan.end };
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, scan.end);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  const { maxTs, lastIndexedPos } = rebuildIndexes(dir, base, interval);
  for (const b of bases.slice(0, -1)) if (!existsSync(indexPath(dir, b)) || !existsSync(timeIndexPath(dir, b))) rebuildIndexes(dir, b, interval);
  let nextOffset = scan.lastOffset !== undefined ? scan.lastOffset + 1 : base;
  if (scan.lastOffset === undefined && bases.length > 1) nextOffset = Math.max(base, nextOffset);
  return { bases, nextOffset, activeSize: scan.end, cut, maxTs, lastIndexedPos };
}

export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export function removeSegment(dir: string, base: number): void {
  for (const p of [logPath(dir, base), indexPath(dir, base), timeIndexPath(dir, base)]) {
    try {
      unlinkSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
