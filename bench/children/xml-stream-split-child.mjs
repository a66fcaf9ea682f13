// One side of the `xml-stream-split` bench, run by plain Node on the compiled package
// (dist/), as users run it: no TypeScript loader in the process, so its peak RSS is the
// split's and the runtime's, not a compiler's. Prints one JSON line with the figures.
import { createReadStream } from 'node:fs';

const [side, file] = process.argv.slice(2);
let readyRss = 0;
let maxHeapUsed = 0;
const sampleHeap = () => {
  const h = process.memoryUsage().heapUsed;
  if (h > maxHeapUsed) maxHeapUsed = h;
};

async function busbarSide() {
  const { Engine, from, xmlElements } = await import('../../dist/lib/index.js');
  const { pino } = await import('pino');
  const totals = { count: 0, amount: 0 };
  const sink = {
    scheme: 'count',
    description: 'bench sink',
    optionsSchema: { type: 'object', properties: {}, additionalProperties: false },
    createProducer: () => ({
      send(msg) {
        totals.count++;
        totals.amount += msg.body;
        return Promise.resolve(undefined);
      },
    }),
  };
  const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [sink] });
  engine.addRoutes(from('direct:order').routeId('order-items').transform((o) => Number(o.amount)).to('count:orders'));
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

// hand-written streaming split: cut `<order ...>...</order>` out of the chunks, parse each with fast-xml-parser
async function baselineSide() {
  const { XMLParser } = await import('fast-xml-parser');
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, cdataPropName: '#cdata' });
  return async () => {
    let count = 0;
    let amount = 0;
    let buf = '';
    readyRss = process.memoryUsage().rss;
    for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024, encoding: 'utf8' })) {
      if (count % 10_000 < 200) sampleHeap();
      buf += chunk;
      let from = 0;
      for (;;) {
        const start = buf.indexOf('<order ', from);
        if (start === -1) break;
        const end = buf.indexOf('</order>', start);
        if (end === -1) {
          from = start;
          break;
        }
        const doc = parser.parse(buf.slice(start, end + 8));
        count++;
        amount += Number(doc.order.amount);
        from = end + 8;
      }
      buf = buf.slice(from);
    }
    return { count, amount };
  };
}

const startRssMb = process.memoryUsage().rss / 1048576;
const run = side === 'busbar' ? await busbarSide() : await baselineSide();
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
const r = await run();
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const c = process.cpuUsage(c0);
process.stdout.write(
  `${JSON.stringify({ ...r, seconds, cpuSeconds: (c.user + c.system) / 1e6, peakRssMb: process.resourceUsage().maxRSS / 1024, startRssMb, readyRssMb: readyRss / 1048576, maxHeapUsedMb: maxHeapUsed / 1048576 })}\n`,
);
