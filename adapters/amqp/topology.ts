import type { Channel, ChannelModel } from 'amqplib';
import { BusbarError } from '../../lib/errors.js';
import { redactUrl, resolveConfig, type BindingDecl, type ExchangeDecl, type QueueDecl, type Topology } from './config.js';

type Args = Record<string, string | number | boolean>;

/** The exact `x-` arguments a queue declaration sends, so assert and plan compare the same thing. */
export function queueArguments(q: QueueDecl): Args {
  const a: Args = {};
  // classic is the broker's default: sending it would conflict with queues declared without it
  if (q.type !== 'classic') a['x-queue-type'] = q.type;
  if (q.deadLetterExchange !== undefined) a['x-dead-letter-exchange'] = q.deadLetterExchange;
  if (q.deadLetterRoutingKey !== undefined) a['x-dead-letter-routing-key'] = q.deadLetterRoutingKey;
  if (q.messageTtlMs !== undefined) a['x-message-ttl'] = q.messageTtlMs;
  if (q.expiresMs !== undefined) a['x-expires'] = q.expiresMs;
  if (q.maxLength !== undefined) a['x-max-length'] = q.maxLength;
  if (q.maxLengthBytes !== undefined) a['x-max-length-bytes'] = q.maxLengthBytes;
  if (q.overflow !== undefined) a['x-overflow'] = q.overflow;
  if (q.deliveryLimit !== undefined) a['x-delivery-limit'] = q.deliveryLimit;
  if (q.maxAge !== undefined) a['x-max-age'] = q.maxAge;
  if (q.maxPriority !== undefined) a['x-max-priority'] = q.maxPriority;
  if (q.singleActiveConsumer !== undefined) a['x-single-active-consumer'] = q.singleActiveConsumer;
  return { ...a, ...(q.arguments ?? {}) };
}

function queueOptions(q: QueueDecl): { durable: boolean; exclusive: boolean; autoDelete: boolean; arguments: Args } {
  return { durable: q.type === 'classic' ? q.durable : true, exclusive: q.exclusive, autoDelete: q.autoDelete, arguments: queueArguments(q) };
}

function exchangeOptions(e: ExchangeDecl): { durable: boolean; autoDelete: boolean; internal: boolean; arguments: Args } {
  const a: Args = { ...(e.arguments ?? {}) };
  if (e.alternateExchange !== undefined) a['alternate-exchange'] = e.alternateExchange;
  return { durable: e.durable, autoDelete: e.autoDelete, internal: e.internal, arguments: a };
}

/** The AMQP reply code of a channel error (406 PRECONDITION_FAILED, 404 NOT_FOUND...). */
export function replyCode(err: unknown): number | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
}

