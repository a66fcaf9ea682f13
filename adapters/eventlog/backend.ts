import { join } from 'node:path';
import type { Hub } from './hub.js';
import { earliestOffset, latestOffset, offsetForTime, PartitionReader } from './reader.js';
import { fileSize, listSegments, logPath } from './segment.js';
import type { LogRecord } from './record.js';

/** Reads one partition in order from an offset (a segment-file reader, or a RabbitMQ stream consumer). */
export interface PartitionSource {
  /** Up to `max` records from the position; an empty array when nothing is there yet. */
  read(max: number): Promise<LogRecord[]>;
  /** Read from `offset` next (what was buffered is dropped). */
  seek(offset: number): void;
  /** The offset of the next record to be handed out. */
  readonly position: number;
  /** Set when records this reader had not read were removed by retention: [from, to). */
  skipped: [number, number] | undefined;
  close(): void;
}

/**
 * Where a consumer's records come from. The consumer (groups, fencing, delivery semantics,
 * effectively-once) is the same for every backend; only reading, resolving a start position,
 * the end of a partition (for lag) and wake-ups differ.
 */
export interface LogBackend {
  reader(partition: number, offset: number): PartitionSource;
  /** `earliest`, `latest`, an offset or an ISO time as the offset to start at. */
  resolveStart(partition: number, start: string): Promise<number>;
  /** The offset after the last record known (for lag). */
  end(partition: number): number;
  /** Call `fn(partition)` when records were appended (a reader at the end is woken). */
  onAppend(fn: (partition: number) => void): () => void;
  close(): Promise<void>;
}

/** The embedded backend: segment files under the topic directory. */
export class FileBackend implements LogBackend {
  readonly #topicDir: string;
  readonly #hub: Hub;
  readonly #ends = new Map<number, { base: number | undefined; size: number; end: number }>();

  constructor(topicDir: string, hub: Hub) {
    this.#topicDir = topicDir;
    this.#hub = hub;
  }

  reader(partition: number, offset: number): PartitionSource {
    return new PartitionReader(this.#topicDir, partition, offset);
  }

  resolveStart(partition: number, start: string): Promise<number> {
    const dir = join(this.#topicDir, String(partition));
    if (start === 'earliest') return Promise.resolve(earliestOffset(dir));
    if (start === 'latest') return Promise.resolve(latestOffset(dir));
    if (/^[0-9]+$/.test(start)) return Promise.resolve(Number(start));
    return Promise.resolve(offsetForTime(dir, Date.parse(start)));
  }

  end(partition: number): number {
    const dir = join(this.#topicDir, String(partition));
    // stats() asks often (lag): the tail is scanned again only when the last segment changed
    const bases = listSegments(dir);
    const last = bases[bases.length - 1];
    const size = last === undefined ? -1 : fileSize(logPath(dir, last));
    const known = this.#ends.get(partition);
    if (known && known.base === last && known.size === size) return known.end;
    const end = latestOffset(dir);
    this.#ends.set(partition, { base: last, size, end });
    return end;
  }

  onAppend(fn: (partition: number) => void): () => void {
    return this.#hub.onAppend(this.#topicDir, fn);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
