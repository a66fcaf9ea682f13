import type { Message } from '../message.js';
import { InflightTracker } from '../management/inflight.js';
import type { ExchangeObserver, ExchangeOutcome, Route } from '../route.js';

/** What the console shows on a step: exchanges that reached it, failed in it, are at it now. */
export interface StepFigures {
  messages: number;
  failures: number;
  inflight: number;
}

/** An exchange in flight, for the console's list. */
export interface OpenExchange {
  routeId: string;
  messageId: string;
  step?: string;
  kind?: string;
  ageMs: number;
}

/** A failure as the console lists it. */
export interface RecentFailure {
  at: string;
  routeId: string;
  messageId: string;
  outcome: 'failed' | 'dead_lettered';
  code: string;
  reason: string;
  step?: string;
}

const MAX_FAILURES = 50;

/**
 * Per-step figures for the console, through the engine's public observer hook (installed
 * only while a management server with the console runs): a count per step reached, the
 * step a failure came from, and where each exchange is.
 *
 * Per message it costs what the management API's in-flight view costs (and uses it): the
 * counts of steps reached are the route's own counters, made when it was built
 * (`Route.probes`, read through `stepHits`); an exchange that finishes in the turn it
 * entered is only the current one while it runs, and only one that waits for something is
 * filed by message id. Nothing is looked up by message id at a step of an exchange that
 * runs through synchronously; a failure (rare) is counted at its end, at the step the
 * exchange last reached in this route.
 */
export class StepCounters implements ExchangeObserver {
  readonly #where = new InflightTracker();
  readonly #stepHits: (routeId: string) => Record<string, number>;
  /** Failures per route, by the step they came from. */
  readonly #failed = new Map<string, Map<string, number>>();
  readonly #failures: RecentFailure[] = [];

  /** `stepHits`: exchanges that reached each step of a route, by step path (`engine.stepHits`). */
  constructor(stepHits: (routeId: string) => Record<string, number>) {
    this.#stepHits = stepHits;
  }

  begin(route: Route, msg: Message, at?: number): unknown {
    return this.#where.begin(route, msg, at);
  }

  pending(route: Route, token: unknown): void {
    this.#where.pending(route, token);
  }

  step(route: Route, msg: Message, path: string, kind: string): void {
    this.#where.step(route, msg, path, kind);
  }

  end(route: Route, token: unknown, outcome: ExchangeOutcome, err?: unknown): void {
    this.#where.end(route, token, outcome);
    if (outcome === 'completed') return;
    // the step the exchange last reached in this route is where it failed (an error's own
    // details.step may name a step of another route it passed through, over direct:)
    const t = token as { messageId: string; step: string | undefined };
    const e = err as { code?: unknown; message?: unknown } | undefined;
    const step = t.step;
    if (step) {
      let m = this.#failed.get(route.id);
      if (!m) this.#failed.set(route.id, (m = new Map()));
      m.set(step, (m.get(step) ?? 0) + 1);
    }
    const f: RecentFailure = { at: new Date().toISOString(), routeId: route.id, messageId: t.messageId, outcome, code: typeof e?.code === 'string' ? e.code : 'BUSBAR_ERR_STEP_FAILED', reason: typeof e?.message === 'string' ? e.message : String(err) };
    if (step) f.step = step;
    this.#failures.push(f);
    if (this.#failures.length > MAX_FAILURES) this.#failures.shift();
  }

  /** The last failures (newest first), with their reason. */
  failures(): RecentFailure[] {
    return [...this.#failures].reverse();
  }

  /** Exchanges in flight now, oldest first, at most `max`. */
  inflight(max = 50, now = Date.now()): OpenExchange[] {
    return this.#where
      .list(undefined, now)
      .slice(0, max)
      .map((x) => {
        const o: OpenExchange = { routeId: x.routeId, messageId: x.messageId, ageMs: x.ageMs };
        if (x.step !== undefined) o.step = x.step;
        if (x.kind !== undefined) o.kind = x.kind;
        return o;
      });
  }

  /** Figures of one route's steps by path (in flight counted now). */
  of(routeId: string): Map<string, StepFigures> {
    const out = new Map<string, StepFigures>();
    const at = (p: string): StepFigures => {
      let f = out.get(p);
      if (!f) out.set(p, (f = { messages: 0, failures: 0, inflight: 0 }));
      return f;
    };
    for (const [p, n] of Object.entries(this.#stepHits(routeId))) at(p).messages = n;
    for (const [p, n] of this.#failed.get(routeId) ?? []) at(p).failures = n;
    for (const x of this.#where.list(routeId)) if (x.step !== undefined) at(x.step).inflight++;
    return out;
  }

  /** Failure counts of a route back to zero (its step counts reset with the route's stats). */
  reset(routeId: string): void {
    this.#failed.delete(routeId);
  }
}
