import { closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { BusbarError } from '../../lib/errors.js';
import { writeAll } from './segment.js';
import { createOffsets, isSealed, offsetsFilePath, openOffsets, readOffsets, seal, writeOffset, type OffsetsRead } from './offsets.js';

/**
 * A consumer group of the embedded log, coordinated through one small file per group
 * (`<topic>/groups/<group>.json`, changed only under `<group>.lock`), so processes on one
 * machine share partitions with no server:
 *
 * - members heartbeat; one silent for `sessionTimeoutMs`, or whose process is gone (same
 *   host, pid no longer alive: a `kill -9` is noticed at the next heartbeat), is removed;
 * - any change of membership starts a new generation and a sticky, balanced assignment:
 *   each partition has one owner and an epoch (the generation it was given to that owner);
 * - a partition the assignment takes from a live member (one joined) is not given away at
 *   once: it is marked `to` the new member, and its owner hands it over (`release`) once what
 *   it had in the route finished and its offset was committed, in a newer epoch. Until then the
 *   new member does not read it, so a partition is read by one member at a time and what its
 *   owner finished is never left behind uncommitted. A dead, expelled or leaving member's
 *   partitions go to the others at once;
 * - a commit names the partition's epoch and is refused (`EVENTLOG_FENCED`) unless the
 *   committer still owns the partition in that epoch: a zombie (paused, partitioned off,
 *   slow) cannot move a partition's offset once it was given to someone else.
 *
 * Generations start at the creation time in ms and only grow, so epochs stay monotonic even
 * if the group file is deleted and created again (they also fence database-held offsets).
 *
 * Committed offsets, written far more often than membership, live next to it in the offsets
 * file the group file names (`<group>.<n>.offsets`, ./offsets.ts): a region per partition,
 * written in place by its owner without the lock, so a commit costs a write and one sync, no
 * file creation, rename or lock; the file is replaced whenever ownership changes, which is
 * what fences a zombie's commits. The group file's `offsets` is a copy for people reading it.
 */
export interface GroupState {
  generation: number;
  members: Record<string, { host: string; pid: number; seen: number }>;
  /** `to`: the member the owner is to hand the partition over to (see `release`). */
  assignment: Record<string, { member: string; epoch: number; to?: string }>;
  /** Next offset to read, per partition: a copy from when the offsets file was last replaced (readGroup reads the file). */
  offsets: Record<string, number>;
  /** `n` of the offsets file in force, `<group>.<n>.offsets` (see ./offsets.ts); absent before the first. */
  offsetsFile?: number;
}

const HOST = hostname();
const LOCK_STALE_MS = 5000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function groupPaths(topicDir: string, group: string): { file: string; lock: string } {
  if (!/^[A-Za-z0-9._-]+$/.test(group)) throw new BusbarError('INVALID_OPTION', `event log group "${group}" may only contain letters, digits, ".", "_" and "-"`, { details: { option: 'group', group } });
  const dir = join(topicDir, 'groups');
  return { file: join(dir, `${group}.json`), lock: join(dir, `${group}.lock`) };
}

function readGroupFile(file: string): GroupState | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as GroupState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BusbarError('EVENTLOG_IO', `event log group file ${file} is unreadable: ${(err as Error).message}`, { cause: err, details: { path: file } });
  }
}

/**
 * The group's state; its offsets are the last commit's (from the offsets file it names). Read
 * without the lock: a file replaced meanwhile is found again through the group file.
 */
export function readGroup(file: string): GroupState | undefined {
  for (let attempt = 0; ; attempt++) {
    const state = readGroupFile(file);
    if (!state) return undefined;
    const got = readCommitted(file, state);
    if (got === undefined && state.offsetsFile !== undefined && attempt < 5) continue;
    if (got) Object.assign(state.offsets, got.offsets);
    return state;
  }
}

