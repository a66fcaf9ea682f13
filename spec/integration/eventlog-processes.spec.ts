import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'chai';
import { EventLog, GroupCoordinator } from '../../adapters/eventlog/index.js';
import { openDatabase } from '../../adapters/db/index.js';
import { tempDir, waitFor } from '../helpers.js';

interface Worker {
  child: ChildProcess;
  ready: Promise<void>;
  exited: Promise<number | null>;
}

function startWorker(env: Record<string, string>): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', 'spec/adapters/eventlog/worker.ts'], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      if (String(d).includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready`)));
  });
  ready.catch(() => undefined);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, ready, exited };
}

async function fill(dir: string, partitions: number, n: number): Promise<void> {
  const log = EventLog.open(dir, 't', { partitions, fsync: 'none' });
  for (let i = 0; i < n; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => log.append((i + j) % partitions, [{ key: null, value: Buffer.from(String(i + j)), kind: 'string', headers: {} }])));
  }
  await log.close();
}

describe('eventlog: group ownership is fenced by epoch', () => {
  it('a member that lost its partition (timed out) cannot commit it; the new owner can', () => {
    const tmp = tempDir('busbar-evl-');
    try {
      const a = new GroupCoordinator(tmp.path, 'g', 2, { sessionTimeoutMs: 1000, memberId: 'a' });
      const b = new GroupCoordinator(tmp.path, 'g', 2, { sessionTimeoutMs: 1000, memberId: 'b' });
      const t0 = Date.now();
      const ma = a.heartbeat(t0);
      expect([...ma.owned.keys()].sort()).to.deep.equal([0, 1]);
      const epochA = ma.owned.get(0)!;
      expect(a.commit([[0, epochA, 5]])).to.deep.equal([]);
      // a pauses; b joins long after a's session ran out: b gets everything in a new epoch
      const mb = b.heartbeat(t0 + 5000);
      expect([...mb.owned.keys()].sort()).to.deep.equal([0, 1]);
      expect(mb.owned.get(0)).to.be.greaterThan(epochA);
      // the zombie wakes up and commits: refused, the offset stays
      expect(a.commit([[0, epochA, 9]])).to.deep.equal([0]);
      expect(b.read()!.offsets[0]).to.equal(5);
      expect(b.commit([[0, mb.owned.get(0)!, 7]])).to.deep.equal([]);
      // rejoining, a gets a share in a newer epoch again: 1 partition each
      const ma2 = a.heartbeat(t0 + 5100);
      expect(ma2.owned.size).to.equal(1);
      expect(b.heartbeat(t0 + 5150).owned.size).to.equal(1);
    } finally {
      tmp.cleanup();
    }
  });
});

// The spec runs a reduced, bounded count; `npm run soak:eventlog` runs the full count
// (200 kills over 100,000 records) through the same test with EVL_KILLS/EVL_RECORDS/EVL_TIMEOUT_MS.
const TIMEOUT_MS = Number(process.env.EVL_TIMEOUT_MS ?? 120_000);

describe('eventlog: consumer processes (kill -9)', function () {
  this.timeout(TIMEOUT_MS);

  for (const mode of ['effectively-once', 'at-least-once'] as const) {
    it(`${mode}: consumers killed -9 at random moments, restarted; 0 lost${mode === 'effectively-once' ? ', 0 duplicated' : ', duplicates counted'}`, async () => {
      const tmp = tempDir('busbar-evl-');
      const db = join(tmp.path, 'out.db');
      const sql = openDatabase({ engine: 'sqlite', file: db });
    await sql.open();
      let live: Worker[] = [];
      const KILLS = Number(process.env.EVL_KILLS ?? 6);
      const N = Number(process.env.EVL_RECORDS ?? 3000);
      try {
        await sql.query('CREATE TABLE out (part INTEGER, off INTEGER, worker TEXT)');
        await fill(tmp.path, 3, N);
        const env = (w: string): Record<string, string> => ({ EVL_DIR: tmp.path, EVL_DB: db, EVL_WORKER: w, EVL_MODE: mode, EVL_SLOW_MS: '0' });
        let seq = 0;
        live = [startWorker(env(`w${seq++}`)), startWorker(env(`w${seq++}`))];
        await Promise.all(live.map((w) => w.ready));
        const count = async (q: string): Promise<number> => Number(Object.values((await sql.query(q)).rows[0]!)[0]);
        const t0 = Date.now();
        let rowsAtLastKill = 0;
        for (let k = 0; k < KILLS; k++) {
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 300));
          const i = Math.floor(Math.random() * live.length);
          live[i]!.child.kill('SIGKILL');
          await live[i]!.exited;
          const w = startWorker(env(`w${seq++}`));
          live[i] = w;
          await w.ready;
          if (k === KILLS - 1) rowsAtLastKill = await count('SELECT COUNT(*) FROM out');
        }
        await waitFor(async () => (await count('SELECT COUNT(DISTINCT part || \'-\' || off) FROM out')) === N, TIMEOUT_MS - 30_000, 'every record processed');
        for (const w of live) w.child.stdin!.write('stop\n');
        await Promise.all(live.map((w) => w.exited));
        const rows = await count('SELECT COUNT(*) FROM out');
        const distinct = await count('SELECT COUNT(DISTINCT part || \'-\' || off) FROM out');
        expect(distinct, 'lost').to.equal(N);
        if (mode === 'effectively-once') expect(rows - distinct, 'duplicated').to.equal(0);
        else expect(rows - distinct, 'duplicates (counted)').to.be.at.least(0);
        if (process.env.EVL_REPORT) process.stderr.write(`${mode}: ${KILLS} kills, ${N} records, ${N - distinct} lost, ${rows - distinct} duplicates, ${rowsAtLastKill} rows written at the last kill, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      } finally {
        for (const w of live) if (w.child.exitCode === null) w.child.kill('SIGKILL');
        await sql.close();
        tmp.cleanup();
      }
    });
  }
});
