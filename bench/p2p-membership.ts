/**
 * The p2p membership figures at the issue's size (a soak script, not a spec; the suite's
 * spec/integration/p2p.spec.ts checks the same at 5 peers):
 *   - convergence: every peer's processes, libp2p nodes and keys are set up first (that start
 *     costs ~0.5 s of CPU per peer and says nothing about membership), then all join at once
 *     through one seed; per peer, the time from that moment until its view first holds all the
 *     others alive (p50 / max), and the CPU each process spent until then;
 *   - message rate per peer once converged (frames sent per second, p50 / max), the figure
 *     that must not grow with the cluster: run with 5 and with 20 peers to compare;
 *   - a SIGKILLed peer is confirmed dead: time from the kill until every live peer says dead;
 *   - 0 false deaths while peers block their event loop for 200 ms (10 times).
 *
 *   node --import tsx bench/p2p-membership.ts [peers=20] [rounds=1]
 *
 * Peers run 6 to a process (fewer Node boots on a small machine) plus one process with the
 * peer to kill and this script's own peer (the seed). Child processes take commands on stdin
 * (spec/fixtures/p2p/peer.ts, P2P_CONTROL=stdin), so measuring adds no p2p traffic.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { pino } from 'pino';
import { createP2pAdapter, p2pPeer, type P2pStats } from '../adapters/p2p/index.js';
import { Engine, from } from '../lib/index.js';

const TOTAL = Number(process.argv[2] ?? 20);
const ROUNDS = Number(process.argv[3] ?? 1);
const SECRET = 'bench-membership-secret-0123456789';
const PER_PROC = 6;

interface Stats {
  name: string;
  members: Array<{ name: string; state: string }>;
  stats: { deaths: number; suspicions: number; refutations: number };
}
interface Report {
  peers: Array<{ name: string; fullMs: number; stats: P2pStats }>;
  cpuToFullMs: number;
  cpuMs: number;
}
interface Proc {
  proc: ChildProcess;
  names: string[];
  report(): Promise<Report>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => loadavg()[0]!.toFixed(1);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};

async function startProc(name: string, count: number): Promise<Proc> {
  let out = '';
  const waiting: Array<(r: Report) => void> = [];
  // BENCH_CPU_PROF=DIR: the first group's process writes a CPU profile there (node --cpu-prof)
  const prof = process.env.BENCH_CPU_PROF && name === 'g0' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const proc = spawn(process.execPath, [...prof, '--import', 'tsx', 'spec/fixtures/p2p/peer.ts'], {
    env: { ...process.env, P2P_NAME: name, P2P_COUNT: String(count), P2P_SEEDS: '', P2P_SECRET: SECRET, P2P_CONTROL: 'stdin', P2P_EXPECT: String(TOTAL - 1) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const logTo = process.env.BENCH_LOG_DIR ? (await import('node:fs')).createWriteStream(`${process.env.BENCH_LOG_DIR}/${name}.log`) : undefined;
  proc.stdout!.on('data', (d: Buffer) => {
    logTo?.write(d);
    out += d.toString();
    for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n')) {
      const line = out.slice(0, i);
      out = out.slice(i + 1);
      if (line.startsWith('report ')) waiting.shift()?.(JSON.parse(line.slice(7)) as Report);
      else if (line.startsWith('ready ')) ready();
    }
  });
  let ready!: () => void;
  const names = count === 1 ? [name] : Array.from({ length: count }, (_, i) => `${name}-${i}`);
  const p: Proc = {
    proc,
    names,
    report: () =>
      new Promise<Report>((resolve) => {
        waiting.push(resolve);
        proc.stdin!.write('report\n');
      }),
  };
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start`)), 120_000);
    ready = () => {
      clearTimeout(t);
      resolve(p);
    };
  });
}

async function poll(cond: () => Promise<boolean> | boolean, timeoutMs: number, step = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(step);
  }
  return false;
}

async function round(r: number): Promise<void> {
  const local = new Engine({ name: 'bench', logger: pino({ level: 'silent' }), adapters: [createP2pAdapter({ secret: SECRET, name: 'bench' })] });
  local.addRoutes(from('p2p:direct:stats.bench').to('log:x?level=trace'));
  await local.start();
  const node = p2pPeer(local)!;
  const seed = node.address;

  const others = TOTAL - 2; // this peer and the victim
  const groups: number[] = [];
  for (let left = others; left > 0; left -= PER_PROC) groups.push(Math.min(PER_PROC, left));
  const t0 = Date.now();
  const procs = await Promise.all([...groups.map((n, i) => startProc(`g${i}`, n)), startProc('victim', 1)]);
  const startMs = Date.now() - t0;
  const names = procs.flatMap((p) => p.names);
  // let the start-up work (module loading, keys, listeners) finish before timing the join
  await sleep(1000);
  const joinLoad = load();

  const tJoin = Date.now();
  const cpu0 = process.cpuUsage();
  let ourFullMs = -1;
  let ourCpuMs = -1;
  const offFull = node.onChange(() => {
    if (ourFullMs < 0 && node.members().filter((m) => m.state === 'alive').length === TOTAL - 1) {
      ourFullMs = Date.now() - tJoin;
      const c = process.cpuUsage(cpu0);
      ourCpuMs = Math.round((c.user + c.system) / 1000);
    }
  });
  for (const p of procs) p.proc.stdin!.write(`join ${tJoin} ${seed}\n`);
  let reports: Report[] = [];
  const allFull = await poll(async () => {
    reports = await Promise.all(procs.map((p) => p.report()));
    return ourFullMs >= 0 && reports.every((rep) => rep.peers.every((x) => x.fullMs >= 0));
  }, 30_000, 100);
  offFull();
  const joinStats = reports.flatMap((rep) => rep.peers.map((x) => x.stats));
  const sum = (k: 'suspicions' | 'refutations' | 'deaths' | 'links') => joinStats.reduce((a, x) => a + x[k], 0);
  const fulls = [ourFullMs, ...reports.flatMap((rep) => rep.peers.map((x) => x.fullMs))].filter((x) => x >= 0);
  const stats = (n: string): Promise<Stats | undefined> => local.request<Stats>(`p2p:direct:stats.${n}`, {}, { 'busbar.timeoutMs': 2000 }).catch(() => undefined);
  const aliveIn = (s: Stats | undefined): number => s?.members.filter((m) => m.state === 'alive').length ?? -1;
  // and the views stay full (a peer that saw everyone once and then lost one is not converged)
  const stable = await poll(async () => node.members().filter((m) => m.state === 'alive').length === TOTAL - 1 && (await Promise.all(names.map(stats))).every((s) => aliveIn(s) === TOTAL - 1), 30_000, 100);
  const stableMs = Date.now() - tJoin;

  // steady state: frames each peer sends per second, nothing else going on
  await sleep(2000);
  const rateLoad = load();
  const snap = async () => new Map([[node.settings.name, node.stats()], ...(await Promise.all(procs.map((p) => p.report()))).flatMap((rep) => rep.peers.map((x) => [x.name, x.stats] as const))]);
  const WINDOW = 5000;
  const s0 = await snap();
  await sleep(WINDOW);
  const s1 = await snap();
  const rate = (k: 'framesSent' | 'framesReceived' | 'writes' | 'bytesSent') => [...s1].map(([n, s]) => ((s[k] - (s0.get(n)?.[k] ?? 0)) * 1000) / WINDOW);

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
  const deadLoad = load();
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

  const sent = rate('framesSent');
  const cpu = reports.map((rep) => rep.cpuToFullMs);
  process.stdout.write(
    [
      `p2p membership, ${TOTAL} peers on 127.0.0.1 (${procs.length} processes + this one), round ${r + 1}/${ROUNDS}`,
      `  processes, nodes and keys set up in ${startMs} ms (not timed below)`,
      `  all join through one seed, load ${joinLoad}: full view per peer p50 ${median(fulls)} ms, max ${allFull ? Math.max(...fulls) : 'NOT within 30 s'} ms   goal < 2000 ms; all views full at once ${stable ? `${stableMs} ms` : 'NOT within 30 s'}`,
      `  by then, over all peers: ${sum('suspicions')} suspicions, ${sum('refutations')} refutations, ${sum('deaths')} deaths, ${sum('links')} links open`,
      `  CPU until every peer of the process had its full view, per process (${procs.map((p) => p.names.length).join(' / ')} peers): ${cpu.join(' / ')} ms; this process (1 peer, the seed): ${ourCpuMs} ms`,
      `  converged, load ${rateLoad}: frames sent per peer per s p50 ${median(sent).toFixed(1)}, max ${Math.max(...sent).toFixed(1)}; writes/s p50 ${median(rate('writes')).toFixed(1)}; bytes/s p50 ${median(rate('bytesSent')).toFixed(0)}`,
      `  SIGKILLed peer confirmed dead, load ${deadLoad}: in our view ${ourDeadMs} ms, in every view ${allDead ? `${allDeadMs} ms` : 'NOT within 30 s'}   goal < 3000 ms`,
      `  false deaths while ${blocker.length} peers blocked their event loop 200 ms x10: ${falseDeaths}   goal 0   (load ${load()})`,
      '',
    ].join('\n'),
  );
  for (const p of procs) p.proc.kill(process.env.BENCH_CPU_PROF ? 'SIGTERM' : 'SIGKILL');
  await local.stop({ timeoutMs: 2000 });
}

for (let r = 0; r < ROUNDS; r++) await round(r);
process.exit(0);
