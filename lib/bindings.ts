import { BusbarError } from './errors.js';

/**
 * Channel bindings: the in-memory channel names of routes (`direct:`, `queue:`, `topic:`)
 * carried by a transport instead, chosen by configuration, so the same routes run in one
 * process (no bindings), as a bus (every application's engine binds its channels to the same
 * broker or p2p cluster) or behind a hub (the routes in one `busbar run`, applications as
 * thin clients, see `connect`).
 */
export interface ChannelBindings {
  /** The adapter (scheme) carrying the bound channels: `amqp`, a named instance (`amqp-hub`), `p2p`. */
  transport: string;
  /**
   * Which channels: `kind:name` patterns where `*` matches any run of characters
   * (`direct:*`, `queue:orders`, `topic:orders.*`). Default: every direct:, queue: and topic: channel.
   */
  include?: string[];
  /** First part of the names on the transport (queues `<prefix>.direct.<name>`, topics `<prefix>.<name>`); default `busbar`. */
  prefix?: string;
}

export const channelBindingsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['transport'],
  properties: {
    transport: { type: 'string', pattern: '^[a-z][a-z0-9+.-]*$', description: 'adapter scheme carrying the bound channels (amqp, a named instance, p2p)' },
    include: { type: 'array', items: { type: 'string', pattern: '^(direct|queue|topic):.+$' }, description: 'kind:name patterns (* = any characters); default all' },
    prefix: { type: 'string', pattern: '^[A-Za-z0-9_-]+$', description: 'first part of transport-side names (default busbar)' },
  },
} as const;

const KINDS = new Set(['direct', 'queue', 'topic']);

function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** The rewriting of channel URIs a binding implies; `transportType` is the adapter's kind (`amqp`, `p2p`...). */
export class ChannelBinder {
  readonly transport: string;
  readonly #type: string;
  readonly #prefix: string;
  readonly #include: RegExp[] | undefined;

  constructor(bindings: ChannelBindings, transportType: string) {
    if (!bindings || typeof bindings.transport !== 'string' || !/^[a-z][a-z0-9+.-]*$/.test(bindings.transport)) {
      throw new BusbarError('INVALID_OPTION', `channel bindings: "transport" must name an adapter scheme (amqp, p2p, a named instance), got ${JSON.stringify(bindings?.transport)}`, { details: { option: 'transport' } });
    }
    if (KINDS.has(bindings.transport)) {
      throw new BusbarError('INVALID_OPTION', `channel bindings: "${bindings.transport}" is an in-memory channel kind, not a transport`, { details: { option: 'transport' } });
    }
    for (const p of bindings.include ?? []) {
      if (!/^(direct|queue|topic):.+$/.test(p)) throw new BusbarError('INVALID_OPTION', `channel bindings: include pattern "${p}" must be direct:<name>, queue:<name> or topic:<name> (* = any characters)`, { details: { option: 'include', pattern: p } });
    }
    this.transport = bindings.transport;
    this.#type = transportType;
    this.#prefix = bindings.prefix ?? 'busbar';
    this.#include = bindings.include?.map(glob);
  }

  /**
   * The transport URI for a channel URI, or undefined when the URI is not a bound channel.
   * Options of the in-memory channel (queue size, direct timeout) apply in memory only and are
   * not carried over. `role` matters for topics: publishers name a topic, subscribers a pattern.
   */
  bind(uri: string, role: 'consumer' | 'producer'): string | undefined {
    const colon = uri.indexOf(':');
    const kind = uri.slice(0, colon);
    if (!KINDS.has(kind)) return undefined;
    const q = uri.indexOf('?');
    const name = uri.slice(colon + 1, q < 0 ? undefined : q);
    if (!name) return undefined;
    const channel = `${kind}:${name}`;
    if (this.#include && !this.#include.some((r) => r.test(channel))) return undefined;
    const t = this.transport;
    if (this.#type !== 'amqp') return `${t}:${channel}`;
    // amqp: point-to-point channels are durable queues; topics go through the broker's
    // predeclared topic exchange amq.topic (`*` one word, `#` any words, as in memory), each
    // subscribing route with its own queue
    if (kind === 'topic') {
      const key = encodeURIComponent(`${this.#prefix}.${name}`);
      return role === 'producer' ? `${t}:exchange:amq.topic?routingKey=${key}&bodyType=value` : `${t}:exchange:amq.topic?bindingKey=${key}&bodyType=value`;
    }
    return `${t}:queue:${this.#prefix}.${kind}.${name}?bodyType=value`;
  }
}
