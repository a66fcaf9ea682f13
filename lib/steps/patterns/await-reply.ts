import { Deadlines } from '../../clock.js';
import { BusbarError } from '../../errors.js';
import { isTransportHeader } from '../../header-policy.js';
import { withBody, withHeaders, type HeaderValue, type Message } from '../../message.js';
import { then, type ConfigContext, type MaybePromise, type StepKind } from '../../step.js';
import { computedFromConfig, computedSchema, evaluator, type Computed } from '../core.js';
import { keyOf } from './common.js';

/** Headers of a message that went on after `awaitReply`, and of a late reply sent to `lateReplies`. */
export const AWAIT_REPLY_HEADERS = {
  /** The endpoint the reply came from. */
  from: 'busbar.awaitReply.from',
  /** The correlation key the reply matched (or, on a late reply, had). */
  key: 'busbar.awaitReply.key',
  /** On a late reply: true. */
  late: 'busbar.awaitReply.late',
} as const;

/** How a correlation key is read: an expression / function of the message, or a header's value. */
export type CorrelationSource = Computed | { header: string };

export interface AwaitReplyArgs {
  /** The endpoint the answer arrives on (`queue:replies`, `amqp:queue:replies`...); the step consumes it while the route runs. */
  uri: string;
  /** The waiting message's key (default: its correlation id). */
  correlate?: CorrelationSource | undefined;
  /** The key of a message arriving on `uri` (default: read like `correlate`). */
  replyCorrelate?: CorrelationSource | undefined;
  /** How long to wait (default 30 000 ms); then the message fails with BUSBAR_ERR_TIMEOUT (retryable). */
  timeoutMs?: number | undefined;
  /** Send the message here (one-way) once its wait is registered, so even an instant answer is caught. */
  send?: string | undefined;
  /** Replies nobody waits for (any more) go here, with `busbar.awaitReply.late: true`; default: counted and discarded. */
  lateReplies?: string | undefined;
}

const correlationSchema = {
  oneOf: [
    ...computedSchema.oneOf,
    { type: 'object', additionalProperties: false, required: ['header'], properties: { header: { type: 'string', minLength: 1, description: 'the key is this header\'s value' } } },
  ],
} as const;

function correlationFromConfig(v: unknown, ctx: ConfigContext, path: string): CorrelationSource | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'object' && v !== null && 'header' in v) return { header: (v as { header: string }).header };
  return computedFromConfig(v, ctx, path);
}

function keyReader(c: CorrelationSource | undefined): (m: Message) => MaybePromise<unknown> {
  if (c === undefined) return (m) => m.correlationId;
  if ('header' in c) {
    const h = c.header;
    return (m) => m.headers[h];
  }
  return evaluator(c);
}

interface Waiter {
  resolve(reply: Message): void;
  reject(err: unknown): void;
}

/**
 * Return address / correlation: the message waits, holding its in-flight slot (so its
 * request-reply source, an http or amqp RPC caller, is still waiting too), until a message
 * with the same correlation key arrives on another endpoint, and goes on with that
 * message's body. The step owns the table of waiters, so routes need no maps of pending
 * promises: it is bounded by the route's in-flight bound, and every entry leaves it on a
 * reply, a timeout or a stop.
 */
