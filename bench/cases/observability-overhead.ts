import { pino } from 'pino';
import { Engine, from, type Adapter } from '../../dist/lib/index.js';
import type { TracingOptions } from '../../dist/lib/tracing/tracer.js';
import { countingAdapter, round, type BenchCase } from '../harness.js';

interface Order { id: number; amount: number; country: string; items: number }

const COUNTRIES = ['NL', 'DE', 'FR', 'ES', 'BE'];

function engineWith(adapter: Adapter, tracing?: boolean | TracingOptions): Engine {
  const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [adapter], ...(tracing === undefined ? {} : { tracing }) });
  engine.addRoutes(
    from<string>('direct:orders')
      .routeId('orders')
      .unmarshal<Order>('json')
      .transform((o) => ({ ...o, total: o.amount * 1.21 }))
      .choice<string>((c) =>
        c
          .when((o) => o.amount > 400, (b) => b.marshal('json').to('count:big'))
          .when((o) => o.country === 'NL', (b) => b.marshal('json').to('count:nl'))
          .otherwise((b) => b.marshal('json').to('count:other')),
      ),
  );
  return engine;
}

/** What the route above does, written by hand: parse, enrich, choose, marshal, count. */
function handRoute(counts: Map<string, number>): (text: string) => void {
  for (const k of ['big', 'nl', 'other']) counts.set(k, 0);
  return (text) => {
    const o = JSON.parse(text) as Order;
    const e = { ...o, total: o.amount * 1.21 };
    const dest = e.amount > 400 ? 'big' : e.country === 'NL' ? 'nl' : 'other';
    JSON.stringify(e);
    counts.set(dest, counts.get(dest)! + 1);
  };
}

type Api = typeof import('@opentelemetry/api');

/**
 * The hand-written route instrumented by hand with the same SDK, the way an application
 * would: the same three spans busbar records (the send into the route, the exchange, the
 * output), with the same names, kinds and attributes, each one active while its work runs.
 */
function handTraced(api: Api, provider: import('@opentelemetry/api').TracerProvider, counts: Map<string, number>): (text: string) => void {
  const tracer = provider.getTracer('hand');
  const PRODUCER = api.SpanKind.PRODUCER;
  const CONSUMER = api.SpanKind.CONSUMER;
  let seq = 0;
  for (const k of ['big', 'nl', 'other']) counts.set(k, 0);
  return (text) => {
    const id = `m-${seq++}`;
    const root = api.ROOT_CONTEXT;
    const send = tracer.startSpan('publish orders', { kind: PRODUCER, attributes: { 'messaging.system': 'busbar', 'messaging.destination.name': 'orders', 'messaging.operation.type': 'send', 'messaging.operation.name': 'publish', 'busbar.endpoint': 'direct:orders', 'messaging.message.id': id } }, root);
    const c1 = api.trace.setSpan(root, send);
    api.context.with(c1, () => {
      const ex = tracer.startSpan('process orders', { kind: CONSUMER, attributes: { 'busbar.route.id': 'orders', 'messaging.operation.type': 'process', 'messaging.operation.name': 'process', 'messaging.system': 'busbar', 'messaging.destination.name': 'orders', 'messaging.message.id': id } }, c1);
      const c2 = api.trace.setSpan(c1, ex);
      api.context.with(c2, () => {
        const o = JSON.parse(text) as Order;
        const e = { ...o, total: o.amount * 1.21 };
        const dest = e.amount > 400 ? 'big' : e.country === 'NL' ? 'nl' : 'other';
        JSON.stringify(e);
        const out = tracer.startSpan(`publish ${dest}`, { kind: PRODUCER, attributes: { 'messaging.system': 'count', 'messaging.destination.name': dest, 'messaging.operation.type': 'send', 'messaging.operation.name': 'publish', 'busbar.endpoint': `count:${dest}`, 'messaging.message.id': id } }, c2);
        api.context.with(api.trace.setSpan(c2, out), () => counts.set(dest, counts.get(dest)! + 1));
        out.end();
      });
      ex.end();
    });
    send.end();
  };
}

/**
 * Observability's price on the in-memory JSON route, four ways, each against the same route
 * with observability off, in the same process:
 * - `ratio` (the goal): Prometheus metrics (`engine.metrics()`: the exchange counters and
 *   the duration histogram, scraped at the end) plus tracing on with no SDK registered (the
 *   OpenTelemetry API's no-op tracer), on / off;
 * - `ratio_management`: the whole management server instead of the metrics alone (its in-flight
 *   tracker and per-step counts besides the metrics), plus the same tracing;
 * - with a real SDK (BasicTracerProvider, SimpleSpanProcessor, an exporter that drops every
 *   span): three spans per message (the send, the exchange, the output). The SDK's own work per
 *   span is most of that price, so this side has a hand-written baseline of its own: the same
 *   route written by hand, instrumented by hand with the same SDK and the same three spans.
 *   `sdk_tracing_us_busbar` and `sdk_tracing_us_hand` are what tracing adds per message to each;
 *   `ratio_sdk_tracing` = hand / busbar (1 = busbar's tracing costs what instrumenting by hand
 *   costs); `ratio_sdk` = busbar off / busbar with the SDK.
 *
 * The sides run interleaved (A B B A ...), on CPU time (`process.cpuUsage`): steadier than wall
 * time on a shared machine. The per-message figures are each side's median of the rounds; the
 * ratios (`ratio`, `ratio_management`, `ratio_sdk`) are the median of the ratios of the pairs
 * of rounds run back to back.
 */
