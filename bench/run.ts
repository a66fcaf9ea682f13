import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execFileSync } from 'node:child_process';
import type { BenchCase } from './harness.js';

// `npm run bench` runs every case; `npm run bench -- <case> [<case>...]` runs some; `--quick` shrinks them.
const here = dirname(fileURLToPath(import.meta.url));
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
    execFileSync('bash', [join(here, '..', 'scripts', server === 'rabbitmq' ? 'rabbitmq.sh' : 'postgres.sh'), 'start'], { stdio: ['ignore', 'ignore', 'inherit'] });
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
