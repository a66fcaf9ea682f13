import type { Message } from './message.js';

/**
 * Store interfaces of the pattern catalogue. In-memory implementations live with the
 * patterns; persistent ones (SQLite, PostgreSQL) with the db adapter. One set of
 * interfaces, so a route switches stores without changing (Spring Integration's
 * "one message store").
 */

/** Idempotent consumer: remembers processed keys per scope (route + processor). */
export interface IdempotentRepository {
  /**
   * Atomically record `key`; resolves false when it was already recorded (a duplicate).
   * Safe with competing processes for persistent implementations.
   */
  add(scope: string, key: string): Promise<boolean>;
  contains(scope: string, key: string): Promise<boolean>;
  /** Forget a key (the message failed, so a redelivery must be processed again). */
  remove(scope: string, key: string): Promise<void>;
  close?(): Promise<void>;
}

/** One aggregation group: the messages collected so far under a correlation key. */
export interface AggregationGroup {
  key: string;
  messages: Message[];
  /** Epoch ms of the first and the latest message. */
  createdAt: number;
  updatedAt: number;
}

/** Aggregator groups; a persistent one survives a restart. */
export interface AggregationStore {
  /** Append a message to its group (creating it); returns the group after the append. */
  append(scope: string, key: string, msg: Message, now: number): Promise<AggregationGroup>;
  get(scope: string, key: string): Promise<AggregationGroup | undefined>;
  /** Remove and return a group (on completion); undefined if another process took it first. */
  take(scope: string, key: string): Promise<AggregationGroup | undefined>;
  /** All open groups of a scope (for timeouts, interval and forced completion). */
  groups(scope: string): Promise<AggregationGroup[]>;
  close?(): Promise<void>;
}

/** Claim check: park a large body, carry a key, restore it later. */
export interface ClaimCheckStore {
  put(key: string, body: unknown): Promise<void>;
  get(key: string): Promise<unknown>;
  delete(key: string): Promise<void>;
  close?(): Promise<void>;
}
