// Child process of reload.spec.ts (run with --expose-gc): reloads a .ts routes file N times,
// each version different, and prints the heap retained after forced GC between reload 100 and N.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Engine } from '../../../lib/engine.js';
import { routesFileReloader } from '../../../lib/management/reload.js';

const [dir, count] = process.argv.slice(2);
const N = Number(count ?? 1000);
const file = join(dir!, `heap-${process.pid}.ts`);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const pad = 'x'.repeat(2000);
const write = (i: number): void =>
  writeFileSync(
    file,
    `import { defineRoutes, from } from 'busbar';\nconst pad = '${pad}';\nexport default defineRoutes({ routes: [\n  from('queue:in').routeId('r').process((msg) => ({ ...msg, body: String(msg.body) + pad.length + ${i} })).to('mock:out-${i % 2}'),\n  from('queue:other').routeId('same').to('mock:same'),\n] });\n`,
  );
const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
try {
  const engine = new Engine({ logger: pino({ level: 'silent' }) });
  write(0);
  const reload = routesFileReloader(engine, file);
  await reload();
  await engine.start();
  let changed = 0;
  let base = 0;
  for (let i = 1; i <= N; i++) {
    write(i);
    const r = await reload();
    if (r.changed.length === 1 && r.unchanged.length === 1) changed++;
    if (i === 100) base = heap();
  }
  const end = heap();
  await engine.stop();
  process.stdout.write(`${JSON.stringify({ reloads: N, changed, growthBytes: end - base, baseBytes: base, endBytes: end })}\n`);
} finally {
  rmSync(file, { force: true });
}
