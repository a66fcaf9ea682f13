import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { Engine, from } from '../../dist/lib/index.js';
import { createFileAdapter } from '../../dist/adapters/file/index.js';
import { tempDir } from '../../spec/helpers.js';
import { round, type BenchCase } from '../harness.js';

interface Order { id: number; amount: number; country: string }
interface Enriched extends Order { total: number }
const enrich = (o: Order): Enriched => ({ ...o, total: Math.round(o.amount * 121) / 100 });

function fill(inbox: string, n: number): void {
  mkdirSync(inbox, { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(inbox, `order-${i}.json`), JSON.stringify({ id: i, amount: (i * 37) % 1000, country: 'NL' }));
}

function count(dir: string): number {
  try {
    return readdirSync(dir).length;
  } catch {
    return 0;
  }
}

/** The hand-written loop: read, transform, write temp + rename, move the original. Sequential, as such loops are. */
async function baseline(root: string): Promise<void> {
  const inbox = join(root, 'in');
  const outbox = join(root, 'out');
  const done = join(inbox, '.done');
  mkdirSync(outbox, { recursive: true });
  mkdirSync(done, { recursive: true });
  for (const name of await readdir(inbox)) {
    if (name.startsWith('.')) continue;
    const o = JSON.parse(await readFile(join(inbox, name), 'utf8')) as Order;
    const tmp = join(outbox, `.${name}.tmp`);
    await writeFile(tmp, JSON.stringify(enrich(o)));
    await rename(tmp, join(outbox, name));
    await rename(join(inbox, name), join(done, name));
  }
}

async function busbar(root: string, n: number): Promise<void> {
  const engine = new Engine({ logger: pino({ level: 'warn' }), adapters: [createFileAdapter({ baseDir: root })] });
  engine.addRoutes(
    from<Buffer>('file:in?readLock=rename&delay=10&maxMessagesPerPoll=2000')
      .unmarshal<Order>('json')
      .transform(enrich)
      .marshal('json')
      .to('file:out'),
  );
  await engine.start();
  const deadline = Date.now() + 600_000;
  while (count(join(root, 'in/.done')) < n) {
    if (Date.now() > deadline) throw new Error('file-transfer: busbar did not finish within 10 minutes');
    await new Promise((r) => setTimeout(r, 20));
  }
  await engine.stop();
}

/** Files per second, and CPU (user + system, all threads) per file in microseconds: the figure a busy machine does not blur. */
async function timed(n: number, run: (root: string) => Promise<void>): Promise<{ perS: number; cpuUs: number }> {
  const t = tempDir('busbar-bench-file-');
  try {
    fill(join(t.path, 'in'), n);
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await run(t.path);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(c0);
    if (count(join(t.path, 'out')) !== n || count(join(t.path, 'in/.done')) !== n) throw new Error('file-transfer: not every file was transferred');
    return { perS: n / s, cpuUs: (cpu.user + cpu.system) / n };
  } finally {
    t.cleanup();
  }
}

const bench: BenchCase = {
  name: 'file-transfer',
  description: '10,000 small JSON files: read -> parse -> enrich -> JSON -> atomic write (temp + rename) to an outbox, original moved to .done/; vs a sequential hand-written fs loop',
  async run({ quick }) {
    const n = quick ? 2000 : 10_000;
    await timed(500, baseline);
    await timed(500, (root) => busbar(root, 500));
    let base = { perS: 0, cpuUs: 0 };
    let bus = { perS: 0, cpuUs: 0 };
    // alternate, best of 2 each: the machine is shared and noisy
    for (let r = 0; r < 2; r++) {
      const b = await timed(n, baseline);
      if (b.perS > base.perS) base = b;
      const x = await timed(n, (root) => busbar(root, n));
      if (x.perS > bus.perS) bus = x;
    }
    return {
      busbar_per_s: bus.perS,
      baseline_per_s: base.perS,
      files: n,
      busbar_ms_per_file: round(1000 / bus.perS, 3),
      baseline_ms_per_file: round(1000 / base.perS, 3),
      busbar_cpu_us_per_file: round(bus.cpuUs),
      baseline_cpu_us_per_file: round(base.cpuUs),
    };
  },
};

export default bench;