export const awaitReplyStep: StepKind<AwaitReplyArgs> = {
  name: 'awaitReply',
  description: 'Return address / correlation: wait (up to timeoutMs) for the message correlated with this one to arrive on another endpoint, and go on with its body; late replies are counted (and discarded or sent to lateReplies).',
  configSchema: {
    oneOf: [
      { type: 'string', minLength: 1, description: 'endpoint the reply arrives on (correlated by correlation id, 30 s timeout)' },
      {
        type: 'object',
        additionalProperties: false,
        required: ['uri'],
        properties: {
          uri: { type: 'string', minLength: 1, description: 'endpoint the reply arrives on' },
          correlate: { ...correlationSchema, description: 'the waiting message\'s key: a JSONata expression, { fn }, or { header } (default: the correlation id)' },
          replyCorrelate: { ...correlationSchema, description: 'the arriving message\'s key (default: read like correlate)' },
          timeoutMs: { type: 'number', exclusiveMinimum: 0, default: 30000, description: 'how long to wait; then BUSBAR_ERR_TIMEOUT' },
          send: { type: 'string', minLength: 1, description: 'send the message here (one-way) once its wait is registered' },
          lateReplies: { type: 'string', minLength: 1, description: 'endpoint for replies nobody waits for (default: counted and discarded)' },
        },
      },
    ],
  },
  fromConfig(value, ctx) {
    if (typeof value === 'string') return { uri: value };
    const v = value as { uri: string; correlate?: unknown; replyCorrelate?: unknown; timeoutMs?: number; send?: string; lateReplies?: string };
    return {
      uri: v.uri,
      correlate: correlationFromConfig(v.correlate, ctx, `${ctx.path}/correlate`),
      replyCorrelate: correlationFromConfig(v.replyCorrelate, ctx, `${ctx.path}/replyCorrelate`),
      timeoutMs: v.timeoutMs,
      send: v.send,
      lateReplies: v.lateReplies,
    };
  },
  compile(args, next, ctx) {
    const step = `${ctx.path} (awaitReply)`;
    const timeoutMs = args.timeoutMs ?? 30_000;
    if (!(timeoutMs > 0)) throw new BusbarError('INVALID_ROUTE', `awaitReply: timeoutMs must be > 0, got ${timeoutMs}`);
    const keyOfRequest = keyReader(args.correlate);
    const keyOfReply = args.replyCorrelate ? keyReader(args.replyCorrelate) : keyOfRequest;
    const send = args.send === undefined ? undefined : ctx.producer(args.send);
    const sendLate = args.lateReplies === undefined ? undefined : ctx.producer(args.lateReplies);
    const waiting = new Map<string, Waiter>();
    const counters = ctx.counters();
    counters.waiting = 0;
    counters.matched = 0;
    counters.timedOut = 0;
    counters.lateReplies = 0;
    /** The waiter for `key`, no longer waiting (nor timed): what a reply, a timeout and a failed send each take. */
    const take = (key: string): Waiter | undefined => {
      const w = waiting.get(key);
      if (w === undefined) return undefined;
      waiting.delete(key);
      limits.delete(key);
      counters.waiting = waiting.size;
      return w;
    };
    // every wait has the same time limit: one timer over the waiting keys (see Deadlines), not one per message
    const limits = new Deadlines<string>(ctx.clock, timeoutMs, {
      fire: (key) => {
        const w = take(key);
        if (w === undefined) return;
        counters.timedOut!++;
        w.reject(new BusbarError('TIMEOUT', `route "${ctx.routeId}", step ${step}: no reply correlated by ${JSON.stringify(key)} arrived on ${args.uri} within ${timeoutMs} ms`, { details: { routeId: ctx.routeId, step, key, uri: args.uri, timeoutMs } }));
      },
    });

    ctx.listen(args.uri, async (reply) => {
      let key: string;
      try {
        key = keyOf(await keyOfReply(reply), 'reply correlation', ctx.routeId, step);
      } catch (err) {
        // a message on the reply channel without a key answers nobody: a late reply, not a crash
        counters.lateReplies!++;
        ctx.logger.debug({ err, messageId: reply.id }, 'awaitReply: a message without a correlation key arrived; treated as a late reply');
        if (sendLate) await sendLate(withHeaders(reply, { [AWAIT_REPLY_HEADERS.late]: true, [AWAIT_REPLY_HEADERS.from]: args.uri }));
        return;
      }
      const w = take(key);
      if (w) {
        counters.matched!++;
        w.resolve(reply);
        return;
      }
      counters.lateReplies!++;
      ctx.logger.debug({ messageId: reply.id, key }, sendLate ? 'awaitReply: late reply sent to lateReplies' : 'awaitReply: late reply discarded');
      if (sendLate) await sendLate(withHeaders(reply, { [AWAIT_REPLY_HEADERS.late]: true, [AWAIT_REPLY_HEADERS.from]: args.uri, [AWAIT_REPLY_HEADERS.key]: key }));
    });

    ctx.onStop(() => {
      // after the drain: anything still waiting has timed out in the engine's eyes already
      limits.clear();
      waiting.clear();
      counters.waiting = 0;
    });

    return (msg) =>
      then(keyOfRequest(msg), (k) => {
        const key = keyOf(k, 'correlation', ctx.routeId, step);
        if (waiting.has(key)) {
          throw new BusbarError('CORRELATION_KEY', `route "${ctx.routeId}", step ${step}: a message with correlation key ${JSON.stringify(key)} is already waiting for its reply`, { details: { routeId: ctx.routeId, step, key } });
        }
        const replied = new Promise<Message>((resolve, reject) => {
          waiting.set(key, { resolve, reject });
          limits.touch(key);
          counters.waiting = waiting.size;
        });
        const sent = send
          ? send(msg).then(
              () => replied,
              (err: unknown) => {
                // nothing will answer a request that was not sent: give its slot back now
                take(key);
                replied.catch(() => undefined);
                throw err;
              },
            )
          : replied;
        return sent.then((reply) => {
          // the answer's body goes on with the waiting message's context; the reply's own
          // transport headers (how it arrived) stay behind
          const headers: Record<string, HeaderValue> = { [AWAIT_REPLY_HEADERS.from]: args.uri, [AWAIT_REPLY_HEADERS.key]: key };
          for (const [h, v] of Object.entries(reply.headers)) if (!isTransportHeader(h) && !(h in msg.headers)) headers[h] = v;
          return next(withHeaders(withBody(msg, reply.body), headers));
        });
      });
  },
};

export const awaitReplySteps = [awaitReplyStep];
