import { Ajv } from 'ajv';
import { XMLParser } from 'fast-xml-parser';
import { pino } from 'pino';
import { filter, map, share, Subject } from 'rxjs';
import { Engine, from } from '../dist/lib/index.js';
import { allocatedPerMessage, countingAdapter, perSecond, round, Tally, type BenchResult } from './harness.js';

/**
 * The peer comparison (issue #18): one order workload, three implementations in the same
 * run, every side's routing checked against the expected distribution.
 *   busbar     - a route as a user writes it: from(direct:) -> codec -> validate -> transform
 *                -> choice -> marshal('json') -> to(...)
 *   hand-written - a plain loop with the same libraries
 *   rxjs       - a Subject -> map/filter pipeline, the outputs as three filtered branches
 * Workload: 100 distinct order documents cycled; parse (JSON.parse or fast-xml-parser
 * `{ ignoreAttributes: false, parseTagValue: true }`), ajv (order.id integer, customer
 * string, amount number), enrich (total = amount * 1.21), route amount > 400 -> big, else
 * country ES -> es, else other; each output marshalled to JSON and counted.
 */
export type PeerFormat = 'json' | 'xml';

interface Order { id: number; customer: string; amount: number; country: string }
interface Doc { order: Order }
interface Enriched extends Order { total: number }

const DOCS = 100;

export function orderFields(i: number): Order {
  return { id: i, customer: `C${i % 7}`, amount: (i * 13.7) % 500, country: i % 3 ? 'ES' : 'DE' };
}

export function documents(format: PeerFormat): string[] {
  const out: string[] = [];
  for (let i = 0; i < DOCS; i++) {
    const o = orderFields(i);
    out.push(
      format === 'json'
        ? JSON.stringify({ order: o })
        : `<order><id>${o.id}</id><customer>${o.customer}</customer><amount>${o.amount}</amount><country>${o.country}</country></order>`,
    );
  }
  return out;
}

export const orderSchema = {
  type: 'object',
  required: ['order'],
  properties: {
    order: {
      type: 'object',
      required: ['id', 'customer', 'amount'],
      properties: { id: { type: 'integer' }, customer: { type: 'string' }, amount: { type: 'number' } },
    },
  },
} as const;

const enrich = (d: Doc): Enriched => ({ ...d.order, total: d.order.amount * 1.21 });
const isBig = (e: Enriched): boolean => e.amount > 400;
const isEs = (e: Enriched): boolean => e.country === 'ES';

type Counts = { big: number; es: number; other: number };

/** What every side must have counted for `n` messages. */
export function expected(n: number): Counts {
  const per: Counts = { big: 0, es: 0, other: 0 };
  for (let i = 0; i < DOCS; i++) {
    const o = orderFields(i);
    if (o.amount > 400) per.big++;
    else if (o.country === 'ES') per.es++;
    else per.other++;
  }
  const full = Math.floor(n / DOCS);
  const out: Counts = { big: per.big * full, es: per.es * full, other: per.other * full };
  for (let i = 0; i < n % DOCS; i++) {
    const o = orderFields(i);
    if (o.amount > 400) out.big++;
    else if (o.country === 'ES') out.es++;
    else out.other++;
  }
  return out;
}

