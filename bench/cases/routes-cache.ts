import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { round, type BenchCase } from '../harness.js';

const CHILD = fileURLToPath(new URL('../children/routes-cache-child.mjs', import.meta.url));

/**
 * What a message costs in memory traffic as routes are added: the routes workload of `scale`
 * (each message to another route, round-robin) run under valgrind's cachegrind, which
 * simulates the caches instead of timing them. On a shared VM the time of a cache miss
 * depends on the neighbours (routes x1000 read anywhere from 0.6 to 3 µs/msg in one hour);
 * the number of misses does not. The last level is modelled as a 512 KB L2 (this machine's
 * per core), so a miss there is a read from L3 or memory. Each side runs twice, with a small
 * and a large message count: the difference is the per-message figure (start-up and JIT
 * compilation cancel out). Node runs single-threaded so compilation happens at the same
 * points in every run.
 */
interface Counts { ir: number; d1: number; ll: number }

async function simulate(side: string, size: number, msgs: number): Promise<Counts> {
  const { stderr } = await promisify(execFile)(
    'valgrind',
    ['--tool=cachegrind', '--cache-sim=yes', '--LL=524288,8,64', '--cachegrind-out-file=/dev/null', process.execPath, '--single-threaded', CHILD, side, String(size), String(msgs)],
    { maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60_000 },
  );
  const num = (label: RegExp): number => {
    const line = stderr.split('\n').find((l) => label.test(l));
    if (!line) throw new Error(`cachegrind printed no ${label.source}:\n${stderr.slice(-2000)}`);
    return Number(line.split(':')[1]!.trim().split(/\s+/)[0]!.replace(/,/g, ''));
  };
  return { ir: num(/I\s+refs:/), d1: num(/D1\s+misses:/), ll: num(/LLd\s+misses:/) };
}

/** Per message: the large run minus the small one, over the messages between them (both counts at once: two cores). */
async function perMessage(side: string, size: number, small: number, large: number): Promise<Counts> {
  const [a, b] = await Promise.all([simulate(side, size, small), simulate(side, size, large)]);
  const n = large - small;
  return { ir: round((b.ir - a.ir) / n, 0), d1: round((b.d1 - a.d1) / n, 1), ll: round((b.ll - a.ll) / n, 1) };
}

const bench: BenchCase = {
  name: 'routes-cache',
  description: 'routes on one engine (10 and 1,000), messages round-robin: simulated L2 (512 KB) and L1 data misses and instructions per message under cachegrind, busbar vs the hand-written handler table of the scale bench',
  requires: ['valgrind'],
  async run({ quick }) {
    const small = 20_000;
    const large = quick ? 60_000 : 120_000;
    const out: Record<string, number> = {};
    for (const size of quick ? [1000] : [10, 1000]) {
      const busbar = await perMessage('busbar', size, small, large);
      const hand = await perMessage('hand', size, small, large);
      process.stderr.write(`routes-cache x${size}: per message, busbar L2 ${busbar.ll} / D1 ${busbar.d1} / instructions ${busbar.ir}; by hand L2 ${hand.ll} / D1 ${hand.d1} / instructions ${hand.ir}\n`);
      for (const [k, v] of Object.entries(busbar)) out[`busbar_x${size}_${k}_per_msg`] = v;
      for (const [k, v] of Object.entries(hand)) out[`hand_x${size}_${k}_per_msg`] = v;
    }
    // the ratio line of every case: here "per_s" is messages per thousand simulated L2 misses at x1000 (more is better, as for a rate)
    return {
      busbar_per_s: 1000 / Math.max(out.busbar_x1000_ll_per_msg!, 0.1),
      baseline_per_s: 1000 / Math.max(out.hand_x1000_ll_per_msg!, 0.1),
      ...out,
    };
  },
};

export default bench;
