import type { FlatOptionsSchema } from '../../lib/schema.js';
import { shouldAck, type Adapter } from '../../lib/adapter.js';
import type { TimerHandle } from '../../lib/clock.js';
import { createMessage } from '../../lib/message.js';

export type TimerOptions = {
  period: number;
  delay: number;
  repeatCount: number;
};
export const timerOptions = {
  type: 'object',
  properties: {
    period: { type: 'integer', minimum: 1, default: 1000, description: 'Milliseconds between ticks.' },
    delay: { type: 'integer', minimum: 0, default: 0, description: 'Milliseconds before the first tick.' },
    repeatCount: { type: 'integer', minimum: 0, default: 0, description: 'Stop after this many ticks (0: never).' },
  },
  additionalProperties: false,
} as const satisfies FlatOptionsSchema<TimerOptions>;

/** Body of a timer tick. */
export interface TimerTick {
  timer: string;
  count: number;
  firedAt: string;
}

/**
 * `timer:name`: a source that emits a tick every `period` ms. A tick waits for a free slot
 * in the route (never piles up), and the next tick is scheduled after it was handed over.
 */
export const timerAdapter: Adapter<TimerOptions> = {
  scheme: 'timer',
  description: 'Source emitting `{ timer, count, firedAt }` every `period` ms, `repeatCount` times (0: forever).',
  optionsSchema: timerOptions,
  createConsumer(endpoint, ctx) {
    const { period, delay, repeatCount } = endpoint.options;
    let handle: TimerHandle | undefined;
    let count = 0;
    let running = false;
    const tick = async (): Promise<void> => {
      handle = undefined;
      if (!running) return;
      count++;
      const body: TimerTick = { timer: endpoint.path, count, firedAt: new Date(ctx.clock.now()).toISOString() };
      const msg = createMessage(body, { headers: { 'busbar.timer.name': endpoint.path, 'busbar.timer.count': count } });
      await ctx.whenAvailable();
      // stopped while waiting for a slot: a tick that has not entered the route is not sent (the drain already ran)
      if (!running) return;
      ctx.process(msg).catch((err: unknown) => {
        if (!shouldAck(err)) ctx.logger.error({ err, messageId: msg.id }, 'timer tick failed');
      });
      if (repeatCount > 0 && count >= repeatCount) {
        ctx.setStatus('ended');
        return;
      }
      if (running) handle = ctx.clock.setTimeout(() => void tick(), period);
    };
    return {
      async start() {
        running = true;
        count = 0;
        handle = ctx.clock.setTimeout(() => void tick(), delay);
        ctx.setStatus('connected');
      },
      async stop() {
        running = false;
        if (handle) ctx.clock.clearTimeout(handle);
        handle = undefined;
      },
    };
  },
};

export default timerAdapter;
