import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { Engine, from, type Adapter, type Message } from '../../dist/lib/index.js';
import { sideBySide, round, type BenchCase } from '../harness.js';

interface Item { sku: string; qty: number; price: number }
interface Line extends Item { total: number }

const BATCH = 1000;

function batch(seed: number): Item[] {
  const out: Item[] = [];
  for (let i = 0; i < BATCH; i++) out.push({ sku: `S${(seed + i) % 977}`, qty: 1 + ((seed + i) % 5), price: ((seed * 31 + i * 7) % 100) + 0.5 });
  return out;
}

/** A sink that resolves one waiter per aggregate received (no recording, so memory stays flat). */
function sinkAdapter(onAggregate: (msg: Message) => void): Adapter {
  return {
    scheme: 'sink',
    description: 'bench sink',
    optionsSchema: Type.Object({}, { additionalProperties: false }),
    createProducer() {
      return {
        send(msg) {
          onAggregate(msg);
          return Promise.resolve(undefined);
        },
      };
    },
  };
}

const line = (i: Item): Line => ({ ...i, total: i.qty * i.price });

const bench: BenchCase = {
  name: 'split-aggregate',
  description: 'split 1,000-item batches -> transform each item -> aggregate the batch back (fromSplit completion); items per second',
  async run({ quick }) {
    const batches = quick ? 30 : 200;
    const inputs = Array.from({ length: 16 }, (_, i) => batch(i * 1000));

    // hand-written baseline: the same structure without the framework: parts with index /
    // size / last envelopes, a correlation map of open groups, completion when all parts are in
    let baseSum = 0;
    const baseline = async (): Promise<void> => {
      const groups = new Map<string, { parts: Line[]; size: number }>();
      for (let b = 0; b < batches; b++) {
        const items = inputs[b % inputs.length]!;
        const key = `batch-${b}`;
        for (let i = 0; i < items.length; i++) {
          const part = { correlationId: key, index: i, size: items.length, last: i === items.length - 1, body: items[i]! };
          const body = line(part.body);
          let g = groups.get(part.correlationId);
          if (!g) groups.set(part.correlationId, (g = { parts: [], size: part.size }));
          g.parts.push(body);
          if (g.parts.length === g.size) {
            groups.delete(part.correlationId);
            baseSum += g.parts.length;
          }
        }
        await Promise.resolve(); // one async hand-off per batch, as a real source would have
      }
    };

    let got = 0;
    let waiter: (() => void) | undefined;
    const engine = new Engine({
      logger: pino({ level: 'silent' }),
      adapters: [
        sinkAdapter((msg) => {
          got += (msg.body as Line[]).length;
          const w = waiter;
          waiter = undefined;
          w?.();
        }),
      ],
    });
    engine.addRoutes(
      from<Item[]>('direct:batches')
        .routeId('split-aggregate')
        .split()
        .transform(line)
        .aggregate<Line[]>({ fromSplit: true })
        .to('sink:out'),
    );
    await engine.start();
    const busbar = async (): Promise<void> => {
      for (let b = 0; b < batches; b++) {
        const done = new Promise<void>((r) => (waiter = r));
        await engine.send('direct:batches', inputs[b % inputs.length]!);
        await done;
      }
    };

    const items = batches * BATCH;
    const { baselinePerS, busbarPerS, heapGrowthMb } = await sideBySide(items, baseline, busbar);
    await engine.stop();
    if (got !== items * 4 || baseSum !== items * 4) throw new Error(`bench sanity check failed: busbar aggregated ${got}, baseline ${baseSum}, expected ${items * 4}`);
    return {
      busbar_per_s: busbarPerS,
      baseline_per_s: baselinePerS,
      busbar_batches_per_s: round(busbarPerS / BATCH, 1),
      busbar_us_per_item: round(1e6 / busbarPerS, 3),
      heap_growth_mb: heapGrowthMb,
      items,
    };
  },
};

export default bench;
