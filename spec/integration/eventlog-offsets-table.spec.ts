import { expect } from 'chai';
import { createDbAdapter } from '../../adapters/db/index.js';
import { openDatabase } from '../../adapters/db/database.js';
import { createEventlogAdapter } from '../../adapters/eventlog/index.js';
import { EventLog } from '../../adapters/eventlog/log.js';
import { Engine, from, withBody } from '../../lib/index.js';
import { PG_URL, tempDir, testLogger, waitFor } from '../helpers.js';

describe('eventlog effectively-once: the offsets table in PostgreSQL', function () {
  this.timeout(60_000);

  it('consumers starting together all start, though their CREATE TABLE IF NOT EXISTS race (23505 on the catalog)', async () => {
    const tmp = tempDir('busbar-evl-race-');
    const suffix = `${process.pid}_${Date.now()}`;
    const offsets = `evl_race_offsets_${suffix}`;
    const out = `evl_race_out_${suffix}`;
    const sql = openDatabase({ engine: 'postgres', url: PG_URL });
    await sql.open();
    const engines: Engine[] = [];
    try {
      await sql.query(`CREATE TABLE ${out} (part INTEGER, off INTEGER)`);
      const log = EventLog.open(tmp.path, 't', { partitions: 8, fsync: 'none' });
      for (let p = 0; p < 8; p++) await log.append(p, [{ key: null, value: Buffer.from(String(p)), kind: 'string', headers: {} }]);
      await log.close();
      const insert = encodeURIComponent(`INSERT INTO ${out} (part, off) VALUES (:body.p, :body.o)`);
      // eight consumers of one group, each with its own connection pool, all creating the table at once
      for (let i = 0; i < 8; i++) {
        const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path }), createDbAdapter({ connections: { out: { engine: 'postgres', url: PG_URL } } })] });
        engine.addRoutes(from(`eventlog:t?group=g&delivery=effectively-once&offsetsIn=db:postgres:out&offsetsTable=${offsets}&pollMs=10`).routeId(`c${i}`).process((m) => withBody(m, { p: m.headers['eventlog.partition'], o: m.headers['eventlog.offset'] })).to(`db:postgres:out?statement=${insert}&eventlogOffsets=${offsets}`));
        engines.push(engine);
      }
      const started = await Promise.allSettled(engines.map((e) => e.start()));
      expect(started.map((s) => (s.status === 'rejected' ? String((s.reason as Error).message) : 'ok'))).to.deep.equal(engines.map(() => 'ok'));
      const count = async (): Promise<number> => Number((await sql.query(`SELECT COUNT(*) AS n FROM ${out}`)).rows[0]!.n);
      await waitFor(async () => (await count()) === 8, 30_000, 'every record written once');
    } finally {
      for (const e of engines) await e.stop().catch(() => undefined);
      await sql.query(`DROP TABLE IF EXISTS ${out}`).catch(() => undefined);
      await sql.query(`DROP TABLE IF EXISTS ${offsets}`).catch(() => undefined);
      await sql.close();
      tmp.cleanup();
    }
  });
});
