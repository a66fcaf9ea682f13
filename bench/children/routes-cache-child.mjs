// One side of the routes-cache bench, run under cachegrind: `size` routes (or, by hand, `size`
// handlers found by their URI), `msgs` messages sent round-robin across them, then exit.
import { pino } from 'pino';
import { Engine, from } from '../../dist/lib/index.js';

const [side, sizeArg, msgsArg] = process.argv.slice(2);
const size = Number(sizeArg);
const msgs = Number(msgsArg);
const uris = Array.from({ length: size }, (_, i) => `direct:r${i}`);
const body = { n: 1 };
let delivered = 0;

if (side === 'busbar') {
  const sink = { scheme: 'count', description: 'bench sink', optionsSchema: { type: 'object', properties: {}, additionalProperties: false }, createProducer: () => ({ send: () => void delivered++ }) };
  const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [sink] });
  for (let i = 0; i < size; i++) engine.addRoutes(from(`direct:r${i}`).routeId(`r${i}`).transform((b) => ({ n: b.n + 1 })).to('count:routes'));
  await engine.start();
  for (let i = 0; i < msgs; i++) await engine.send(uris[i % size], body);
  await engine.stop();
} else {
  // by hand, as the scale bench's hand row: a handler per URI with its own closure and counter
  const handlers = new Map();
  for (let i = 0; i < size; i++) handlers.set(`direct:r${i}`, { received: 0, fn: (b) => ({ n: b.n + 1 }) });
  for (let i = 0; i < msgs; i++) {
    const h = handlers.get(uris[i % size]);
    h.received++;
    if (h.fn(body).n === 2) delivered++;
    await undefined;
  }
}
if (delivered !== msgs) throw new Error(`${side}: ${delivered} deliveries for ${msgs} messages`);