function brokerText(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  const i = m.indexOf('with message "');
  return i >= 0 ? m.slice(i + 14).replace(/"$/, '') : m;
}

/** A 406 from a declaration, turned into the coded error users match on. */
export function conflictError(kind: 'exchange' | 'queue', name: string, declared: unknown, err: unknown): BusbarError {
  return new BusbarError('AMQP_TOPOLOGY_CONFLICT', `${kind} "${name}" exists on the broker with other properties or arguments than declared (${JSON.stringify(declared)}): ${brokerText(err)}`, {
    cause: err,
    details: { kind, name, declared, broker: brokerText(err) },
  });
}

/** A channel whose errors are expected (passive declares close it with 404/406) and must not be emitted unhandled. */
export async function throwawayChannel(conn: ChannelModel): Promise<Channel> {
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  return ch;
}

export async function closeQuietly(ch: Channel | undefined): Promise<void> {
  if (!ch) return;
  try {
    await ch.close();
  } catch {
    // already closed by the broker: nothing left to release
  }
}

/**
 * Declare every exchange, queue and binding. A declaration that conflicts with what the
 * broker has (406) becomes AMQP_TOPOLOGY_CONFLICT naming the entity; the connection stays
 * usable because only the declaring channel dies.
 */
export async function assertTopology(conn: ChannelModel, topology: Topology): Promise<void> {
  if (!topology.exchanges.length && !topology.queues.length && !topology.bindings.length) return;
  let ch = await throwawayChannel(conn);
  try {
    for (const e of topology.exchanges) {
      const opts = exchangeOptions(e);
      try {
        await ch.assertExchange(e.name, e.type, opts);
      } catch (err) {
        if (replyCode(err) === 406) throw conflictError('exchange', e.name, { type: e.type, ...opts }, err);
        throw err;
      }
    }
    for (const q of topology.queues) {
      const opts = queueOptions(q);
      try {
        await ch.assertQueue(q.name, opts);
      } catch (err) {
        if (replyCode(err) === 406 || replyCode(err) === 405) throw conflictError('queue', q.name, opts, err);
        throw err;
      }
    }
    for (const b of topology.bindings) await bind(ch, b);
  } finally {
    await closeQuietly(ch);
    ch = undefined as unknown as Channel;
  }
}

function bind(ch: Channel, b: BindingDecl): Promise<unknown> {
  return b.queue !== undefined ? ch.bindQueue(b.queue, b.exchange, b.routingKey, b.arguments ?? {}) : ch.bindExchange(b.toExchange!, b.exchange, b.routingKey, b.arguments ?? {});
}

/** Does it exist? A passive check on its own channel (a 404 closes that channel). */
async function exists(conn: ChannelModel, check: (ch: Channel) => Promise<unknown>): Promise<boolean> {
  const ch = await throwawayChannel(conn);
  try {
    await check(ch);
    return true;
  } catch (err) {
    if (replyCode(err) === 404) return false;
    throw err;
  } finally {
    await closeQuietly(ch);
  }
}

export function queueExists(conn: ChannelModel, name: string): Promise<boolean> {
  return exists(conn, (ch) => ch.checkQueue(name));
}

export async function exchangeExists(conn: ChannelModel, name: string): Promise<boolean> {
  // the default exchange always exists and cannot be checked
  return name === '' || exists(conn, (ch) => ch.checkExchange(name));
}

/**
 * A queue an endpoint names but the topology does not: created durable (classic) if
 * missing, left alone if present. One declare does both: it creates a missing queue, is a
 * no-op on an equal one, and fails (406/405, on a throwaway channel) on a queue that exists
 * with other properties or belongs to another connection, which is left as it is.
 */
export async function ensureQueue(conn: ChannelModel, name: string): Promise<void> {
  const ch = await throwawayChannel(conn);
  try {
    await ch.assertQueue(name, { durable: true });
  } catch (err) {
    const code = replyCode(err);
    if (code !== 406 && code !== 405) throw err;
  } finally {
    void closeQuietly(ch);
  }
}

// ---------------------------------------------------------------- plan

export type PlanAction = 'create' | 'unchanged' | 'conflict' | 'bind' | 'error';

export interface PlanItem {
  kind: 'exchange' | 'queue' | 'binding';
  name: string;
  action: PlanAction;
  /** What would be declared, or what the broker said. */
  detail: string;
  /** For conflicts: the coded error a start would fail with. */
  error?: { code: string; message: string };
}

export interface TopologyPlan {
  /** The broker, password removed. */
  url: string;
  /** True when starting with this topology would not fail on a declaration. */
  ok: boolean;
  items: PlanItem[];
  counts: Record<PlanAction, number>;
}

function describeQueue(q: QueueDecl): string {
  const o = queueOptions(q);
  const flags = [q.type, o.durable ? 'durable' : 'transient', o.exclusive ? 'exclusive' : '', o.autoDelete ? 'auto-delete' : ''].filter(Boolean).join(', ');
  const args = Object.keys(o.arguments).length ? ` ${JSON.stringify(o.arguments)}` : '';
  return `${flags}${args}`;
}

function describeExchange(e: ExchangeDecl): string {
  const o = exchangeOptions(e);
  const flags = [e.type, o.durable ? 'durable' : 'transient', o.autoDelete ? 'auto-delete' : '', o.internal ? 'internal' : ''].filter(Boolean).join(', ');
  const args = Object.keys(o.arguments).length ? ` ${JSON.stringify(o.arguments)}` : '';
  return `${flags}${args}`;
}

/**
 * What starting with this configuration would do to the broker at `url`, without changing
 * it: each exchange and queue is checked with a passive declare; one that exists is then
 * declared again as configured on a throwaway channel (an equivalent declaration changes
 * nothing; a different one fails with 406 and is reported as a conflict). Missing ones are
 * only reported. Bindings cannot be checked passively in AMQP 0-9-1, so they are listed as
 * `bind` (binding is idempotent) or `create` when their exchange or queue is missing.
 */
export async function planTopology(config: unknown, url?: string): Promise<TopologyPlan> {
  const c = resolveConfig(config);
  const target = url ?? c.url;
  const amqp = await import('amqplib');
  let conn: ChannelModel;
  try {
    conn = await amqp.connect(target, { timeout: c.connectTimeoutMs });
  } catch (err) {
    throw new BusbarError('AMQP_CONNECTION', `cannot connect to ${redactUrl(target)}: ${(err as Error).message}`, { cause: err, details: { url: redactUrl(target) } });
  }
  conn.on('error', () => undefined);
  const items: PlanItem[] = [];
  const missing = new Set<string>();
  try {
    const probe = async (kind: 'exchange' | 'queue', name: string, detail: string, declare: (ch: Channel) => Promise<unknown>, declared: unknown): Promise<void> => {
      const exists = kind === 'exchange' ? await exchangeExists(conn, name) : await queueExists(conn, name);
      if (!exists) {
        missing.add(`${kind}:${name}`);
        items.push({ kind, name, action: 'create', detail });
        return;
      }
      const ch = await throwawayChannel(conn);
      try {
        await declare(ch);
        items.push({ kind, name, action: 'unchanged', detail });
      } catch (err) {
        const code = replyCode(err);
        if (code === 406 || code === 405) {
          const e = conflictError(kind, name, declared, err);
          items.push({ kind, name, action: 'conflict', detail: brokerText(err), error: { code: e.code, message: e.message } });
        } else {
          items.push({ kind, name, action: 'error', detail: brokerText(err) });
        }
      } finally {
        await closeQuietly(ch);
      }
    };
    for (const e of c.topology.exchanges) {
      const opts = exchangeOptions(e);
      await probe('exchange', e.name, describeExchange(e), (ch) => ch.assertExchange(e.name, e.type, opts), { type: e.type, ...opts });
    }
    for (const q of c.topology.queues) {
      const opts = queueOptions(q);
      // an exclusive queue belongs to the connection declaring it: re-declaring someone else's fails with 405, which is the truth
      await probe('queue', q.name, describeQueue(q), (ch) => ch.assertQueue(q.name, opts), opts);
    }
    for (const b of c.topology.bindings) {
      const dest = b.queue !== undefined ? `queue ${b.queue}` : `exchange ${b.toExchange}`;
      const name = `${b.exchange} -> ${dest} [${b.routingKey}]`;
      const destMissing = b.queue !== undefined ? missing.has(`queue:${b.queue}`) || !(await queueExists(conn, b.queue)) : missing.has(`exchange:${b.toExchange}`) || !(await exchangeExists(conn, b.toExchange!));
      const srcMissing = missing.has(`exchange:${b.exchange}`) || !(await exchangeExists(conn, b.exchange));
      items.push({ kind: 'binding', name, action: destMissing || srcMissing ? 'create' : 'bind', detail: destMissing || srcMissing ? 'new binding (its exchange or queue is created first)' : 'ensured at start (bindings cannot be checked passively)' });
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
  const counts: Record<PlanAction, number> = { create: 0, unchanged: 0, conflict: 0, bind: 0, error: 0 };
  for (const i of items) counts[i.action]++;
  return { url: redactUrl(target), ok: counts.conflict === 0 && counts.error === 0, items, counts };
}

/** The plan as text for a terminal: one line per entity, conflicts spelled out, a summary last. */
export function formatPlan(plan: TopologyPlan): string {
  const mark: Record<PlanAction, string> = { create: '+', unchanged: '=', conflict: '!', bind: '~', error: '?' };
  const lines = [`topology plan for ${plan.url}`];
  for (const i of plan.items) {
    lines.push(`  ${mark[i.action]} ${i.kind.padEnd(8)} ${i.name}  ${i.action}: ${i.detail}`);
    if (i.error) lines.push(`      ${i.error.code}: ${i.error.message}`);
  }
  const c = plan.counts;
  lines.push(`${c.create} to create, ${c.unchanged} unchanged, ${c.bind} bindings to ensure, ${c.conflict} conflicts${c.error ? `, ${c.error} errors` : ''}: ${plan.ok ? 'OK' : 'start would FAIL'}`);
  return lines.join('\n');
}

/** Declarations by name, for endpoints that need to know whether their queue is managed. */
export function declaredQueue(topology: Topology, name: string): QueueDecl | undefined {
  return topology.queues.find((q) => q.name === name);
}
