import { BusbarError } from './errors.js';
import type { Message } from './message.js';
import type { AggregationGroup, AggregationStore, ClaimCheckStore, IdempotentRepository } from './stores.js';

/**
 * In-memory implementations of lib/stores.ts: fast, per process, lost on restart. Use the
 * persistent ones (db adapter) when a crash must not forget keys, groups or parked bodies.
 */

/** Remembers at most `maxKeys` keys per scope; the oldest are forgotten first (LRU on add). */
export class MemoryIdempotentRepository implements IdempotentRepository {
  readonly #maxKeys: number;
  readonly #scopes = new Map<string, Set<string>>();

  constructor(opts: { maxKeys?: number } = {}) {
    const max = opts.maxKeys ?? 10_000;
    if (!Number.isInteger(max) || max < 1) throw new BusbarError('INVALID_ROUTE', `maxKeys must be a positive integer, got ${max}`, { details: { maxKeys: max } });
    this.#maxKeys = max;
  }

  #scope(scope: string): Set<string> {
    let s = this.#scopes.get(scope);
    if (!s) this.#scopes.set(scope, (s = new Set()));
    return s;
  }

  add(scope: string, key: string): Promise<boolean> {
    return Promise.resolve(this.addSync(scope, key));
  }

  /** Synchronous form, so the idempotent step stays on the pipeline's fast path. */
  addSync(scope: string, key: string): boolean {
    const s = this.#scope(scope);
    if (s.has(key)) return false;
    s.add(key);
    // a Set iterates in insertion order: the first key is the oldest
    if (s.size > this.#maxKeys) s.delete(s.values().next().value as string);
    return true;
  }

  contains(scope: string, key: string): Promise<boolean> {
    return Promise.resolve(this.#scopes.get(scope)?.has(key) ?? false);
  }

  remove(scope: string, key: string): Promise<void> {
    this.#scopes.get(scope)?.delete(key);
    return Promise.resolve();
  }

  size(scope: string): number {
    return this.#scopes.get(scope)?.size ?? 0;
  }
}

/**
 * Groups in a Map. `append` returns the live group (read it, do not keep it: later appends
 * change it); `get`, `take` and `groups` return groups the caller may keep.
 */
export class MemoryAggregationStore implements AggregationStore {
  readonly #scopes = new Map<string, Map<string, AggregationGroup>>();

  #scope(scope: string): Map<string, AggregationGroup> {
    let s = this.#scopes.get(scope);
    if (!s) this.#scopes.set(scope, (s = new Map()));
    return s;
  }

  append(scope: string, key: string, msg: Message, now: number): Promise<AggregationGroup> {
    return Promise.resolve(this.appendSync(scope, key, msg, now));
  }

  /** Synchronous form, so the aggregator stays on the pipeline's fast path. */
  appendSync(scope: string, key: string, msg: Message, now: number): AggregationGroup {
    // the live group, not a copy: copying on every append would make a group of n cost n^2
    const open = this.appendToOpen(scope, key, msg, now);
    if (open !== undefined) return open;
    const g: AggregationGroup = { key, messages: [msg], createdAt: now, updatedAt: now };
    this.#scope(scope).set(key, g);
    return g;
  }

  /** `appendSync` to a group that is open already (one lookup): the live group, or undefined (nothing appended) when there is none. */
  appendToOpen(scope: string, key: string, msg: Message, now: number): AggregationGroup | undefined {
    const g = this.#scopes.get(scope)?.get(key);
    if (g === undefined) return undefined;
    g.messages.push(msg);
    g.updatedAt = now;
    return g;
  }

  get(scope: string, key: string): Promise<AggregationGroup | undefined> {
    const g = this.#scopes.get(scope)?.get(key);
    return Promise.resolve(g && snapshot(g));
  }

  take(scope: string, key: string): Promise<AggregationGroup | undefined> {
    const s = this.#scopes.get(scope);
    const g = s?.get(key);
    if (g) s!.delete(key);
    return Promise.resolve(g);
  }

  groups(scope: string): Promise<AggregationGroup[]> {
    return Promise.resolve([...(this.#scopes.get(scope)?.values() ?? [])].map(snapshot));
  }
}

/** A copy the caller may keep: later appends do not change a group already returned. */
function snapshot(g: AggregationGroup): AggregationGroup {
  return { key: g.key, messages: g.messages.slice(), createdAt: g.createdAt, updatedAt: g.updatedAt };
}

export class MemoryClaimCheckStore implements ClaimCheckStore {
  readonly #bodies = new Map<string, unknown>();

  put(key: string, body: unknown): Promise<void> {
    this.#bodies.set(key, body);
    return Promise.resolve();
  }

  /** Resolves undefined when nothing is parked under `key` (the claim-check step reports it). */
  get(key: string): Promise<unknown> {
    return Promise.resolve(this.#bodies.get(key));
  }

  delete(key: string): Promise<void> {
    this.#bodies.delete(key);
    return Promise.resolve();
  }

  get size(): number {
    return this.#bodies.size;
  }
}
