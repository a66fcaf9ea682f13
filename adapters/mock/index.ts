import type { FlatOptionsSchema } from '../../lib/schema.js';
import { isDeepStrictEqual } from 'node:util';
import type { Adapter } from '../../lib/adapter.js';
import { sleep, type Clock } from '../../lib/clock.js';
import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';

export type MockOptions = {
  delayMs: number;
};
export const mockOptions = {
  type: 'object',
  properties: {
    delayMs: { type: 'number', minimum: 0, default: 0, description: 'Delay each delivery (a slow output).' },
  },
  additionalProperties: false,
} as const satisfies FlatOptionsSchema<MockOptions>;

/** What a mock does with a message it receives: return a reply, or throw to fail the send. */
export type MockBehaviour = (msg: Message, index: number) => Message | undefined | void | Promise<Message | undefined | void>;

/**
 * A recording endpoint for tests (Camel's MockEndpoint): set expectations, run the
 * route, then `await mock.satisfied()`.
 */
export class MockEndpoint {
  readonly name: string;
  readonly received: Message[] = [];
  #expectedCount: number | undefined;
  #expectedBodies: unknown[] | undefined;
  #behaviour: MockBehaviour | undefined;
  #waiters: Array<() => void> = [];

  constructor(name: string) {
    this.name = name;
  }

  get bodies(): unknown[] {
    return this.received.map((m) => m.body);
  }

  expectCount(n: number): this {
    this.#expectedCount = n;
    return this;
  }

  /** Expect exactly these bodies, in this order (deep equality). */
  expectBodies(bodies: unknown[]): this {
    this.#expectedBodies = bodies;
    this.#expectedCount = bodies.length;
    return this;
  }

  /** Reply or fail: the function runs for each message received. */
  whenReceived(fn: MockBehaviour): this {
    this.#behaviour = fn;
    return this;
  }

  reset(): this {
    this.received.length = 0;
    this.#expectedCount = undefined;
    this.#expectedBodies = undefined;
    this.#behaviour = undefined;
    return this;
  }

  /** Called by the producer. */
  async deliver(msg: Message): Promise<Message | undefined> {
    const index = this.received.length;
    this.received.push(msg);
    for (const w of this.#waiters.splice(0)) w();
    const r = this.#behaviour ? await this.#behaviour(msg, index) : undefined;
    return r ?? undefined;
  }

  /** Resolves once the expectations hold; rejects with BUSBAR_ERR_MOCK_ASSERTION after `timeoutMs`. */
  async satisfied(opts: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const want = this.#expectedCount ?? 0;
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < want && Date.now() < deadline) {
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now())).unref())]);
    }
    const problems: string[] = [];
    if (this.#expectedCount !== undefined && this.received.length !== this.#expectedCount) {
      problems.push(`expected ${this.#expectedCount} messages, received ${this.received.length}`);
    }
    if (this.#expectedBodies) {
      this.#expectedBodies.forEach((b, i) => {
        if (i < this.received.length && !isDeepStrictEqual(this.received[i]!.body, b)) {
          problems.push(`message ${i}: expected body ${JSON.stringify(b)}, got ${JSON.stringify(this.received[i]!.body)}`);
        }
      });
    }
    if (problems.length) {
      throw new BusbarError('MOCK_ASSERTION', `mock:${this.name}: ${problems.join('; ')}`, {
        details: { mock: this.name, problems, received: this.bodies.slice(0, 20) },
      });
    }
  }
}

type Mocks = Map<string, MockEndpoint>;

export function mockEndpoint(state: <T>(key: string, init: () => T) => T, name: string): MockEndpoint {
  const mocks = state<Mocks>('mocks', () => new Map());
  let m = mocks.get(name);
  if (!m) mocks.set(name, (m = new MockEndpoint(name)));
  return m;
}

async function delayed(clock: Clock, ms: number): Promise<void> {
  if (ms > 0) await sleep(clock, ms);
}

/** `mock:name`: records what it receives; see MockEndpoint. */
export const mockAdapter: Adapter<MockOptions> = {
  scheme: 'mock',
  description: 'Test endpoint: records messages, checks expectations (`engine.mock(uri)`), can reply, fail or be slow.',
  optionsSchema: mockOptions,
  createProducer(endpoint, ctx) {
    const mock = mockEndpoint(ctx.state, endpoint.path);
    const delay = endpoint.options.delayMs;
    return {
      async send(msg) {
        await delayed(ctx.clock, delay);
        return mock.deliver(msg);
      },
      // a mock without a reply behaviour answers with what it got (Camel's mock does the same)
      async request(msg) {
        await delayed(ctx.clock, delay);
        return (await mock.deliver(msg)) ?? msg;
      },
    };
  },
};

export default mockAdapter;
