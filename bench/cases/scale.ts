import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { Engine, from } from '../../dist/lib/index.js';
import { countingAdapter, round, type BenchCase } from '../harness.js';

/**
 * How busbar's cost per message and its memory change as the work grows x10 and x100 on one
 * engine: routes (10 -> 1,000), topic subscribers (1 -> 1,000), open aggregator groups
 * (1k -> 1M, without and with an idle timeout) and the in-flight bound (16 -> 16k). The goal
 * is a flat per-message cost (within 20% across each range) and memory linear in what is
 * held. The table goes to stderr; the JSON line's `ratio` is the flatness of the worst range:
 * throughput at its largest size over throughput at its smallest (1.0 = flat). Every row also
 * runs a hand-written loop holding the same amount (`by hand`: as many handlers, queues, groups
 * or promises in flight): how much of the growth the machine makes (cache misses of a large
 * Map, the collector) whatever the code.
 */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1048576;
}

function silent(counts: Map<string, number>): Engine {
  return new Engine({ logger: pino({ level: 'silent' }), adapters: [countingAdapter(counts)], maxInflight: 256 });
}

async function timed(fn: () => Promise<void>): Promise<{ ns: number; cpuUs: number }> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const ns = Number(process.hrtime.bigint() - t0);
  const c = process.cpuUsage(c0);
  return { ns, cpuUs: c.user + c.system };
}

interface Row {
  dimension: string;
  size: number;
  /** Messages (deliveries for topics) per second, best of the rounds. */
  per_s: number;
  us_per_msg: number;
  cpu_us_per_msg: number;
  /** Heap held per route / subscriber / group / in-flight message, bytes. */
  heap_bytes_per_unit: number;
  /** A hand-written loop holding the same amount (same-size Map of groups, same number of promises in flight): what the machine itself makes of the size. */
  hand_cpu_us_per_msg?: number;
  extra?: string;
}

async function best(rounds: number, msgs: number, run: () => Promise<void>): Promise<{ perS: number; cpuUsPerMsg: number }> {
  await run(); // warm-up
  let perS = 0;
  let cpu = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t = await timed(run);
    perS = Math.max(perS, msgs / (t.ns / 1e9));
    cpu = Math.min(cpu, t.cpuUs / msgs);
  }
  return { perS, cpuUsPerMsg: cpu };
}

function row(dimension: string, size: number, perS: number, cpuUsPerMsg: number, bytesPerUnit: number, extra?: string): Row {
  const r: Row = { dimension, size, per_s: Math.round(perS), us_per_msg: round(1e6 / perS, 3), cpu_us_per_msg: round(cpuUsPerMsg, 3), heap_bytes_per_unit: Math.round(bytesPerUnit) };
  if (extra) r.extra = extra;
  return r;
}

/** `size` routes on one engine, messages sent round-robin across them. */
async function routes(size: number, msgs: number, rounds: number): Promise<Row> {
  const counts = new Map<string, number>();
  const h0 = heapMb();
  const t0 = performance.now();
  const engine = silent(counts);
  for (let i = 0; i < size; i++) {
    engine.addRoutes(from<{ n: number }>(`direct:r${i}`).routeId(`r${i}`).transform((b) => ({ n: b.n + 1 })).to('count:routes'));
  }
  await engine.start();
  const startMs = performance.now() - t0;
  const perRoute = ((heapMb() - h0) * 1048576) / size;
  const uris = Array.from({ length: size }, (_, i) => `direct:r${i}`);
  const body = { n: 1 };
  const { perS, cpuUsPerMsg } = await best(rounds, msgs, async () => {
    for (let i = 0; i < msgs; i++) await engine.send(uris[i % size]!, body);
  });
  await engine.stop();
  if (counts.get('routes') !== msgs * (rounds + 1)) throw new Error(`routes x${size}: ${counts.get('routes')} deliveries for ${msgs * (rounds + 1)} messages`);
  // by hand: `size` handlers found by their URI, each its own closure and counters, the same message sent round-robin (awaited as the busbar loop awaits)
  const handCounts = new Map<string, number>();
  const handlers = new Map<string, { received: number; fn: (b: { n: number }) => { n: number } }>();
  for (let i = 0; i < size; i++) handlers.set(uris[i]!, { received: 0, fn: (b) => ({ n: b.n + 1 }) });
  const hand = await best(rounds, msgs, async () => {
    for (let i = 0; i < msgs; i++) {
      const h = handlers.get(uris[i % size]!)!;
      h.received++;
      const out = h.fn(body);
      if (out.n === 2) handCounts.set('routes', (handCounts.get('routes') ?? 0) + 1);
      await undefined;
    }
  });
  if (handCounts.get('routes') !== msgs * (rounds + 1)) throw new Error(`routes x${size} by hand: ${handCounts.get('routes')} deliveries`);
  const r = row('routes', size, perS, cpuUsPerMsg, perRoute, `start ${round(startMs, 1)} ms`);
  r.hand_cpu_us_per_msg = round(hand.cpuUsPerMsg, 3);
  return r;
}

