import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDbAdapter, openDatabase, type Database, type DbConfigInput } from '../../../adapters/db/index.js';
import { endpointUri, Engine } from '../../../lib/index.js';
import { PG_URL, tempDir, testLogger, waitFor } from '../../helpers.js';

/**
 * SQL with a `+` given as data in a routes document ({ "uri", "options" }) runs as written,
 * in every place that takes an endpoint: from, to, enrich, recipientList, the dead letter.
 */
describe('db: endpoint options as data in config (SQL with "+" kept as written)', function () {
  this.timeout(60_000);
  const dir = tempDir('busbar-options-data-');
  after(() => dir.cleanup());

  const setups: Array<{ name: string; uri: string; config: DbConfigInput; open: () => Database }> = [
    { name: 'SQLite', uri: `db:sqlite:${join(dir.path, 'n.db')}`, config: {}, open: () => openDatabase({ engine: 'sqlite', file: join(dir.path, 'n.db') }) },
    { name: 'PostgreSQL', uri: 'db:postgres:main', config: { connections: { main: { engine: 'postgres', url: PG_URL, poolSize: 2 } } }, open: () => openDatabase({ engine: 'postgres', url: PG_URL, poolSize: 1 }) },
  ];

  for (const s of setups) {
    it(`${s.name}: "n = n + 1" through the options form of from, to, enrich, recipientList and errorPolicy.deadLetter`, async () => {
      const db = s.open();
      const t = `opts_${process.pid}`;
      try {
        await db.query(`DROP TABLE IF EXISTS ${t}_c`);
        await db.query(`DROP TABLE IF EXISTS ${t}_jobs`);
        await db.query(`DROP TABLE IF EXISTS ${t}_dl`);
        await db.query(`CREATE TABLE ${t}_c (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, r INTEGER NOT NULL)`);
        await db.query(`INSERT INTO ${t}_c (id, n, r) VALUES (1, 1, 10)`);
        await db.query(`CREATE TABLE ${t}_jobs (id INTEGER PRIMARY KEY, seen INTEGER NOT NULL)`);
        await db.query(`INSERT INTO ${t}_jobs (id, seen) VALUES (7, 0)`);
        await db.query(`CREATE TABLE ${t}_dl (n INTEGER NOT NULL, reason TEXT)`);
        const data = (options: Record<string, string>, query = ''): { uri: string; options: Record<string, string> } => ({ uri: `${s.uri}${query}`, options });
        const doc = {
          routes: [
            {
              id: 'bump',
              from: { uri: 'direct:bump' },
              steps: [
                { to: data({ statement: `UPDATE ${t}_c SET n = n + 1 WHERE id = :body.id` }) },
                // options split between the URI and the data
                { enrich: data({ query: `SELECT n + 100 AS m FROM ${t}_c WHERE id = :body.id` }, '?outputType=first') },
                { recipientList: [data({ statement: `UPDATE ${t}_c SET r = r + 1 WHERE id = :body.id` })] },
              ],
            },
            {
              id: 'fail',
              from: 'direct:fail',
              errorPolicy: { deadLetter: data({ statement: `INSERT INTO ${t}_dl (n, reason) VALUES (1 + 1, :header.busbar.error.code)` }) },
              steps: [{ unmarshal: 'json' }],
            },
            {
              id: 'poll',
              from: data({ query: `SELECT id FROM ${t}_jobs WHERE seen = 0`, onConsume: `UPDATE ${t}_jobs SET seen = seen + 1 WHERE id = :body.id`, delay: '50' }),
              steps: [{ to: 'log:polled' }],
            },
          ],
        };
        const engine = new Engine({ logger: testLogger(), adapters: [createDbAdapter(s.config)] });
        expect(engine.check(doc)).to.deep.equal([]);
        engine.addRoutes(doc);
        await engine.start();
        try {
          const reply = await engine.request<{ id: number; m: number }>('direct:bump', { id: 1 });
          expect(reply).to.deep.equal({ id: 1, m: 102 });
          await engine.request('direct:bump', { id: 1 });
          const failed = await engine.send('direct:fail', 'not json').then(() => undefined, (e: unknown) => e);
          expect(failed).to.have.nested.property('details.deadLettered', true);
          await waitFor(async () => Number((await db.query(`SELECT seen FROM ${t}_jobs WHERE id = 7`)).rows[0]?.seen) === 1, 10_000, 'the polled row consumed');
        } finally {
          await engine.stop();
        }
        expect((await db.query(`SELECT n, r FROM ${t}_c WHERE id = 1`)).rows).to.deep.equal([{ n: 3, r: 12 }]);
        expect((await db.query(`SELECT n, reason FROM ${t}_dl`)).rows).to.deep.equal([{ n: 2, reason: 'BUSBAR_ERR_PARSE' }]);
        expect((await db.query(`SELECT seen FROM ${t}_jobs WHERE id = 7`)).rows).to.deep.equal([{ seen: 1 }]);
      } finally {
        await db.query(`DROP TABLE IF EXISTS ${t}_c`).catch(() => undefined);
        await db.query(`DROP TABLE IF EXISTS ${t}_jobs`).catch(() => undefined);
        await db.query(`DROP TABLE IF EXISTS ${t}_dl`).catch(() => undefined);
        await db.close();
      }
    });
  }

  it('endpointUri() builds the same URI in code; the data form checks its values and refuses an option given twice', () => {
    expect(endpointUri('db:main', { statement: 'UPDATE c SET n = n + 1', batch: false })).to.equal('db:main?statement=UPDATE%20c%20SET%20n%20%3D%20n%20%2B%201&batch=false');
    expect(endpointUri('db:main?outputType=first', { query: 'SELECT 1 + 1' })).to.equal('db:main?outputType=first&query=SELECT%201%20%2B%201');
    const engine = new Engine({ logger: testLogger(), adapters: [createDbAdapter()] });
    const file = join(dir.path, 'x.db');
    const problems = engine.check({
      routes: [
        { id: 'a', from: 'direct:a', steps: [{ to: { uri: `db:sqlite:${file}?statement=SELECT%201`, options: { statement: 'SELECT 1 + 1' } } }] },
        { id: 'b', from: 'direct:b', steps: [{ to: { uri: `db:sqlite:${file}`, options: { statement: ['SELECT 1'] } } }] },
        { id: 'c', from: 'direct:c', steps: [{ to: { uri: `db:sqlite:${file}`, options: { statment: 'SELECT 1 + 1' } } }] },
      ],
    });
    const at = (path: string): string => problems.filter((p) => p.path === path).map((p) => `${p.message} ${p.suggestion ?? ''}`).join('\n');
    expect(problems.map((p) => p.path).sort()).to.deep.equal(['/routes/0/steps/0', '/routes/1/steps/0/to/options/statement', '/routes/2/steps/0']);
    expect(at('/routes/0/steps/0')).to.contain('option "statement" is given twice');
    expect(at('/routes/1/steps/0/to/options/statement')).to.contain('string, number or boolean');
    expect(at('/routes/2/steps/0')).to.contain('statment').and.contain('statement');
  });

  it('busbar validate refuses a raw "+" in SQL of a URI with a coded error that points to the options form, and passes the options form', () => {
    const file = join(dir.path, 'v.db');
    const bad = join(dir.path, 'bad.json');
    const good = join(dir.path, 'good.json');
    writeFileSync(bad, JSON.stringify({ routes: [{ id: 'bump', from: 'direct:bump', steps: [{ to: `db:sqlite:${file}?statement=UPDATE c SET n = n + 1` }] }] }));
    writeFileSync(good, JSON.stringify({ routes: [{ id: 'bump', from: 'direct:bump', steps: [{ to: { uri: `db:sqlite:${file}`, options: { statement: 'UPDATE c SET n = n + 1' } } }] }] }));
    const v = spawnSync(process.execPath, ['bin/busbar.js', 'validate', bad], { encoding: 'utf8', timeout: 30_000 });
    expect(v.status, v.stdout + v.stderr).to.equal(1);
    const out = v.stdout + v.stderr;
    expect(out).to.contain('/routes/0/steps/0').and.contain('option statement').and.contain('"options": { "statement"');
    const ok = spawnSync(process.execPath, ['bin/busbar.js', 'validate', good], { encoding: 'utf8', timeout: 30_000 });
    expect(ok.status, ok.stdout + ok.stderr).to.equal(0);
  });
});