const bench: BenchCase = {
  name: 'observability-overhead',
  description: 'in-memory JSON route: metrics + tracing (no SDK) on vs off; the management server; an SDK recording spans vs the same spans instrumented by hand',
  async run({ quick }) {
    const n = quick ? 20_000 : 50_000;
    const rounds = quick ? 5 : 15;
    const input: string[] = [];
    for (let i = 0; i < 10_000; i++) input.push(JSON.stringify({ id: i, amount: (i * 37) % 1000, country: COUNTRIES[i % COUNTRIES.length], items: 1 + (i % 7) }));
    const api = await import('@opentelemetry/api');
    const { BasicTracerProvider, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
    let dropped = 0;
    const noopExporter = {
      export(spans: unknown[], done: (r: { code: number }) => void): void {
        dropped += spans.length;
        done({ code: 0 });
      },
      async shutdown(): Promise<void> {},
    };
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(noopExporter)] });
    const counts = { off: new Map<string, number>(), on: new Map<string, number>(), mgmt: new Map<string, number>(), sdk: new Map<string, number>(), hand: new Map<string, number>(), handSdk: new Map<string, number>() };
    const engines = { off: engineWith(countingAdapter(counts.off)), on: engineWith(countingAdapter(counts.on), true), mgmt: engineWith(countingAdapter(counts.mgmt), true), sdk: engineWith(countingAdapter(counts.sdk), { tracerProvider: provider }) };
    for (const e of Object.values(engines)) await e.start();
    const metrics = await engines.on.metrics();
    const management = await engines.mgmt.management({ port: 0 });
    const viaEngine = (e: Engine) => async (): Promise<number> => {
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) await e.send('direct:orders', input[i % input.length]!);
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / n; // µs of CPU per message
    };
    // awaited per message like the busbar sides: the span processor settles each export in a
    // microtask, and a loop that never yields would pile up every pending export for the GC
    const byHand = (f: (text: string) => void) => async (): Promise<number> => {
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) await f(input[i % input.length]!);
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / n;
    };
    // pairs alternate (A B, then B A); the SDK sides after the no-SDK ones: recording spans
    // would otherwise make the tracing code the no-op side shares slower for it (JIT feedback)
    // returns each side's median and the median of the pairs' ratios (a / b of the two rounds
    // run back to back): a pause of the collector or a busy neighbour lands on one pair, and the
    // median of the ratios drops that pair, where a ratio of two medians would still carry it
    const interleaved = async (a: () => Promise<number>, b: () => Promise<number>): Promise<[number, number, number]> => {
      const ra: number[] = [];
      const rb: number[] = [];
      await a(); // warm-up, discarded
      await b();
      for (let r = 0; r < rounds; r++) {
        if (r % 2 === 0) {
          ra.push(await a());
          rb.push(await b());
        } else {
          rb.push(await b());
          ra.push(await a());
        }
      }
      return [median(ra), median(rb), median(ra.map((x, i) => x / rb[i]!))];
    };
    const [off, on, ratio] = await interleaved(viaEngine(engines.off), viaEngine(engines.on));
    const [offM, mgmt, ratioM] = await interleaved(viaEngine(engines.off), viaEngine(engines.mgmt));
    const [hand, handSdk] = await interleaved(byHand(handRoute(counts.hand)), byHand(handTraced(api, provider, counts.handSdk)));
    const [offS, sdk, ratioS] = await interleaved(viaEngine(engines.off), viaEngine(engines.sdk));
    const scrape = await metrics.text();
    const scrapeM = await (await fetch(`${management.url}/metrics`)).text();
    metrics.close();
    await management.close();
    for (const e of Object.values(engines)) await e.stop();
    await provider.shutdown();
    const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
    const perSide = n * (rounds + 1);
    for (const [k, m] of Object.entries(counts)) if (total(m) !== (k === 'off' ? 3 * perSide : perSide)) throw new Error(`bench sanity check failed: ${k} counted ${total(m)}`);
    for (const k of ['big', 'nl', 'other']) if (counts.hand.get(k) !== counts.sdk.get(k) || counts.handSdk.get(k) !== counts.sdk.get(k)) throw new Error(`bench sanity check failed: ${k} routed differently by hand`);
    if (!scrape.includes('busbar_route_duration_seconds_count{route="orders",outcome="completed"} ' + perSide) || !scrapeM.includes('busbar_route_duration_seconds_count{route="orders",outcome="completed"}')) throw new Error('bench sanity check failed: metrics');
    // three spans per message on both SDK sides, every one exported (dropped)
    if (dropped !== 2 * 3 * perSide) throw new Error(`bench sanity check failed: ${dropped} spans for ${2 * perSide} messages`);
    const busbarTracing = sdk - offS;
    const handTracing = handSdk - hand;
    return {
      // the runner prints busbar_per_s / baseline_per_s as `ratio`: the per-pair median, with the off side's median as the base
      busbar_per_s: (1e6 / off) * ratio,
      baseline_per_s: 1e6 / off,
      off_cpu_us_per_msg: round(off, 3),
      on_cpu_us_per_msg: round(on, 3),
      overhead_us_per_msg: round(on - off, 3),
      management_cpu_us_per_msg: round(mgmt, 3),
      ratio_management: round(ratioM, 3),
      sdk_cpu_us_per_msg: round(sdk, 3),
      ratio_sdk: round(ratioS, 3),
      hand_cpu_us_per_msg: round(hand, 3),
      hand_sdk_cpu_us_per_msg: round(handSdk, 3),
      sdk_tracing_us_busbar: round(busbarTracing, 3),
      sdk_tracing_us_hand: round(handTracing, 3),
      ratio_sdk_tracing: round(handTracing / busbarTracing, 3),
      messages: n,
      rounds,
    };
  },
};

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

export default bench;
