import { close, closeSync, fdatasync, fdatasyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, unlinkSync, fstatSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BusbarError } from '../../lib/errors.js';
import { encodeBatch, parseRecord, partitionOf, type RecordInput } from './record.js';
import { fileSize, IndexBuilder, writeAll, indexPath, listSegments, logPath, maxTimestamp, rebuildIndexes, recoverPartition, removeSegment, scanSegment, timeIndexPath, writeFileDurable } from './segment.js';

export type FsyncPolicy = 'batch' | 'interval' | 'none';

export interface LogSettings {
  partitions: number;
  segmentBytes: number;
  indexIntervalBytes: number;
  fsync: FsyncPolicy;
  fsyncIntervalMs: number;
  /**
   * Syncs run on the event loop (no thread-pool round trip) while they take under this many
   * ms (a moving average; see Syncer); slower ones send the syncs of the next
   * SLOW_SYNC_BACKOFF_MS to the thread pool. 0: always in the thread pool.
   */
  inlineSyncMs: number;
  maxBatchRecords: number;
  retentionMs: number | undefined;
  retentionBytes: number | undefined;
  compact: boolean;
  tombstoneRetentionMs: number;
  maintenanceIntervalMs: number;
}

export const DEFAULT_LOG_SETTINGS: LogSettings = {
  partitions: 1,
  segmentBytes: 64 * 1024 * 1024,
  indexIntervalBytes: 4096,
  fsync: 'batch',
  fsyncIntervalMs: 100,
  inlineSyncMs: 1,
  maxBatchRecords: 5000,
  retentionMs: undefined,
  retentionBytes: undefined,
  compact: false,
  tombstoneRetentionMs: 24 * 3600 * 1000,
  maintenanceIntervalMs: 60_000,
};

const HOST = hostname();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ioError(what: string, path: string, err: unknown): BusbarError {
  return new BusbarError('EVENTLOG_IO', `event log: ${what} failed for ${path}: ${(err as Error).message}`, { cause: err, details: { path, errno: (err as NodeJS.ErrnoException).code } });
}

const syncP = (fd: number): Promise<void> => new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));

/** After a sync on the event loop took longer than `inlineSyncMs`: how long syncs go to the thread pool. */
export const SLOW_SYNC_BACKOFF_MS = 5000;

/**
 * The durability syncs of one partition. The thread-pool round trip of an asynchronous
 * fdatasync (a worker woken, the loop woken back) costs about as much as a fast sync itself on
 * a VM, so while syncs are fast (their moving average under `inlineMs`) they run on the event
 * loop; slow ones (the average above it, or one sync over 10 x `inlineMs`) move them to the
 * thread pool for SLOW_SYNC_BACKOFF_MS, then they are tried on the loop again. The loop is so
 * held by a few slow syncs at most per backoff period.
 */
class Syncer {
  readonly #inlineMs: number;
  #poolUntil = 0;
  #average = 0;
  constructor(inlineMs: number) {
    this.#inlineMs = inlineMs;
  }

