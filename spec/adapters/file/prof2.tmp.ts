import { mkdirSync, writeFileSync, readdirSync } from 'node:fs';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { Engine, from } from '../../../lib/index.js';
import { createFileAdapter } from '../../../adapters/file/index.js';
import { tempDir } from '../../helpers.js';
const n = 3000;
function setup() { const t = tempDir('prof-'); mkdirSync(join(t.path, 'in')); for (let i = 0; i < n; i++) writeFileSync(join(t.path, 'in', `o-${i}.json`), JSON.stringify({ id: i, amount: i % 1000 })); return t; }
async function bus(rl: string) {
  const t = setup();
  const engine = new Engine({ logger: pino({ level: 'warn' }), adapters: [createFileAdapter({ baseDir: t.path })] });
  engine.addRoutes(from<Buffer>(`file:in?readLock=${rl}&delay=10&maxMessagesPerPoll=2000`).unmarshal<{ amount: number }>('json').transform((o) => ({ ...o, total: o.amount * 1.21 })).marshal('json').to('file:out'));
  const c0 = process.cpuUsage(); const t0 = Date.now();
  await engine.start();
  const c = () => { try { return readdirSync(join(t.path, 'in/.done')).length } catch { return 0 } };
  while (c() < n) await new Promise((r) => setTimeout(r, 20));
  const cu = process.cpuUsage(c0); const ms = Date.now() - t0;
  console.log(rl, 'files/s', Math.round(n / (ms / 1000)), 'cpu us/file user', Math.round(cu.user / n), 'sys', Math.round(cu.system / n));
  await engine.stop(); t.cleanup();
}
async function base() {
  const t = setup(); const root = t.path; const inbox = join(root, 'in'); const outbox = join(root, 'out'); const done = join(inbox, '.done');
  mkdirSync(outbox); mkdirSync(done);
  const c0 = process.cpuUsage(); const t0 = Date.now();
  for (const name of await readdir(inbox)) { if (name.startsWith('.')) continue; const o = JSON.parse(await readFile(join(inbox, name), 'utf8')); const tmp = join(outbox, `.${name}.tmp`); await writeFile(tmp, JSON.stringify({ ...o, total: o.amount * 1.21 })); await rename(tmp, join(outbox, name)); await rename(join(inbox, name), join(done, name)); }
  const cu = process.cpuUsage(c0); const ms = Date.now() - t0;
  console.log('baseline files/s', Math.round(n / (ms / 1000)), 'cpu us/file user', Math.round(cu.user / n), 'sys', Math.round(cu.system / n));
  t.cleanup();
}
for (let i = 0; i < 3; i++) { await base(); process.env.SAMEDIR=''; await bus('rename'); process.env.SAMEDIR='1'; await bus('rename'); }
