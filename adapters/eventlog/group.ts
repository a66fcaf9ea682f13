import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
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
 * - a commit names the partition's epoch and is refused (`EVENTLOG_FENCED`) unless the
 *   committer still owns the partition in that epoch: a zombie (paused, partitioned off,
 *   slow) cannot move a partition's offset once it was given to someone else.
 *
 * Generations start at the creation time in ms and only grow, so epochs stay monotonic even
 * if the group file is deleted and created again (they also fence database-held offsets).
 */
export interface GroupState {
  generation: number;
  members: Record<string, { host: string; pid: number; seen: number }>;
  assignment: Record<string, { member: string; epoch: number }>;
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

export function readGroup(file: string): GroupState | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as GroupState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BusbarError('EVENTLOG_IO', `event log group file ${file} is unreadable: ${(err as Error).message}`, { cause: err, details: { path: file } });
  }
}

/** Run `fn` holding the group's lock file (held for well under a millisecond; a dead holder's lock is taken over). */
export function withGroupLock<T>(lock: string, fn: () => T): T {
  mkdirSync(join(lock, '..'), { recursive: true });
  // not longer: the wait blocks this thread; a busy lock fails the operation, which is retried at the next tick
  const deadline = Date.now() + 1000;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${HOST} ${process.pid}`);
      closeSync(fd);
      break;
    } catch (err) {
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

/** Sticky balanced assignment: members keep what they own up to their share; the rest is dealt out. */
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
      out[p] = prev[p]!;
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
    out[p] = { member: m, epoch: generation };
  }
  return out;
}

export interface Membership {
  generation: number;
  /** Partition -> epoch, for the partitions this member owns. */
  owned: Map<number, number>;
  offsets: Record<string, number>;
  state: GroupState;
}

export class GroupCoordinator {
  readonly memberId: string;
  readonly #file: string;
  readonly #lock: string;
  readonly #partitions: number;
  readonly #sessionTimeoutMs: number;

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
    for (const [p, a] of Object.entries(state.assignment)) if (a.member === this.memberId) owned.set(Number(p), a.epoch);
    return { generation: state.generation, owned, offsets: state.offsets, state };
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
      const state = readGroup(this.#file);
      const fenced: number[] = [];
      if (!state) return entries.map((e) => e[0]);
      let changed = false;
      for (const [p, epoch, next] of entries) {
        const a = state.assignment[p];
        if (!a || a.member !== this.memberId || a.epoch !== epoch) {
          fenced.push(p);
          continue;
        }
        if (state.offsets[p] !== next) {
          state.offsets[p] = next;
          changed = true;
        }
      }
      if (changed) writeGroup(this.#file, state);
      return fenced;
    });
  }

  /** Leave cleanly: the partitions go to the others at once (not after the session timeout). */
  leave(): void {
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
    writeGroup(file, state);
  });
}
