import type { Clock } from './clock.js';
import { BusbarError } from './errors.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Failure rate (0..1) over the window at or above which the circuit opens (default 0.5). */
  failureRateThreshold?: number;
  /** How many of the latest calls the failure rate is computed over (default 20). */
  windowSize?: number;
  /** No decision before this many calls are in the window (default 5). */
  minimumCalls?: number;
  /** How long the circuit stays open before letting trial calls through (default 30 s). */
  openMs?: number;
  /** Trial calls allowed while half-open; all must succeed to close again (default 1). */
  halfOpenCalls?: number;
}

/**
 * A circuit breaker (closed -> open -> half-open -> closed). Closed: calls go through and
 * their outcomes fill a sliding window; when the failure rate over it reaches the
 * threshold the circuit opens. Open: calls are refused (`BUSBAR_ERR_CIRCUIT_OPEN`) until
 * `openMs` passed. Half-open: `halfOpenCalls` trial calls go through; one failure opens
 * again, all succeeding closes. Time comes from a Clock so tests can drive it.
 */
export class CircuitBreaker {
  readonly name: string;
  readonly #clock: Clock;
  readonly #threshold: number;
  readonly #windowSize: number;
  readonly #minimumCalls: number;
  readonly #openMs: number;
  readonly #halfOpenCalls: number;
  #state: CircuitState = 'closed';
  /** Ring of outcomes (true = failure). */
  readonly #window: boolean[] = [];
  #windowHead = 0;
  #failures = 0;
  #openedAt = 0;
  #trialsStarted = 0;
  #trialsSucceeded = 0;
  readonly #listeners: Array<(state: CircuitState) => void> = [];

  constructor(name: string, clock: Clock, opts: CircuitBreakerOptions = {}) {
    this.name = name;
    this.#clock = clock;
    this.#threshold = opts.failureRateThreshold ?? 0.5;
    this.#windowSize = opts.windowSize ?? 20;
    this.#minimumCalls = Math.min(opts.minimumCalls ?? 5, this.#windowSize);
    this.#openMs = opts.openMs ?? 30_000;
    this.#halfOpenCalls = opts.halfOpenCalls ?? 1;
    const bad = (what: string, v: number): BusbarError => new BusbarError('INVALID_ROUTE', `circuit breaker "${name}": ${what}, got ${v}`, { details: { breaker: name } });
    if (!(this.#threshold > 0 && this.#threshold <= 1)) throw bad('failureRateThreshold must be in (0, 1]', this.#threshold);
    if (!Number.isInteger(this.#windowSize) || this.#windowSize < 1) throw bad('windowSize must be a positive integer', this.#windowSize);
    if (!Number.isInteger(this.#minimumCalls) || this.#minimumCalls < 1) throw bad('minimumCalls must be a positive integer', this.#minimumCalls);
    if (!(this.#openMs >= 0)) throw bad('openMs must be >= 0', this.#openMs);
    if (!Number.isInteger(this.#halfOpenCalls) || this.#halfOpenCalls < 1) throw bad('halfOpenCalls must be a positive integer', this.#halfOpenCalls);
  }

  get state(): CircuitState {
    // the open -> half-open transition is due to time alone, so it is observed lazily
    if (this.#state === 'open' && this.#clock.now() - this.#openedAt >= this.#openMs) this.#to('half-open');
    return this.#state;
  }

  /** Failure rate over the current window (0 when empty). */
  get failureRate(): number {
    return this.#window.length ? this.#failures / this.#window.length : 0;
  }

  onStateChange(fn: (state: CircuitState) => void): void {
    this.#listeners.push(fn);
  }

  /**
   * Ask to make a call. Returns false when the circuit refuses it (open, or half-open with
   * all trial calls taken). A true answer must be followed by `success()`, `failure()` or
   * `release()`.
   */
  tryAcquire(): boolean {
    const s = this.state;
    if (s === 'closed') return true;
    if (s === 'open') return false;
    if (this.#trialsStarted >= this.#halfOpenCalls) return false;
    this.#trialsStarted++;
    return true;
  }

  success(): void {
    if (this.#state === 'half-open') {
      if (++this.#trialsSucceeded >= this.#halfOpenCalls) this.#to('closed');
      return;
    }
    if (this.#state === 'closed') this.#record(false);
  }

  failure(): void {
    if (this.#state === 'half-open') {
      this.#to('open');
      return;
    }
    if (this.#state !== 'closed') return;
    this.#record(true);
    if (this.#window.length >= this.#minimumCalls && this.failureRate >= this.#threshold) this.#to('open');
  }

  /**
   * The call acquired never reached the protected side (nothing to route it to yet, a return
   * from the broker): it says nothing of that side's health. Counted neither way; a trial
   * call taken in half-open state is given back.
   */
  release(): void {
    if (this.#state === 'half-open' && this.#trialsStarted > this.#trialsSucceeded) this.#trialsStarted--;
  }

  /** Milliseconds until an open circuit lets a trial call through (0 if not open). */
  retryInMs(): number {
    return this.state === 'open' ? Math.max(0, this.#openedAt + this.#openMs - this.#clock.now()) : 0;
  }

  openError(routeId: string, step: string): BusbarError {
    return new BusbarError('CIRCUIT_OPEN', `route "${routeId}", step ${step}: circuit breaker "${this.name}" is ${this.#state} (failure rate ${Math.round(this.failureRate * 100)}%), retry in ${this.retryInMs()} ms`, {
      details: { routeId, step, breaker: this.name, state: this.#state, retryInMs: this.retryInMs() },
    });
  }

  #record(failed: boolean): void {
    if (this.#window.length < this.#windowSize) {
      this.#window.push(failed);
    } else {
      if (this.#window[this.#windowHead]) this.#failures--;
      this.#window[this.#windowHead] = failed;
      this.#windowHead = (this.#windowHead + 1) % this.#windowSize;
    }
    if (failed) this.#failures++;
  }

  #to(state: CircuitState): void {
    if (state === this.#state) return;
    this.#state = state;
    if (state === 'open') this.#openedAt = this.#clock.now();
    if (state === 'half-open') {
      this.#trialsStarted = 0;
      this.#trialsSucceeded = 0;
    }
    if (state === 'closed') {
      this.#window.length = 0;
      this.#windowHead = 0;
      this.#failures = 0;
    }
    for (const l of this.#listeners) l(state);
  }
}