/** `size` routes subscribed to one topic; every published message reaches each (cost per delivery). */
async function subscribers(size: number, deliveries: number, rounds: number): Promise<Row> {
  const counts = new Map<string, number>();
  const h0 = heapMb();
  const engine = silent(counts);
  for (let i = 0; i < size; i++) engine.addRoutes(from<{ n: number }>('topic:bench.scale').routeId(`s${i}`).to('count:subs'));
  await engine.start();
  const perSub = ((heapMb() - h0) * 1048576) / size;
  const msgs = Math.max(1, Math.round(deliveries / size));
  let expected = 0;
  const body = { n: 1 };
  const run = async (): Promise<void> => {
    expected += msgs * size;
    for (let i = 0; i < msgs; i++) await engine.send('topic:bench.scale', body);
    // publishing resolves once every subscriber's queue has the message: wait for the routes
    while ((counts.get('subs') ?? 0) < expected) await new Promise((r) => setImmediate(r));
  };
  const { perS, cpuUsPerMsg } = await best(rounds, msgs * size, run);
  await engine.stop();
  if (counts.get('subs') !== expected) throw new Error(`subscribers x${size}: ${counts.get('subs')} deliveries, expected ${expected}`);
  // by hand: `size` subscribers, each its own queue (an array), handler and counter; a publish
  // puts the message in every queue, and the queues it woke are drained together in one
  // microtask, as busbar's pumps are; the publisher awaits each publish and then waits for the handlers
  let handDelivered = 0;
  let handExpected = 0;
  const subs = Array.from({ length: size }, () => {
    const sub = { queue: [] as Array<{ n: number }>, due: false, received: 0, handle: (b: { n: number }): void => {
      sub.received++;
      if (b.n === 1) handDelivered++;
    } };
    return sub;
  });
  const drains = subs.map((sub) => (): void => {
    sub.due = false;
    for (let b = sub.queue.shift(); b !== undefined; b = sub.queue.shift()) sub.handle(b);
  });
  let woken: Array<() => void> = [];
  const drainWoken = (): void => {
    const now = woken;
    woken = [];
    for (const d of now) d();
  };
  const hand = await best(rounds, msgs * size, async () => {
    handExpected += msgs * size;
    for (let i = 0; i < msgs; i++) {
      for (let k = 0; k < size; k++) {
        const sub = subs[k]!;
        sub.queue.push(body);
        if (!sub.due) {
          sub.due = true;
          if (woken.push(drains[k]!) === 1) queueMicrotask(drainWoken);
        }
      }
      await undefined;
    }
    while (handDelivered < handExpected) await new Promise((r) => setImmediate(r));
  });
  if (handDelivered !== handExpected) throw new Error(`subscribers x${size} by hand: ${handDelivered} deliveries, expected ${handExpected}`);
  const r = row('topic subscribers', size, perS, cpuUsPerMsg, perSub, `${msgs} published x ${size}`);
  r.hand_cpu_us_per_msg = round(hand.cpuUsPerMsg, 3);
  return r;
}

