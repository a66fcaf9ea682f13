import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import amqp, { type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import { pino } from 'pino';
import { createAmqpAdapter } from '../../dist/adapters/amqp/index.js';
import { Engine, from } from '../../dist/lib/index.js';
import { alternateRounds, round, type BenchCase } from '../harness.js';

export const AMQP_URL = process.env.BUSBAR_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
/** Prefetch of both sides (busbar: the route's in-flight bound). */
export const PREFETCH = 256;
/** Unconfirmed publishes of both sides. */
export const WINDOW = 1000;

export interface Order {
  seq: number;
  amount: number;
  country: string;
}

export function benchQueue(kind: string): string {
  return `busbar-bench.${kind}.${randomBytes(4).toString('hex')}`;
}

export async function connect(url = AMQP_URL): Promise<ChannelModel> {
  const c = await amqp.connect(url);
  c.on('error', () => undefined);
  return c;
}

/**
 * Publish with confirms through a bounded window, waiting on `drain`: what a careful
 * hand-written amqplib publisher does. Used to fill queues and as the publish baseline.
 */
export async function publishAll(ch: ConfirmChannel, queue: string, n: number, body: (i: number) => Buffer, window = WINDOW, properties: (i: number) => Options.Publish = orderProperties): Promise<void> {
  let outstanding = 0;
  let wake: (() => void) | undefined;
  let failed: unknown;
  for (let i = 0; i < n; i++) {
    while (outstanding >= window) await new Promise<void>((r) => (wake = r));
    if (failed) throw failed;
    outstanding++;
    const ok = ch.sendToQueue(queue, body(i), properties(i), (err) => {
      if (err) failed = err;
      outstanding--;
      const w = wake;
      wake = undefined;
      w?.();
    });
    if (!ok) await new Promise<void>((r) => ch.once('drain', () => r()));
  }
  await ch.waitForConfirms();
}

/** A run's id prefix: 24 hex digits, as busbar's message ids have (lib/message.ts). */
const ID_PREFIX = randomBytes(12).toString('hex');

/**
 * What a careful producer sends with each message, and what busbar sends with every
 * message it publishes: an id (for idempotent consumers downstream), a timestamp, the
 * content type, persistence. Both sides of every amqp case carry the same properties, of
 * the same size: the id is shaped like busbar's (a random 96-bit prefix and a counter, 28
 * characters). The size matters to the broker: RabbitMQ takes about 15% more CPU per
 * persistent message once the content header frame passes 64 bytes (with this content type,
 * an id of 16 characters or more; `amqp-publish` measures the short one too).
 */
export function orderProperties(i: number, shortId = false): Options.Publish {
  const messageId = shortId ? `order-${i}` : `${ID_PREFIX}-${i.toString(36).padStart(3, '0')}`;
  return { persistent: true, contentType: 'application/json', messageId, timestamp: Math.floor(Date.now() / 1000) };
}

export function orderBody(i: number): Buffer {
  return Buffer.from(JSON.stringify({ seq: i, amount: (i * 37) % 1000, country: i % 2 ? 'NL' : 'DE' }));
}

/**
 * CPU seconds the broker's Erlang VM has used so far, when it runs on this machine (the
 * beam.smp whose RABBITMQ_NODE_PORT is the port of `url`); undefined otherwise. Read from
 * /proc in clock ticks (1/100 s): enough for rounds of a second or more.
 */
export function brokerCpu(url = AMQP_URL): (() => number) | undefined {
  const port = new URL(url).port || '5672';
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('beam.smp')) continue;
      if (!readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`RABBITMQ_NODE_PORT=${port}`)) continue;
    } catch {
      continue; // gone, or not ours to read
    }
    return () => {
      // fields after the command name (which is in parentheses): utime and stime are the 12th and 13th
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(f[11]) + Number(f[12])) / 100;
    };
  }
  return undefined;
}

/** Polls `cond` every `everyMs` (polling costs the measured process CPU: keep it coarse where the run is long). */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 2): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * The broker side of one amqp case: durable queues made fresh for each run (filled with `n`
 * orders when asked), dropped after it, and whatever is left deleted by `close`. Each run
 * deletes its queues before the next, so neither side pays for the other's messages still on
 * the broker; `settle` lets the broker finish the deletion first.
 */
export interface BenchBroker {
  readonly conn: ChannelModel;
  queue(kind: string, fill?: number): Promise<string>;
  drop(...names: string[]): Promise<void>;
  settle(): Promise<void>;
  close(): Promise<void>;
}

