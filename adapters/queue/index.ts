import type { FlatOptionsSchema } from '../../lib/schema.js';
import { shouldAck, type Adapter, type Consumer, type ConsumerContext, type Processor } from '../../lib/adapter.js';
import { isPromise, type MaybePromise } from '../../lib/step.js';
import { BoundedQueue } from '../../lib/channel.js';
import { Service } from '../../lib/service.js';
import type { Message } from '../../lib/message.js';

export type QueueOptions = {
  size: number;
};
export const queueOptions = {
  type: 'object',
  properties: {
    size: { type: 'integer', minimum: 1, default: 1000, description: 'Capacity of the buffer; senders wait while it is full.' },
  },
  additionalProperties: false,
} as const satisfies FlatOptionsSchema<QueueOptions>;

/**
 * Feed a route from a bounded queue: take a message only when the route has a free slot,
 * so a slow route slows the queue, which slows its senders. Failures the error policy did
 * not settle are logged with the whole message (nothing vanishes without a trace).
 */
export function pumpQueue(queue: BoundedQueue<Message>, ctx: ConsumerContext, uri: string): Consumer {
  return new QueuePump(queue, ctx, uri);
}

/** Messages one wake-up of a pump hands to its route before it lets the event loop run other work. */
const BURST = 1024;

/**
 * The pumps of one engine woken since the last microtask, drained together in one: a publish
 * to a topic wakes every subscriber's pump, and a microtask each (its allocation and its turn
 * through the queue: ~50 ns) cost a delivery more than the rest of waking the pump. Drained in
 * the order they were woken, each with its own error guard; a pump woken by another's drain
 * goes in the next microtask.
 */
class Drains {
  // two lists used in turn, each kept at its size (emptied by count, not by length = 0,
  // which would give its backing store back and make the next wake-up allocate one)
  #due: Array<(() => void) | undefined> = [];
  #n = 0;
  #spare: Array<(() => void) | undefined> = [];
  #scheduled = false;

  add(drain: () => void): void {
    this.#due[this.#n++] = drain;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#run);
    }
  }

  readonly #run = (): void => {
    const due = this.#due;
    const n = this.#n;
    this.#due = this.#spare;
    this.#n = 0;
    this.#scheduled = false;
    for (let i = 0; i < n; i++) {
      const drain = due[i]!;
      due[i] = undefined;
      try {
        drain();
      } catch (e) {
        // a pump's drain catches its route's failures itself; anything else must not stop the others
        process.emitWarning(`queue pump: a drain threw: ${e instanceof Error ? e.message : String(e)}`, { code: 'BUSBAR_QUEUE_DRAIN' });
      }
    }
    this.#spare = due;
  };
}

/** The state key of an engine's Drains (its queues are under `q:<name>`, so no queue's name meets it). */
const DRAINS = 'drains';

/**
 * Drains its queue into the route in bursts: woken (one microtask) when a message arrives
 * while it waits, it hands every queued message to the route while the route has a free slot,
 * then waits again, for a slot (`whenAvailable`) or for the next message (`park`). No promise
 * and no resumed async function per message: a route that finished at once costs its call.
 */
class QueuePump extends Service implements Consumer {
  readonly #queue: BoundedQueue<Message>;
  readonly #ctx: ConsumerContext;
  /** The route's entry points, read per message (see ConsumerContext.processor). */
  readonly #route: Processor;
  readonly #uri: string;
  readonly #drains: Drains;
  #running = false;
  /** A drain is due (a microtask or an immediate is queued, or a slot is awaited): nothing more to schedule. */
  #due = false;

  constructor(queue: BoundedQueue<Message>, ctx: ConsumerContext, uri: string) {
    super();
    this.#queue = queue;
    this.#ctx = ctx;
    this.#route = ctx.processor;
    this.#uri = uri;
    this.#drains = ctx.state(DRAINS, () => new Drains());
  }

  protected async doStart(): Promise<void> {
    this.#running = true;
    this.#ctx.setStatus('connected');
    this.#wake();
  }

  protected async doStop(): Promise<void> {
    this.#running = false;
    this.#queue.unpark(this.#wake);
    this.#ctx.setStatus('idle');
  }

  readonly #wake = (): void => {
    if (this.#due) return;
    this.#due = true;
    this.#drains.add(this.#drain);
  };

  readonly #drain = (): void => {
    this.#due = false;
    if (!this.#running) return;
    const route = this.#route;
    const queue = this.#queue;
    for (let n = 0; n < BURST; n++) {
      if (route.available() <= 0) {
        // what is left goes to a competing consumer that has room, if one waits
        if (queue.size > 0) queue.wakeOne();
        this.#due = true;
        void this.#ctx.whenAvailable().then(this.#drain);
        return;
      }
      const msg = queue.poll();
      if (msg === undefined) {
        if (!queue.closed) queue.park(this.#wake);
        return;
      }
      this.#handle(msg);
    }
    // a long burst: let timers and I/O run before the next
    this.#due = true;
    setImmediate(this.#drain);
  };

  #handle(msg: Message): void {
    let r: MaybePromise<Message>;
    try {
      // a route that finished at once leaves nothing to wait on (no promise, no handler per message)
      r = this.#route.processNow(msg);
    } catch (err) {
      r = Promise.reject(err);
    }
    if (isPromise(r)) {
      r.catch((err: unknown) => {
        if (!shouldAck(err)) this.#ctx.logger.error({ err, uri: this.#uri, messageId: msg.id, headers: msg.headers, body: msg.body }, 'message failed and has no dead-letter endpoint');
      });
    }
  }
}

/**
 * `queue:name`: an in-process point-to-point channel with a bounded buffer. Several routes
 * consuming the same queue compete for its messages; a sender waits while it is full.
 */
export const queueAdapter: Adapter<QueueOptions> = {
  scheme: 'queue',
  description: 'In-process point-to-point channel: bounded buffer, competing consumers, senders wait while it is full.',
  optionsSchema: queueOptions,
  createConsumer(endpoint, ctx) {
    const queue = ctx.state(`q:${endpoint.path}`, () => new BoundedQueue<Message>(endpoint.options.size));
    return pumpQueue(queue, ctx, endpoint.uri);
  },
  createProducer(endpoint, ctx) {
    const queue = ctx.state(`q:${endpoint.path}`, () => new BoundedQueue<Message>(endpoint.options.size));
    return {
      // a queue with room has the message on return: no promise
      send(msg) {
        if (queue.offer(msg)) return undefined;
        return queue.put(msg).then(nothing);
      },
    };
  },
};

const nothing = (): undefined => undefined;

export default queueAdapter;