  /** Undefined when the sync is done (it throws on failure); else the pending sync. */
  sync(fd: number): Promise<void> | undefined {
    if (this.#inlineMs <= 0) return syncP(fd);
    const t0 = performance.now();
    if (t0 < this.#poolUntil) return syncP(fd);
    fdatasyncSync(fd);
    const t1 = performance.now();
    const took = t1 - t0;
    // a moving average, so the odd outlier of a healthy disk (a few in a thousand over 1 ms
    // here) does not count as slow; one very slow sync does at once
    this.#average = this.#average * 0.8 + took * 0.2;
    if (this.#average > this.#inlineMs || took > 10 * this.#inlineMs) {
      this.#poolUntil = t1 + SLOW_SYNC_BACKOFF_MS;
      this.#average = 0;
    }
    return undefined;
  }
}
const closeP = (fd: number): Promise<void> => new Promise((resolve) => close(fd, () => resolve()));

/** The partition count a topic was created with (its `meta.json`), or undefined for a new topic. */
export function readTopicMeta(topicDir: string): { partitions: number } | undefined {
  try {
    return JSON.parse(readFileSync(join(topicDir, 'meta.json'), 'utf8')) as { partitions: number };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BusbarError('EVENTLOG_IO', `event log: ${join(topicDir, 'meta.json')} is unreadable: ${(err as Error).message}`, { cause: err, details: { path: topicDir } });
  }
}

interface Pending {
  records: RecordInput[];
  resolve: (first: number) => void;
  reject: (err: unknown) => void;
}

/** The one writer of a partition: appends in groups, rolls segments, keeps its indexes. */
class PartitionWriter {
  readonly dir: string;
  readonly #s: LogSettings;
  readonly #syncer: Syncer;
  #bases: number[];
  #fd: number;
  #ixFd: number;
  #tixFd: number;
  /** Sizes of the active segment's index files (where the next entries go). */
  #ixSize: number;
  #tixSize: number;
  #size: number;
  #next: number;
  #lastTs: number;
  #ix: IndexBuilder;
  #queue: Pending[] = [];
  #flushing = false;
  #awaitingSync: Array<() => void> = [];
  #dirty = false;
  #closed = false;
  readonly #onAppend: (p: PartitionWriter) => void;
  /** fsync=interval: an append waits for the next sync (the log keeps the process alive until it ran). */
  readonly #onWaiting: () => void;
  readonly #maxTs = new Map<number, number>();
  readonly cut: { at: number; reason: string; bytes: number } | undefined;

  constructor(dir: string, settings: LogSettings, onAppend: (p: PartitionWriter) => void, onWaiting: () => void = () => undefined) {
    this.dir = dir;
    this.#s = settings;
    this.#syncer = new Syncer(settings.inlineSyncMs);
    this.#onAppend = onAppend;
    this.#onWaiting = onWaiting;
    const r = recoverPartition(dir, settings.indexIntervalBytes);
    this.cut = r.cut;
    this.#bases = r.bases;
    this.#next = r.nextOffset;
    this.#size = r.activeSize;
    this.#lastTs = r.maxTs;
    const base = this.activeBase;
    this.#ix = new IndexBuilder(base, settings.indexIntervalBytes, r.lastIndexedPos, r.maxTs);
    this.#fd = openSync(logPath(dir, base), 'r+');
    this.#ixFd = openSync(indexPath(dir, base), 'a');
    this.#tixFd = openSync(timeIndexPath(dir, base), 'a');
    this.#ixSize = fstatSync(this.#ixFd).size;
    this.#tixSize = fstatSync(this.#tixFd).size;
  }

  get activeBase(): number {
    return this.#bases[this.#bases.length - 1]!;
  }

  get nextOffset(): number {
    return this.#next;
  }

  get startOffset(): number {
    return this.#bases[0]!;
  }

  get bases(): readonly number[] {
    return this.#bases;
  }

  append(records: RecordInput[]): Promise<number> {
    if (this.#closed) return Promise.reject(new BusbarError('EVENTLOG_CLOSED', `event log partition ${this.dir} is closed`, { details: { path: this.dir } }));
    return new Promise((resolve, reject) => {
      this.#queue.push({ records, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  /** Appends waiting meanwhile go out together in the next write: group commit, one fsync per group. */
  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length) {
        const group: Pending[] = [];
        const records: RecordInput[] = [];
        while (this.#queue.length && (records.length === 0 || records.length + this.#queue[0]!.records.length <= this.#s.maxBatchRecords)) {
          const p = this.#queue.shift()!;
          group.push(p);
          for (const r of p.records) records.push(r);
        }
        try {
          const first = await this.#write(records);
          if (this.#s.fsync === 'batch') {
            const pending = this.#syncer.sync(this.#fd);
            if (pending) await pending;
          }
          else if (this.#s.fsync === 'interval') {
            this.#dirty = true;
            this.#onWaiting();
            await new Promise<void>((r) => this.#awaitingSync.push(r));
          }
          let at = first;
          for (const p of group) {
            p.resolve(at);
            at += p.records.length;
          }
        } catch (err) {
          for (const p of group) p.reject(err instanceof BusbarError ? err : ioError('append', this.dir, err));
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * Encode and write a group. The writes go to the page cache synchronously (a few
   * microseconds, no thread-pool round trip); the sync, which waits for the disk, is the
   * Syncer's (on the loop only while syncs are fast).
   */
  async #write(records: RecordInput[]): Promise<number> {
    const ts = Math.max(Date.now(), this.#lastTs);
    this.#lastTs = ts;
    const first = this.#next;
    const { buf, positions } = encodeBatch(records, first, ts);
    if (this.#size > 0 && this.#size + buf.length > this.#s.segmentBytes) await this.#roll();
    const at = this.#size;
    try {
      writeAll(this.#fd, buf, at);
    } catch (err) {
      // a partial write must not stay in front of the next batch
      try {
        ftruncateSync(this.#fd, at);
      } catch {
        // recovery cuts it at the next open
      }
      throw ioError('write', logPath(this.dir, this.activeBase), err);
    }
    this.#size += buf.length;
    this.#next += records.length;
    const base = this.activeBase;
    this.#maxTs.set(base, ts);
    for (let i = 0; i < positions.length; i++) this.#ix.add(first + i, at + positions[i]!, ts);
    if (this.#ix.index.length) {
      const { index, time } = this.#ix.take();
      // indexes are hints rebuilt on recovery: written, not synced
      writeAll(this.#ixFd, index, this.#ixSize);
      writeAll(this.#tixFd, time, this.#tixSize);
      this.#ixSize += index.length;
      this.#tixSize += time.length;
    }
    this.#onAppend(this);
    return first;
  }

  async #roll(): Promise<void> {
    if (this.#s.fsync !== 'none') await syncP(this.#fd);
    await Promise.all([closeP(this.#fd), closeP(this.#ixFd), closeP(this.#tixFd)]);
    const base = this.#next;
    this.#bases = [...this.#bases, base];
    this.#fd = openSync(logPath(this.dir, base), 'w+');
    this.#ixFd = openSync(indexPath(this.dir, base), 'w');
    this.#tixFd = openSync(timeIndexPath(this.dir, base), 'w');
    this.#ixSize = 0;
    this.#tixSize = 0;
    this.#size = 0;
    this.#ix = new IndexBuilder(base, this.#s.indexIntervalBytes, -Infinity, this.#lastTs);
  }

  get waitingForSync(): boolean {
    return this.#awaitingSync.length > 0;
  }

  /** The interval policy's durability point: one fdatasync for everything written since the last. */
  async syncNow(): Promise<void> {
    if (!this.#dirty && this.#awaitingSync.length === 0) return;
    this.#dirty = false;
    const waiting = this.#awaitingSync.splice(0);
    try {
      await this.#syncer.sync(this.#fd);
    } finally {
      for (const w of waiting) w();
    }
  }

  #segmentMaxTs(base: number): number | undefined {
    let t = this.#maxTs.get(base);
    if (t === undefined) {
      t = maxTimestamp(this.dir, base);
      if (t !== undefined) this.#maxTs.set(base, t);
    }
    return t;
  }

  /** Whole closed segments older than `retentionMs` or beyond `retentionBytes` go; the active one stays. */
  enforceRetention(now: number): number[] {
    const removed: number[] = [];
    const closed = this.#bases.slice(0, -1);
    const { retentionMs, retentionBytes } = this.#s;
    let total = retentionBytes === undefined ? 0 : this.#bases.reduce((n, b) => n + fileSize(logPath(this.dir, b)), 0);
    for (const b of closed) {
      const old = retentionMs !== undefined && (this.#segmentMaxTs(b) ?? 0) < now - retentionMs;
      const big = retentionBytes !== undefined && total > retentionBytes;
      if (!old && !big) break;
      total -= fileSize(logPath(this.dir, b));
      removeSegment(this.dir, b);
      this.#maxTs.delete(b);
      removed.push(b);
    }
    if (removed.length) this.#bases = this.#bases.filter((b) => !removed.includes(b));
    return removed;
  }

  /**
   * Compaction: closed segments are rewritten keeping, per key, only the latest record in the
   * whole partition; keyless records stay; a tombstone (null value) stays while younger than
   * `tombstoneRetentionMs`, so readers have that long to see the delete. Offsets are kept
   * (gaps appear). Each segment is replaced by rename, so a crash leaves the old or the new one.
   */
  compact(now: number): { removed: number; kept: number } {
    const latest = new Map<string, number>();
    for (const b of this.#bases) {
      scanSegment(logPath(this.dir, b), 0, (r) => {
        if (r.key) latest.set(r.key.toString('latin1'), r.offset);
      });
    }
    let removed = 0;
    let kept = 0;
    const empty: number[] = [];
    for (const b of this.#bases.slice(0, -1)) {
      const path = logPath(this.dir, b);
      const fd = openSync(path, 'r');
      let data: Buffer;
      try {
        const size = fstatSync(fd).size;
        data = Buffer.allocUnsafe(size);
        let got = 0;
        while (got < size) got += readSync(fd, data, got, size - got, got) || size;
      } finally {
        closeSync(fd);
      }
      const parts: Buffer[] = [];
      let drop = 0;
      for (let at = 0; at < data.length; ) {
        const r = parseRecord(data, at, data.length);
        if (r.kind !== 'record') break;
        const rec = r.record;
        const keep = rec.key === null || (latest.get(rec.key.toString('latin1')) === rec.offset && (rec.value !== null || rec.timestamp >= now - this.#s.tombstoneRetentionMs));
        if (keep) parts.push(data.subarray(at, at + rec.size));
        else drop++;
        at += rec.size;
      }
      removed += drop;
      kept += parts.length;
      if (drop === 0) continue;
      if (parts.length === 0) {
        empty.push(b);
        continue;
      }
      writeFileDurable(path, Buffer.concat(parts));
      rebuildIndexes(this.dir, b, this.#s.indexIntervalBytes);
    }
    // an emptied segment is removed, except the first: its base is where the partition starts
    for (const b of empty) {
      if (b === this.#bases[0]) {
        writeFileDurable(logPath(this.dir, b), Buffer.alloc(0));
        rebuildIndexes(this.dir, b, this.#s.indexIntervalBytes);
      } else {
        removeSegment(this.dir, b);
        this.#bases = this.#bases.filter((x) => x !== b);
      }
    }
    return { removed, kept };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    while (this.#flushing) await new Promise((r) => setImmediate(r));
    this.#closed = true;
    if (this.#s.fsync !== 'none') await syncP(this.#fd).catch(() => undefined);
    for (const w of this.#awaitingSync.splice(0)) w();
    await Promise.all([closeP(this.#fd), closeP(this.#ixFd), closeP(this.#tixFd)]);
  }
}

export interface AppendResult {
  partition: number;
  offset: number;
}

/**
 * A topic of the embedded log, opened for writing: a directory with `meta.json` (the
 * partition count, fixed at creation) and one directory per partition. One process writes a
 * topic at a time (`writer.lock` names it; a lock of a dead process is taken over); any
 * number of processes read it.
 */
export class EventLog {
  readonly dir: string;
  readonly topic: string;
  readonly settings: LogSettings;
  readonly #parts: PartitionWriter[] = [];
  readonly #listeners = new Set<(partition: number) => void>();
  #rr = 0;
  #timers: NodeJS.Timeout[] = [];
  #syncTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #logger: Logger | undefined;

  private constructor(dir: string, topic: string, settings: LogSettings, logger: Logger | undefined) {
    this.dir = dir;
    this.topic = topic;
    this.settings = settings;
    this.#logger = logger;
  }

  static open(root: string, topic: string, settings: Partial<LogSettings> = {}, logger?: Logger): EventLog {
    const s: LogSettings = { ...DEFAULT_LOG_SETTINGS, ...settings };
    if (!/^[A-Za-z0-9._-]+$/.test(topic) || topic === '.' || topic === '..') {
      throw new BusbarError('INVALID_URI', `event log topic "${topic}" may only contain letters, digits, ".", "_" and "-"`, { details: { topic } });
    }
    const dir = join(root, topic);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw ioError('mkdir', dir, err);
    }
    const meta = readTopicMeta(dir);
    if (meta && settings.partitions !== undefined && meta.partitions !== settings.partitions) {
      throw new BusbarError('EVENTLOG_CONFIG', `event log topic "${topic}" has ${meta.partitions} partitions (${join(dir, 'meta.json')}); the endpoint asks for ${settings.partitions}`, { details: { topic, partitions: meta.partitions, asked: settings.partitions } });
    }
    if (!meta) writeFileDurable(join(dir, 'meta.json'), Buffer.from(JSON.stringify({ partitions: s.partitions })));
    s.partitions = meta?.partitions ?? s.partitions;
    const log = new EventLog(dir, topic, s, logger);
    log.#lock();
    try {
      for (let p = 0; p < s.partitions; p++) {
        const w = new PartitionWriter(join(dir, String(p)), s, (pw) => log.#notify(log.#parts.indexOf(pw)), () => log.#syncTimer?.ref());
        if (w.cut) logger?.warn({ topic, partition: p, ...w.cut }, 'event log: a damaged tail was cut off after a crash; every record before it is kept');
        log.#parts.push(w);
      }
    } catch (err) {
      log.#unlock();
      throw err instanceof BusbarError ? err : ioError('open', dir, err);
    }
    if (s.fsync === 'interval') log.#syncTimer = this.#every(log, s.fsyncIntervalMs, () => log.syncNow());
    if (s.retentionMs !== undefined || s.retentionBytes !== undefined || s.compact) this.#every(log, s.maintenanceIntervalMs, () => log.maintain());
    return log;
  }

  static #every(log: EventLog, ms: number, fn: () => unknown): NodeJS.Timeout {
    const t = setInterval(() => {
      try {
        const r = fn() as Promise<unknown> | undefined;
        r?.catch?.((err: unknown) => log.#logger?.error({ err, topic: log.topic }, 'event log background task failed'));
      } catch (err) {
        log.#logger?.error({ err, topic: log.topic }, 'event log background task failed');
      }
    }, ms);
    t.unref();
    log.#timers.push(t);
    return t;
  }

  #lock(): void {
    const path = join(this.dir, 'writer.lock');
    const mine = JSON.stringify({ host: HOST, pid: process.pid });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx');
        writeFileSync(fd, mine);
        closeSync(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('lock', path, err);
      }
      let holder: { host?: string; pid?: number } = {};
      try {
        holder = JSON.parse(readFileSync(path, 'utf8')) as typeof holder;
      } catch {
        // half-written by a process that died right then: take it over
      }
      if (holder.host === HOST && typeof holder.pid === 'number' && holder.pid !== process.pid && !pidAlive(holder.pid)) {
        unlinkSync(path);
        continue;
      }
      if (holder.pid === undefined) {
        unlinkSync(path);
        continue;
      }
      throw new BusbarError('EVENTLOG_LOCKED', `event log topic "${this.topic}" is being written by process ${holder.pid} on ${holder.host} (${path}); one writer per topic`, { details: { topic: this.topic, holder } });
    }
    throw new BusbarError('EVENTLOG_LOCKED', `event log topic "${this.topic}": could not take ${path}`, { details: { topic: this.topic } });
  }

  #unlock(): void {
    try {
      unlinkSync(join(this.dir, 'writer.lock'));
    } catch {
      // gone already
    }
  }

  get partitions(): number {
    return this.settings.partitions;
  }

  /** Called (in this process) after every append, with the partition: readers wake up at once. */
  onAppend(listener: (partition: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(partition: number): void {
    for (const l of this.#listeners) l(partition);
  }

  /** Partition for a key: its hash; keyless records go round-robin. */
  partitionFor(key: Buffer | null): number {
    if (key) return partitionOf(key, this.partitions);
    this.#rr = (this.#rr + 1) % this.partitions;
    return this.#rr;
  }

  /** Append records to one partition; resolves with the first offset once durable by the fsync policy. */
  append(partition: number, records: RecordInput[]): Promise<number> {
    const w = this.#parts[partition];
    if (!w) return Promise.reject(new BusbarError('EVENTLOG_CONFIG', `event log topic "${this.topic}" has no partition ${partition}`, { details: { topic: this.topic, partition } }));
    return w.append(records);
  }

  /** Offset the next record of each partition gets (the log end). */
  endOffsets(): number[] {
    return this.#parts.map((p) => p.nextOffset);
  }

  startOffsets(): number[] {
    return this.#parts.map((p) => p.startOffset);
  }

  async syncNow(): Promise<void> {
    await Promise.all(this.#parts.map((p) => p.syncNow()));
    // nobody waits for a sync any more: the timer no longer keeps the process alive (a send
    // awaiting the next sync does: it ref()s it, or a script's last sends would never confirm)
    if (!this.#parts.some((p) => p.waitingForSync)) this.#syncTimer?.unref();
  }

  /** Retention, then compaction, as configured (also run every `maintenanceIntervalMs`). */
  maintain(now = Date.now()): { deletedSegments: number; compactedAway: number } {
    let deletedSegments = 0;
    let compactedAway = 0;
    for (const p of this.#parts) {
      if (this.settings.retentionMs !== undefined || this.settings.retentionBytes !== undefined) deletedSegments += p.enforceRetention(now).length;
      if (this.settings.compact) compactedAway += p.compact(now).removed;
    }
    if (deletedSegments || compactedAway) this.#logger?.info({ topic: this.topic, deletedSegments, compactedAway }, 'event log maintenance');
    return { deletedSegments, compactedAway };
  }

  /** Segment base offsets of a partition (for tests and tools). */
  segments(partition: number): readonly number[] {
    return this.#parts[partition]?.bases ?? [];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await Promise.all(this.#parts.map((p) => p.close()));
    this.#unlock();
  }
}

export { listSegments };
