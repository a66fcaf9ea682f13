import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { EventLog, GroupCoordinator } from '../../adapters/eventlog/index.js';
import { openDatabase, type Database } from '../../adapters/db/index.js';
import { sqliteWriteProbe } from './fixtures/sqlite-write-probe.js';
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
      // rejoining, a gets a share in a newer epoch again, once b (alive) handed it over with
      // what b finished committed: until then b owns both, one marked for a
      expect(a.heartbeat(t0 + 5100).owned.size).to.equal(0);
      const mb2 = b.heartbeat(t0 + 5150);
      expect(mb2.owned.size).to.equal(2);
      expect(mb2.handoff.size).to.equal(1);
      const [hp] = [...mb2.handoff] as [number];
      expect(a.release(hp, mb2.owned.get(hp)!, 99).outcome, 'only the owner hands over').to.equal('fenced');
      expect(b.release(hp, mb2.owned.get(hp)!, 11)).to.deep.equal({ outcome: 'moved', offset: 11 });
      const ma2 = a.heartbeat(t0 + 5200);
      expect([...ma2.owned.keys()]).to.deep.equal([hp]);
      expect(ma2.owned.get(hp)).to.be.greaterThan(mb2.owned.get(hp)!);
      expect(ma2.offsets[hp]).to.equal(11);
      expect(b.heartbeat(t0 + 5250).owned.size).to.equal(1);
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

