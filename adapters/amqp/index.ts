import { Type, type Static } from '@sinclair/typebox';
import type { Adapter, AdapterContext, Endpoint } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import { headerPolicy } from '../../lib/header-policy.js';
import { AmqpClient } from './client.js';
import { amqpConfigSchema, resolveConfig, type AmqpConfig, type ResolvedAmqpConfig } from './config.js';
import { AmqpConsumer, type StreamStart } from './consumer.js';
import { AmqpProducer, type Target } from './producer.js';
import { declaredQueue } from './topology.js';

export const amqpOptions = Type.Object(
  {
    prefetch: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Consumer: unacknowledged messages the broker may hand over at once. Default: the route\'s in-flight bound (`maxInflight`).' })),
    bindingKey: Type.String({ default: '#', description: 'Consumer of `exchange:NAME`: binding keys of its queue, comma-separated (topic wildcards `*` one word, `#` any words).' }),
    queue: Type.Optional(Type.String({ minLength: 1, description: 'Consumer of `exchange:NAME`: consume from this named durable queue (shared by competing consumers) instead of a private auto-deleted one.' })),
    routingKey: Type.Optional(Type.String({ description: 'Producer: routing key, a template (`orders.{header.country}`). Default: the queue name for `queue:NAME`, "" for `exchange:NAME`.' })),
    persistent: Type.Boolean({ default: true, description: 'Producer: persistent messages (delivery mode 2) that survive a broker restart in durable queues.' }),
    mandatory: Type.Optional(Type.Boolean({ description: 'Producer: a message no queue receives comes back and the send fails with AMQP_UNROUTABLE. Default: true for `queue:`, false for `exchange:` (pub/sub with no subscriber is normal).' })),
    confirmWindow: Type.Integer({ minimum: 1, maximum: 100000, default: 1000, description: 'Producer: publishes awaiting their broker confirm at once (pipelining); further sends wait.' }),
    publishTimeoutMs: Type.Integer({ minimum: 1, default: 60000, description: 'Producer: a send fails with TIMEOUT if not confirmed within this (includes waiting for a reconnection).' }),
    replyTimeoutMs: Type.Integer({ minimum: 1, default: 30000, description: 'Request-reply (steps that need an answer: `request`, `enrich`, `scatterGather`, `engine.request`, stubs): default time to wait for the reply over direct reply-to, when the step sets none. Requests expire on the broker after the same time.' }),
    maxDeliveries: Type.Integer({ minimum: 1, default: 5, description: 'Consumer: a message delivered more times than this is a poison message: it is not processed again but dead-lettered.' }),
    deadLetter: Type.Optional(Type.String({ minLength: 1, description: 'Consumer: endpoint URI for poison and undecodable messages (with `busbar.error.*` headers). Without it they go to the route\'s error-policy dead letter; with neither, they are rejected to the queue\'s dead-letter exchange and logged.' })),
    bodyType: Type.Union([Type.Literal('auto'), Type.Literal('string'), Type.Literal('buffer'), Type.Literal('json'), Type.Literal('value')], { default: 'auto', description: 'Consumer and replies: body as a string for textual content types and a Buffer otherwise (`auto`), always `string`, always `buffer`, parsed `json`, or `value`: as busbar sent it (parsed for application/json, a string for other text, a Buffer otherwise; what bound channels use).' }),
    declare: Type.Boolean({ default: true, description: 'Create the `queue:NAME` queue (durable, classic) if the broker does not have it and the adapter topology does not declare it.' }),
    streamOffset: Type.Optional(
      Type.String({
        pattern: '^(first|last|next|[0-9]+|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2}))$',
        description: 'Consumer of a stream queue: where to start reading: `first`, `last`, `next`, an offset, or an ISO time (`2026-11-24T08:00:00Z`). After a reconnection it resumes after the last offset the route finished.',
      }),
    ),
    headers: Type.Optional(Type.String({ minLength: 1, description: 'Header allow-list (comma-separated, a trailing `*` for a prefix): transport headers of other transports (`http.*`, `soap.*`, `busbar.file.*`...) and credentials (`authorization`, `cookie`, `proxy-authorization`, `set-cookie`) are not published (producer) nor taken off the wire (consumer) unless listed; credentials only when named exactly. See docs/exchange-model.md.' })),
    drainTimeoutMs: Type.Integer({ minimum: 0, default: 30000, description: 'Consumer: on stop, how long to wait for messages already in the route before closing the channel (unacked ones are redelivered).' }),
  },
  { additionalProperties: false },
);
export type AmqpOptions = Static<typeof amqpOptions>;

