import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Adapter } from '../../lib/adapter.js';
import { round, type BenchCase } from '../harness.js';

/**
 * Each side runs in its own child process so `peak_rss_mb` is the peak of the split alone
 * (a Node process with the tsx loader starts at about 70 MB; `rss_growth_mb` is what the
 * split added on top).
 */
const CHILD_FLAG = '--xml-stream-split-child';

interface ChildResult { count: number; amount: number; seconds: number; cpuSeconds: number; peakRssMb: number; startRssMb: number; readyRssMb: number; maxHeapUsedMb: number }

/** Memory once the side's modules are loaded and its objects built, before the first byte is read. */
let readyRss = 0;
let maxHeapUsed = 0;
function sampleHeap(): void {
  const h = process.memoryUsage().heapUsed;
  if (h > maxHeapUsed) maxHeapUsed = h;
}

async function generate(file: string, targetBytes: number): Promise<number> {
  const out = createWriteStream(file);
  out.write('<?xml version="1.0" encoding="UTF-8"?>\n<export xmlns:x="urn:example:ext"><meta><created>2026-11-24</created></meta><orders>\n');
  let written = 0;
  let i = 0;
  while (written < targetBytes) {
    let chunk = '';
    for (let k = 0; k < 1000; k++, i++) {
      chunk += `<order id="${String(i).padStart(8, '0')}"><customer>C-${i % 977}</customer><x:channel>web</x:channel><line sku="S-${i % 50}"><qty>${1 + (i % 5)}</qty></line><amount>${(i % 1000) + 0.5}</amount><note><![CDATA[handle <carefully> & quickly]]></note></order>\n`;
    }
    written += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end('</orders></export>\n');
  await once(out, 'finish');
  return i;
}

async function countingAdapter(totals: { count: number; amount: number }): Promise<Adapter> {
  const { Type } = await import('@sinclair/typebox');
  return {
    scheme: 'count',
    description: 'bench sink',
    optionsSchema: Type.Object({}, { additionalProperties: false }),
    createProducer() {
      return {
        send(msg) {
          totals.count++;
          totals.amount += msg.body as number;
          return Promise.resolve(undefined);
        },
      };
    },
  };
}

/** Sets up the side (imports, engine) and returns the timed part. */
async function busbarSide(file: string): Promise<() => Promise<{ count: number; amount: number }>> {
  // only the modules this side needs, so the child's memory is the split's, not the whole library's
  const [{ Engine }, { from }, { xmlElements }, { pino }] = await Promise.all([import('../../lib/engine.js'), import('../../lib/builder.js'), import('../../lib/streaming.js'), import('pino')]);
  const totals = { count: 0, amount: 0 };
  const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [await countingAdapter(totals)] });
  engine.addRoutes(
    from<{ amount: string }>('direct:order')
      .routeId('order-items')
      .transform((o) => Number(o.amount))
      .to('count:orders'),
  );
  await engine.start();
  return async () => {
    readyRss = process.memoryUsage().rss;
    let n = 0;
    for await (const order of xmlElements(createReadStream(file, { highWaterMark: 64 * 1024 }), 'export.orders.order')) {
      await engine.send('direct:order', order);
      if (++n % 10_000 === 0) sampleHeap();
    }
    await engine.stop();
    return totals;
  };
}

/** Hand-written streaming split: cut `<order ...>...</order>` out of the chunks, parse each with fast-xml-parser. */
async function baselineSide(file: string): Promise<() => Promise<{ count: number; amount: number }>> {
  const { XMLParser } = await import('fast-xml-parser');
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, cdataPropName: '#cdata' });
  return async () => {
    let count = 0;
    let amount = 0;
    let buf = '';
    readyRss = process.memoryUsage().rss;
    for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024, encoding: 'utf8' })) {
      if (count % 10_000 < 200) sampleHeap();
      buf += chunk as string;
      let from = 0;
      for (;;) {
        const start = buf.indexOf('<order ', from);
        if (start === -1) break;
        const end = buf.indexOf('</order>', start);
        if (end === -1) {
          from = start;
          break;
        }
        const doc = parser.parse(buf.slice(start, end + 8)) as { order: { amount: string } };
        count++;
        amount += Number(doc.order.amount);
        from = end + 8;
      }
      buf = buf.slice(from);
    }
    return { count, amount };
  };
}

async function child(): Promise<void> {
  const i = process.argv.indexOf(CHILD_FLAG);
  const side = process.argv[i + 1];
  const file = process.argv[i + 2]!;
  const startRssMb = process.memoryUsage().rss / 1048576;
  const run = side === 'busbar' ? await busbarSide(file) : await baselineSide(file);
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const r = await run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  const cpuSeconds = (c.user + c.system) / 1e6;
  const result: ChildResult = { ...r, seconds, cpuSeconds, peakRssMb: process.resourceUsage().maxRSS / 1024, startRssMb, readyRssMb: readyRss / 1048576, maxHeapUsedMb: maxHeapUsed / 1048576 };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function runChild(side: 'busbar' | 'baseline', file: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), CHILD_FLAG, side, file], { maxBuffer: 1 << 20, timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${side} child failed: ${err.message}\n${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as ChildResult);
      } catch (e) {
        reject(new Error(`${side} child printed no result: ${stdout}\n${stderr} (${(e as Error).message})`));
      }
    });
  });
}

const bench: BenchCase = {
  name: 'xml-stream-split',
  description: 'A generated 50 MB XML file split into <order> elements with streaming (xmlElements) and sent through a route; baseline: a hand-written chunked indexOf splitter + fast-xml-parser. peak_rss_mb is the busbar child process\'s peak.',
  async run({ quick }) {
    const file = join(tmpdir(), `busbar-xml-split-${process.pid}.xml`);
    try {
      const generated = await generate(file, quick ? 5 * 1024 * 1024 : 50 * 1024 * 1024);
      const mb = statSync(file).size / 1048576;
      const busbar = await runChild('busbar', file);
      const baseline = await runChild('baseline', file);
      if (busbar.count !== generated || baseline.count !== generated) throw new Error(`split counts differ: busbar ${busbar.count}, baseline ${baseline.count}, generated ${generated}`);
      if (Math.abs(busbar.amount - baseline.amount) > 1e-6 * Math.abs(baseline.amount)) throw new Error('busbar and baseline read different amounts');
      return {
        busbar_per_s: busbar.count / busbar.seconds,
        baseline_per_s: baseline.count / baseline.seconds,
        file_mb: round(mb, 1),
        elements: generated,
        busbar_mb_per_s: round(mb / busbar.seconds, 1),
        // CPU time is less disturbed than wall time by other processes on a shared machine
        busbar_cpu_us_per_element: round((busbar.cpuSeconds * 1e6) / busbar.count, 2),
        baseline_cpu_us_per_element: round((baseline.cpuSeconds * 1e6) / baseline.count, 2),
        cpu_ratio: round(baseline.cpuSeconds / busbar.cpuSeconds, 2),
        peak_rss_mb: round(busbar.peakRssMb, 1),
        rss_at_start_mb: round(busbar.readyRssMb, 1),
        rss_growth_mb: round(busbar.peakRssMb - busbar.readyRssMb, 1),
        max_heap_used_mb: round(busbar.maxHeapUsedMb, 1),
        baseline_peak_rss_mb: round(baseline.peakRssMb, 1),
      };
    } finally {
      rmSync(file, { force: true });
    }
  },
};

export default bench;

if (process.argv.includes(CHILD_FLAG)) await child();
