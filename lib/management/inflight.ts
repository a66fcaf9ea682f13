import type { Message } from '../message.js';
import type { ExchangeObserver, ExchangeOutcome, Route } from '../route.js';

export interface InflightExchange {
  routeId: string;
  messageId: string;
  /** When the exchange entered the route (ISO time). */
  startedAt: string;
  ageMs: number;
  /** The step it is at (`/steps/2`), and that step's kind; absent before the first step. */
  step?: string;
  kind?: string;
}

interface Rec {
  routeId: string;
  messageId: string;
  /** When it entered the route, ms since the epoch. */
  started: number;
  step: string | undefined;
  kind: string | undefined;
  /** Another exchange of the same message id in flight before this one (rare: a replay, a duplicate). */
  prev: Rec | undefined;
  /** The exchange whose synchronous stretch this one began in (a direct: call), current again after it. */
  outer: Rec | undefined;
  /** In the in-flight list (the exchange outlived the turn it entered in). */
  filed: boolean;
}

/** `performance.timeOrigin` read once: the getter costs as much as a clock read (~80 ns here), on every exchange. */
const TIME_ORIGIN = performance.timeOrigin;

/** Per-step counters of a route: exchanges that reached each step. */
export type StepCounts = Record<string, number>;

/**
 * The management API's view of exchanges: which are in flight and at which step, and how
 * many reached each step. Installed only while a management server runs.
 *
 * Cheap per message: an exchange that finishes in the turn it entered (every in-memory
 * route without I/O) is only the current one while it runs, never listed (nobody can ask
 * for the list in between); only one that waits for something is filed by message id. The
 * per-step counts are counters the route made when it was built (`Route.probes`).
 */
export class InflightTracker implements ExchangeObserver {
  /** Exchanges that outlived their first turn, per route, by message id: the newest exchange of that id, older ones chained behind it. */
  readonly #byRoute = new Map<string, Map<string, Rec>>();
  /** The exchange running synchronously now (innermost), if any. */
  #current: Rec | undefined;
  readonly #onDeadLetter: ((route: Route, uri: string, msg: Message, reply: Message | undefined) => Promise<void>) | undefined;
  readonly #stepHits: ((routeId: string) => StepCounts) | undefined;

  constructor(onDeadLetter?: (route: Route, uri: string, msg: Message, reply: Message | undefined) => Promise<void>, stepHits?: (routeId: string) => StepCounts) {
    this.#onDeadLetter = onDeadLetter;
    this.#stepHits = stepHits;
  }

  async deadLettered(route: Route, uri: string, msg: Message, reply: Message | undefined): Promise<void> {
    await this.#onDeadLetter?.(route, uri, msg, reply);
  }

  begin(route: Route, msg: Message, at?: number): Rec {
    const rec: Rec = { routeId: route.id, messageId: msg.id, started: at === undefined ? Date.now() : TIME_ORIGIN + at, step: undefined, kind: undefined, prev: undefined, outer: this.#current, filed: false };
    this.#current = rec;
    return rec;
  }

  pending(route: Route, token: unknown): void {
    const rec = token as Rec;
    let m = this.#byRoute.get(route.id);
    if (m === undefined) this.#byRoute.set(route.id, (m = new Map()));
    rec.prev = m.get(rec.messageId);
    m.set(rec.messageId, rec);
    rec.filed = true;
    if (this.#current === rec) this.#current = rec.outer;
  }

  step(route: Route, msg: Message, path: string, kind: string): void {
    // within the turn an exchange entered, it is the current one (its id is the same string)
    const cur = this.#current;
    // parts of a split carry their own ids: their parent stays at the splitting step
    const rec = cur !== undefined && cur.messageId === msg.id && cur.routeId === route.id ? cur : this.#byRoute.get(route.id)?.get(msg.id);
    if (rec !== undefined) {
      rec.step = path;
      rec.kind = kind;
    }
  }

  end(route: Route, token: unknown, _outcome: ExchangeOutcome): void {
    const rec = token as Rec;
    if (this.#current === rec) this.#current = rec.outer;
    if (!rec.filed) return;
    const m = this.#byRoute.get(route.id);
    if (m === undefined) return;
    const head = m.get(rec.messageId);
    if (head === rec) {
      if (rec.prev === undefined) m.delete(rec.messageId);
      else m.set(rec.messageId, rec.prev);
      return;
    }
    for (let r = head; r !== undefined; r = r.prev) {
      if (r.prev === rec) {
        r.prev = rec.prev;
        return;
      }
    }
  }

  list(routeId?: string, now = Date.now()): InflightExchange[] {
    const out: InflightExchange[] = [];
    for (const [id, m] of this.#byRoute) {
      if (routeId !== undefined && id !== routeId) continue;
      for (const head of m.values()) {
        for (let r: Rec | undefined = head; r !== undefined; r = r.prev) {
          const x: InflightExchange = { routeId: r.routeId, messageId: r.messageId, startedAt: new Date(r.started).toISOString(), ageMs: Math.max(0, Math.round(now - r.started)) };
          if (r.step !== undefined) x.step = r.step;
          if (r.kind !== undefined) x.kind = r.kind;
          out.push(x);
        }
      }
    }
    return out.sort((a, b) => b.ageMs - a.ageMs);
  }

  stepCounts(routeId: string): StepCounts {
    return this.#stepHits?.(routeId) ?? {};
  }

  /** The counts live in the route (reset with its stats); nothing kept here. */
  resetSteps(_routeId: string): void {}
}
