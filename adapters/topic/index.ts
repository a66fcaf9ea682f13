import type { FlatOptionsSchema } from '../../lib/schema.js';
import type { Adapter } from '../../lib/adapter.js';
import { BoundedQueue } from '../../lib/channel.js';
import { withHeaders, type Message } from '../../lib/message.js';
import { isPromise, type MaybePromise } from '../../lib/step.js';

/** Header a delivered message carries: the topic it was published to. */
export const TOPIC_HEADER = 'busbar.topic';
import { pumpQueue } from '../queue/index.js';

export type TopicOptions = {
  size: number;
};
export const topicOptions = {
  type: 'object',
  properties: {
    size: { type: 'integer', minimum: 1, default: 1000, description: 'Capacity of each subscriber\'s own buffer; publishers wait while a matching subscriber\'s buffer is full.' },
  },
  additionalProperties: false,
} as const satisfies FlatOptionsSchema<TopicOptions>;

/** AMQP-style topic match: words separated by `.`, `*` is exactly one word, `#` zero or more. */
export function topicMatches(pattern: string, topic: string): boolean {
  const p = pattern.split('.');
  const t = topic.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === t.length;
    if (p[i] === '#') {
      for (let k = j; k <= t.length; k++) if (match(i + 1, k)) return true;
      return false;
    }
    return j < t.length && (p[i] === '*' || p[i] === t[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}

interface Subscriber {
  pattern: string;
  queue: BoundedQueue<Message>;
}

/**
 * A hub of topic subscriptions. One per engine by default; pass the same hub to
 * `topicAdapter(hub)` of several engines to make them one in-process bus.
 */
export class TopicHub {
  readonly #subscribers = new Set<Subscriber>();
  /** Per topic published to, its matching subscribers, until the subscriptions change (at most MAX_TOPICS topics). */
  readonly #targets = new Map<string, Subscriber[]>();

  get subscribers(): ReadonlySet<Subscriber> {
    return this.#subscribers;
  }

  subscribe(sub: Subscriber): void {
    this.#subscribers.add(sub);
    this.#targets.clear();
  }

  unsubscribe(sub: Subscriber): void {
    this.#subscribers.delete(sub);
    this.#targets.clear();
  }

  /** Resolves with the number of subscribers once each one's queue took the message (waiting while one is full). */
  publish(topic: string, msg: Message): Promise<number> {
    const n = this.deliver(topic, msg);
    return isPromise(n) ? n : Promise.resolve(n);
  }

  /** `publish`, with the number itself when every subscriber's queue took the message at once (no promise then). */
  deliver(topic: string, msg: Message): MaybePromise<number> {
    let targets = this.#targets.get(topic);
    if (targets === undefined) {
      targets = [...this.#subscribers].filter((s) => topicMatches(s.pattern, topic));
      if (this.#targets.size >= MAX_TOPICS) this.#targets.clear();
      this.#targets.set(topic, targets);
    }
    if (targets.length === 0) return 0;
    const delivered = withHeaders(msg, { [TOPIC_HEADER]: topic });
    let waits: Array<Promise<void>> | undefined;
    // a queue with room takes it now; only full (or closed) ones are waited for
    for (const s of targets) if (!s.queue.offer(delivered)) (waits ??= []).push(s.queue.put(delivered));
    const n = targets.length;
    return waits === undefined ? n : Promise.all(waits).then(() => n);
  }
}

/** Topics whose subscriber lists a hub keeps (computed topic names beyond it start the list over). */
const MAX_TOPICS = 1000;

/** `topic:name`: publish-subscribe; every subscriber gets its own copy in its own bounded queue. */
export function topicAdapter(sharedHub?: TopicHub): Adapter<TopicOptions> {
  return {
    scheme: 'topic',
    description: 'In-process publish-subscribe: each subscribing route has its own bounded queue; subscriptions may use wildcards (`orders.*`, `orders.#`).',
    optionsSchema: topicOptions,
    createConsumer(endpoint, ctx) {
      const hub = sharedHub ?? ctx.state('hub', () => new TopicHub());
      const sub: Subscriber = { pattern: endpoint.path, queue: new BoundedQueue<Message>(endpoint.options.size) };
      const pump = pumpQueue(sub.queue, ctx, endpoint.uri);
      return {
        async start() {
          hub.subscribe(sub);
          await pump.start();
        },
        async stop() {
          hub.unsubscribe(sub);
          // hand what is already buffered to the route before stopping: it was delivered to us
          while (sub.queue.size > 0) {
            await ctx.whenAvailable();
            const msg = sub.queue.poll();
            if (msg) ctx.process(msg).catch((err: unknown) => ctx.logger.error({ err, messageId: msg.id, body: msg.body }, 'buffered topic message failed during stop'));
          }
          await pump.stop();
        },
      };
    },
    createProducer(endpoint, ctx) {
      const hub = sharedHub ?? ctx.state('hub', () => new TopicHub());
      const delivered = (n: number, msg: Message): undefined => {
        if (n === 0) ctx.logger.debug({ topic: endpoint.path, messageId: msg.id }, 'published to a topic with no subscribers');
        return undefined;
      };
      const later = (n: Promise<number>, msg: Message): Promise<undefined> => n.then((k) => delivered(k, msg));
      return {
        // every subscriber's queue had room: done on return, no promise (nor a closure: see later)
        send(msg) {
          const n = hub.deliver(endpoint.path, msg);
          return isPromise(n) ? later(n, msg) : delivered(n, msg);
        },
      };
    },
  };
}

export default topicAdapter;
