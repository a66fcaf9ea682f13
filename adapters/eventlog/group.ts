import { closeSync, constants, fdatasyncSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { BusbarError } from '../../lib/errors.js';

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
 * Committed offsets, written far more often than membership, live next to it in
 * `<group>.offsets`: two slots overwritten in turn in place (sequence number, length, CRC-32,
 * the offsets as JSON) and fdatasynced, so a commit costs one write and one sync, no file
 * creation or rename; a torn write spoils only the slot being written and the other one still
 * holds the previous commit. The group file's `offsets` is a copy for people reading it.
 */
export interface GroupState {
  generation: number;
  members: Record<string, { host: string; pid: number; seen: number }>;
  /** `to`: the member the owner is to hand the partition over to (see `release`). */
  assignment: Record<string, { member: string; epoch: number; to?: string }>;
  /** Next offset to read, per partition. */
  offsets: Record<string, number>;
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

/** The group's state; its offsets are the last commit's (from the offsets file when there is one). */
export function readGroup(file: string): GroupState | undefined {
  const state = readGroupFile(file);
  if (!state) return undefined;
  const slots = withOffsetsFile(offsetsPath(file), false, readSlots);
  if (slots) state.offsets = slots.offsets;
  return state;
}

// ---------------------------------------------------------------- the offsets file: two slots written in turn
const SLOT_BYTES = 64 * 1024;
/** magic, sequence number (2 x u32), body length, CRC-32 of sequence number, length and body */
const SLOT_HEADER = 20;
const SLOT_MAGIC = 0x45564f31; // "EVO1"
/** What one read of a slot takes: the header and a body of up to ~4 KiB (a few hundred partitions). */
const SLOT_READ = SLOT_HEADER + 4096;

export function offsetsPath(groupFile: string): string {
  return groupFile.replace(/\.json$/, '.offsets');
}

function withOffsetsFile<T>(path: string, create: boolean, fn: (fd: number) => T, keepOpen = false): T | undefined {
  let fd: number;
  try {
    fd = openSync(path, create ? constants.O_RDWR | constants.O_CREAT : constants.O_RDONLY);
  } catch (err) {
    if (!create && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BusbarError('EVENTLOG_IO', `event log: cannot open ${path}: ${(err as Error).message}`, { cause: err, details: { path } });
  }
  if (keepOpen) return fn(fd);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** The newest whole slot: its sequence number and offsets; undefined when neither slot is whole. */
function readSlots(fd: number): { seq: number; offsets: Record<string, number> } | undefined {
  // one read per slot takes header and (a small) body together
  const bufs = [Buffer.allocUnsafe(SLOT_READ), Buffer.allocUnsafe(SLOT_READ)];
  const got = bufs.map((b, slot) => readSync(fd, b, 0, SLOT_READ, slot * SLOT_BYTES));
  const seqOf = (slot: number): number => (got[slot]! >= SLOT_HEADER && bufs[slot]!.readUInt32BE(0) === SLOT_MAGIC ? bufs[slot]!.readUInt32BE(4) * 2 ** 32 + bufs[slot]!.readUInt32BE(8) : -1);
  const seqs = [seqOf(0), seqOf(1)];
  // the newer slot first; the other only when the newer is not whole (a torn last commit)
  for (const slot of seqs[1]! > seqs[0]! ? [1, 0] : [0, 1]) {
    if (seqs[slot]! < 0) continue;
    const head = bufs[slot]!;
    const len = head.readUInt32BE(12);
    if (len > SLOT_BYTES - SLOT_HEADER) continue;
    let body: Buffer;
    if (SLOT_HEADER + len <= got[slot]!) body = head.subarray(SLOT_HEADER, SLOT_HEADER + len);
    else {
      body = Buffer.allocUnsafe(len);
      if (readSync(fd, body, 0, len, slot * SLOT_BYTES + SLOT_HEADER) !== len) continue;
    }
    if (crc32(body, crc32(head.subarray(4, 16))) !== head.readUInt32BE(16)) continue;
    try {
      return { seq: seqs[slot]!, offsets: JSON.parse(body.toString('utf8')) as Record<string, number> };
    } catch {
      // a slot with a good CRC holds what was written: not reached
    }
  }
  return undefined;
}

/** Write commit number `seq` into its slot (the one not holding the previous commit) and sync it. */
function writeSlot(fd: number, path: string, seq: number, offsets: Record<string, number>): void {
  const body = Buffer.from(JSON.stringify(offsets));
  if (body.length > SLOT_BYTES - SLOT_HEADER) throw new BusbarError('EVENTLOG_IO', `event log: committed offsets (${body.length} bytes) do not fit a slot of ${path}`, { details: { path } });
  const buf = Buffer.allocUnsafe(SLOT_HEADER + body.length);
  buf.writeUInt32BE(SLOT_MAGIC, 0);
  buf.writeUInt32BE(Math.floor(seq / 2 ** 32), 4);
  buf.writeUInt32BE(seq >>> 0, 8);
  buf.writeUInt32BE(body.length, 12);
  // the CRC covers the sequence number and length too: a damaged header is a bad slot, not a newer one
  buf.writeUInt32BE(crc32(body, crc32(buf.subarray(4, 16))), 16);
  body.copy(buf, SLOT_HEADER);
  let done = 0;
  const at = (seq % 2) * SLOT_BYTES;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, at + done);
  fdatasyncSync(fd);
}

/** Under the group lock: replace the committed offsets (one slot write and sync). */
function commitOffsets(file: string, offsets: Record<string, number>): void {
  const path = offsetsPath(file);
  withOffsetsFile(path, true, (fd) => writeSlot(fd, path, (readSlots(fd)?.seq ?? 0) + 1, offsets));
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
    const data = Buffer.from(JSON.stringify(state));
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done);
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

export class GroupCoordinator {
  readonly memberId: string;
  readonly #file: string;
  readonly #lock: string;
  readonly #partitions: number;
  readonly #sessionTimeoutMs: number;
  #offsetsFd: number | undefined;

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
        writeGroup(this.#file, state);
      } else {
        writeGroup(this.#file, state);
      }
      return this.#membership(state);
    });
  }

  /**
   * Commit next offsets `[partition, epoch, next]`; those this member no longer owns in that
   * epoch are refused and returned (nothing of theirs is written).
   */
  commit(entries: ReadonlyArray<readonly [number, number, number]>): number[] {
    if (entries.length === 0) return [];
    return withGroupLock(this.#lock, () => {
      // the assignment (who owns what, in which epoch) from the group file; the offsets from theirs
      const state = readGroupFile(this.#file);
      const fenced: number[] = [];
      if (!state) return entries.map((e) => e[0]);
      const path = offsetsPath(this.#file);
      // the offsets file is written in place, never replaced: its descriptor stays good
      const fd = (this.#offsetsFd ??= withOffsetsFile(path, true, (d) => d, true)!);
      {
        const slots = readSlots(fd);
        const offsets = slots?.offsets ?? state.offsets;
        let changed = false;
        for (const [p, epoch, next] of entries) {
          const a = state.assignment[p];
          if (!a || a.member !== this.memberId || a.epoch !== epoch) {
            fenced.push(p);
            continue;
          }
          if (offsets[p] !== next) {
            offsets[p] = next;
            changed = true;
          }
        }
        if (changed) writeSlot(fd, path, (slots?.seq ?? 0) + 1, offsets);
      }
      return fenced;
    });
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
      if (next !== undefined && state.offsets[p] !== next) {
        state.offsets[p] = next;
        commitOffsets(this.#file, state.offsets);
      }
      const offset = state.offsets[p];
      if (a.to !== undefined && state.members[a.to]) {
        state.generation++;
        state.assignment[p] = { member: a.to, epoch: state.generation };
        writeGroup(this.#file, state);
        return { outcome: 'moved', offset };
      }
      if (a.to !== undefined) {
        delete a.to;
        writeGroup(this.#file, state);
      }
      return { outcome: 'kept', offset };
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
      writeGroup(this.#file, state);
    });
  }

  read(): GroupState | undefined {
    return readGroup(this.#file);
  }

  /** Let go of the offsets file (leave() does; a commit after it opens it again). */
  close(): void {
    if (this.#offsetsFd === undefined) return;
    closeSync(this.#offsetsFd);
    this.#offsetsFd = undefined;
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
    offsets.forEach((o, p) => (state.offsets[p] = o));
    for (const a of Object.values(state.assignment)) a.epoch = state.generation;
    // new epochs first: a member still committing the old positions is fenced from here on
    writeGroup(file, state);
    commitOffsets(file, state.offsets);
  });
}
