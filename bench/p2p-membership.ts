/**
 * The p2p membership figures at the issue's size (a soak script, not a spec; the suite's
 * spec/integration/p2p.spec.ts checks the same at 5 peers):
 *   - 20 peers on 127.0.0.1 converge (every peer sees the 19 others alive): time from the last
 *     peer's start;
 *   - a SIGKILLed peer is confirmed dead: time from the kill until every live peer says dead;
 *   - 0 false deaths while peers block their event loop for 200 ms (10 times).
 *
 *   node --import tsx bench/p2p-membership.ts [peers=20]
 *
 * Peers run 6 to a process (fewer Node boots on a small machine) plus one process with the
 * peer to kill and this script's own peer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import { createP2pAdapter, p2pPeer } from '../adapters/p2p/index.js';
import { Engine, from } from '../lib/index.js';

const TOTAL = Number(process.argv[2] ?? 20);
const SECRET = 'bench-membership-secret-0123456789';
const PER_PROC = 6;

interface Stats {
  name: string;
  members: Array<{ name: string; state: string }>;
  stats: { deaths: number; suspicions: number; refutations: number };
}

function startProc(name: string, count: number, seeds: string[]): Promise<{ proc: ChildProcess; names: string[] }> {
  let out = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', 'spec/fixtures/p2p/peer.ts'], { env: { ...process.env, P2P_NAME: name, P2P_COUNT: String(count), P2P_SEEDS: seeds.join(','), P2P_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'inherit'] });
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start`)), 120_000);
    proc.stdout!.on('data', () => {
      if (out.includes('ready ')) {
        clearTimeout(t);
        resolve({ proc, names: count === 1 ? [name] : Array.from({ length: count }, (_, i) => `${name}-${i}`) });
      }
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function poll(cond: () => Promise<boolean> | boolean, timeoutMs: number, step = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(step);
  }
  return false;
}

const local = new Engine({ name: 'bench', logger: pino({ level: 'silent' }), adapters: [createP2pAdapter({ secret: SECRET, name: 'bench' })] });
local.addRoutes(from('p2p:direct:stats.bench').to('log:x?level=trace'));
await local.start();
const node = p2pPeer(local)!;
const seed = node.address;

const others = TOTAL - 2; // this peer and the victim
const procs: Array<{ proc: ChildProcess; names: string[] }> = [];
const t0 = Date.now();
const groups: number[] = [];
for (let left = others; left > 0; left -= PER_PROC) groups.push(Math.min(PER_PROC, left));
procs.push(...(await Promise.all([...groups.map((n, i) => startProc(`g${i}`, n, [seed])), startProc('victim', 1, [seed])])));
const started = Date.now();
const names = procs.flatMap((p) => p.names);
const stats = (n: string): Promise<Stats | undefined> => local.request<Stats>(`p2p:direct:stats.${n}`, {}, { 'busbar.timeoutMs': 2000 }).catch(() => undefined);
const aliveIn = (s: Stats | undefined): number => s?.members.filter((m) => m.state === 'alive').length ?? -1;

const converged = await poll(async () => {
  if (node.members().filter((m) => m.state === 'alive').length !== TOTAL - 1) return false;
  const all = await Promise.all(names.map(stats));
  return all.every((s) => aliveIn(s) === TOTAL - 1);
}, 60_000, 50);
const convergeMs = Date.now() - started;
process.stdout.write(`  converged: ${converged} after ${convergeMs} ms\n`);

// failure detection: kill the victim, wait until every live peer says dead
const victim = procs.find((p) => p.names[0] === 'victim')!;
const killedAt = Date.now();
victim.proc.kill('SIGKILL');
let ourDeadMs = -1;
const offDead = node.onChange((m) => {
  if (m.name === 'victim' && m.state === 'dead' && ourDeadMs < 0) ourDeadMs = Date.now() - killedAt;
});
const live = names.filter((n) => n !== 'victim');
const allDead = await poll(async () => {
  if (node.members().find((m) => m.name === 'victim')?.state !== 'dead') return false;
  const all = await Promise.all(live.map(stats));
  return all.every((s) => s?.members.find((m) => m.name === 'victim')?.state === 'dead');
}, 30_000, 50);
const allDeadMs = Date.now() - killedAt;
offDead();

// false deaths: block the event loop of a whole process (6 peers) for 200 ms, 10 times
const deathsBefore = new Map<string, number>();
for (const n of live) deathsBefore.set(n, (await stats(n))?.stats.deaths ?? 0);
const ourDeathsBefore = node.stats().deaths;
const blocker = procs[0]!.names;
for (let i = 0; i < 10; i++) {
  await local.request(`p2p:direct:block.${blocker[0]}`, { ms: 200 }).catch((e: Error) => process.stdout.write(`  block ${i}: ${e.message}\n`));
  await sleep(300);
}
await sleep(2500);
let falseDeaths = node.stats().deaths - ourDeathsBefore;
for (const n of live) falseDeaths += ((await stats(n))?.stats.deaths ?? 0) - (deathsBefore.get(n) ?? 0);

process.stdout.write(
  [
    `p2p membership, ${TOTAL} peers on 127.0.0.1 (${groups.length + 1} processes + this one), load average ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`,
    `  processes started in ${started - t0} ms`,
    `  converged (every peer sees ${TOTAL - 1} alive): ${converged ? `${convergeMs} ms after the last start` : 'NOT within 60 s'}   goal < 2000 ms`,
    `  SIGKILLed peer confirmed dead: in our view ${ourDeadMs} ms, in every view ${allDead ? `${allDeadMs} ms` : 'NOT within 30 s'}   goal < 3000 ms`,
    `  false deaths while ${blocker.length} peers blocked their event loop 200 ms x10: ${falseDeaths}   goal 0`,
    '',
  ].join('\n'),
);
for (const p of procs) p.proc.kill('SIGKILL');
await local.stop({ timeoutMs: 2000 });
process.exit(0);