export { amqpConfigSchema, resolveConfig, redactUrl, type AmqpConfig, type ResolvedAmqpConfig } from './config.js';
export { planTopology, formatPlan, type TopologyPlan, type PlanItem, type PlanAction } from './topology.js';
export { WIRE as AMQP_WIRE_HEADERS, AMQP_HEADERS } from './mapping.js';

function target(endpoint: Endpoint<AmqpOptions>): Target {
  const m = /^(queue|exchange):(.*)$/.exec(endpoint.path);
  if (!m || (m[1] === 'queue' && !m[2])) {
    throw new BusbarError('INVALID_URI', `endpoint "${endpoint.uri}": an amqp endpoint is amqp:queue:<name> or amqp:exchange:<name> (the default exchange is amqp:exchange:)`, { details: { uri: endpoint.uri, path: endpoint.path } });
  }
  return { kind: m[1] as Target['kind'], name: m[2]! };
}

/** `streamOffset` as the `x-stream-offset` consumer argument takes it. */
function streamStart(uri: string, v: string): StreamStart {
  if (v === 'first' || v === 'last' || v === 'next') return v;
  if (/^[0-9]+$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new BusbarError('INVALID_OPTION', `endpoint "${uri}": streamOffset "${v}" is not a valid time`, { details: { uri, option: 'streamOffset' } });
  return new Date(t);
}

function client(ctx: AdapterContext, config: ResolvedAmqpConfig, role: 'consumer' | 'producer'): AmqpClient {
  return ctx.state(`client:${role}`, () => new AmqpClient(config, role, ctx.logger.child({ adapter: 'amqp', role }), ctx.clock));
}

/** The amqp adapter; `config` is what it was created with, so `busbar topology plan` can plan it from a routes file. */
export interface AmqpAdapter extends Adapter<AmqpOptions> {
  readonly config: AmqpConfig;
}

/**
 * `amqp:` adapter for RabbitMQ with the given connection and topology. The topology is
 * asserted when the first endpoint starts and after every reconnection; a declaration
 * that conflicts with the broker fails the start with AMQP_TOPOLOGY_CONFLICT. The config
 * is validated now (AMQP_CONFIG); nothing connects until a route or producer starts.
 */
export function createAmqpAdapter(config: AmqpConfig = {}): AmqpAdapter {
  const c = resolveConfig(config);
  return {
    scheme: 'amqp',
    config,
    description: 'RabbitMQ (AMQP 0-9-1): queues and exchanges, publisher confirms, ack after the route, poison-message handling, reconnection, request-reply over direct reply-to.',
    optionsSchema: amqpOptions,
    createConsumer(endpoint, ctx) {
      const t = target(endpoint);
      const o = endpoint.options;
      if (t.kind === 'exchange' && t.name === '') {
        throw new BusbarError('INVALID_URI', `endpoint "${endpoint.uri}": cannot consume from the default exchange; consume amqp:queue:<name>`, { details: { uri: endpoint.uri } });
      }
      const declared = t.kind === 'queue' ? declaredQueue(c.topology, t.name) : undefined;
      return new AmqpConsumer(client(ctx, c, 'consumer'), ctx, {
        source: t,
        bindingKeys: o.bindingKey.split(',').map((k) => k.trim()),
        queue: o.queue,
        prefetch: Math.min(65535, o.prefetch ?? ctx.maxInflight),
        maxDeliveries: o.maxDeliveries,
        deadLetter: o.deadLetter,
        bodyType: o.bodyType,
        declareQueue: o.declare && t.kind === 'queue' && !declared,
        drainTimeoutMs: o.drainTimeoutMs,
        headers: headerPolicy(o.headers),
        stream: o.streamOffset !== undefined || declared?.type === 'stream' ? { start: streamStart(endpoint.uri, o.streamOffset ?? 'next') } : undefined,
      });
    },
    createProducer(endpoint, ctx) {
      const t = target(endpoint);
      const o = endpoint.options;
      return new AmqpProducer(client(ctx, c, 'producer'), ctx, {
        target: t,
        routingKey: o.routingKey,
        persistent: o.persistent,
        mandatory: o.mandatory ?? t.kind === 'queue',
        confirmWindow: o.confirmWindow,
        publishTimeoutMs: o.publishTimeoutMs,
        replyTimeoutMs: o.replyTimeoutMs,
        bodyType: o.bodyType,
        headers: headerPolicy(o.headers),
        declareQueue: o.declare && t.kind === 'queue' && !declaredQueue(c.topology, t.name),
        managedExchange: t.name === '' || t.name.startsWith('amq.') || c.topology.exchanges.some((e) => e.name === t.name),
      });
    },
  };
}

/** The adapter with the default configuration: RabbitMQ at amqp://guest:guest@127.0.0.1:5672, no topology. */
export const amqpAdapter: AmqpAdapter = createAmqpAdapter();

export default amqpAdapter;
