import { join } from 'node:path';
import { expect } from 'chai';
import { EventLog, GroupCoordinator } from '../../adapters/eventlog/index.js';
import { openDatabase, type Database } from '../../adapters/db/index.js';
import { PG_URL, tempDir, waitFor } from '../helpers.js';
import { startWorker as startProcess, type WorkerProcess as Worker } from '../process-worker.js';

const WORKER = 'spec/adapters/eventlog/worker.ts';
/** A worker that has loaded and waits for "go": a restart after a kill does not pay the start-up. */
const spare = (env: Record<string, string>): Worker => startProcess(WORKER, { ...env, EVL_HOLD: '1' });

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

  const cases = [
    { sink: 'sqlite', mode: 'effectively-once' },
    { sink: 'sqlite', mode: 'at-least-once' },
    { sink: 'postgres', mode: 'effectively-once' },
  ] as const;
  for (const { sink, mode } of cases) {
    it(`${mode} into ${sink}: consumers killed -9 at random moments, restarted; 0 lost${mode === 'effectively-once' ? ', 0 duplicated' : ', duplicates counted'}`, async () => {
      const tmp = tempDir('busbar-evl-');
      const db = join(tmp.path, 'out.db');
      const suffix = `${process.pid}_${Date.now()}`;
      const table = sink === 'postgres' ? `evl_out_${suffix}` : 'out';
      const offsets = sink === 'postgres' ? `evl_offsets_${suffix}` : 'busbar_eventlog_offsets';
      const sql: Database = sink === 'postgres' ? openDatabase({ engine: 'postgres', url: PG_URL }) : openDatabase({ engine: 'sqlite', file: db });
      await sql.open();
      let live: Worker[] = [];
      let next: Worker | undefined;
      const KILLS = Number(process.env.EVL_KILLS ?? 6);
      const N = Number(process.env.EVL_RECORDS ?? 3000);
      try {
        await sql.query(`CREATE TABLE ${table} (part INTEGER, off INTEGER, worker TEXT)`);
        await fill(tmp.path, 3, N);
        const env = (w: string): Record<string, string> => ({ EVL_DIR: tmp.path, EVL_DB: db, EVL_WORKER: w, EVL_MODE: mode, EVL_SLOW_MS: '0', EVL_TABLE: table, EVL_OFFSETS: offsets, ...(sink === 'postgres' ? { EVL_PG_URL: PG_URL } : {}) });
        let seq = 0;
        live = [startProcess(WORKER, env(`w${seq++}`)), startProcess(WORKER, env(`w${seq++}`))];
        next = spare(env(`w${seq++}`));
        await Promise.all(live.map((w) => w.ready));
        const count = async (q: string): Promise<number> => Number(Object.values((await sql.query(q)).rows[0]!)[0]);
        const t0 = Date.now();
        let rowsAtLastKill = 0;
        for (let k = 0; k < KILLS; k++) {
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 300));
          const i = Math.floor(Math.random() * live.length);
          live[i]!.child.kill('SIGKILL');
          await live[i]!.exited;
          const w = next!;
          w.child.stdin!.write('go\n');
          live[i] = w;
          next = spare(env(`w${seq++}`));
          await w.ready;
          if (k === KILLS - 1) rowsAtLastKill = await count(`SELECT COUNT(*) FROM ${table}`);
        }
        const distinctQ = `SELECT COUNT(DISTINCT part || '-' || off) FROM ${table}`;
        await waitFor(async () => (await count(distinctQ)) === N, TIMEOUT_MS - 30_000, 'every record processed');
        for (const w of live) w.child.stdin!.write('stop\n');
        await Promise.all(live.map((w) => w.exited));
        const rows = await count(`SELECT COUNT(*) FROM ${table}`);
        const distinct = await count(distinctQ);
        expect(distinct, 'lost').to.equal(N);
        if (mode === 'effectively-once') expect(rows - distinct, 'duplicated').to.equal(0);
        else expect(rows - distinct, 'duplicates (counted)').to.be.at.least(0);
        if (process.env.EVL_REPORT) process.stderr.write(`${mode} into ${sink}: ${KILLS} kills, ${N} records, ${N - distinct} lost, ${rows - distinct} duplicates, ${rowsAtLastKill} rows written at the last kill, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      } finally {
        for (const w of [...live, ...(next ? [next] : [])]) if (w.child.exitCode === null) w.child.kill('SIGKILL');
        if (sink === 'postgres') for (const t of [table, offsets]) await sql.query(`DROP TABLE IF EXISTS ${t}`).catch(() => undefined);
        await sql.close();
        tmp.cleanup();
      }
    });
  }
});
