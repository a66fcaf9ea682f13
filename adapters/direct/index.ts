import type { FlatOptionsSchema } from '../../lib/schema.js';
import type { Adapter, ConsumerContext } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';
import { isPromise, type MaybePromise } from '../../lib/step.js';

/** `direct:` takes no options. */
export type DirectOptions = {};
export const directOptions = { type: 'object', properties: {}, additionalProperties: false } as const satisfies FlatOptionsSchema<DirectOptions>;

/**
 * Per channel name, the consuming route's context while one is started. Slots are made by
 * consumers only (one per consumed name, kept across stops and redeploys); a producer keeps
 * the slot once it found it, so a send looks nothing up, and a name nobody consumes (a
 * computed URI) leaves nothing behind.
 */
interface Slot {
  ctx: ConsumerContext | undefined;
  /** The consuming route's processNow while one is started (kept apart: a send reads it alone). */
  run: ConsumerContext['processNow'] | undefined;
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
    let slot = table.get(endpoint.path);
    if (slot === undefined) table.set(endpoint.path, (slot = { ctx: undefined, run: undefined }));
    const mine = slot;
    return {
      async start() {
        const other = mine.ctx;
        if (other && other !== ctx) {
          throw new BusbarError('INVALID_ROUTE', `direct:${endpoint.path} already has a consumer (route "${other.routeId}"); use queue: or topic: for several`, {
            details: { uri: endpoint.uri, routeId: ctx.routeId },
          });
        }
        mine.ctx = ctx;
        mine.run = ctx.processNow;
      },
      async stop() {
        if (mine.ctx === ctx) mine.ctx = mine.run = undefined;
      },
    };
  },
  createProducer(endpoint, ctx) {
    return new DirectProducer(endpoint.path, endpoint.uri, ctx.state<Table>('consumers', () => new Map()));
  },
};

/**
 * The sending side of `direct:name`. A class, not an object of closures: its `send` is one
 * function for every direct endpoint, and what a send reads is this object alone.
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
    const run = (this.#slot ??= this.#table.get(this.#name))?.run;
    if (!run) {
      return Promise.reject(new BusbarError('NO_CONSUMER', `no route consumes from direct:${this.#name}`, { details: { uri: this.#uri } }));
    }
    // a consuming route that finished at once answers at once: the sender goes on in the same turn
    return run(msg);
  }

  // the consuming route's result is the answer, whichever step asks
  request(msg: Message): Promise<Message> {
    const r = this.send(msg);
    return isPromise(r) ? r : Promise.resolve(r);
  }
}

export default directAdapter;
