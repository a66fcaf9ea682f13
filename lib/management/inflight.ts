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
}

/** Per-step counters of a route: exchanges that reached each step. */
export type StepCounts = Record<string, number>;

/**
 * The management API's view of exchanges: which are in flight and at which step, and how
 * many reached each step. Installed only while a management server runs.
 */
export class InflightTracker implements ExchangeObserver {
  /** In flight per route, by message id (a message id can be in flight twice: count them). */
  readonly #byRoute = new Map<string, Map<string, Rec[]>>();
  readonly #steps = new Map<string, Map<string, number>>();
  readonly #onDeadLetter: ((route: Route, uri: string, msg: Message, reply: Message | undefined) => Promise<void>) | undefined;

  constructor(onDeadLetter?: (route: Route, uri: string, msg: Message, reply: Message | undefined) => Promise<void>) {
    this.#onDeadLetter = onDeadLetter;
  }

  async deadLettered(route: Route, uri: string, msg: Message, reply: Message | undefined): Promise<void> {
    await this.#onDeadLetter?.(route, uri, msg, reply);
  }

  begin(route: Route, msg: Message): Rec {
    let m = this.#byRoute.get(route.id);
    if (!m) this.#byRoute.set(route.id, (m = new Map()));
    const rec: Rec = { routeId: route.id, messageId: msg.id, started: Date.now(), step: undefined, kind: undefined };
    const list = m.get(msg.id);
    if (list) list.push(rec);
    else m.set(msg.id, [rec]);
    return rec;
  }

  step(route: Route, msg: Message, path: string, kind: string): void {
    let counts = this.#steps.get(route.id);
    if (!counts) this.#steps.set(route.id, (counts = new Map()));
    counts.set(path, (counts.get(path) ?? 0) + 1);
    // parts of a split carry their own ids: their parent stays at the splitting step
    const list = this.#byRoute.get(route.id)?.get(msg.id);
    if (list) {
      const rec = list[list.length - 1]!;
      rec.step = path;
      rec.kind = kind;
    }
  }

  end(route: Route, token: unknown, _outcome: ExchangeOutcome): void {
    const rec = token as Rec;
    const m = this.#byRoute.get(route.id);
    const list = m?.get(rec.messageId);
    if (!m || !list) return;
    const i = list.indexOf(rec);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) m.delete(rec.messageId);
  }

  list(routeId?: string, now = Date.now()): InflightExchange[] {
    const out: InflightExchange[] = [];
    for (const [id, m] of this.#byRoute) {
      if (routeId !== undefined && id !== routeId) continue;
      for (const list of m.values()) {
        for (const r of list) {
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
