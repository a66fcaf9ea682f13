import { Type, type Static } from '@sinclair/typebox';
import { BusbarError } from '../../lib/errors.js';
import { createAjv, toProblems, type Problem } from '../../lib/schema.js';

const argValue = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);
const argsTable = Type.Record(Type.String(), argValue, { description: 'Extra `x-` arguments passed to the broker as they are.' });

export const exchangeSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, description: 'Exchange name.' }),
    type: Type.Union([Type.Literal('direct'), Type.Literal('topic'), Type.Literal('fanout'), Type.Literal('headers')], { default: 'direct', description: 'Routing algorithm: direct, topic (wildcards `*` and `#`), fanout or headers.' }),
    durable: Type.Boolean({ default: true, description: 'Survives a broker restart.' }),
    autoDelete: Type.Boolean({ default: false, description: 'Deleted when its last binding is removed.' }),
    internal: Type.Boolean({ default: false, description: 'Only other exchanges may publish to it.' }),
    alternateExchange: Type.Optional(Type.String({ minLength: 1, description: 'Where messages go that no binding matches.' })),
    arguments: Type.Optional(argsTable),
  },
  { additionalProperties: false },
);

export const queueSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, description: 'Queue name.' }),
    type: Type.Union([Type.Literal('classic'), Type.Literal('quorum'), Type.Literal('stream')], { default: 'classic', description: 'classic, quorum (replicated, counts deliveries) or stream (append-only log).' }),
    durable: Type.Boolean({ default: true, description: 'Survives a broker restart (quorum and stream queues always are).' }),
    exclusive: Type.Boolean({ default: false, description: 'Used by one connection only and deleted when it closes (classic only).' }),
    autoDelete: Type.Boolean({ default: false, description: 'Deleted when its last consumer goes (classic only).' }),
    deadLetterExchange: Type.Optional(Type.String({ description: 'Exchange that receives rejected and expired messages (`x-dead-letter-exchange`; "" is the default exchange).' })),
    deadLetterRoutingKey: Type.Optional(Type.String({ description: 'Routing key for dead-lettered messages (`x-dead-letter-routing-key`).' })),
    messageTtlMs: Type.Optional(Type.Integer({ minimum: 0, description: 'Messages expire after this many ms (`x-message-ttl`).' })),
    expiresMs: Type.Optional(Type.Integer({ minimum: 1, description: 'The queue is deleted after being unused this many ms (`x-expires`).' })),
    maxLength: Type.Optional(Type.Integer({ minimum: 0, description: 'Maximum number of ready messages (`x-max-length`).' })),
    maxLengthBytes: Type.Optional(Type.Integer({ minimum: 0, description: 'Maximum total body bytes of ready messages (`x-max-length-bytes`).' })),
    overflow: Type.Optional(Type.Union([Type.Literal('drop-head'), Type.Literal('reject-publish'), Type.Literal('reject-publish-dlx')], { description: 'What happens when a limit is reached (`x-overflow`).' })),
    deliveryLimit: Type.Optional(Type.Integer({ minimum: 1, description: 'Quorum queues: dead-letter a message after this many redeliveries (`x-delivery-limit`).' })),
    maxAge: Type.Optional(Type.String({ pattern: '^[0-9]+(Y|M|D|h|m|s)$', description: 'Stream queues: retention, e.g. `7D`, `12h` (`x-max-age`).' })),
    maxPriority: Type.Optional(Type.Integer({ minimum: 1, maximum: 255, description: 'Classic queues: enable priorities up to this value (`x-max-priority`).' })),
    singleActiveConsumer: Type.Optional(Type.Boolean({ description: 'Only one consumer receives at a time; the others stand by (`x-single-active-consumer`).' })),
    arguments: Type.Optional(argsTable),
  },
  { additionalProperties: false },
);

export const bindingSchema = Type.Object(
  {
    exchange: Type.String({ minLength: 1, description: 'Source exchange.' }),
    queue: Type.Optional(Type.String({ minLength: 1, description: 'Destination queue (give `queue` or `toExchange`).' })),
    toExchange: Type.Optional(Type.String({ minLength: 1, description: 'Destination exchange, for exchange-to-exchange bindings.' })),
    routingKey: Type.String({ default: '', description: 'Binding key; for topic exchanges `*` matches one word and `#` any number.' }),
    arguments: Type.Optional(argsTable),
  },
  { additionalProperties: false },
);

export const topologySchema = Type.Object(
  {
    exchanges: Type.Array(exchangeSchema, { default: [], description: 'Exchanges asserted at start and after every reconnection.' }),
    queues: Type.Array(queueSchema, { default: [], description: 'Queues asserted at start and after every reconnection.' }),
    bindings: Type.Array(bindingSchema, { default: [], description: 'Bindings asserted after the exchanges and queues.' }),
  },
  { additionalProperties: false },
);

export const reconnectSchema = Type.Object(
  {
    initialDelayMs: Type.Integer({ minimum: 1, default: 100, description: 'First delay before reconnecting.' }),
    maxDelayMs: Type.Integer({ minimum: 1, default: 5000, description: 'Upper bound of the delay between attempts.' }),
    factor: Type.Number({ minimum: 1, default: 2, description: 'Each failed attempt multiplies the delay by this.' }),
    jitter: Type.Number({ minimum: 0, maximum: 1, default: 0.2, description: 'Random spread of each delay (0.2 = +-10%), so many clients do not reconnect in step.' }),
    startAttempts: Type.Integer({ minimum: 1, default: 3, description: 'Connection attempts at start before the route fails to start (later losses retry forever).' }),
  },
  { additionalProperties: false },
);

