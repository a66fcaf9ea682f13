import { crc32 } from 'node:zlib';

/**
 * One record of the log as it lies in a segment file:
 *
 * ```
 * u32 length      bytes after this field (crc + body)
 * u32 crc         CRC-32 of the body
 * body:
 *   u32 offsetHi, u32 offsetLo      the record's offset in its partition
 *   u32 tsHi, u32 tsLo              append time, ms since the epoch
 *   u8  attributes                  bit 0: no key, bit 1: no value (tombstone), bits 2-3: value kind
 *   u32 keyLength, key bytes
 *   u32 valueLength, value bytes
 *   u32 headersLength, headers (JSON object, UTF-8)
 * ```
 *
 * Big-endian throughout. The length prefix lets a reader skip without parsing; the CRC makes
 * a torn or corrupted tail detectable (recovery cuts the log at the first bad record).
 */
export const RECORD_OVERHEAD = 4 + 4 + 8 + 8 + 1 + 4 + 4 + 4;
/** No record is larger than this: a length field beyond it is damage, not a record. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export type ValueKind = 'buffer' | 'string' | 'json';
const KIND_BITS: Record<ValueKind, number> = { buffer: 0, string: 4, json: 8 };
const KINDS: ValueKind[] = ['buffer', 'string', 'json', 'buffer'];

export interface RecordInput {
  key: Buffer | null;
  /** null: a tombstone (deletes the key under compaction). */
  value: Buffer | null;
  kind: ValueKind;
  headers: Record<string, unknown>;
}

export interface LogRecord {
  offset: number;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  kind: ValueKind;
  headers: Record<string, unknown>;
  /** Bytes the record takes in its segment file. */
  size: number;
}

const TWO32 = 2 ** 32;
const EMPTY_HEADERS = Buffer.from('{}');

function headerBytes(h: Record<string, unknown>): Buffer {
  for (const _ in h) return Buffer.from(JSON.stringify(h));
  return EMPTY_HEADERS;
}

/** Encoded size of a record (to plan a batch buffer). */
export function encodedSize(r: RecordInput, headers: Buffer): number {
  return RECORD_OVERHEAD + (r.key?.length ?? 0) + (r.value?.length ?? 0) + headers.length;
}

/**
 * Encode records with consecutive offsets from `firstOffset` into one buffer (one write
 * per batch). Returns the buffer and each record's start position within it.
 */
export function encodeBatch(records: readonly RecordInput[], firstOffset: number, timestamp: number): { buf: Buffer; positions: number[] } {
  const hs = records.map((r) => headerBytes(r.headers));
  let total = 0;
  for (let i = 0; i < records.length; i++) total += encodedSize(records[i]!, hs[i]!);
  const buf = Buffer.allocUnsafe(total);
  const positions: number[] = new Array(records.length);
  let p = 0;
  for (let i = 0; i < records.length; i++) {
    positions[i] = p;
    p = writeRecord(buf, p, records[i]!, hs[i]!, firstOffset + i, timestamp);
  }
  return { buf, positions };
}

function writeRecord(buf: Buffer, at: number, r: RecordInput, h: Buffer, offset: number, ts: number): number {
  const start = at;
  const body = at + 8;
  let p = body;
  buf.writeUInt32BE(Math.floor(offset / TWO32), p);
  buf.writeUInt32BE(offset >>> 0, p + 4);
  buf.writeUInt32BE(Math.floor(ts / TWO32), p + 8);
  buf.writeUInt32BE(ts >>> 0, p + 12);
  buf[p + 16] = (r.key === null ? 1 : 0) | (r.value === null ? 2 : 0) | KIND_BITS[r.kind];
  p += 17;
  const k = r.key;
  buf.writeUInt32BE(k?.length ?? 0, p);
  p += 4;
  if (k) p += k.copy(buf, p);
  const v = r.value;
  buf.writeUInt32BE(v?.length ?? 0, p);
  p += 4;
  if (v) p += v.copy(buf, p);
  buf.writeUInt32BE(h.length, p);
  p += 4;
  p += h.copy(buf, p);
  buf.writeUInt32BE(p - start - 4, start);
  buf.writeUInt32BE(crc32(buf.subarray(body, p)), start + 4);
  return p;
}

export type ParseResult =
  | { kind: 'record'; record: LogRecord }
  /** Not enough bytes yet (the writer is mid-write, or the end of the data). */
  | { kind: 'partial' }
  /** A record that cannot be: bad length, CRC mismatch, inconsistent fields. */
  | { kind: 'bad'; reason: string };

/**
 * Parse the record starting at `at` in `buf` (bytes up to `end` are valid data). Key and value
 * are copies, unless `share`: then they are views of `buf`, which the caller must not reuse
 * while the record lives (a reader hands its buffer to the records and takes a fresh one).
 */
export function parseRecord(buf: Buffer, at: number, end: number, share = false): ParseResult {
  const r = decodeRecord(buf, at, end, share);
  if (r === undefined) return { kind: 'partial' };
  if (typeof r === 'string') return { kind: 'bad', reason: r };
  return { kind: 'record', record: r };
}

const u32 = (b: Buffer, p: number): number => ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;

/**
 * parseRecord without the result wrapper, for the read loops: the record, undefined when the
 * bytes up to `end` do not hold all of it yet, or why it cannot be a record. (Field reads are
 * plain byte arithmetic: the length checks up front keep every index inside the record.)
 */
export function decodeRecord(buf: Buffer, at: number, end: number, share: boolean): LogRecord | string | undefined {
  if (end - at < 8) return undefined;
  const len = u32(buf, at);
  if (len < RECORD_OVERHEAD - 4 || len > MAX_RECORD_BYTES) return `record length ${len} out of range`;
  if (end - at < 4 + len) return undefined;
  const body = at + 8;
  const stop = at + 4 + len;
  if (crc32(buf.subarray(body, stop)) !== u32(buf, at + 4)) return 'CRC mismatch';
  let p = body;
  const offset = u32(buf, p) * TWO32 + u32(buf, p + 4);
  const timestamp = u32(buf, p + 8) * TWO32 + u32(buf, p + 12);
  const attrs = buf[p + 16]!;
  p += 17;
  const kl = u32(buf, p);
  p += 4;
  if (p + kl + 8 > stop) return 'field lengths do not add up to the record length';
  const key = attrs & 1 ? null : share ? buf.subarray(p, p + kl) : Buffer.from(buf.subarray(p, p + kl));
  p += kl;
  const vl = u32(buf, p);
  p += 4;
  if (p + vl + 4 > stop) return 'field lengths do not add up to the record length';
  const value = attrs & 2 ? null : share ? buf.subarray(p, p + vl) : Buffer.from(buf.subarray(p, p + vl));
  p += vl;
  const hl = u32(buf, p);
  p += 4;
  if (p + hl !== stop) return 'field lengths do not add up to the record length';
  let headers: Record<string, unknown> = {};
  if (hl > 2) {
    try {
      headers = JSON.parse(buf.toString('utf8', p, p + hl)) as Record<string, unknown>;
    } catch {
      return 'headers are not JSON';
    }
  }
  return { offset, timestamp, key, value, kind: KINDS[(attrs >> 2) & 3]!, headers, size: 4 + len };
}

/** Partition of a key: FNV-1a over its bytes (stable across processes and versions). */
export function partitionOf(key: Buffer, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
