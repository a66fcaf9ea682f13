import { pino } from 'pino';
import { Engine, from } from '../../dist/lib/index.js';
import { allocatedPerMessage, sideBySide, countingAdapter, perMessageFigures, Tally, type BenchCase } from '../harness.js';

interface Order { id: number; amount: number; country: string }

const COUNTRIES = ['NL', 'DE', 'FR', 'ES', 'BE'];
function orders(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(JSON.stringify({ id: i, amount: (i * 37) % 1000, country: COUNTRIES[i % COUNTRIES.length] }));
  return out;
}


const bench: BenchCase = {
  name: 'choice-recipients',
  description: 'JSON order -> parse -> content-based router: big orders to a static recipient list (2), NL orders to a computed recipient list (2), others to one endpoint',
  async run({ quick }) {
    const n = quick ? 100_000 : 500_000;
    const input = orders(10_000);

    // hand-written baseline: the same decisions and deliveries (the same sink as busbar's, the
    // NL recipient computed from the order as the route computes it), no framework
    const base = new Tally();
    const baseline = (count = n): void => {
      for (let i = 0; i < count; i++) {
        const o = JSON.parse(input[i % input.length]!) as Order;
        if (o.amount > 400) {
          base.add('big', o);
          base.add('audit', o);
        } else if (o.country === 'NL') {
          for (const r of [o.country.toLowerCase(), 'audit']) base.add(r, o);
        } else base.add('other', o);
      }
    };

    const counts = new Tally();
    const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [countingAdapter(counts)] });
    engine.addRoutes(
      from<string>('direct:orders')
        .routeId('choice-recipients')
        .unmarshal<Order>('json')
        .choice((c) =>
          c
            .when((o) => o.amount > 400, (b) => b.recipientList(['count:big', 'count:audit']))
            .when((o) => o.country === 'NL', (b) => b.recipientList((o) => [`count:${o.country.toLowerCase()}`, 'count:audit']))
            .otherwise((b) => b.to('count:other')),
        ),
    );
    await engine.start();
    const busbar = async (count = n): Promise<void> => {
      for (let i = 0; i < count; i++) await engine.send('direct:orders', input[i % input.length]!);
    };

    const { baselinePerS, busbarPerS, heapGrowthMb } = await sideBySide(n, baseline, busbar);
    for (const k of ['big', 'audit', 'nl', 'other']) {
      if (counts.get(k) !== base.get(k)) throw new Error(`busbar and baseline delivered differently to ${k}: ${counts.get(k)} vs ${base.get(k)}`);
    }
    if (counts.get('big') + counts.get('nl') + counts.get('other') !== n * 4) throw new Error('bench sanity check failed: not every message was delivered');
    // bytes allocated per message, each side once more (after the deliveries were checked)
    const busbarAlloc = await allocatedPerMessage(busbar, n);
    const baselineAlloc = await allocatedPerMessage(baseline, n);
    await engine.stop();
    return {
      busbar_per_s: busbarPerS,
      baseline_per_s: baselinePerS,
      ...perMessageFigures(busbarPerS, baselinePerS),
      busbar_alloc_bytes_per_msg: busbarAlloc,
      baseline_alloc_bytes_per_msg: baselineAlloc,
      heap_growth_mb: heapGrowthMb,
      messages: n,
    };
  },
};

export default bench;