/**
 * `size` open aggregator groups (none completes): heap per group after one message each, then
 * the cost of `msgs` more messages spread over the open groups. `idle`: every group also has
 * an inactivity timeout (10 minutes, so none fires), pushed back by each of its messages.
 */
async function groups(size: number, msgs: number, idle = false): Promise<Row> {
  const counts = new Map<string, number>();
  const engine = silent(counts);
  engine.addRoutes(
    from<{ k: number }>('direct:agg')
      .routeId('agg')
      .aggregate({ correlate: (b) => b.k, size: 1_000_000_000, maxGroups: size + 1, completeOnStop: false, ...(idle ? { timeoutMs: 600_000 } : {}) })
      .to('count:agg'),
  );
  await engine.start();
  const h0 = heapMb();
  const fill = await timed(async () => {
    for (let i = 0; i < size; i++) await engine.send('direct:agg', { k: i });
  });
  const perGroup = ((heapMb() - h0) * 1048576) / size;
  const t = await timed(async () => {
    for (let i = 0; i < msgs; i++) await engine.send('direct:agg', { k: (i * 7919) % size });
  });
  await engine.stop();
  if ((counts.get('agg') ?? 0) !== 0) throw new Error('an aggregator group completed early');
  // by hand: a Map of `size` groups (string keys, an array of bodies each), the same messages pushed
  const hand = new Map<string, unknown[]>();
  for (let i = 0; i < size; i++) hand.set(String(i), [{ k: i }]);
  const h = await timed(async () => {
    for (let i = 0; i < msgs; i++) {
      const body = { k: (i * 7919) % size };
      hand.get(String(body.k))!.push(body);
      if (i % 1000 === 0) await Promise.resolve();
    }
  });
  if (hand.get('0')!.length < 1) throw new Error('hand-written groups lost a message');
  const r = row(idle ? 'aggregator groups, idle timeout' : 'aggregator groups', size, msgs / (t.ns / 1e9), t.cpuUs / msgs, perGroup, `opening them: ${round(fill.cpuUs / size, 2)} cpu us/group`);
  r.hand_cpu_us_per_msg = round(h.cpuUs / msgs, 3);
  return r;
}

/** A route with in-flight bound `size`, driven by `size` concurrent senders; each message waits a turn of the event loop. */
async function inflight(size: number, msgs: number, rounds: number): Promise<Row> {
  const counts = new Map<string, number>();
  const engine = silent(counts);
  let parked: Array<() => void> = [];
  let peakHeap = 0;
  let measure = false;
  engine.addRoutes(
    from<{ n: number }>('direct:inflight')
      .routeId('inflight')
      .maxInflight(size)
      .transform(
        (b) =>
          new Promise<{ n: number }>((resolve) => {
            parked.push(() => resolve(b));
            if (measure && parked.length === size) {
              peakHeap = heapMb();
              measure = false;
            }
            // released a turn of the event loop later, all that parked meanwhile together:
            // the senders refill every slot in between, so the route runs full
            if (parked.length === 1) {
              setImmediate(() => {
                const go = parked;
                parked = [];
                for (const f of go) f();
              });
            }
          }),
      )
      .to('count:inflight'),
  );
  await engine.start();
  const body = { n: 1 };
  const run = async (): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < msgs) {
        next++;
        await engine.send('direct:inflight', body);
      }
    };
    await Promise.all(Array.from({ length: size }, worker));
  };
  const { perS, cpuUsPerMsg } = await best(rounds, msgs, run);
  // the heap with every slot taken, over the heap of the idle route
  const idle = heapMb();
  measure = true;
  await run();
  await engine.stop();
  if (counts.get('inflight') !== msgs * (rounds + 2)) throw new Error(`inflight x${size}: ${counts.get('inflight')} deliveries for ${msgs * (rounds + 2)}`);
  // by hand: `size` workers, each message a promise released a turn of the event loop later, all that parked meanwhile together
  let handParked: Array<() => void> = [];
  let handDone = 0;
  const park = (): Promise<void> =>
    new Promise<void>((resolve) => {
      handParked.push(resolve);
      if (handParked.length === 1) {
        setImmediate(() => {
          const go = handParked;
          handParked = [];
          for (const f of go) f();
        });
      }
    });
  const hand = await best(rounds, msgs, async () => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < msgs) {
        next++;
        await park();
        handDone++;
      }
    };
    await Promise.all(Array.from({ length: size }, worker));
  });
  if (handDone < msgs) throw new Error('hand-written in-flight loop lost messages');
  const r = row('in-flight bound', size, perS, cpuUsPerMsg, ((peakHeap - idle) * 1048576) / size);
  r.hand_cpu_us_per_msg = round(hand.cpuUsPerMsg, 3);
  return r;
}

