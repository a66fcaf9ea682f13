import { expect } from 'chai';
import { join } from 'node:path';
import { dbAdapter, openDatabase } from '../../../adapters/db/index.js';
import { Engine } from '../../../lib/index.js';
import { tempDir, testLogger } from '../../helpers.js';

describe('db: SQL in a URI query is not mangled', function () {
  this.timeout(30_000);
  const dir = tempDir('busbar-sql-uri-');
  after(() => dir.cleanup());

  it('refuses a raw "+" in a statement when the route is checked (validate) or added, and runs the %2B form as written', async () => {
    const file = join(dir.path, 'n.db');
    const db = openDatabase({ engine: 'sqlite', file });
    await db.query('CREATE TABLE c (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)');
    await db.query('INSERT INTO c (id, n) VALUES (1, 1)');
    const engine = new Engine({ logger: testLogger(), adapters: [dbAdapter] });
    const mangled = { routes: [{ id: 'bump', from: 'direct:bump', steps: [{ to: `db:sqlite:${file}?statement=UPDATE c SET n = n + 1 WHERE id = 1` }] }] };
    const problems = engine.check(mangled);
    expect(problems).to.have.length(1);
    expect(problems[0]!.path).to.equal('/routes/0/steps/0');
    expect(problems[0]!.message).to.contain('option statement').and.contain('%2B');
    expect(() => engine.addRoutes(mangled)).to.throw().with.property('code', 'BUSBAR_ERR_DB_CONFIG');
    engine.addRoutes({ routes: [{ id: 'bump', from: 'direct:bump', steps: [{ to: `db:sqlite:${file}?statement=UPDATE c SET n = n %2B 1 WHERE id = 1` }] }] });
    await engine.start();
    try {
      await engine.send('direct:bump', null);
      await engine.send('direct:bump', null);
    } finally {
      await engine.stop();
    }
    expect((await db.query('SELECT n FROM c WHERE id = 1')).rows[0]).to.deep.equal({ n: 3 });
    await db.close();
  });
});
