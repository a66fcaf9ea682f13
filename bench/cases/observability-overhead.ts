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

/**
 * The in-memory JSON route with observability off ("baseline") and on: the management API
 * (in-flight tracking, per-step counts, Prometheus metrics with the duration histogram,
 * scraped at the end) plus tracing on with no SDK registered (the OpenTelemetry API's no-op
 * tracer: spans go nowhere). `ratio` is on / off. A third side, reported apart
 * (`sdk_per_s`, `ratio_sdk`), traces into a real SDK (BasicTracerProvider) whose exporter
 * drops every span: the price of recording three spans per message (the send, the exchange, the output).
 *
 * The sides run in the same process, interleaved (off, on, on, off...; then off against sdk), on
 * CPU time (`process.cpuUsage`), each side's median of the rounds: steadier than wall time on
 * a shared machine.
 */
const bench: BenchCase = {
  name: 'observability-overhead',
  description: 'in-memory JSON route: management observers + Prometheus metrics + tracing (no SDK: no-op tracer) on vs off; and with an SDK whose exporter drops spans',
  async run({ quick }) {
    const n = quick ? 50_000 : 200_000;
    const rounds = quick ? 3 : 5;
    const input: string[] = [];
    for (let i = 0; i < 10_000; i++) input.push(JSON.stringify({ id: i, amount: (i * 37) % 1000, country: COUNTRIES[i % COUNTRIES.length], items: 1 + (i % 7) }));
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
    const counts = { off: new Map<string, number>(), on: new Map<string, number>(), sdk: new Map<string, number>() };
    const engines = { off: engineWith(countingAdapter(counts.off)), on: engineWith(countingAdapter(counts.on), true), sdk: engineWith(countingAdapter(counts.sdk), { tracerProvider: provider }) };
    for (const e of Object.values(engines)) await e.start();
    const management = await engines.on.management({ port: 0 });
    const sdkManagement = await engines.sdk.management({ port: 0 });
    const run = async (e: Engine): Promise<number> => {
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) await e.send('direct:orders', input[i % input.length]!);
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / n; // µs of CPU per message
    };
    // off and on first, alternating; the SDK side after, against off again: its recording spans
    // would otherwise make the tracing code the no-op side shares slower for it (JIT feedback)
    const interleaved = async (a: Engine, b: Engine): Promise<[number[], number[]]> => {
      const ra: number[] = [];
      const rb: number[] = [];
      await run(a); // warm-up, discarded
      await run(b);
      for (let r = 0; r < rounds; r++) {
        if (r % 2 === 0) {
          ra.push(await run(a));
          rb.push(await run(b));
        } else {
          rb.push(await run(b));
          ra.push(await run(a));
        }
      }
      return [ra, rb];
    };
    const [offRounds, onRounds] = await interleaved(engines.off, engines.on);
    const [offAgain, sdkRounds] = await interleaved(engines.off, engines.sdk);
    const scrape = await (await fetch(`${management.url}/metrics`)).text();
    await management.close();
    await sdkManagement.close();
    for (const e of Object.values(engines)) await e.stop();
    await provider.shutdown();
    const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
    if (total(counts.on) * 2 !== total(counts.off) || total(counts.sdk) * 2 !== total(counts.off) || !scrape.includes('busbar_route_duration_seconds_count{route="orders",outcome="completed"}')) throw new Error('bench sanity check failed');
    // three spans per message (the send into direct:orders, the exchange, the output), every one exported (dropped)
    if (dropped !== 3 * n * (rounds + 1)) throw new Error(`bench sanity check failed: ${dropped} spans for ${n * (rounds + 1)} messages`);
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const off = median(offRounds);
    const on = median(onRounds);
    const sdk = median(sdkRounds);
    const off2 = median(offAgain);
    return {
      busbar_per_s: 1e6 / on,
      baseline_per_s: 1e6 / off,
      off_cpu_us_per_msg: round(off, 3),
      on_cpu_us_per_msg: round(on, 3),
      overhead_us_per_msg: round(on - off, 3),
      sdk_per_s: round(1e6 / sdk),
      sdk_cpu_us_per_msg: round(sdk, 3),
      ratio_sdk: round(off2 / sdk, 2),
      messages: n,
      rounds,
    };
  },
};

export default bench;
