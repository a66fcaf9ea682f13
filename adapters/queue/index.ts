import type { FlatOptionsSchema } from '../../lib/schema.js';
import { shouldAck, type Adapter, type Consumer, type ConsumerContext } from '../../lib/adapter.js';
import { isPromise } from '../../lib/step.js';
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

class QueuePump extends Service implements Consumer {
  readonly #queue: BoundedQueue<Message>;
  readonly #ctx: ConsumerContext;
  readonly #uri: string;
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;

  constructor(queue: BoundedQueue<Message>, ctx: ConsumerContext, uri: string) {
    super();
    this.#queue = queue;
    this.#ctx = ctx;
    this.#uri = uri;
  }

  protected async doStart(): Promise<void> {
    this.#abort = new AbortController();
    this.#loop = this.#run(this.#abort.signal);
    this.#ctx.setStatus('connected');
  }

  protected async doStop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
    this.#ctx.setStatus('idle');
  }

  async #run(signal: AbortSignal): Promise<void> {
    const ctx = this.#ctx;
    // the signal's own `aborted` getter validates its receiver on every read: a flag its abort event sets instead
    let aborted = false;
    signal.addEventListener('abort', () => (aborted = true), { once: true });
    while (!aborted) {
      // a free slot is the common case: no promise to wait on then
      if (ctx.available() <= 0) await ctx.whenAvailable();
      let msg: Message;
      try {
        msg = await this.#queue.take(signal);
      } catch {
        return; // stopped or closed
      }
      // a route that finished at once leaves nothing to wait on (no promise, no handler per message)
      const r = ctx.processNow(msg);
      if (isPromise(r)) {
        r.catch((err: unknown) => {
          if (!shouldAck(err)) ctx.logger.error({ err, uri: this.#uri, messageId: msg.id, headers: msg.headers, body: msg.body }, 'message failed and has no dead-letter endpoint');
        });
      }
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
      async send(msg) {
        await queue.put(msg);
        return undefined;
      },
    };
  },
};

export default queueAdapter;