export const amqpConfigSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, default: 'amqp://guest:guest@127.0.0.1:5672', description: 'Broker URL `amqp://user:password@host:port/vhost` (credentials are never logged).' }),
    heartbeatSeconds: Type.Integer({ minimum: 0, default: 10, description: 'AMQP heartbeat; a dead peer is noticed after about twice this (0 disables).' }),
    connectTimeoutMs: Type.Integer({ minimum: 1, default: 5000, description: 'Time limit of one connection attempt.' }),
    reconnect: Type.Optional(reconnectSchema),
    topology: Type.Optional(topologySchema),
  },
  { additionalProperties: false },
);

export type ExchangeDecl = Static<typeof exchangeSchema>;
export type QueueDecl = Static<typeof queueSchema>;
export type BindingDecl = Static<typeof bindingSchema>;
export type Topology = Static<typeof topologySchema>;
export type ReconnectConfig = Static<typeof reconnectSchema>;
/** The adapter configuration as written (defaults optional). */
export type AmqpConfig = Partial<Omit<Static<typeof amqpConfigSchema>, 'reconnect' | 'topology'>> & {
  reconnect?: Partial<ReconnectConfig>;
  topology?: { exchanges?: Array<Partial<ExchangeDecl> & { name: string }>; queues?: Array<Partial<QueueDecl> & { name: string }>; bindings?: Array<Partial<BindingDecl> & { exchange: string }> };
};
/** The configuration after validation: every default filled in. */
export interface ResolvedAmqpConfig {
  url: string;
  heartbeatSeconds: number;
  connectTimeoutMs: number;
  reconnect: ReconnectConfig;
  topology: Topology;
}

const ajv = createAjv();
const validate = ajv.compile(amqpConfigSchema);

/**
 * Validate an adapter configuration and fill in its defaults. Every problem is reported
 * at once with its path (`/topology/queues/1/type`), plus the cross-field rules JSON
 * Schema cannot say (a quorum queue cannot be exclusive, a binding needs one destination).
 */
export function resolveConfig(config: unknown = {}): ResolvedAmqpConfig {
  const copy = structuredClone(config ?? {}) as Record<string, unknown>;
  if (copy && typeof copy === 'object') {
    copy.reconnect ??= {};
    copy.topology ??= {};
  }
  const problems: Problem[] = [];
  if (!validate(copy)) problems.push(...toProblems(validate.errors, amqpConfigSchema, '', 'setting'));
  else {
    const c = copy as unknown as ResolvedAmqpConfig;
    try {
      const u = new URL(c.url);
      if (u.protocol !== 'amqp:' && u.protocol !== 'amqps:') problems.push({ path: '/url', message: `must be an amqp:// or amqps:// URL, got protocol "${u.protocol}"` });
    } catch {
      problems.push({ path: '/url', message: 'is not a valid URL (expected amqp://user:password@host:port/vhost)' });
    }
    const names = (list: Array<{ name: string }>, kind: string, base: string): Set<string> => {
      const seen = new Set<string>();
      list.forEach((d, i) => {
        if (seen.has(d.name)) problems.push({ path: `${base}/${i}/name`, message: `${kind} "${d.name}" is declared twice` });
        seen.add(d.name);
      });
      return seen;
    };
    const exchanges = names(c.topology.exchanges, 'exchange', '/topology/exchanges');
    names(c.topology.queues, 'queue', '/topology/queues');
    c.topology.queues.forEach((q, i) => {
      const at = `/topology/queues/${i}`;
      if (q.type !== 'classic') {
        if (!q.durable) problems.push({ path: `${at}/durable`, message: `a ${q.type} queue is always durable` });
        if (q.exclusive) problems.push({ path: `${at}/exclusive`, message: `a ${q.type} queue cannot be exclusive` });
        if (q.autoDelete) problems.push({ path: `${at}/autoDelete`, message: `a ${q.type} queue cannot be auto-delete` });
        if (q.maxPriority !== undefined) problems.push({ path: `${at}/maxPriority`, message: 'priorities need a classic queue' });
      }
      if (q.deliveryLimit !== undefined && q.type !== 'quorum') problems.push({ path: `${at}/deliveryLimit`, message: 'deliveryLimit needs a quorum queue' });
      if (q.maxAge !== undefined && q.type !== 'stream') problems.push({ path: `${at}/maxAge`, message: 'maxAge needs a stream queue' });
    });
    c.topology.bindings.forEach((b, i) => {
      const at = `/topology/bindings/${i}`;
      if ((b.queue === undefined) === (b.toExchange === undefined)) problems.push({ path: at, message: 'a binding needs exactly one destination: "queue" or "toExchange"' });
      if (!exchanges.has(b.exchange) && b.exchange !== '' && !b.exchange.startsWith('amq.')) {
        problems.push({ path: `${at}/exchange`, message: `exchange "${b.exchange}" is not declared in topology.exchanges` });
      }
    });
  }
  if (problems.length) {
    const lines = problems.map((p) => `  ${p.path || '/'}: ${p.message}${p.suggestion ? ` (${p.suggestion})` : ''}`);
    throw new BusbarError('AMQP_CONFIG', `invalid amqp adapter configuration: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${lines.join('\n')}`, { details: { problems } });
  }
  return copy as unknown as ResolvedAmqpConfig;
}

/** The URL without its password, for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid url>';
  }
}
