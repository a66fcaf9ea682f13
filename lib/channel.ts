import { BusbarError } from './errors.js';

interface Taker<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

/**
 * A parked consumer's wake-up, called in a sender's `put`/`offer`: one that throws must not
 * fail that send (its item is queued already) nor another consumer's wake-up. The error
 * becomes a process warning (`process.on('warning')`), and that consumer stays unwoken.
 */
function callWake(wake: () => void): void {
  try {
    wake();
  } catch (e) {
    process.emitWarning(`BoundedQueue: a parked consumer's wake-up threw: ${e instanceof Error ? e.message : String(e)}`, { code: 'BUSBAR_QUEUE_WAKE' });
  }
}

/**
 * A bounded FIFO buffer with waiting on both sides: `put` waits while full (backpressure
 * on the producer), `take` waits while empty. Waiters are served in order.
 */
export class BoundedQueue<T> {
  readonly capacity: number;
  readonly #items: T[] = [];
  #head = 0;
  readonly #takers: Array<Taker<T>> = [];
  readonly #putters: Array<{ item: T; resolve: () => void; reject: (e: unknown) => void }> = [];
  /** Consumers waiting without a promise (see `park`), first come first woken. */
  readonly #parked: Array<() => void> = [];
  #closed = false;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new BusbarError('INVALID_OPTION', `queue capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
  }

  get size(): number {
    return this.#items.length - this.#head;
  }

  get closed(): boolean {
    return this.#closed;
  }

  put(item: T): Promise<void> {
    if (this.#closed) return Promise.reject(new BusbarError('CHANNEL_CLOSED', 'channel is closed'));
    if (this.offer(item)) return Promise.resolve();
    return new Promise((resolve, reject) => this.#putters.push({ item, resolve, reject }));
  }

  /** Put without waiting: false (nothing done) when the queue is full or closed. */
  offer(item: T): boolean {
    if (this.#closed) return false;
    const taker = this.#takers.shift();
    if (taker) {
      taker.resolve(item);
      return true;
    }
    if (this.size >= this.capacity) return false;
    this.#items.push(item);
    this.wakeOne();
    return true;
  }

  /**
   * Wait for an item without a promise: `wake` is called once, in the turn an item arrives
   * (or the queue closes), by the `put` or `offer` that brought it. The item stays queued for
   * whoever takes it first, so `wake` should take it later (a microtask), not in the sender's
   * call. For a consumer that drains the queue itself: one wake-up per burst of items instead
   * of a promise and a resumed async function per item. Promise takers (`take`) are served first.
   */
  park(wake: () => void): void {
    if (this.#closed || this.size > 0) callWake(wake);
    else this.#parked.push(wake);
  }

  /** Forget a consumer waiting with `park` (it is not woken). */
  unpark(wake: () => void): void {
    const i = this.#parked.indexOf(wake);
    if (i >= 0) this.#parked.splice(i, 1);
  }

  /** Wake the consumer that parked first, if any (a consumer leaving items it cannot take now hands them on). */
  wakeOne(): void {
    const w = this.#parked.shift();
    if (w !== undefined) callWake(w);
  }

  /**
   * Takers waiting with each signal. A signal gets one abort listener for its life (the first
   * time it waits here), not one per take: an EventTarget listener added and removed per
   * message was the largest cost of a topic with many subscribers (profiled).
   */
  readonly #bySignal = new WeakMap<AbortSignal, { aborted: boolean; waiting: Set<Taker<T>> }>();

  /** The next item; rejects with the signal's reason when aborted (the item stays queued). */
  take(signal?: AbortSignal): Promise<T> {
    if (this.size > 0) return Promise.resolve(this.#shift());
    if (this.#closed) return Promise.reject(new BusbarError('CHANNEL_CLOSED', 'channel is closed'));
    // a signal seen before is known aborted by the listener it got (its `aborted` getter costs a receiver check per read)
    let known = signal === undefined ? undefined : this.#bySignal.get(signal);
    if (signal !== undefined && (known === undefined ? signal.aborted : known.aborted)) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      if (signal === undefined) {
        this.#takers.push({ resolve, reject });
        return;
      }
      if (known === undefined) {
        const entry: { aborted: boolean; waiting: Set<Taker<T>> } = { aborted: false, waiting: new Set() };
        known = entry;
        this.#bySignal.set(signal, entry);
        signal.addEventListener(
          'abort',
          () => {
            entry.aborted = true;
            for (const w of entry.waiting) {
              const i = this.#takers.indexOf(w);
              if (i >= 0) this.#takers.splice(i, 1);
              w.reject(signal.reason);
            }
            entry.waiting.clear();
          },
          { once: true },
        );
      }
      const set = known.waiting;
      const waiter: Taker<T> = {
        resolve: (v: T) => {
          set.delete(waiter);
          resolve(v);
        },
        reject: (e: unknown) => {
          set.delete(waiter);
          reject(e);
        },
      };
      set.add(waiter);
      this.#takers.push(waiter);
    });
  }

  /** Take without waiting. */
  poll(): T | undefined {
    return this.size > 0 ? this.#shift() : undefined;
  }

  close(): void {
    this.#closed = true;
    const err = new BusbarError('CHANNEL_CLOSED', 'channel is closed');
    for (const t of this.#takers.splice(0)) t.reject(err);
    for (const p of this.#putters.splice(0)) p.reject(err);
    for (const w of this.#parked.splice(0)) callWake(w);
  }

  #shift(): T {
    const item = this.#items[this.#head] as T;
    this.#items[this.#head] = undefined as T;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items.splice(0, this.#head);
      this.#head = 0;
    }
    const p = this.#putters.shift();
    if (p) {
      this.#items.push(p.item);
      p.resolve();
    }
    return item;
  }
}
