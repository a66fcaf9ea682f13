import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execFileSync, spawnSync } from 'node:child_process';
import type { BenchCase } from './harness.js';

// `npm run bench` runs every case; `npm run bench -- <case> [<case>...]` runs some; `--quick` shrinks them.
const here = dirname(fileURLToPath(import.meta.url));

/**
 * The benchmarks' own RabbitMQ node, apart from the tests' (another port and node name), with
 * its state in memory (tmpfs) where the machine has one. Both sides of every amqp case publish
 * persistent messages, and on a VM disk each broker fsync takes ~20 ms with spikes well past
 * that: with a disk-backed broker both sides wait on the same fsyncs and the figure measures
 * the disk, not the client. Set BUSBAR_AMQP_URL to measure against a broker of your own.
 */
const benchRabbit: Record<string, string> = {
  BUSBAR_AMQP_PORT: process.env.BUSBAR_BENCH_AMQP_PORT ?? '5682',
  BUSBAR_RABBITMQ_NODENAME: 'busbar-bench@localhost',
  BUSBAR_SERVICES_DIR: existsSync('/dev/shm') ? '/dev/shm/busbar-bench' : '/tmp/busbar-bench',
};
const ownBroker = process.env.BUSBAR_AMQP_URL === undefined;
if (ownBroker) process.env.BUSBAR_AMQP_URL = `amqp://guest:guest@127.0.0.1:${benchRabbit.BUSBAR_AMQP_PORT}`;
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const wanted = args.filter((a) => !a.startsWith('--'));

const cases: BenchCase[] = [];
for (const f of readdirSync(join(here, 'cases')).filter((f) => f.endsWith('.ts')).sort()) {
  const mod = (await import(pathToFileURL(join(here, 'cases', f)).href)) as { default: BenchCase };
  cases.push(mod.default);
}
const unknown = wanted.filter((w) => !cases.some((c) => c.name === w));
if (unknown.length) {
  console.error(`unknown bench case(s): ${unknown.join(', ')}; known: ${cases.map((c) => c.name).join(', ')}`);
  process.exit(2);
}
const selected = wanted.length ? cases.filter((c) => wanted.includes(c.name)) : cases;
const started = new Set<string>();
let failed = false;
for (const c of selected) {
  for (const server of c.requires ?? []) {
    if (started.has(server)) continue;
    const amqp = server === 'rabbitmq' || server === 'rabbitmq2';
    if (amqp && !ownBroker) continue; // the brokers at BUSBAR_AMQP_URL (and BUSBAR_AMQP2_URL) are the caller's
    // rabbitmq2, the second bench broker (two-broker bridges): rabbitmq-second.sh puts it on port + 1, with its own node name and state dir
    const env = amqp ? { ...process.env, ...benchRabbit } : process.env;
    const script = join(here, '..', 'scripts', server === 'rabbitmq' ? 'rabbitmq.sh' : server === 'rabbitmq2' ? 'rabbitmq-second.sh' : server === 'valgrind' ? 'valgrind.sh' : 'postgres.sh');
    // the bench broker is stopped again at the end if this run started it
    if (amqp && spawnSync('bash', [script, 'status'], { env, stdio: 'ignore' }).status !== 0) {
      process.on('exit', () => spawnSync('bash', [script, 'stop'], { env, stdio: 'ignore' }));
    }
    execFileSync('bash', [script, 'start'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    started.add(server);
  }
  try {
    const r = await c.run({ quick });
    const ratio = Math.round((r.busbar_per_s / r.baseline_per_s) * 100) / 100;
    const { busbar_per_s, baseline_per_s, ...extra } = r;
    console.log(JSON.stringify({ case: c.name, busbar_per_s: Math.round(busbar_per_s), baseline_per_s: Math.round(baseline_per_s), ratio, ...extra }));
  } catch (err) {
    failed = true;
    console.log(JSON.stringify({ case: c.name, error: (err as Error).message }));
  }
}
process.exit(failed ? 1 : 0);
