import { pino } from 'pino';
import { Engine, from } from '../../dist/lib/index.js';
import { baselineThenBusbar, countingAdapter, perMessageFigures, type BenchCase } from '../harness.js';

interface Order { id: number; amount: number; country: string; items: number }

const COUNTRIES = ['NL', 'DE', 'FR', 'ES', 'BE'];

function engineWith(counts: Map<string, number>): Engine {
  const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [countingAdapter(counts)] });
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
 * The in-memory JSON route twice in one run: plain ("baseline": observability off), and with
 * the management API's observers and Prometheus metrics on (in-flight tracking, per-step
 * counts, the duration histogram), scraped once at the end. The ratio is on / off.
 * Tracing is not part of it yet (see docs/management.md).
 */
const bench: BenchCase = {
  name: 'observability-overhead',
  description: 'in-memory JSON route: management observers + Prometheus metrics on vs off (same route, same run)',
  async run({ quick }) {
    const n = quick ? 100_000 : 500_000;
    const input: string[] = [];
    for (let i = 0; i < 10_000; i++) input.push(JSON.stringify({ id: i, amount: (i * 37) % 1000, country: COUNTRIES[i % COUNTRIES.length], items: 1 + (i % 7) }));
    const offCounts = new Map<string, number>();
    const onCounts = new Map<string, number>();
    const off = engineWith(offCounts);
    const on = engineWith(onCounts);
    await off.start();
    await on.start();
    const management = await on.management({ port: 0 });
    const run = (e: Engine) => async (): Promise<void> => {
      for (let i = 0; i < n; i++) await e.send('direct:orders', input[i % input.length]!);
    };
    const { baselinePerS, busbarPerS, heapGrowthMb } = await baselineThenBusbar(n, run(off), run(on));
    const scrape = await (await fetch(`${management.url}/metrics`)).text();
    await management.close();
    await off.stop();
    await on.stop();
    const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
    if (total(onCounts) !== total(offCounts) || !scrape.includes('busbar_route_duration_seconds_count{route="orders",outcome="completed"}')) throw new Error('bench sanity check failed');
    return {
      busbar_per_s: busbarPerS,
      baseline_per_s: baselinePerS,
      ratio_on_vs_off: Math.round((busbarPerS / baselinePerS) * 1000) / 1000,
      ...perMessageFigures(busbarPerS, baselinePerS),
      heap_growth_mb: heapGrowthMb,
      messages: n,
    };
  },
};

export default bench;
