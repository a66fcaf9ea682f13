/**
 * The testing kit: route tests without servers and without sleeping.
 *
 * - `FakeClock`: a Clock driven by hand (`await clock.tickAsync(5000)`), for aggregator
 *   timeouts, delays, throttles and redelivery backoff. Built on @sinonjs/fake-timers'
 *   `createClock`, never installed globally: only the engine given the clock sees fake time.
 * - `replaceEndpoints`: Camel's AdviceWith for busbar: the same routes with some endpoints
 *   (sources, destinations, dead letters, endpoints inside patterns) swapped for `direct:`
 *   / `mock:` ones.
 * - `testEngine`: an engine with a silent logger and a FakeClock.
 */
import { createClock } from '@sinonjs/fake-timers';
import { pino } from 'pino';
import { isRouteBuilder, RouteBuilder } from './builder.js';
import { BusbarError } from './errors.js';
import type { Clock, TimerHandle } from './clock.js';
import { Engine, type EngineOptions, type RouteInput } from './engine.js';
import type { ErrorPolicy, RouteDefinition } from './model.js';

type Fake = ReturnType<typeof createClock>;

export class FakeClock implements Clock {
  readonly #fake: Fake;

  /** `start`: the initial time (epoch ms or a Date), default 0. */
  constructor(start: number | Date = 0) {
    this.#fake = createClock(start, 100_000);
  }

  now(): number {
    return this.#fake.now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.#fake.setTimeout(fn, ms) as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#fake.clearTimeout(handle as never);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.#fake.setInterval(fn, ms) as unknown as TimerHandle;
  }

  clearInterval(handle: TimerHandle): void {
    this.#fake.clearInterval(handle as never);
  }

  /**
   * Advance time by `ms`, firing due timers in order and letting promise callbacks run
   * between them (what a route needs: a timer resolves a sleep, the route goes on and may
   * set the next timer). Returns the new time.
   */
  tickAsync(ms: number): Promise<number> {
    return this.#fake.tickAsync(ms);
  }

  /** Advance time synchronously (promise callbacks do not run in between). */
  tick(ms: number): number {
    return this.#fake.tick(ms);
  }

  /** Fire the next timer (advancing time to it), letting promises settle. */
  nextAsync(): Promise<number> {
    return this.#fake.nextAsync();
  }

  /** Fire timers until none is left (bounded: at most 100 000), letting promises settle. */
  runAllAsync(): Promise<number> {
    return this.#fake.runAllAsync();
  }

  /** Timers waiting to fire. */
  pending(): number {
    return this.#fake.countTimers();
  }
}

/** Let pending promise callbacks and I/O callbacks run (a few turns of the real event loop). */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/** An endpoint replacement: a URI (or a function of the matched URI). */
export type Replacement = string | ((uri: string) => string);

/**
 * Keys are endpoint URIs: `amqp:queue:orders` matches that URI with or without options
 * (`amqp:queue:orders?prefetch=10`); a key ending in `*` matches every URI starting with
 * the rest (`amqp:*`).
 */
export type EndpointReplacements = Readonly<Record<string, Replacement>>;

function replacer(map: EndpointReplacements): (s: string) => string {
  const entries = Object.entries(map);
  return (s) => {
    for (const [key, rep] of entries) {
      const hit = key.endsWith('*') ? s.startsWith(key.slice(0, -1)) : s === key || s.startsWith(`${key}?`);
      if (hit) return typeof rep === 'function' ? rep(s) : rep;
    }
    return s;
  };
}

/** Deep copy of plain data with strings replaced; functions and class instances (stores, fns) are kept as they are. */
function rewrite(value: unknown, swap: (s: string) => string): unknown {
  if (typeof value === 'string') return swap(value);
  if (Array.isArray(value)) return value.map((v) => rewrite(v, swap));
  if (value === null || typeof value !== 'object') return value;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = rewrite(v, swap);
  return out;
}

const NO_ID = '\u0000busbar-testing-no-id';

/**
 * A builder standing for an already-built route definition: the engine only asks a builder
 * for its definition, so every setting (present and future) is carried over as it is.
 */
class AdvisedRoute extends RouteBuilder<unknown, never> {
  readonly #def: RouteDefinition;
  readonly #hadId: boolean;

  constructor(def: RouteDefinition, hadId: boolean) {
    super(def.from);
    this.#def = def;
    this.#hadId = hadId;
  }

  override toDefinition(defaultId?: string): RouteDefinition {
    const id = this.#hadId ? this.#def.id : defaultId;
    if (id === undefined) throw new BusbarError('INVALID_ROUTE', `route from "${this.#def.from}" has no id`);
    return { ...this.#def, id, steps: [...this.#def.steps] };
  }
}

/**
 * The same routes with endpoints replaced (like Camel's AdviceWith): sources, `to`s, dead
 * letters and endpoints inside pattern steps. The inputs are not changed.
 *
 * ```ts
 * engine.addRoutes(replaceEndpoints(routes, { 'amqp:queue:orders': 'direct:orders', 'http:*': 'mock:http' }));
 * ```
 */
export function replaceEndpoints(routes: RouteInput, map: EndpointReplacements): RouteInput {
  const swap = replacer(map);
  const one = (input: RouteInput): RouteInput => {
    if (Array.isArray(input)) return (input as readonly RouteInput[]).map(one);
    if (isRouteBuilder(input)) {
      const def = input.toDefinition(NO_ID);
      const copy: RouteDefinition = {
        ...def,
        from: swap(def.from),
        steps: def.steps.map((s) => ({ kind: s.kind, args: rewrite(s.args, swap) })),
      };
      if (def.errorPolicy) copy.errorPolicy = rewrite(def.errorPolicy, swap) as ErrorPolicy;
      return new AdvisedRoute(copy, def.id !== NO_ID);
    }
    return rewrite(input, swap) as RouteInput;
  };
  return one(routes);
}

export interface TestEngine {
  engine: Engine;
  clock: FakeClock;
}

/** An engine for tests: silent logger (unless BUSBAR_TEST_LOG=level), a FakeClock, short stop timeout. */
export function testEngine(opts: EngineOptions & { clock?: FakeClock } = {}): TestEngine {
  const clock = opts.clock ?? new FakeClock(Date.UTC(2030, 0, 1));
  const engine = new Engine({ stopTimeoutMs: 2000, ...opts, clock, logger: opts.logger ?? pino({ level: process.env.BUSBAR_TEST_LOG ?? 'silent' }) });
  return { engine, clock };
}
