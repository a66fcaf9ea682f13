import { close, fstat, open, read } from 'node:fs';
import { join } from 'node:path';
import { decodeRecord, type LogRecord } from './record.js';
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

const YIELD_MS = 5;

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
  /** File position of `#buf[#start]`: the first byte not yet handed out. */
  #pos = 0;
  #buf = Buffer.allocUnsafe(256 * 1024);
  /** Whole records not yet handed out lie in `#buf[#start, #len)` (kept when a read stopped at `max`). */
  #start = 0;
  #len = 0;
  /** Records handed out are views of `#buf`: the next read from the file goes into a fresh one. */
  #lent = false;
  /** The last read from the file got less than it asked for: the end of the data then. */
  #eof = false;
  /** When this reader last let the event loop turn (a file read does; serving from the buffer does not). */
  #turned = performance.now();
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
    this.#start = 0;
    this.#len = 0;
    this.#eof = false;
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
    this.#start = 0;
    this.#len = 0;
    this.#eof = false;
    return true;
  }

  /**
   * Hand out the whole records buffered, up to `max` in all. Undefined when it stopped at
   * `max` or at the end of the buffer; else why the bytes there are no record (then they are
   * dropped: the next read takes them from the file again, as recovery may have cut them and
   * the writer put others there).
   */
  #take(out: LogRecord[], max: number): string | undefined {
    const buf = this.#buf;
    let at = this.#start;
    const end = this.#len;
    let why: string | undefined;
    while (out.length < max) {
      // records are views of the read buffer (no copy per record)
      const r = decodeRecord(buf, at, end, true);
      if (r === undefined) break;
      if (typeof r === 'string') {
        why = r;
        break;
      }
      at += r.size;
      if (r.offset >= this.#next) {
        out.push(r);
        this.#lent = true;
        this.#next = r.offset + 1;
      }
    }
    this.#pos += at - this.#start;
    this.#start = at;
    if (why !== undefined) this.#len = at;
    return why;
  }

  /** Up to `max` records from the current position; an empty array at the end of the log. */
  async read(max: number): Promise<LogRecord[]> {
    const out = await this.#read(max);
    // Records served from the buffer resolve at once: a consumer whose route is synchronous
    // too (a SQLite sink) would go on in microtasks only and starve timers (group heartbeats)
    // and I/O for as long as the buffer lasts. Every few ms the event loop gets a turn.
    const now = performance.now();
    if (now - this.#turned > YIELD_MS) {
      await new Promise((r) => setImmediate(r));
      this.#turned = performance.now();
    }
    return out;
  }

  async #read(max: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    for (let guard = 0; guard < 64 && out.length < max; guard++) {
      if (this.#fd === undefined && !(await this.#openFor(this.#next))) return out;
      if (this.#start < this.#len) {
        if (this.#take(out, max) !== undefined) break;
        // at the end of what the last read found: hand it out rather than wait on the file again
        if (out.length >= max || (out.length > 0 && this.#eof)) break;
      }
      const fd = this.#fd!;
      // whatever is left of the buffer (the start of a record) is read again from the file
      let buf = this.#buf;
      if (this.#lent) {
        buf = this.#buf = Buffer.allocUnsafe(buf.length);
        this.#lent = false;
      }
      const n = await readP(fd, buf, 0, buf.length, this.#pos);
      this.#turned = performance.now();
      this.#start = 0;
      this.#len = n;
      this.#eof = n < buf.length;
      if (n === 0) {
        const size = await sizeP(fd);
        if (size < this.#pos) {
          // the file got shorter: recovery cut a torn tail; find our offset again
          this.#drop();
          continue;
        }
        // at the end of this segment: a newer one means it was rolled
        const later = listSegments(this.dir).find((b) => b > this.#base);
        if (later === undefined || size > this.#pos) break;
        if (this.#next < later) this.#next = later;
        this.#drop();
        continue;
      }
      const before = out.length;
      if (this.#take(out, max) !== undefined) break;
      if (out.length === before && this.#start === 0 && !this.#eof) {
        // a record larger than the buffer
        this.#buf = Buffer.allocUnsafe(buf.length * 2);
        this.#len = 0;
        continue;
      }
      if (this.#eof) break;
    }
    return out;
  }

  close(): void {
    this.#drop();
  }
}
