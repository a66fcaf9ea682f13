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
  #running = false;
  /** A drain is due (a microtask or an immediate is queued, or a slot is awaited): nothing more to schedule. */
  #due = false;

  constructor(queue: BoundedQueue<Message>, ctx: ConsumerContext, uri: string) {
    super();
    this.#queue = queue;
    this.#ctx = ctx;
    this.#route = ctx.processor;
    this.#uri = uri;
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
    queueMicrotask(this.#drain);
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
    const queue = ctx.state(endpoint.path, () => new BoundedQueue<Message>(endpoint.options.size));
    return pumpQueue(queue, ctx, endpoint.uri);
  },
  createProducer(endpoint, ctx) {
    const queue = ctx.state(endpoint.path, () => new BoundedQueue<Message>(endpoint.options.size));
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