describe('eventlog: 3 consumer processes in one group on 6 partitions', function () {
  this.timeout(90_000);

  it('kill one: its partitions move to the others in a newer epoch, the others keep theirs and keep flowing; a paused (fenced) owner moves no offset back; 0 lost', async () => {
    const tmp = tempDir('busbar-evl-');
    const db = join(tmp.path, 'out.db');
    const sql = openDatabase({ engine: 'sqlite', file: db });
    await sql.open();
    const group = new GroupCoordinator(join(tmp.path, 't'), 'g', 6, { sessionTimeoutMs: 1000, memberId: 'observer' });
    const log = EventLog.open(tmp.path, 't', { partitions: 6, fsync: 'none' });
    const workers: Worker[] = [];
    let appended = 0;
    let writing = true;
    let backwards: string | undefined;
    const deadline = Date.now() + 60_000;
    // the producer: a batch per partition every 20 ms while the test runs (bounded in count and time)
    const producer = (async () => {
      while (writing && appended < 30_000 && Date.now() < deadline) {
        for (let p = 0; p < 6; p++) await log.append(p, Array.from({ length: 5 }, (_, j) => ({ key: null, value: Buffer.from(String(appended + j)), kind: 'string' as const, headers: {} })));
        appended += 30;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // committed offsets only ever move forward; a fenced owner's stale commit would move one back
    const last: Record<string, number> = {};
    const sampler = setInterval(() => {
      const s = group.read();
      for (const [p, o] of Object.entries(s?.offsets ?? {})) {
        if (o < (last[p] ?? 0)) backwards ??= `partition ${p}: ${last[p]} -> ${o}`;
        last[p] = o;
      }
    }, 5);
    const count = async (q: string): Promise<number> => Number(Object.values((await sql.query(q)).rows[0]!)[0]);
    const ownerPid = (p: number): number | undefined => {
      const s = group.read();
      const m = s?.assignment[p]?.member;
      return m === undefined ? undefined : s!.members[m]?.pid;
    };
    const ownedBy = (pid: number): number[] => [0, 1, 2, 3, 4, 5].filter((p) => ownerPid(p) === pid);
    try {
      await sql.query('CREATE TABLE out (part INTEGER, off INTEGER, worker TEXT)');
      for (let i = 0; i < 3; i++) workers.push(startProcess(WORKER, { EVL_DIR: tmp.path, EVL_DB: db, EVL_WORKER: `w${i}`, EVL_MODE: 'at-least-once', EVL_SESSION_MS: '2500' }));
      await Promise.all(workers.map((w) => w.ready));
      const pids = workers.map((w) => w.child.pid!);
      await waitFor(() => pids.every((pid) => ownedBy(pid).length === 2), 20_000, 'two partitions for each of the 3 members');
      await waitFor(async () => (await count('SELECT COUNT(DISTINCT worker) FROM out')) === 3, 20_000, 'rows from all three');
      // a settled group (no member timed out and rejoined for a while) before the kill
      let generation = group.read()!.generation;
      let settledSince = Date.now();
      await waitFor(() => {
        const g = group.read()!.generation;
        if (g !== generation) [generation, settledSince] = [g, Date.now()];
        return Date.now() - settledSince > 300;
      }, 20_000, 'a settled group');
      const before = group.read()!;
      const epochs = Object.fromEntries(Object.entries(before.assignment).map(([p, a]) => [p, a.epoch]));
      const [victim, y, z] = [workers[0]!, workers[1]!, workers[2]!];
      const moved = ownedBy(victim.child.pid!);
      const kept = { y: ownedBy(y.child.pid!), z: ownedBy(z.child.pid!) };

      // kill -9: the survivors notice the dead pid at their next heartbeat and share its partitions
      victim.child.kill('SIGKILL');
      await victim.exited;
      await waitFor(() => ownedBy(y.child.pid!).length === 3 && ownedBy(z.child.pid!).length === 3, 10_000, 'the dead member\'s partitions taken over');
      const after = group.read()!;
      for (const p of moved) expect(after.assignment[p]!.epoch, `partition ${p} moved in a newer epoch`).to.be.greaterThan(epochs[p]!);
      for (const p of [...kept.y, ...kept.z]) expect(after.assignment[p]!.epoch, `partition ${p} stays with its owner`).to.equal(epochs[p]);
      expect(ownedBy(y.child.pid!)).to.include.members(kept.y);
      expect(ownedBy(z.child.pid!)).to.include.members(kept.z);
      const rowsOf = (w: string): Promise<number> => count(`SELECT COUNT(*) FROM out WHERE worker = '${w}'`);
      const [ry, rz] = [await rowsOf('w1'), await rowsOf('w2')];
      const movedList = moved.join(',');
      await waitFor(async () => (await rowsOf('w1')) > ry && (await rowsOf('w2')) > rz, 10_000, 'both survivors keep flowing');
      await waitFor(async () => (await count(`SELECT COUNT(DISTINCT part) FROM out WHERE worker IN ('w1','w2') AND part IN (${movedList})`)) === moved.length, 10_000, 'the moved partitions read by their new owners');

      // a zombie: y paused past its session; z takes everything; y wakes up, its commits are refused
      // paused outside the group lock (paused inside it, the others rightly wait for it)
      const lockFile = join(tmp.path, 't', 'groups', 'g.lock');
      // (any holder counts: y may be stopped between creating the lock file and writing its pid into it)
      const holds = (): boolean => {
        try {
          readFileSync(lockFile);
          return true;
        } catch {
          return false;
        }
      };
      // nor inside a write to the sink (see sqliteWriteProbe)
      const probe = sqliteWriteProbe(db);
      const sinkFree = (): Promise<boolean> => probe.free();
      for (let i = 0; i < 50; i++) {
        y.child.kill('SIGSTOP');
        await new Promise((r) => setTimeout(r, 10));
        if (!holds() && (await sinkFree())) break;
        y.child.kill('SIGCONT');
        await new Promise((r) => setTimeout(r, 20));
      }
      await probe.close();
      await waitFor(() => ownedBy(z.child.pid!).length === 6, 15_000, 'z owns all six while y is paused').catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(group.read())}; lock: ${holds() ? readFileSync(lockFile, 'utf8') : 'free'}; y ${y.child.pid}, z ${z.child.pid}`);
      });
      y.child.kill('SIGCONT');
      await waitFor(() => ownedBy(y.child.pid!).length === 3, 10_000, 'y rejoins with a share');

      writing = false;
      await producer;
      await waitFor(async () => (await count("SELECT COUNT(DISTINCT part || '-' || off) FROM out")) === appended, 30_000, 'every record processed');
      const outputs = [y, z].map((w) => new Promise<string>((r) => w.child.stdout!.on('data', (d) => String(d).includes('fenced=') && r(String(d)))));
      for (const w of [y, z]) w.child.stdin!.write('stop\n');
      const fenced = (await Promise.all(outputs)).map((o) => Number(/fenced=(\d+)/.exec(o)![1]));
      await Promise.all([y, z].map((w) => w.exited));
      expect(backwards, 'a committed offset moved back').to.equal(undefined);
      expect(await count("SELECT COUNT(DISTINCT part || '-' || off) FROM out")).to.equal(appended);
      if (process.env.EVL_REPORT) process.stderr.write(`group of 3 on 6 partitions: ${appended} records, fenced commits refused: y=${fenced[0]} z=${fenced[1]}\n`);
    } finally {
      writing = false;
      clearInterval(sampler);
      await producer;
      await log.close();
      for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
      await sql.close();
      tmp.cleanup();
    }
  });
});

describe('eventlog: at-most-once consumer process (kill -9)', function () {
  this.timeout(60_000);

  it('offsets are committed before the route runs: what was in flight at the kill is lost, nothing is repeated', async () => {
    const tmp = tempDir('busbar-evl-');
    const db = join(tmp.path, 'out.db');
    const sql = openDatabase({ engine: 'sqlite', file: db });
    await sql.open();
    const N = 600;
    const env = (w: string): Record<string, string> => ({ EVL_DIR: tmp.path, EVL_DB: db, EVL_WORKER: w, EVL_MODE: 'at-most-once', EVL_SLOW_MS: '20' });
    const workers: Worker[] = [];
    const count = async (q: string): Promise<number> => Number(Object.values((await sql.query(q)).rows[0]!)[0]);
    const committed = (): number => Object.values(new GroupCoordinator(join(tmp.path, 't'), 'g', 3, { sessionTimeoutMs: 1000, memberId: 'observer' }).read()?.offsets ?? {}).reduce((a, b) => a + b, 0);
    try {
      await sql.query('CREATE TABLE out (part INTEGER, off INTEGER, worker TEXT)');
      await fill(tmp.path, 3, N);
      workers.push(startProcess(WORKER, env('w0')));
      await workers[0]!.ready;
      await waitFor(async () => (await count('SELECT COUNT(*) FROM out')) >= 30, 20_000, 'rows from the first worker');
      workers[0]!.child.kill('SIGKILL');
      await workers[0]!.exited;
      const rowsAtKill = await count('SELECT COUNT(*) FROM out');
      const committedAtKill = committed();
      // read and committed ahead, never processed: lost
      expect(committedAtKill, 'committed before processing').to.be.greaterThan(rowsAtKill);
      workers.push(startProcess(WORKER, env('w1')));
      await workers[1]!.ready;
      await waitFor(async () => committed() === N && (await count("SELECT COUNT(*) FROM out WHERE worker = 'w1'")) === N - committedAtKill, 30_000, 'the second worker to finish the rest');
      workers[1]!.child.stdin!.write('stop\n');
      await workers[1]!.exited;
      const rows = await count('SELECT COUNT(*) FROM out');
      const distinct = await count("SELECT COUNT(DISTINCT part || '-' || off) FROM out");
      expect(rows - distinct, 'duplicated').to.equal(0);
      expect(N - distinct, 'lost: exactly what was committed but not processed at the kill').to.equal(committedAtKill - rowsAtKill);
      // the second worker started where the first had committed: none of its rows is below that
      expect(await count("SELECT COUNT(*) FROM out WHERE worker = 'w1'")).to.equal(N - committedAtKill);
    } finally {
      for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
      await sql.close();
      tmp.cleanup();
    }
  });
});
