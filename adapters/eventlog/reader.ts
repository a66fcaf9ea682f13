import { close, fstat, open, read } from 'node:fs';
import { join } from 'node:path';
import { parseRecord, type LogRecord } from './record.js';
import { listSegments, logPath, offsetBeforeTime, positionFor, scanSegment, segmentFor } from './segment.js';

const openP = (path: string): Promise<number | undefined> =>
  new Promise((resolve, reject) => open(path, 'r', (err, fd) => (err ? ((err as NodeJS.ErrnoException).code === 'ENOENT' ? resolve(undefined) : reject(err)) : resolve(fd))));
const readP = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
const sizeP = (fd: number): Promise<number> => new Promise((resolve, reject) => fstat(fd, (err, st) => (err ? reject(err) : resolve(st.size))));

/** First offset of a partition still on disk (retention may have removed the oldest segments). */
export function earliestOffset(dir: string): number {
  return listSegments(dir)[0] ?? 0;
}

/**
 * The log end of a partition as seen from any process: the offset after its last complete
 * record. Reads only the tail of the last segment (from its last index entry).
 */
export function latestOffset(dir: string): number {
  const bases = listSegments(dir);
  for (let i = bases.length - 1; i >= 0; i--) {
    const base = bases[i]!;
    let last: number | undefined;
    // cheap enough: from the last index entry to the end
    const from = positionFor(dir, base, Number.MAX_SAFE_INTEGER);
    scanSegment(logPath(dir, base), from, (r) => {
      last = r.offset;
    });
    if (last !== undefined) return last + 1;
    if (i === bases.length - 1 && bases.length > 0) {
      // an empty active segment: its base is the next offset
      return base;
    }
  }
  return 0;
}

/** The first offset whose record was appended at or after `ts` (the log end if none). */
export function offsetForTime(dir: string, ts: number): number {
  const bases = listSegments(dir);
  for (const base of bases) {
    let found: number | undefined;
    const from = offsetBeforeTime(dir, base, ts);
    const pos = positionFor(dir, base, from);
    scanSegment(logPath(dir, base), pos, (r) => {
      if (found === undefined && r.offset >= from && r.timestamp >= ts) found = r.offset;
    });
    if (found !== undefined) return found;
  }
  return latestOffset(dir);
}

/**
 * Reads one partition from any offset, in order, from any process: follows segment rolls,
 * retention (a position before the first segment moves to it) and a tail cut by recovery
 * (it re-seeks). Bytes not yet forming a whole record with a good CRC are not handed out:
 * the writer may be mid-write.
 */
export class PartitionReader {
  readonly dir: string;
  #next: number;
  #fd: number | undefined;
  #base = -1;
  #pos = 0;
  #buf = Buffer.allocUnsafe(256 * 1024);
  #len = 0;
  /** Set when retention removed records this reader had not read: [from, to). */
  skipped: [number, number] | undefined;

  constructor(topicDir: string, partition: number, offset: number) {
    this.dir = join(topicDir, String(partition));
    this.#next = offset;
  }

  /** The offset of the next record to be read. */
  get position(): number {
    return this.#next;
  }

  seek(offset: number): void {
    this.#next = offset;
    this.#drop();
  }

  #drop(): void {
    if (this.#fd !== undefined) close(this.#fd, () => undefined);
    this.#fd = undefined;
    this.#base = -1;
    this.#len = 0;
  }

  async #openFor(offset: number): Promise<boolean> {
    const bases = listSegments(this.dir);
    if (bases.length === 0) return false;
    if (offset < bases[0]!) {
      this.skipped = [offset, bases[0]!];
      offset = bases[0]!;
      this.#next = offset;
    }
    const base = segmentFor(bases, offset)!;
    const fd = await openP(logPath(this.dir, base));
    if (fd === undefined) return false; // removed meanwhile: the next read lists again
    this.#fd = fd;
    this.#base = base;
    this.#pos = positionFor(this.dir, base, offset);
    this.#len = 0;
    return true;
  }

  /** Up to `max` records from the current position; an empty array at the end of the log. */
  async read(max: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    for (let guard = 0; guard < 64 && out.length < max; guard++) {
      if (this.#fd === undefined && !(await this.#openFor(this.#next))) return out;
      const fd = this.#fd!;
      const size = await sizeP(fd);
      if (size < this.#pos + this.#len) {
        // the file got shorter: recovery cut a torn tail; find our offset again
        this.#drop();
        continue;
      }
      const n = size > this.#pos + this.#len ? await readP(fd, this.#buf, this.#len, this.#buf.length - this.#len, this.#pos + this.#len) : 0;
      this.#len += n;
      let at = 0;
      let stop = false;
      const lent = out.length;
      while (out.length < max) {
        // records are views of the read buffer (no copy per record); it is handed to them below
        const r = parseRecord(this.#buf, at, this.#len, true);
        if (r.kind !== 'record') {
          stop = true;
          break;
        }
        at += r.record.size;
        if (r.record.offset >= this.#next) {
          out.push(r.record);
          this.#next = r.record.offset + 1;
        }
      }
      // bytes after the last whole record are read again next time, never kept: recovery may
      // have cut them and the writer put other bytes there
      this.#pos += at;
      const partial = this.#len - at;
      if (out.length > lent && at < this.#buf.length / 8) {
        // a few small records (a serial reader takes one at a time): copying them is cheaper
        // than a fresh buffer
        for (let i = lent; i < out.length; i++) {
          const r = out[i]!;
          if (r.key) r.key = Buffer.from(r.key);
          if (r.value) r.value = Buffer.from(r.value);
        }
      }
      if (out.length > lent && at >= this.#buf.length / 8) {
        // the records point into this buffer: the next read goes into a fresh one (what was
        // read past them moves along)
        const fresh = Buffer.allocUnsafe(this.#buf.length);
        if (!stop) this.#buf.copy(fresh, 0, at, this.#len);
        this.#buf = fresh;
        if (!stop) {
          this.#len = partial;
          break;
        }
      } else if (!stop) {
        // stopped at `max`: the rest are whole records or the start of one, kept for the next read
        this.#buf.copy(this.#buf, 0, at, this.#len);
        this.#len = partial;
        break;
      }
      this.#len = 0;
      if (stop && partial === 0 && this.#pos >= size) {
        // at the end of this segment: a newer one means it was rolled
        const bases = listSegments(this.dir);
        const later = bases.find((b) => b > this.#base);
        if (later === undefined) break;
        if (this.#next < later) this.#next = later;
        this.#drop();
        continue;
      }
      if (partial > 0 && partial === this.#buf.length) {
        // a record larger than the buffer
        this.#buf = Buffer.allocUnsafe(this.#buf.length * 2);
        continue;
      }
      break;
    }
    return out;
  }

  close(): void {
    this.#drop();
  }
}
