import { Type } from '@sinclair/typebox';
import { createMessage, shouldAck, type Adapter, type ConsumerContext } from '../../lib/index.js';

/**
 * A real source adapter for tests: `push(body)` hands a message to the route the way a
 * broker consumer would and records when it acked or nacked, in one shared event log.
 */
export class TestSource {
  readonly log: string[] = [];
  ctx: ConsumerContext | undefined;
  failStart: Error | undefined;
  started = 0;
  stopped = 0;

  adapter(): Adapter {
    const self = this;
    return {
      scheme: 'src',
      description: 'test source',
      optionsSchema: Type.Object({}, { additionalProperties: false }),
      createConsumer(_endpoint, ctx) {
        return {
          async start() {
            if (self.failStart) throw self.failStart;
            self.ctx = ctx;
            self.started++;
          },
          async stop() {
            self.stopped++;
          },
        };
      },
    };
  }

  /** Deliver one message; resolves with 'ack' or 'nack' as a consumer would settle it. */
  async push(body: unknown): Promise<'ack' | 'nack'> {
    const msg = createMessage(body);
    try {
      await this.ctx!.process(msg);
      this.log.push(`ack ${String(body)}`);
      return 'ack';
    } catch (err) {
      const outcome = shouldAck(err) ? 'ack' : 'nack';
      this.log.push(`${outcome} ${String(body)}`);
      return outcome;
    }
  }
}
