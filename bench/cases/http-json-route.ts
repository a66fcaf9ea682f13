import { execFile } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { pino } from 'pino';
import { Engine, from } from '../../dist/lib/index.js';
import { boundPort, httpAdapter } from '../../dist/adapters/http/index.js';
import { round, type BenchCase } from '../harness.js';

interface Order { id: number; amount: number; country: string; items: number }
interface Enriched extends Order { total: number; vat: number; priority: 'high' | 'normal' }

const ORDER = JSON.stringify({ id: 42, amount: 812.5, country: 'NL', items: 3 });

function enrich(o: Order): Enriched {
  return { ...o, vat: o.amount * 0.21, total: o.amount * 1.21, priority: o.amount > 400 ? 'high' : 'normal' };
}

/** The baseline: the same work (read body, JSON.parse, enrich, JSON reply) on bare node:http. */
function bareServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let out: string;
      try {
        out = JSON.stringify(enrich(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Order));
      } catch {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

interface CannonResult { requests: { average: number; total: number }; non2xx: number; errors: number; timeouts: number; latency: { p99: number } }

/**
 * autocannon in its own process (the load generator must not share the server's event
 * loop), bounded in time (-d) and count (-a), 127.0.0.1 only.
 */
function cannon(port: number, seconds: number, maxRequests: number): Promise<CannonResult> {
  const bin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  const args = [bin, '-c', '32', '-d', String(seconds), '-O', String(maxRequests), '-m', 'POST', '-H', 'content-type=application/json', '-b', ORDER, '--json', `http://127.0.0.1:${port}/orders`];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { timeout: (seconds + 30) * 1000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
      if (err) return reject(err);
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as CannonResult);
      } catch (e) {
        reject(new Error(`autocannon output not JSON: ${stdout.slice(0, 200)} (${(e as Error).message})`));
      }
    });
  });
}

function fetchOnce(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/orders', headers: { 'content-type': 'application/json' } }, (res) => {
      let s = '';
      res.on('data', (d: Buffer) => (s += d.toString()));
      res.on('end', () => resolve(s));
    });
    req.on('error', reject);
    req.end(ORDER);
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const bench: BenchCase = {
  name: 'http-json-route',
  description: 'HTTP POST of a JSON order -> parse -> enrich (VAT, total, priority) -> JSON reply, under autocannon load (32 connections); busbar http: route vs bare node:http',
  async run({ quick }) {
    const seconds = quick ? 2 : 5;
    const rounds = quick ? 2 : 4;
    const cap = 2_000_000;
    const bare = await bareServer();
    const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [httpAdapter] });
    engine.addRoutes(from<Order>('http:/orders?port=0&method=POST').routeId('orders').transform(enrich));
    await engine.start();
    const port = boundPort(engine, 0)!;
    try {
      // both answer the same thing
      const [a, b] = [await fetchOnce(port), await fetchOnce(bare.port)];
      if (a !== b) throw new Error(`busbar and baseline answered differently: ${a} vs ${b}`);
      let best = { busbar: 0, baseline: 0, busbarP99: 0, baselineP99: 0, requests: 0 };
      // the server side's CPU time per request (both servers are in this process; the load
      // generator is not): steadier than requests/s on a loaded machine
      const cpu = { busbar: [] as number[], baseline: [] as number[] };
      const measured = async (side: 'busbar' | 'baseline'): Promise<CannonResult> => {
        const c0 = process.cpuUsage();
        const x = await cannon(side === 'busbar' ? port : bare.port, seconds, cap);
        const c = process.cpuUsage(c0);
        if (x.requests.total > 0) cpu[side].push((c.user + c.system) / x.requests.total);
        return x;
      };
      for (let r = 0; r < rounds; r++) {
        // rounds alternate which side goes first (A B, B A)
        let base: CannonResult;
        let bus: CannonResult;
        if (r % 2 === 0) {
          base = await measured('baseline');
          bus = await measured('busbar');
        } else {
          bus = await measured('busbar');
          base = await measured('baseline');
        }
        for (const [name, x] of [['baseline', base], ['busbar', bus]] as const) {
          if (x.non2xx || x.errors || x.timeouts) throw new Error(`${name}: ${x.non2xx} non-2xx, ${x.errors} errors, ${x.timeouts} timeouts`);
        }
        best = {
          busbar: Math.max(best.busbar, bus.requests.average),
          baseline: Math.max(best.baseline, base.requests.average),
          busbarP99: bus.requests.average >= best.busbar ? bus.latency.p99 : best.busbarP99,
          baselineP99: base.requests.average >= best.baseline ? base.latency.p99 : best.baselineP99,
          requests: best.requests + bus.requests.total + base.requests.total,
        };
      }
      const completed = engine.stats().routes.orders!.completed;
      if (completed < 1) throw new Error('busbar route completed nothing');
      return {
        busbar_per_s: best.busbar,
        baseline_per_s: best.baseline,
        busbar_cpu_us_per_req: round(median(cpu.busbar), 1),
        baseline_cpu_us_per_req: round(median(cpu.baseline), 1),
        cpu_ratio: round(median(cpu.baseline) / median(cpu.busbar), 2),
        busbar_p99_ms: round(best.busbarP99, 1),
        baseline_p99_ms: round(best.baselineP99, 1),
        connections: 32,
        seconds_per_run: seconds,
        requests: best.requests,
      };
    } finally {
      await engine.stop();
      bare.server.closeAllConnections();
      await new Promise((r) => bare.server.close(r));
    }
  },
};

export default bench;
