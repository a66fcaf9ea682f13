import { expect } from 'chai';
import { openDatabase, type Database } from '../../../adapters/db/index.js';
import { createDbAdapter } from '../../../adapters/db/index.js';
import { Engine, from } from '../../../lib/index.js';
import { PG_URL, testLogger } from '../../helpers.js';

describe('db: PostgreSQL 64-bit integers (bigint, count(*)) — real PostgreSQL', function () {
  this.timeout(30_000);
  const opened: Database[] = [];
  const db = (int64?: 'number' | 'bigint' | 'string'): Database => {
    const d = openDatabase({ engine: 'postgres', url: PG_URL, poolSize: 1, ...(int64 ? { int64 } : {}) });
    opened.push(d);
    return d;
  };
  after(async () => {
    for (const d of opened) await d.close();
  });

  it('arrive as numbers by default; one beyond 2^53 fails the query instead of losing digits', async () => {
    const { rows } = await db().query('SELECT count(*) AS n, 42::bigint AS b, (-9007199254740991)::bigint AS low FROM (VALUES (1), (2), (3)) v(x)');
    expect(rows[0]).to.deep.equal({ n: 3, b: 42, low: -9007199254740991 });
    const err = await db()
      .query('SELECT 9007199254740993::bigint AS big')
      .then(() => undefined, (e: { code?: string; details?: Record<string, unknown> }) => e);
    expect(err?.code).to.equal('BUSBAR_ERR_DB_QUERY');
    expect(err?.details).to.include({ column: 'big' });
  });

  it("as bigint or as string when the connection says so", async () => {
    expect((await db('bigint').query('SELECT 9007199254740993::bigint AS big, count(*) AS n FROM (VALUES (1)) v(x)')).rows[0]).to.deep.equal({ big: 9007199254740993n, n: 1n });
    expect((await db('string').query('SELECT 9007199254740993::bigint AS big, count(*) AS n FROM (VALUES (1)) v(x)')).rows[0]).to.deep.equal({ big: '9007199254740993', n: '1' });
  });

  it('a JSONata comparison on count(*) works in a route (it quietly failed on the string "3")', async () => {
    const engine = new Engine({ logger: testLogger(), adapters: [createDbAdapter({ connections: { main: { engine: 'postgres', url: PG_URL, poolSize: 1 } } })] });
    engine.addRoutes({
      routes: [{ from: 'direct:count', steps: [{ request: 'db:main?statement=SELECT count(*) AS n FROM (VALUES (1), (2), (3)) v(x)&outputType=first' }, { filter: 'n > 2' }, { to: 'mock:many' }] }],
    });
    await engine.start();
    try {
      await engine.send('direct:count', null);
      expect(engine.mock('mock:many').bodies).to.deep.equal([{ n: 3 }]);
    } finally {
      await engine.stop();
    }
  });
});