export async function benchBroker(url = AMQP_URL): Promise<BenchBroker> {
  const conn = await connect(url);
  const setup = await conn.createConfirmChannel();
  const made = new Set<string>();
  return {
    conn,
    async queue(kind, fill = 0) {
      const q = benchQueue(kind);
      made.add(q);
      await setup.assertQueue(q, { durable: true });
      if (fill) await publishAll(setup, q, fill, orderBody);
      return q;
    },
    async drop(...names) {
      for (const q of names) {
        await setup.deleteQueue(q);
        made.delete(q);
      }
    },
    settle: () => new Promise((r) => setTimeout(r, 1000)),
    async close() {
      for (const q of made) await setup.deleteQueue(q).catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  };
}

export async function messageCount(conn: ChannelModel, queue: string): Promise<number> {
  const ch = await conn.createChannel();
  try {
    return (await ch.checkQueue(queue)).messageCount;
  } finally {
    await ch.close();
  }
}

export function silentEngine(): Engine {
  return new Engine({ logger: pino({ level: 'silent' }), adapters: [createAmqpAdapter({ url: AMQP_URL })], maxInflight: PREFETCH });
}

/**
 * The hand-written bridge: consume A, JSON transform, publish to B with a confirm callback,
 * ack A in it. It carries the message's id, timestamp and content type across, as busbar does.
 * With `urlB`, B is on another broker (bench bridge-amqp): one connection per broker.
 */
export async function baselineBridge(a: string, b: string, n: number, urlB?: string): Promise<number> {
  const conn = await connect();
  const connB = urlB === undefined ? conn : await connect(urlB);
  const cin = await conn.createChannel();
  const cout = await connB.createConfirmChannel();
  await cin.prefetch(PREFETCH);
  let done = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => (finish = r));
  const { consumerTag } = await cin.consume(a, (m) => {
    if (!m) return;
    const o = JSON.parse(m.content.toString('utf8')) as Order;
    const out = Buffer.from(JSON.stringify({ ...o, total: Math.round(o.amount * 121) / 100 }));
    const p = m.properties;
    cout.sendToQueue(b, out, { persistent: true, contentType: 'application/json', messageId: p.messageId, timestamp: p.timestamp }, (err) => {
      if (err) cin.nack(m);
      else cin.ack(m);
      if (++done === n) finish();
    });
  });
  // timed from the moment the consumer is registered, like the busbar side (after engine.start())
  const t0 = process.hrtime.bigint();
  await finished;
  const perS = n / (Number(process.hrtime.bigint() - t0) / 1e9);
  await cin.cancel(consumerTag);
  await conn.close();
  if (connB !== conn) await connB.close();
  return perS;
}

/**
 * The busbar bridge route. `engine` and the schemes let bench bridge-amqp run the same route
 * between two brokers (two named amqp instances).
 */
export async function busbarBridge(a: string, b: string, n: number, engine: Engine = silentEngine(), schemes = { from: 'amqp', to: 'amqp' }): Promise<{ perS: number; heapMb: number; startMs: number }> {
  engine.addRoutes(
    from<string>(`${schemes.from}:queue:${a}`)
      .routeId('bridge')
      .unmarshal<Order>('json')
      .transform((o) => ({ ...o, total: Math.round(o.amount * 121) / 100 }))
      .marshal('json')
      // like the baseline, not mandatory (the default for queue: endpoints costs the broker about a quarter of this throughput)
      .to(`${schemes.to}:queue:${b}?confirmWindow=${WINDOW}&mandatory=false`),
  );
  const heap0 = process.memoryUsage().heapUsed;
  const s0 = process.hrtime.bigint();
  await engine.start();
  // steady-state throughput, from the moment the consumer is registered (start resolves right after)
  const t0 = process.hrtime.bigint();
  const startMs = Number(t0 - s0) / 1e6;
  // polled every 10 ms (at most 10 ms late on a run of seconds): a 2 ms poll cost the bridge several per cent of its CPU
  await waitUntil(() => engine.stats().routes.bridge!.completed >= n, 300_000, 'the busbar bridge', 10);
  const perS = n / (Number(process.hrtime.bigint() - t0) / 1e9);
  const heapMb = (process.memoryUsage().heapUsed - heap0) / 1048576;
  await engine.stop();
  return { perS, heapMb, startMs };
}

const bench: BenchCase = {
  name: 'amqp-bridge',
  description: 'At-least-once bridge: consume queue A, JSON transform, publish to queue B with confirms (persistent, not mandatory), ack A after the confirm, prefetch 256, message id/timestamp/content type carried across (30,000 messages); busbar route vs hand-written amqplib doing the same, steady state',
  requires: ['rabbitmq'],
  async run({ quick }) {
    const n = quick ? 5000 : 30_000;
    const rounds = quick ? 1 : 3; // best of three per side: the broker's pace varies from run to run
    const broker = await benchBroker();
    const { conn } = broker;
    const fresh = async (): Promise<[string, string]> => {
      const pair: [string, string] = [await broker.queue('bridge-a', n), await broker.queue('bridge-b')];
      await broker.settle();
      return pair;
    };
    let busbar = 0;
    let baseline = 0;
    let heap = 0;
    let startMs = 0;
    try {
      const runBaseline = async (): Promise<void> => {
        const [a, b] = await fresh();
        baseline = Math.max(baseline, await baselineBridge(a, b, n));
        if ((await messageCount(conn, b)) !== n) throw new Error('baseline bridge lost messages');
        await broker.drop(a, b);
      };
      const runBusbar = async (): Promise<void> => {
        const [a, b] = await fresh();
        const r = await busbarBridge(a, b, n);
        busbar = Math.max(busbar, r.perS);
        heap = Math.max(heap, r.heapMb);
        startMs = Math.max(startMs, r.startMs);
        if ((await messageCount(conn, b)) !== n) throw new Error(`busbar bridge: ${await messageCount(conn, b)} of ${n} messages in B`);
        await broker.drop(a, b);
      };
      // neither side gets a pristine broker: one discarded run of each first
      await alternateRounds(rounds, runBaseline, runBusbar, () => {
        busbar = 0;
        baseline = 0;
      });
    } finally {
      await broker.close();
    }
    return { busbar_per_s: busbar, baseline_per_s: baseline, messages: n, prefetch: PREFETCH, heap_growth_mb: round(heap, 1), busbar_start_ms_max: round(startMs) };
  },
};

export default bench;
