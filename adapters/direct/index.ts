import type { FlatOptionsSchema } from '../../lib/schema.js';
import type { Adapter, ConsumerContext, Processor } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';
import { isPromise, type MaybePromise } from '../../lib/step.js';

/** `direct:` takes no options. */
export type DirectOptions = {};
export const directOptions = { type: 'object', properties: {}, additionalProperties: false } as const satisfies FlatOptionsSchema<DirectOptions>;

/**
 * Per channel name, the consuming route's context while one is started. Slots are made by
 * consumers only (one per consumed name, kept across stops and redeploys), so a name nobody
 * consumes (a computed URI) leaves nothing behind. A slot that exists when a producer of its
 * name is made is that producer: a send reads the route's `processNow` from the object the
 * engine's producer entry points at, no object between (with many routes, every object a
 * message reads is a cache miss).
 */
class Slot {
  ctx: ConsumerContext | undefined = undefined;
  run: Processor | undefined = undefined;
  readonly #name: string;
  readonly #uri: string;
  constructor(name: string, uri: string) {
    this.#name = name;
    this.#uri = uri;
  }

  send(msg: Message): MaybePromise<Message> {
    const run = this.run;
    if (run === undefined) return noConsumer(this.#name, this.#uri);
    // a consuming route that finished at once answers at once: the sender goes on in the same turn
    return run.processNow(msg);
  }

  request(msg: Message): Promise<Message> {
    return answer(this.send(msg));
  }
}
type Table = Map<string, Slot>;

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
    let mine = table.get(endpoint.path);
    if (mine === undefined) table.set(endpoint.path, (mine = new Slot(endpoint.path, endpoint.uri)));
    return {
      async start() {
        const other = mine.ctx;
        if (other && other !== ctx) {
          throw new BusbarError('INVALID_ROUTE', `direct:${endpoint.path} already has a consumer (route "${other.routeId}"); use queue: or topic: for several`, {
            details: { uri: endpoint.uri, routeId: ctx.routeId },
          });
        }
        mine.ctx = ctx;
        mine.run = ctx.processor;
      },
      async stop() {
        if (mine.ctx === ctx) mine.ctx = mine.run = undefined;
      },
    };
  },
  createProducer(endpoint, ctx) {
    const table = ctx.state<Table>('consumers', () => new Map());
    return table.get(endpoint.path) ?? new DirectProducer(endpoint.path, endpoint.uri, table);
  },
};

/**
 * The sending side of a `direct:name` nobody consumed yet when it was made: keeps the slot
 * once a consumer made it, so a send looks nothing up from then on.
 */
class DirectProducer {
  #slot: Slot | undefined;
  readonly #name: string;
  readonly #uri: string;
  readonly #table: Table;
  constructor(name: string, uri: string, table: Table) {
    this.#name = name;
    this.#uri = uri;
    this.#table = table;
  }

  send(msg: Message): MaybePromise<Message> {
    const slot = (this.#slot ??= this.#table.get(this.#name));
    return slot === undefined ? noConsumer(this.#name, this.#uri) : slot.send(msg);
  }

  request(msg: Message): Promise<Message> {
    return answer(this.send(msg));
  }
}

function noConsumer(name: string, uri: string): Promise<never> {
  return Promise.reject(new BusbarError('NO_CONSUMER', `no route consumes from direct:${name}`, { details: { uri } }));
}

/** The consuming route's result is the answer, whichever step asks. */
function answer(r: MaybePromise<Message>): Promise<Message> {
  return isPromise(r) ? r : Promise.resolve(r);
}

export default directAdapter;
