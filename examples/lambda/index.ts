/**
 * Lambda and Kappa over busbar's event log, end to end, with one command:
 *
 *   npm run example:lambda            (node --import tsx examples/lambda/index.ts [events=10000])
 *
 * sale events are appended to the log (`eventlog:sales`, 3 partitions, keyed by user); the
 * batch layer recomputes total sales per user from the whole log with mapReduce on worker
 * threads into SQLite and remembers the offsets it read up to; the speed layer (a process)
 * keeps a real-time view of what came after them; the serving layer (GET /totals on
 * 127.0.0.1) merges both. The speed layer is killed with kill -9 while events keep coming,
 * started again, replays from the batch's offsets, and the merged answer is exact again.
 * Then the Kappa form: drop the view, replay the log into it, same answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Engine } from '../../lib/index.js';
import { runBatch } from './batch-layer.js';
import { rebuildKappa } from './kappa.js';
import { appendSales, layout, logAdapter, logEnds, randomSales, type Layout } from './layout.js';
import { startServing, type Totals } from './serving-layer.js';
import type { Sale } from './sum-map.js';

export { runBatch, rebuildKappa, appendSales, layout, logAdapter, logEnds, randomSales, startServing, type Layout, type Totals, type Sale };

export interface SpeedLayer {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
}

/** Start the speed layer process; resolves once it serves its view. */
export function startSpeedLayer(dir: string): Promise<SpeedLayer> {
  const script = fileURLToPath(new URL('./speed-layer.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += String(d);
      const m = /ready (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), exited });
    });
    child.once('exit', (code) => reject(new Error(`the speed layer exited with ${code} before it was ready`)));
  });
}

/** Sum per user, computed directly from the events (what every view must equal). */
export function expectedTotals(sales: readonly Sale[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const s of sales) t[s.user] = (t[s.user] ?? 0) + s.amount;
  return t;
}

/** Ask the serving layer until it answers exactly, covering `ends` records per partition. */
export async function totalsCovering(url: string, ends: readonly number[], timeoutMs = 30_000): Promise<Totals> {
  const deadline = Date.now() + timeoutMs;
  let last: Totals | undefined;
  for (;;) {
    last = (await (await fetch(url)).json()) as Totals;
    if (last.exact && last.upTo.every((o, p) => o >= ends[p]!)) return last;
    if (Date.now() > deadline) throw new Error(`the serving layer did not cover ${ends.join(',')} in ${timeoutMs} ms: ${JSON.stringify({ ...last, totals: undefined })}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const same = (a: Record<string, number>, b: Record<string, number>): boolean =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'busbar-lambda-'));
  const l = layout(dir);
  const producer = new Engine({ logger: pino({ level: 'warn' }), adapters: [logAdapter(l)] });
  await producer.start();
  const sales: Sale[] = [];
  const t0 = Date.now();
  const say = (s: string): boolean => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}\n`);
  const append = async (k: number): Promise<void> => {
    const batch = randomSales(k);
    await appendSales(producer, batch);
    sales.push(...batch);
  };
  const ends = (): number[] => logEnds(l);
  let speed: SpeedLayer | undefined;
  const serving = await startServing(l);
  try {
    await append(n / 2);
    const batch = await runBatch(l);
    say(`batch layer: ${n / 2} events -> ${Object.keys(batch.totals).length} users, batch offsets ${batch.offsets.join(',')}`);
    speed = await startSpeedLayer(dir);
    serving.speedAt(speed.port);
    await append(n / 4);
    let t = await totalsCovering(serving.url, ends());
    say(`serving layer ${serving.url}: batch + speed up to ${t.upTo.join(',')}: ${same(t.totals, expectedTotals(sales)) ? 'exact' : 'NOT exact'}`);
    // kill -9 the speed layer while events keep coming
    const more = append(n / 4);
    await new Promise((r) => setTimeout(r, 50));
    speed.child.kill('SIGKILL');
    await speed.exited;
    serving.speedAt(undefined);
    await more;
    speed = await startSpeedLayer(dir);
    serving.speedAt(speed.port);
    t = await totalsCovering(serving.url, ends());
    say(`speed layer killed -9 and restarted (replayed from the batch offsets): ${same(t.totals, expectedTotals(sales)) ? 'exact' : 'NOT exact'}`);
    const kappa = await rebuildKappa(l);
    say(`Kappa: view dropped, rebuilt by replaying the log: ${same(kappa, expectedTotals(sales)) ? 'same answer' : 'DIFFERENT answer'}`);
  } finally {
    speed?.child.kill('SIGKILL');
    await serving.close();
    await producer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
