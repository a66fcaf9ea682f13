import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { createDbAdapter } from '../../adapters/db/index.js';
import { Engine, from } from '../../lib/index.js';
import { testLogger, waitFor } from '../helpers.js';
import { createJobs, dbFixture, dbSuite, insertJobs, type DbFixture } from '../adapters/db/suite.js';

const run = promisify(execFile);

describe('db adapter on PostgreSQL', function () {
  this.timeout(60_000);
  // Fails (does not skip) when the server is unreachable: the first fixture cannot connect.
  dbSuite('postgres');

  describe('connection loss', () => {
    let f: DbFixture;
    let engine: Engine | undefined;
    before(async () => {
      f = await dbFixture('postgres');
    });
    after(async () => {
      await engine?.stop();
      await f.cleanup();
    });

    it('survives a server restart: the route resumes and no row is lost', async function () {
      this.timeout(120_000);
      const t = await createJobs(f, 'jobs', 200);
      engine = new Engine({ logger: testLogger(), adapters: [createDbAdapter(f.config)] });
      engine.addRoutes(from<{ id: number }>(`db:postgres:t?table=${t}&batchSize=20&delay=20&errorDelay=100&maxErrorDelay=1000`).routeId('poll').to('mock:out'));
      const out = engine.mock('mock:out').whenReceived(() => new Promise<void>((r) => setTimeout(r, 2)));
      await engine.start();
      await waitFor(() => out.received.length >= 20, 10_000, 'first rows');
      await run('bash', ['scripts/postgres.sh', 'restart'], { timeout: 90_000 });
      await insertJobs(f, t, 201, 300);
      await waitFor(async () => Number((await f.admin.query(`SELECT COUNT(*) AS n FROM ${t}`)).rows[0]!.n) === 0, 30_000, 'table drained after restart');
      const ids = new Set(out.bodies.map((b) => Number((b as { id: number }).id)));
      // at-least-once: every row arrived (a batch cut by the restart may arrive twice)
      expect([...Array(300).keys()].map((i) => i + 1).filter((i) => !ids.has(i))).to.deep.equal([]);
      expect(engine.stats().routes.poll!.source.status).to.equal('connected');
    });
  });
});