function check(side: string, tally: Tally, want: Counts): void {
  const got: Counts = { big: tally.get('big'), es: tally.get('es'), other: tally.get('other') };
  if (got.big !== want.big || got.es !== want.es || got.other !== want.other) {
    throw new Error(`${side} routed wrongly: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  }
}

export async function runPeer(format: PeerFormat, quick: boolean): Promise<BenchResult> {
  const n = quick ? 50_000 : format === 'json' ? 500_000 : 200_000;
  const rounds = quick ? 2 : 4;
  const input = documents(format);
  const parseXml = new XMLParser({ ignoreAttributes: false, parseTagValue: true });
  const parse: (s: string) => unknown = format === 'json' ? (s) => JSON.parse(s) : (s) => parseXml.parse(s);

  // ------------------------------------------------------------ hand-written loop
  const validateBase = new Ajv().compile(orderSchema);
  // every side's outputs go to the same sink (a Tally, what busbar's count: endpoints are)
  const base = new Tally();
  const baseline = (count = n): void => {
    for (let i = 0; i < count; i++) {
      const doc = parse(input[i % DOCS]!);
      if (!validateBase(doc)) throw new Error('invalid order');
      const e = enrich(doc as Doc);
      const out = JSON.stringify(e);
      if (isBig(e)) base.add('big', out);
      else if (isEs(e)) base.add('es', out);
      else base.add('other', out);
    }
  };

  // ------------------------------------------------------------ rxjs pipeline
  const validateRx = new Ajv().compile(orderSchema);
  const rx = new Tally();
  const source = new Subject<string>();
  const enriched = source.pipe(
    map(parse),
    map((doc) => {
      if (!validateRx(doc)) throw new Error('invalid order');
      return doc as Doc;
    }),
    map(enrich),
    share(),
  );
  enriched.pipe(filter(isBig), map((e) => JSON.stringify(e))).subscribe((s) => rx.add('big', s));
  enriched.pipe(filter((e) => !isBig(e) && isEs(e)), map((e) => JSON.stringify(e))).subscribe((s) => rx.add('es', s));
  enriched.pipe(filter((e) => !isBig(e) && !isEs(e)), map((e) => JSON.stringify(e))).subscribe((s) => rx.add('other', s));
  const rxjs = (count = n): void => {
    for (let i = 0; i < count; i++) source.next(input[i % DOCS]!);
  };

  // ------------------------------------------------------------ busbar, as a user writes it
  const counts = new Tally();
  const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [countingAdapter(counts)] });
  const start = from<string>(`direct:peer-${format}`).routeId(`peer-${format}`);
  const decoded = format === 'json' ? start.unmarshal('json') : start.convert('xml', 'json', { from: { parseNumbers: true } });
  engine.addRoutes(
    decoded
      .validate<Doc>(orderSchema)
      .transform(enrich)
      .choice<string>((c) =>
        c
          .when(isBig, (b) => b.marshal('json').to('count:big'))
          .when(isEs, (b) => b.marshal('json').to('count:es'))
          .otherwise((b) => b.marshal('json').to('count:other')),
      ),
  );
  await engine.start();
  const uri = `direct:peer-${format}`;
  const busbar = async (count = n): Promise<void> => {
    for (let i = 0; i < count; i++) await engine.send(uri, input[i % DOCS]!);
  };

  // one warm-up run each, then rounds rotating which side goes first (a noisy neighbour on
  // the shared 2-core machine then hits every side alike); best round per side
  const sides = [baseline, rxjs, busbar];
  const best = [0, 0, 0];
  // CPU time per message as well: on a machine shared with other work it is far less
  // disturbed than wall time (what a busy neighbour steals shows in wall time only)
  const cpu = [Infinity, Infinity, Infinity];
  for (const s of sides) await s();
  let heapBefore = 0;
  let heapAfter = 0;
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < sides.length; k++) {
      const j = (k + r) % sides.length;
      if (j === 2) heapBefore = process.memoryUsage().heapUsed;
      const c0 = process.cpuUsage();
      best[j] = Math.max(best[j]!, await perSecond(n, sides[j]!));
      const c = process.cpuUsage(c0);
      cpu[j] = Math.min(cpu[j]!, (c.user + c.system) / n);
      if (j === 2) heapAfter = process.memoryUsage().heapUsed;
    }
  }
  const runs = rounds + 1;
  const want = expected(n * runs);
  check('hand-written', base, want);
  check('rxjs', rx, want);
  check('busbar', counts, want);
  for (const t of [base, rx, counts]) if (typeof t.last !== 'string' || !t.last.startsWith('{"id":')) throw new Error(`outputs are not the enriched JSON: ${String(t.last)}`);
  // bytes allocated per message, each side once more (after the counts were checked)
  const alloc: number[] = [];
  for (const s of sides) alloc.push(await allocatedPerMessage(s, n));
  await engine.stop();
  const [baselinePerS, rxjsPerS, busbarPerS] = best as [number, number, number];
  return {
    busbar_per_s: busbarPerS,
    baseline_per_s: baselinePerS,
    rxjs_per_s: Math.round(rxjsPerS),
    ratio_rxjs: round(busbarPerS / rxjsPerS, 2),
    rxjs_ratio: round(rxjsPerS / baselinePerS, 2),
    busbar_us_per_msg: round(1e6 / busbarPerS, 3),
    baseline_us_per_msg: round(1e6 / baselinePerS, 3),
    rxjs_us_per_msg: round(1e6 / rxjsPerS, 3),
    busbar_cpu_us_per_msg: round(cpu[2]!, 3),
    baseline_cpu_us_per_msg: round(cpu[0]!, 3),
    rxjs_cpu_us_per_msg: round(cpu[1]!, 3),
    cpu_ratio: round(cpu[0]! / cpu[2]!, 2),
    cpu_ratio_rxjs: round(cpu[1]! / cpu[2]!, 2),
    busbar_alloc_bytes_per_msg: alloc[2]!,
    baseline_alloc_bytes_per_msg: alloc[0]!,
    rxjs_alloc_bytes_per_msg: alloc[1]!,
    heap_delta_mb: round((heapAfter - heapBefore) / 1048576, 1),
    messages: n,
    distribution: `big ${want.big / runs} es ${want.es / runs} other ${want.other / runs}`,
  };
}
