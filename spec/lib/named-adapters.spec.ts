import { request } from 'node:http';
import { expect } from 'chai';
import pg from 'pg';
import { createHttpAdapter, boundPort } from '../../adapters/http/index.js';
import { engineFromModule } from '../../lib/cli/main.js';
import { Engine, from, named } from '../../lib/index.js';
import { codeOf, PG_URL, testLogger } from '../helpers.js';

function get(port: number, headerBytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/ping', method: 'GET', headers: { 'x-pad': 'a'.repeat(headerBytes) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('named adapter instances', () => {
  it('refuses a name that cannot be a URI scheme, with a coded error', () => {
    expect(codeOf(() => named('Amqp_EU', createHttpAdapter()))).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(codeOf(() => named('1amqp', createHttpAdapter()))).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(named('http-admin', createHttpAdapter())).to.include({ scheme: 'http-admin', type: 'http' });
  });

  it('runs two HTTP servers as two instances, each with its own configuration and stats', async () => {
    // the public one refuses large header blocks, the admin one takes them
    const engine = new Engine({ logger: testLogger() })
      .use(createHttpAdapter({ maxHeaderBytes: 1024 }), 'http-public')
      .use(createHttpAdapter({ maxHeaderBytes: 65536 }), 'http-admin');
    engine.addRoutes(
      from('http-public:/ping?port=0').routeId('public').transform(() => 'pong'),
      from('http-admin:/ping?port=0&host=127.0.0.2').routeId('admin').transform(() => 'pong'),
    );
    await engine.start();
    try {
      const pub = boundPort(engine, 0, '127.0.0.1', 'http-public')!;
      const adm = boundPort(engine, 0, '127.0.0.2', 'http-admin')!;
      expect(pub).to.be.a('number');
      expect(await get(pub, 10)).to.equal(200);
      expect(await get(pub, 4000)).to.equal(431);
      expect(await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.2', port: adm, path: '/ping', headers: { 'x-pad': 'a'.repeat(4000) } }, (res) => (res.resume(), res.on('end', () => resolve(res.statusCode ?? 0))));
        req.on('error', reject);
        req.end();
      })).to.equal(200);
      const stats = engine.stats().adapters;
      expect(stats['http-public']).to.include({ type: 'http', consumers: 1, completed: 1 });
      expect(stats['http-admin']).to.include({ type: 'http', consumers: 1, completed: 1 });
    } finally {
      await engine.stop();
    }
  });

  describe('in a routes file ("adapters": { "<name>": { "type": "<kind>", ... } })', () => {
    it('checks each instance against its type\'s settings, with the path of every problem', () => {
      const { problems } = engineFromModule(
        {
          routes: [],
          adapters: {
            'amqp-eu': { type: 'amqp', url: 'amqp://127.0.0.1:1', heartbeatSecond: 3 },
            'amqp-us': { type: 'amqq' },
            'db-b': { connections: {} },
            amqp: { url: 'amqp://127.0.0.1:2' },
          },
        },
        testLogger(),
      );
      const byPath = Object.fromEntries(problems.map((p) => [p.path, p]));
      expect(byPath['/adapters/amqp-eu/heartbeatSecond']?.suggestion).to.match(/heartbeatSeconds/);
      expect(byPath['/adapters/amqp-us/type']?.suggestion).to.match(/amqp/);
      expect(byPath['/adapters/db-b']?.message).to.match(/"type"/);
      expect(problems).to.have.length(3);
    });

    it('writes to two PostgreSQL databases through two db instances whose connections have the same name', async function () {
      this.timeout(20_000);
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      const other = `busbar_named_${process.pid}`;
      await admin.query(`DROP DATABASE IF EXISTS ${other}`);
      await admin.query(`CREATE DATABASE ${other}`);
      const otherUrl = PG_URL.replace(/\/[^/]*$/, `/${other}`);
      const table = `named_${process.pid}`;
      const { engine, problems } = engineFromModule(
        {
          routes: [],
          adapters: {
            'db-a': { type: 'db', connections: { main: { engine: 'postgres', url: PG_URL } } },
            'db-b': { type: 'db', connections: { main: { engine: 'postgres', url: otherUrl } } },
          },
        },
        testLogger(),
      );
      expect(problems).to.deep.equal([]);
      const insert = encodeURIComponent(`INSERT INTO ${table} (v) VALUES (:body.v)`);
      engine.addRoutes(from('direct:write').to(`db-a:postgres:main?statement=${insert}`).to(`db-b:postgres:main?statement=${insert}`).to(`db-b:postgres:main?statement=${insert}`));
      const b = new pg.Client({ connectionString: otherUrl });
      await b.connect();
      try {
        await admin.query(`CREATE TABLE ${table} (v text)`);
        await b.query(`CREATE TABLE ${table} (v text)`);
        await engine.start();
        await engine.send('direct:write', { v: 'x' });
        expect((await admin.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).to.equal(1);
        expect((await b.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).to.equal(2);
        expect(engine.stats().adapters['db-a']).to.include({ type: 'db', sent: 1 });
        expect(engine.stats().adapters['db-b']).to.include({ type: 'db', sent: 2 });
      } finally {
        await engine.stop();
        await b.end();
        await admin.query(`DROP TABLE IF EXISTS ${table}`);
        await admin.query(`DROP DATABASE IF EXISTS ${other} WITH (FORCE)`);
        await admin.end();
      }
    });
  });
});
