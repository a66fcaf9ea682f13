/**
 * All of busbar's timers go through a Clock so tests can drive time (aggregator timeouts,
 * delays, backoff) without sleeping. `systemClock` uses the real timers; the testing kit's
 * `FakeClock` is driven by hand.
 */
export interface TimerHandle {
  unref?(): unknown;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/** Resolves after `ms` on the given clock; rejects with the signal's reason if aborted first. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(signal?.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Time limits that all have the same length (a server endpoint's `timeoutMs`), on one timer
 * instead of one each: an entry is an insertion into an (insertion-ordered) Set and its removal
 * a delete, where a timer per request costs a timer-list insert and removal (profiled: the
 * HTTP consumer's largest cost after the socket write). With one length, insertion order is
 * deadline order, so the timer only ever waits for the first entry, and fires each expiry at
 * its own deadline.
 */
export class Deadlines {
  readonly #clock: Clock;
  readonly #ms: number;
  readonly #entries = new Set<{ at: number; fire: () => void }>();
  #timer: TimerHandle | undefined;

  constructor(clock: Clock, ms: number) {
    this.#clock = clock;
    this.#ms = ms;
  }

  /** Call `fire` in `ms` unless the returned function is called first. */
  add(fire: () => void): () => void {
    const e = { at: this.#clock.now() + this.#ms, fire };
    this.#entries.add(e);
    if (this.#timer === undefined) this.#arm(this.#ms);
    return () => void this.#entries.delete(e);
  }

  get size(): number {
    return this.#entries.size;
  }

  #arm(ms: number): void {
    const t = this.#clock.setTimeout(() => this.#sweep(), Math.max(0, ms));
    t.unref?.();
    this.#timer = t;
  }

  #sweep(): void {
    this.#timer = undefined;
    const now = this.#clock.now();
    for (const e of this.#entries) {
      if (e.at > now) {
        this.#arm(e.at - now);
        return;
      }
      this.#entries.delete(e);
      try {
        e.fire();
      } catch {
        // a limit's callback settles a promise; nothing of it may stop the others
      }
    }
  }
}
