import { closeSync, constants, fdatasyncSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { BusbarError } from '../../lib/errors.js';
import { readAll, writeAll } from './segment.js';

/**
 * A consumer group's committed offsets: `<group>.<n>.offsets`, one small region per partition,
 * written in place by the partition's owner without the group lock:
 *
 *   header (64 bytes): magic "EVO2", sealed flag
 *   partition p at 64 + 64 p: two slots of 32 bytes, written in turn (sequence number f64,
 *   offset f64, CRC-32 of both), so a torn write spoils only the slot being written
 *
 * A commit is a write per partition and one fdatasync, then a read of the sealed flag. Any
 * change of who owns what (a new generation) replaces the file: the coordinator, under the
 * group lock, seals the old one (and syncs the seal), reads it, writes the next file, names it
 * in the group file and removes the old one. An owner whose commit finds its file sealed did
 * not commit: it commits again under the lock, against the assignment in force, so a zombie's
 * commit is refused and what a live owner wrote before the seal is carried over.
 */
const HEADER = 64;
const REGION = 64;
const SLOT = 32;
const MAGIC = 0x45564f32; // "EVO2"
const SEALED_AT = 4;

export interface OffsetsRead {
  sealed: boolean;
  /** Next offset to read, per partition with a whole slot. */
  offsets: Record<string, number>;
  /** The newest whole slot's sequence number, per partition (for the next write). */
  seqs: Map<number, number>;
}

export function offsetsFilePath(groupFile: string, n: number): string {
  return groupFile.replace(/\.json$/, `.${n}.offsets`);
}

function ioError(path: string, what: string, err: unknown): BusbarError {
  return new BusbarError('EVENTLOG_IO', `event log: cannot ${what} ${path}: ${(err as Error).message}`, { cause: err, details: { path } });
}

/** Open an offsets file for reading and writing; undefined when it does not exist. */
export function openOffsets(path: string): number | undefined {
  try {
    return openSync(path, constants.O_RDWR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(path, 'open', err);
  }
}

function slotAt(buf: Buffer, at: number): { seq: number; offset: number } | undefined {
  if (at + SLOT > buf.length) return undefined;
  const crc = crc32(buf.subarray(at, at + 16));
  if (crc !== buf.readUInt32BE(at + 16)) return undefined;
  return { seq: buf.readDoubleBE(at), offset: buf.readDoubleBE(at + 8) };
}

export function readOffsets(fd: number, path: string): OffsetsRead {
  const buf = readAll(fd);
  const got = buf.length;
  if (got < HEADER || buf.readUInt32BE(0) !== MAGIC) throw new BusbarError('EVENTLOG_IO', `event log: ${path} is not an offsets file (bad header)`, { details: { path } });
  const out: OffsetsRead = { sealed: buf.readUInt32BE(SEALED_AT) !== 0, offsets: {}, seqs: new Map() };
  for (let p = 0; HEADER + p * REGION < got; p++) {
    const at = HEADER + p * REGION;
    const a = slotAt(buf, at);
    const b = slotAt(buf, at + SLOT);
    const newest = a && b ? (b.seq > a.seq ? b : a) : (a ?? b);
    if (!newest) continue;
    out.offsets[p] = newest.offset;
    out.seqs.set(p, newest.seq);
  }
  return out;
}

/** A new offsets file holding `offsets` (one slot each), synced; replaces any file at `path`. */
export function createOffsets(path: string, offsets: Record<string, number>, partitions: number): void {
  const count = Math.max(partitions, ...Object.keys(offsets).map((p) => Number(p) + 1));
  const buf = Buffer.alloc(HEADER + count * REGION);
  buf.writeUInt32BE(MAGIC, 0);
  // commit number 1 of each partition, in the slot writeOffset would put it in
  for (const [p, offset] of Object.entries(offsets)) fillSlot(buf, slotPosition(Number(p), 1), 1, offset);
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (err) {
    throw ioError(path, 'create', err);
  }
  try {
    writeAll(fd, buf, 0);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fillSlot(buf: Buffer, at: number, seq: number, offset: number): void {
  buf.writeDoubleBE(seq, at);
  buf.writeDoubleBE(offset, at + 8);
  buf.writeUInt32BE(crc32(buf.subarray(at, at + 16)), at + 16);
}

const slotBuf = Buffer.alloc(SLOT);
/** Bytes of a slot that hold something: sequence number, offset, CRC. */
const SLOT_BYTES = 20;

/** Write partition `p`'s commit number `seq` into its slot (not synced: the caller syncs once for all). */
export function writeOffset(fd: number, p: number, seq: number, offset: number): void {
  fillSlot(slotBuf, 0, seq, offset);
  writeAll(fd, slotBuf.subarray(0, SLOT_BYTES), slotPosition(p, seq));
}

/** Where partition `p`'s commit number `seq` goes: its region, the slot of the sequence number's parity. */
function slotPosition(p: number, seq: number): number {
  return HEADER + p * REGION + (seq % 2) * SLOT;
}

const flag = Buffer.alloc(4);

export function isSealed(fd: number): boolean {
  return readSync(fd, flag, 0, 4, SEALED_AT) === 4 && flag.readUInt32BE(0) !== 0;
}

/** Seal: from here on no commit into this file counts (see the module comment). Synced. */
export function seal(fd: number): void {
  flag.writeUInt32BE(1, 0);
  writeSync(fd, flag, 0, 4, SEALED_AT);
  fdatasyncSync(fd);
}
