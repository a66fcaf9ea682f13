import type { FlatOptionsSchema } from '../../lib/schema.js';
import type { Adapter, ConsumerContext } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';

/** `direct:` takes no options. */
export type DirectOptions = {};
export const directOptions = { type: 'object', properties: {}, additionalProperties: false } as const satisfies FlatOptionsSchema<DirectOptions>;

type Table = Map<string, ConsumerContext>;

/**
 * `direct:name`: synchronous hand-off to the one route consuming `direct:name`, in the
 * caller's flow. The send settles when that route finished and returns its reply.
 */
export const directAdapter: Adapter<DirectOptions> = {
  scheme: 'direct',
  description: 'Synchronous in-process hand-off to exactly one consuming route; the sender gets the route\'s reply.',
  optionsSchema: directOptions,
  createConsumer(endpoint, ctx) {
    const table = ctx.state<Table>('consumers', () => new Map());
    return {
      async start() {
        const other = table.get(endpoint.path);
        if (other && other !== ctx) {
          throw new BusbarError('INVALID_ROUTE', `direct:${endpoint.path} already has a consumer (route "${other.routeId}"); use queue: or topic: for several`, {
            details: { uri: endpoint.uri, routeId: ctx.routeId },
          });
        }
        table.set(endpoint.path, ctx);
      },
      async stop() {
        if (table.get(endpoint.path) === ctx) table.delete(endpoint.path);
      },
    };
  },
  createProducer(endpoint, ctx) {
    const table = ctx.state<Table>('consumers', () => new Map());
    return {
      send(msg) {
        const consumer = table.get(endpoint.path);
        if (!consumer) {
          return Promise.reject(new BusbarError('NO_CONSUMER', `no route consumes from direct:${endpoint.path}`, { details: { uri: endpoint.uri } }));
        }
        return consumer.process(msg);
      },
      // the consuming route's result is the answer, whichever step asks
      request(msg) {
        return this.send(msg) as Promise<Message>;
      },
    };
  },
};

export default directAdapter;