const bench: BenchCase = {
  name: 'scale',
  description: 'cost per message and memory as the work grows x10 / x100: routes on one engine (10 -> 1,000), topic subscribers (1 -> 1,000), open aggregator groups (1k -> 1M; without and with an idle timeout), in-flight bound (16 -> 16k)',
  async run({ quick }) {
    const rounds = quick ? 1 : 3;
    const msgs = quick ? 50_000 : 200_000;
    const rows: Row[] = [];
    const progress = (r: Row): Row => {
      process.stderr.write(`scale: ${r.dimension} x${r.size}: ${r.cpu_us_per_msg} cpu us/msg\n`);
      return r;
    };
    for (const s of [10, 100, 1000]) rows.push(progress(await routes(s, msgs, rounds)));
    for (const s of [1, 10, 100, 1000]) rows.push(progress(await subscribers(s, quick ? 50_000 : 100_000, rounds)));
    for (const s of quick ? [1000, 10_000, 100_000] : [1000, 10_000, 100_000, 1_000_000]) rows.push(progress(await groups(s, msgs)));
    for (const s of quick ? [1000, 10_000, 100_000] : [1000, 10_000, 100_000, 1_000_000]) rows.push(progress(await groups(s, msgs, true)));
    for (const s of [16, 160, 1600, 16_000]) rows.push(progress(await inflight(s, Math.max(msgs, s * 4), rounds)));

    // the table, for people; the JSON line carries the same figures
    const head = ['dimension', 'size', 'msg/s', 'us/msg', 'cpu us/msg', 'by hand', 'heap B/unit', ''];
    const lines = [head, ...rows.map((r) => [r.dimension, String(r.size), String(r.per_s), String(r.us_per_msg), String(r.cpu_us_per_msg), r.hand_cpu_us_per_msg === undefined ? '' : String(r.hand_cpu_us_per_msg), String(r.heap_bytes_per_unit), r.extra ?? ''])];
    const widths = head.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
    for (const l of lines) process.stderr.write(`${l.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);

    const extras: Record<string, number | string> = {};
    let worst = { dimension: '', small: 0, large: 0, flat: Infinity };
    for (const dim of [...new Set(rows.map((r) => r.dimension))]) {
      const rs = rows.filter((r) => r.dimension === dim);
      const small = rs[0]!;
      const large = rs[rs.length - 1]!;
      // flatness on CPU time per message: far less disturbed by neighbours than wall time
      const flat = small.cpu_us_per_msg / large.cpu_us_per_msg;
      const key = dim.replace(/[^a-z]+/g, '_');
      extras[`${key}_cpu_flatness`] = round(flat, 2);
      if (small.hand_cpu_us_per_msg !== undefined && large.hand_cpu_us_per_msg !== undefined) extras[`${key}_hand_cpu_flatness`] = round(small.hand_cpu_us_per_msg / large.hand_cpu_us_per_msg, 2);
      for (const r of rs) {
        extras[`${key}_${r.size}_cpu_us`] = r.cpu_us_per_msg;
        if (r.hand_cpu_us_per_msg !== undefined) extras[`${key}_${r.size}_hand_cpu_us`] = r.hand_cpu_us_per_msg;
        extras[`${key}_${r.size}_heap_b`] = r.heap_bytes_per_unit;
      }
      if (flat < worst.flat) worst = { dimension: dim, small: small.per_s, large: large.per_s, flat };
    }
    return { busbar_per_s: worst.large, baseline_per_s: worst.small, worst: worst.dimension, ...extras };
  },
};

export default bench;
