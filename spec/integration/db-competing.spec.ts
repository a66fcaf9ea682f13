import { startWorker as startProcess, type WorkerProcess } from '../process-worker.js';
import { expect } from 'chai';
import { createJobs, dbFixture, insertJobs, type Dialect } from '../adapters/db/suite.js';

const ROWS = 20_000;

const startWorker = (env: Record<string, string>): WorkerProcess => startProcess('spec/adapters/db/worker.ts', env);

for (const dialect of ['postgres', 'sqlite'] as Dialect[]) {
  describe(`db adapter: 3 competing processes on ${dialect}`, function () {
    this.timeout(180_000);

    it(`process each of ${ROWS} rows exactly once`, async () => {
      const f = await dbFixture(dialect);
      const workers: ReturnType<typeof startWorker>[] = [];
      try {
        const jobs = await createJobs(f, 'jobs', 0);
        const processed = f.t('processed');
        await f.admin.query(`CREATE TABLE ${processed} (id INTEGER NOT NULL, worker TEXT NOT NULL)`);
        const config = JSON.stringify({ connections: { w: f.config.connections!.t } });
        // each row takes a millisecond of work (a real job does some): that lets SQLite's one
        // writer lock change hands between batches. With no work at all, whichever process got
        // the lock can keep it for most of the run (SQLite's lock is not fair: the others sleep
        // in its busy handler), and one process took every row once in a while.
        for (let i = 1; i <= 3; i++) workers.push(startWorker({ DB_CONFIG: config, DB_JOBS: jobs, DB_PROCESSED: processed, DB_WORKER: `w${i}`, DB_SLOW_MS: '1' }));
        await Promise.all(workers.map((w) => w.ready));
        // every worker is polling before the rows appear, so all three compete for them
        await insertJobs(f, jobs, 1, ROWS);
        const n = async (sql: string): Promise<number> => Number(Object.values((await f.admin.query(sql)).rows[0]!)[0]);
        // checked every 250 ms (not 10): the counting must not compete with the workers
        const deadline = Date.now() + 120_000;
        while ((await n(`SELECT COUNT(*) AS n FROM ${processed}`)) < ROWS || (await n(`SELECT COUNT(*) AS n FROM ${jobs}`)) > 0) {
          if (Date.now() > deadline) throw new Error('timed out waiting for all rows to be processed');
          await new Promise((r) => setTimeout(r, 250));
        }
        for (const w of workers) w.child.stdin!.write('stop\n');
        expect(await Promise.all(workers.map((w) => w.exited))).to.deep.equal([0, 0, 0]);
        expect(await n(`SELECT COUNT(*) AS n FROM ${processed}`)).to.equal(ROWS);
        expect(await n(`SELECT COUNT(DISTINCT id) AS n FROM ${processed}`)).to.equal(ROWS);
        const per = (await f.admin.query(`SELECT worker, COUNT(*) AS n FROM ${processed} GROUP BY worker ORDER BY worker`)).rows.map((r) => [r.worker, Number(r.n)]);
        expect(per.map((p) => p[0])).to.deep.equal(['w1', 'w2', 'w3']);
      } finally {
        for (const w of workers) if (w.child.exitCode === null) w.child.kill();
        await f.cleanup();
      }
    });
  });
}

for (const dialect of ['postgres', 'sqlite'] as Dialect[]) {
  describe(`db adapter: a process killed mid-batch on ${dialect}`, function () {
    this.timeout(120_000);

    it('leaves no row behind: another process takes over its claimed rows', async () => {
      const f = await dbFixture(dialect);
      const workers: ReturnType<typeof startWorker>[] = [];
      try {
        const jobs = await createJobs(f, 'jobs', 300);
        const processed = f.t('processed');
        await f.admin.query(`CREATE TABLE ${processed} (id INTEGER NOT NULL, worker TEXT NOT NULL)`);
        const config = JSON.stringify({ connections: { w: f.config.connections!.t } });
        const env = { DB_CONFIG: config, DB_JOBS: jobs, DB_PROCESSED: processed, DB_BATCH: '50', DB_CLAIM_TIMEOUT: '1500' };
        const n = async (sql: string): Promise<number> => Number(Object.values((await f.admin.query(sql)).rows[0]!)[0]);
        const victim = startWorker({ ...env, DB_WORKER: 'victim', DB_SLOW_MS: '20' });
        const heir = startWorker({ ...env, DB_WORKER: 'heir', DB_HOLD: '1' });
        workers.push(victim, heir);
        await victim.ready;
        const deadline = Date.now() + 60_000;
        while ((await n(`SELECT COUNT(*) AS n FROM ${processed}`)) < 60) {
          if (Date.now() > deadline) throw new Error('the first worker processed nothing');
          await new Promise((r) => setTimeout(r, 50));
        }
        victim.child.kill('SIGKILL'); // rows claimed, some processed, none of that batch acknowledged
        expect(await victim.exited).to.equal(null);
        heir.child.stdin!.write('go\n');
        await heir.ready;
        while ((await n(`SELECT COUNT(*) AS n FROM ${jobs}`)) > 0) {
          if (Date.now() > deadline) throw new Error('rows of the killed worker were never taken over');
          await new Promise((r) => setTimeout(r, 100));
        }
        heir.child.stdin!.write('stop\n');
        expect(await heir.exited).to.equal(0);
        // at-least-once: every row processed, some possibly twice (the killed batch)
        expect(await n(`SELECT COUNT(DISTINCT id) AS n FROM ${processed}`)).to.equal(300);
        expect(await n(`SELECT COUNT(*) AS n FROM ${processed} WHERE worker = 'heir'`)).to.be.greaterThan(0);
      } finally {
        for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill();
        await f.cleanup();
      }
    });
  });
}
