// Load generator of the grpc-unary bench: a grpc-js client in its own process (it must not
// share the server's event loop), `window` unary calls in flight, bounded in count and time.
// Usage: node grpc-load.mjs <port> <proto> <count> <window> <maxSeconds>; prints {"calls","seconds","errors"}.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const [port, proto, countS, windowS, maxS] = process.argv.slice(2);
const count = Number(countS);
const window = Number(windowS);
const maxMs = Number(maxS) * 1000;
const def = protoLoader.loadSync(proto, { keepCase: true, longs: String, enums: String, defaults: true });
const Orders = grpc.loadPackageDefinition(def).shop.Orders;
const client = new Orders(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
const call = (i) => new Promise((resolve) => client.GetOrder({ id: String(i) }, (err) => resolve(err ? 1 : 0)));
// warm the connection
for (let i = 0; i < 200; i++) await call(i);
let next = 0;
let errors = 0;
const t0 = performance.now();
const lane = async () => {
  while (next < count && performance.now() - t0 < maxMs) errors += await call(next++);
};
await Promise.all(Array.from({ length: window }, lane));
const seconds = (performance.now() - t0) / 1000;
client.close();
console.log(JSON.stringify({ calls: next, seconds, errors }));