/** What the offsets file named by `state` holds; undefined when there is none. */
function readCommitted(file: string, state: GroupState): OffsetsRead | undefined {
  if (state.offsetsFile === undefined) {
    const legacy = readLegacyOffsets(legacyOffsetsPath(file));
    return legacy && { sealed: true, offsets: legacy, seqs: new Map() };
  }
  const path = offsetsFilePath(file, state.offsetsFile);
  const fd = openOffsets(path);
  if (fd === undefined) return undefined;
  try {
    return readOffsets(fd, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * Under the group lock, with `state` about to be written: replace the offsets file (see
 * ./offsets.ts). The old one is sealed first, so what its owners commit from then on does not
 * count; its offsets (with `set` over them) go into the next file, which the group file then
 * names; the old one is removed. A crash before the group file is written leaves the old
 * (sealed) one named, and the next operation under the lock replaces it again.
 */
function writeGroupWithNewOffsets(file: string, state: GroupState, partitions: number, set?: Record<string, number>): void {
  const oldPath = state.offsetsFile === undefined ? legacyOffsetsPath(file) : offsetsFilePath(file, state.offsetsFile);
  const offsets = { ...state.offsets };
  if (state.offsetsFile === undefined) Object.assign(offsets, readLegacyOffsets(oldPath));
  else {
    const fd = openOffsets(oldPath);
    if (fd !== undefined) {
      try {
        seal(fd);
        Object.assign(offsets, readOffsets(fd, oldPath).offsets);
      } finally {
        closeSync(fd);
      }
    }
  }
  if (set) Object.assign(offsets, set);
  const next = Math.max(state.generation, (state.offsetsFile ?? 0) + 1);
  createOffsets(offsetsFilePath(file, next), offsets, partitions);
  state.offsetsFile = next;
  state.offsets = offsets;
  writeGroup(file, state);
  try {
    unlinkSync(oldPath);
  } catch {
    // none (a new group, or a file named by a group file that was deleted)
  }
}

// ------------------------------------------------- the offsets file of earlier versions, read once and replaced
const LEGACY_SLOT_BYTES = 64 * 1024;
/** magic, sequence number (2 x u32), body length, CRC-32 of sequence number, length and body */
const LEGACY_HEADER = 20;
const LEGACY_MAGIC = 0x45564f31; // "EVO1"

function legacyOffsetsPath(groupFile: string): string {
  return groupFile.replace(/\.json$/, '.offsets');
}

/** The newest whole slot of `<group>.offsets` (two JSON slots written in turn); undefined without one. */
function readLegacyOffsets(path: string): Record<string, number> | undefined {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BusbarError('EVENTLOG_IO', `event log: cannot read ${path}: ${(err as Error).message}`, { cause: err, details: { path } });
  }
  let best: { seq: number; offsets: Record<string, number> } | undefined;
  for (const at of [0, LEGACY_SLOT_BYTES]) {
    if (data.length < at + LEGACY_HEADER || data.readUInt32BE(at) !== LEGACY_MAGIC) continue;
    const seq = data.readUInt32BE(at + 4) * 2 ** 32 + data.readUInt32BE(at + 8);
    const len = data.readUInt32BE(at + 12);
    const body = data.subarray(at + LEGACY_HEADER, at + LEGACY_HEADER + len);
    if (body.length !== len || crc32(body, crc32(data.subarray(at + 4, at + 16))) !== data.readUInt32BE(at + 16)) continue;
    if (!best || seq > best.seq) best = { seq, offsets: JSON.parse(body.toString('utf8')) as Record<string, number> };
  }
  return best?.offsets;
}

/** Run `fn` holding the group's lock file (held for well under a millisecond; a dead holder's lock is taken over). */
export function withGroupLock<T>(lock: string, fn: () => T): T {
  // not longer: the wait blocks this thread; a busy lock fails the operation, which is retried at the next tick
  const deadline = Date.now() + 1000;
  let made = 0;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${HOST} ${process.pid}`);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && made++ < 3) {
        // the first operation of the group: its directory is made once, not on every commit
        mkdirSync(join(lock, '..'), { recursive: true });
        continue;
      }
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new BusbarError('EVENTLOG_IO', `event log: cannot create ${lock}: ${(err as Error).message}`, { cause: err, details: { path: lock } });
    }
    let stale = false;
    try {
      const [host, pid] = readFileSync(lock, 'utf8').split(' ');
      // A holder on this machine is waited for while its process lives, however long it takes:
      // one paused (SIGSTOP, swapped out) inside the lock would, once taken over, write back the
      // state it read before the pause and move committed offsets back. Only a holder elsewhere
      // (a shared directory) is judged by the lock's age.
      if (host === HOST && pid !== undefined && Number(pid) !== process.pid) stale = !pidAlive(Number(pid));
      else stale = Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS;
    } catch {
      // released meanwhile
    }
    if (stale) {
      try {
        unlinkSync(lock);
      } catch {
        // someone else took it over first
      }
      continue;
    }
    if (Date.now() > deadline) throw new BusbarError('EVENTLOG_IO', `event log: ${lock} held by another member for more than 1 s`, { details: { path: lock } });
    Atomics.wait(sleeper, 0, 0, 1);
  }
  try {
    return fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // taken over as stale by someone else: nothing to release
    }
  }
}

export function writeGroup(file: string, state: GroupState): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, Buffer.from(JSON.stringify(state)), 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/**
 * Sticky balanced assignment: members keep what they own up to their share; the rest is dealt
 * out. What goes from one of `members` to another stays with its owner, marked `to` the other.
 */
export function assign(partitions: number, members: string[], prev: GroupState['assignment'], generation: number): GroupState['assignment'] {
  const out: GroupState['assignment'] = {};
  if (members.length === 0) return out;
  const sorted = [...members].sort();
  const base = Math.floor(partitions / sorted.length);
  let extra = partitions % sorted.length;
  const count = new Map(sorted.map((m) => [m, 0]));
  const free: number[] = [];
  for (let p = 0; p < partitions; p++) {
    const owner = prev[p]?.member;
    const c = owner === undefined ? undefined : count.get(owner);
    if (c !== undefined && (c < base || (c === base && extra > 0))) {
      if (c === base) extra--;
      count.set(owner!, c + 1);
      out[p] = { member: owner!, epoch: prev[p]!.epoch };
    } else free.push(p);
  }
  for (const p of free) {
    let m = sorted.find((x) => count.get(x)! < base);
    if (m === undefined && extra > 0) {
      m = sorted.find((x) => count.get(x)! === base);
      extra--;
    }
    m ??= sorted[0]!;
    count.set(m, count.get(m)! + 1);
    const owner = prev[p]?.member;
    // a live owner hands it over itself, when it has committed what it finished
    if (owner === m) out[p] = { member: m, epoch: prev[p]!.epoch };
    else if (owner !== undefined && count.has(owner)) out[p] = { member: owner, epoch: prev[p]!.epoch, to: m };
    else out[p] = { member: m, epoch: generation };
  }
  return out;
}

export interface Membership {
  generation: number;
  /** Partition -> epoch, for the partitions this member owns. */
  owned: Map<number, number>;
  /** Those of `owned` this member is to hand over to another (`release`). */
  handoff: Set<number>;
  offsets: Record<string, number>;
  state: GroupState;
}

/** An open offsets file, what a member owns by it (partition -> epoch), and per partition its last write (sequence number, offset). */
interface OwnedOffsets {
  fd: number;
  owned: Map<number, number>;
  seqs: Map<number, number>;
  last: Map<number, number>;
}

/** Write the entries' offsets that changed, then sync once (nothing when none changed). */
function writeEntries(f: OwnedOffsets, entries: ReadonlyArray<readonly [number, number, number]>): void {
  let wrote = false;
  for (const [p, , next] of entries) {
    if (f.last.get(p) === next) continue;
    const seq = (f.seqs.get(p) ?? 0) + 1;
    writeOffset(f.fd, p, seq, next);
    f.seqs.set(p, seq);
    f.last.set(p, next);
    wrote = true;
  }
  if (wrote) fdatasyncSync(f.fd);
}

export class GroupCoordinator {
  readonly memberId: string;
  readonly #file: string;
  readonly #lock: string;
  readonly #partitions: number;
  readonly #sessionTimeoutMs: number;
  /** The offsets file this member commits into without the lock, and what it owns by it (see commit()). */
  #fast: OwnedOffsets | undefined;

  constructor(topicDir: string, group: string, partitions: number, opts: { sessionTimeoutMs: number; memberId: string }) {
    const { file, lock } = groupPaths(topicDir, group);
    this.#file = file;
    this.#lock = lock;
    this.#partitions = partitions;
    this.#sessionTimeoutMs = opts.sessionTimeoutMs;
    this.memberId = opts.memberId;
  }

  #membership(state: GroupState): Membership {
    const owned = new Map<number, number>();
    const handoff = new Set<number>();
    for (const [p, a] of Object.entries(state.assignment)) {
      if (a.member !== this.memberId) continue;
      owned.set(Number(p), a.epoch);
      if (a.to !== undefined) handoff.add(Number(p));
    }
    return { generation: state.generation, owned, handoff, offsets: state.offsets, state };
  }

  /** Join or stay in the group; expel the silent and the dead; rebalance when membership changed. */
  heartbeat(now = Date.now()): Membership {
    return withGroupLock(this.#lock, () => {
      const state = readGroup(this.#file) ?? { generation: now, members: {}, assignment: {}, offsets: {} };
      const before = Object.keys(state.members).sort().join(',');
      state.members[this.memberId] = { host: HOST, pid: process.pid, seen: now };
      for (const [id, m] of Object.entries(state.members)) {
        if (id === this.memberId) continue;
        if (now - m.seen > this.#sessionTimeoutMs || (m.host === HOST && m.pid !== process.pid && !pidAlive(m.pid))) delete state.members[id];
      }
      const after = Object.keys(state.members).sort().join(',');
      const incomplete = Object.keys(state.assignment).length !== this.#partitions;
      if (before !== after || incomplete) {
        state.generation++;
        state.assignment = assign(this.#partitions, Object.keys(state.members), state.assignment, state.generation);
        writeGroupWithNewOffsets(this.#file, state, this.#partitions);
      } else {
        writeGroup(this.#file, state);
      }
      return this.#membership(state);
    });
  }

  /**
   * Commit next offsets `[partition, epoch, next]`; those this member no longer owns in that
   * epoch are refused and returned (nothing of theirs is written).
   *
   * Without the lock while the offsets file this member last committed into is in force and
   * names its partitions in those epochs: a write per partition and one sync, then the sealed
   * flag is read. The file is replaced (sealed) on every change of ownership, so a commit that
   * finds it unsealed after its sync was written before the seal and is carried over; one that
   * finds it sealed, or names another epoch, is done again under the lock.
   */
  commit(entries: ReadonlyArray<readonly [number, number, number]>): number[] {
    if (entries.length === 0) return [];
    const f = this.#fast;
    if (f !== undefined && entries.every(([p, epoch]) => f.owned.get(p) === epoch)) {
      writeEntries(f, entries);
      if (!isSealed(f.fd)) return [];
    }
    return this.#commitLocked(entries);
  }

  #commitLocked(entries: ReadonlyArray<readonly [number, number, number]>): number[] {
    return withGroupLock(this.#lock, () => {
      const state = readGroupFile(this.#file);
      if (!state) return entries.map((e) => e[0]);
      return this.#commitIn(state, entries);
    });
  }

  /** Under the lock: commit what this member owns in `state`, into the file `state` names; keep that file for commits without the lock. */
  #commitIn(state: GroupState, entries: ReadonlyArray<readonly [number, number, number]>): number[] {
    this.close();
    let path = state.offsetsFile === undefined ? undefined : offsetsFilePath(this.#file, state.offsetsFile);
    let fd = path === undefined ? undefined : openOffsets(path);
    let read = fd === undefined ? undefined : readOffsets(fd, path!);
    if (read === undefined || read.sealed) {
      // no file of this version yet, or one left sealed by a replacement that did not finish
      if (fd !== undefined) closeSync(fd);
      writeGroupWithNewOffsets(this.#file, state, this.#partitions);
      path = offsetsFilePath(this.#file, state.offsetsFile!);
      fd = openOffsets(path);
      if (fd === undefined) throw new BusbarError('EVENTLOG_IO', `event log: ${path} vanished while the group lock was held`, { details: { path } });
      read = readOffsets(fd, path);
    }
    const owned = new Map<number, number>();
    for (const [p, a] of Object.entries(state.assignment)) if (a.member === this.memberId) owned.set(Number(p), a.epoch);
    const fast: OwnedOffsets = { fd: fd!, owned, seqs: read.seqs, last: new Map(Object.entries(read.offsets).map(([p, o]) => [Number(p), o])) };
    this.#fast = fast;
    writeEntries(fast, entries.filter(([p, epoch]) => owned.get(p) === epoch));
    return entries.filter(([p, epoch]) => owned.get(p) !== epoch).map(([p]) => p);
  }

  /**
   * Hand partition `p` (owned in `epoch`) over to the member it is marked `to`: commit `next`
   * first when given, then the partition is the other's in a newer epoch. `fenced` when this
   * member no longer owns it in that epoch (nothing written); `kept` when it is no longer to
   * be handed over (its target left): the partition stays this member's, `offset` its
   * committed offset.
   */
  release(p: number, epoch: number, next: number | undefined): { outcome: 'moved' | 'kept' | 'fenced'; offset: number | undefined } {
    return withGroupLock(this.#lock, () => {
      const state = readGroup(this.#file);
      const a = state?.assignment[p];
      if (!state || !a || a.member !== this.memberId || a.epoch !== epoch) return { outcome: 'fenced', offset: undefined };
      if (a.to !== undefined && state.members[a.to]) {
        state.generation++;
        state.assignment[p] = { member: a.to, epoch: state.generation };
        writeGroupWithNewOffsets(this.#file, state, this.#partitions, next === undefined ? undefined : { [p]: next });
        return { outcome: 'moved', offset: state.offsets[p] };
      }
      if (a.to !== undefined) {
        delete a.to;
        writeGroup(this.#file, state);
      }
      if (next !== undefined) this.#commitIn(state, [[p, epoch, next]]);
      return { outcome: 'kept', offset: next ?? state.offsets[p] };
    });
  }

  /** Leave cleanly: the partitions go to the others at once (not after the session timeout). */
  leave(): void {
    this.close();
    withGroupLock(this.#lock, () => {
      const state = readGroup(this.#file);
      if (!state || !state.members[this.memberId]) return;
      delete state.members[this.memberId];
      state.generation++;
      const prev = Object.fromEntries(Object.entries(state.assignment).filter(([, a]) => a.member !== this.memberId));
      state.assignment = assign(this.#partitions, Object.keys(state.members), prev, state.generation);
      writeGroupWithNewOffsets(this.#file, state, this.#partitions);
    });
  }

  read(): GroupState | undefined {
    return readGroup(this.#file);
  }

  /** Let go of the offsets file (leave() does; a commit after it opens it again). */
  close(): void {
    if (this.#fast === undefined) return;
    closeSync(this.#fast.fd);
    this.#fast = undefined;
  }
}

/**
 * Move a group's committed offsets (replay or skip): every partition to `offsets[p]`, all
 * epochs renewed, so running members restart their partitions from there and anything they
 * still had in flight is fenced.
 */
export function seekGroupOffsets(topicDir: string, group: string, offsets: readonly number[]): void {
  const { file, lock } = groupPaths(topicDir, group);
  withGroupLock(lock, () => {
    const state = readGroup(file) ?? { generation: Date.now(), members: {}, assignment: {}, offsets: {} };
    state.generation++;
    for (const a of Object.values(state.assignment)) a.epoch = state.generation;
    // new epochs and a new offsets file: a member still committing the old positions is fenced from here on
    writeGroupWithNewOffsets(file, state, offsets.length, Object.fromEntries(offsets.map((o, p) => [p, o])));
  });
}
