import type { Message } from '../message.js';
import type { ExchangeObserver, ExchangeOutcome, Route } from '../route.js';

/** What the console shows on a step: exchanges that reached it, failed in it, are at it now. */
export interface StepFigures {
  messages: number;
  failures: number;
  inflight: number;
}

interface Token {
  id: string;
  step: string | undefined;
  kind: string | undefined;
  started: number;
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
 * step a failure came from (from the error's `details.step`), and where each exchange is.
 */
export class StepCounters implements ExchangeObserver {
  readonly #routes = new Map<string, Map<string, StepFigures>>();
  /** Exchanges in flight per route by message id, with the step each is at. */
  readonly #open = new Map<string, Map<string, Token>>();
  readonly #failures: RecentFailure[] = [];

  #figures(routeId: string, path: string): StepFigures {
    let m = this.#routes.get(routeId);
    if (!m) this.#routes.set(routeId, (m = new Map()));
    let f = m.get(path);
    if (!f) m.set(path, (f = { messages: 0, failures: 0, inflight: 0 }));
    return f;
  }

  begin(route: Route, msg: Message): Token {
    let open = this.#open.get(route.id);
    if (!open) this.#open.set(route.id, (open = new Map()));
    const t: Token = { id: msg.id, step: undefined, kind: undefined, started: Date.now() };
    open.set(msg.id, t);
    return t;
  }

  step(route: Route, msg: Message, path: string, kind: string): void {
    this.#figures(route.id, path).messages++;
    const t = this.#open.get(route.id)?.get(msg.id);
    if (t) {
      t.step = path;
      t.kind = kind;
    }
  }

  end(route: Route, token: unknown, outcome: ExchangeOutcome, err?: unknown): void {
    const t = token as Token;
    const open = this.#open.get(route.id);
    if (open?.get(t.id) === t) open.delete(t.id);
    if (outcome === 'completed') return;
    // the step the exchange last reached in this route is where it failed (an error's own
    // details.step may name a step of another route it passed through, over direct:)
    const e = err as { code?: unknown; message?: unknown } | undefined;
    const step = t.step;
    if (step) this.#figures(route.id, step).failures++;
    const f: RecentFailure = { at: new Date().toISOString(), routeId: route.id, messageId: t.id, outcome, code: typeof e?.code === 'string' ? e.code : 'BUSBAR_ERR_STEP_FAILED', reason: typeof e?.message === 'string' ? e.message : String(err) };
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
    const out: OpenExchange[] = [];
    for (const [routeId, open] of this.#open) {
      for (const t of open.values()) {
        const x: OpenExchange = { routeId, messageId: t.id, ageMs: now - t.started };
        if (t.step !== undefined) x.step = t.step;
        if (t.kind !== undefined) x.kind = t.kind;
        out.push(x);
      }
    }
    return out.sort((a, b) => b.ageMs - a.ageMs).slice(0, max);
  }

  /** Figures of one route's steps by path (in flight counted now). */
  of(routeId: string): Map<string, StepFigures> {
    const out = new Map<string, StepFigures>();
    for (const [p, f] of this.#routes.get(routeId) ?? []) out.set(p, { ...f, inflight: 0 });
    for (const t of this.#open.get(routeId)?.values() ?? []) {
      if (t.step === undefined) continue;
      const f = out.get(t.step) ?? { messages: 0, failures: 0, inflight: 0 };
      f.inflight++;
      out.set(t.step, f);
    }
    return out;
  }

  reset(routeId: string): void {
    this.#routes.delete(routeId);
  }
}
