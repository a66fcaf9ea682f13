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
  started: number;
  step: string | undefined;
  kind: string | undefined;
  /** Another exchange of the same message id in flight before this one (rare: a replay, a duplicate). */
  prev: Rec | undefined;
}

/** Per-step counters of a route: exchanges that reached each step. */
export type StepCounts = Record<string, number>;

/**
 * The management API's view of exchanges: which are in flight and at which step, and how
 * many reached each step. Installed only while a management server runs.
 */
export class InflightTracker implements ExchangeObserver {
  /** In flight per route, by message id: the newest exchange of that id, older ones chained behind it. */
  readonly #byRoute = new Map<string, Map<string, Rec>>();
  readonly #steps = new Map<string, Map<string, number>>();
  readonly #onDeadLetter: ((route: Route, uri: string, msg: Message, reply: Message | undefined) => Promise<void>) | undefined;

  constructor(onDeadLetter?: (route: Route, uri: string, msg: Message, reply: Message | undefined) => Promise<void>) {
    this.#onDeadLetter = onDeadLetter;
  }

  async deadLettered(route: Route, uri: string, msg: Message, reply: Message | undefined): Promise<void> {
    await this.#onDeadLetter?.(route, uri, msg, reply);
  }

  // per exchange: one object and two map operations (no list per message id: this runs for every message)
  begin(route: Route, msg: Message): Rec {
    let m = this.#byRoute.get(route.id);
    if (m === undefined) this.#byRoute.set(route.id, (m = new Map()));
    const rec: Rec = { routeId: route.id, messageId: msg.id, started: Date.now(), step: undefined, kind: undefined, prev: m.get(msg.id) };
    m.set(msg.id, rec);
    return rec;
  }

  step(route: Route, msg: Message, path: string, kind: string): void {
    let counts = this.#steps.get(route.id);
    if (counts === undefined) this.#steps.set(route.id, (counts = new Map()));
    counts.set(path, (counts.get(path) ?? 0) + 1);
    // parts of a split carry their own ids: their parent stays at the splitting step
    const rec = this.#byRoute.get(route.id)?.get(msg.id);
    if (rec !== undefined) {
      rec.step = path;
      rec.kind = kind;
    }
  }

  end(route: Route, token: unknown, _outcome: ExchangeOutcome): void {
    const rec = token as Rec;
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
          const x: InflightExchange = { routeId: r.routeId, messageId: r.messageId, startedAt: new Date(r.started).toISOString(), ageMs: now - r.started };
          if (r.step !== undefined) x.step = r.step;
          if (r.kind !== undefined) x.kind = r.kind;
          out.push(x);
        }
      }
    }
    return out.sort((a, b) => b.ageMs - a.ageMs);
  }

  stepCounts(routeId: string): StepCounts {
    return Object.fromEntries(this.#steps.get(routeId) ?? []);
  }

  resetSteps(routeId: string): void {
    this.#steps.delete(routeId);
  }
}
