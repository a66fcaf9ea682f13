import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { expect } from 'chai';
import { createDbAdapter, dbSteps, openDatabase, SqlAggregationStore, SqlClaimCheckStore, SqlIdempotentRepository, type Database, type DbConfigInput } from '../../../adapters/db/index.js';
import { Engine, from, type BusbarError, createMessage, type Message } from '../../../lib/index.js';
import { codeOf, PG_URL, tempDir, testLogger, waitFor } from '../../helpers.js';

export type Dialect = 'sqlite' | 'postgres';

/** A database of its own per suite: a SQLite file in a temp dir, or a PostgreSQL schema. */
export interface DbFixture {
  dialect: Dialect;
  config: DbConfigInput;
  /** A second handle for setup and checks (not the engine's). */
  admin: Database;
  /** Qualify a table name (PostgreSQL: inside the suite's schema). */
  t(name: string): string;
  /** The URI prefix of the named connection, `db:t`. */
  uri: string;
  cleanup(): Promise<void>;
}

export async function dbFixture(dialect: Dialect): Promise<DbFixture> {
  if (dialect === 'sqlite') {
    const dir = tempDir('busbar-db-');
    const file = join(dir.path, 'app.db');
    const admin = openDatabase({ engine: 'sqlite', file });
    await admin.open();
    return {
      dialect,
      config: { connections: { t: { engine: 'sqlite', file } } },
      admin,
      t: (n) => n,
      uri: 'db:t',
      cleanup: async () => {
        await admin.close();
        dir.cleanup();
      },
    };
  }
  const schema = `bb_${randomUUID().slice(0, 8)}`;
  const admin = openDatabase({ engine: 'postgres', url: PG_URL, poolSize: 4 });
  await admin.query(`CREATE SCHEMA ${schema}`);
  return {
    dialect,
    config: { connections: { t: { engine: 'postgres', url: PG_URL, poolSize: 6 } } },
    admin,
    t: (n) => `${schema}.${n}`,
    uri: 'db:t',
    cleanup: async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
      await admin.close();
    },
  };
}

export async function createJobs(f: DbFixture, name: string, rows: number): Promise<string> {
  const t = f.t(name);
  await f.admin.query(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, customer TEXT, amount INTEGER, status TEXT, error TEXT, retries INTEGER DEFAULT 0, claimed_by TEXT, claimed_until BIGINT)`);
  if (rows > 0) await insertJobs(f, t, 1, rows);
  return t;
}

export async function insertJobs(f: DbFixture, table: string, first: number, last: number): Promise<void> {
  await f.admin.query(`WITH RECURSIVE s(g) AS (SELECT ${first} UNION ALL SELECT g + 1 FROM s WHERE g < ${last}) INSERT INTO ${table} (id, customer, amount) SELECT g, 'c' || g, g FROM s`);
}

async function count(f: DbFixture, sql: string): Promise<number> {
  const r = await f.admin.query(sql);
  return Number(Object.values(r.rows[0]!)[0]);
}

interface Row {
  id: number;
  customer: string;
  amount: number;
}

/** The behaviour both engines must share. */
export function dbSuite(dialect: Dialect): void {
  let f: DbFixture;
  let engine: Engine | undefined;
  const newEngine = (): Engine => (engine = new Engine({ logger: testLogger(), adapters: [createDbAdapter(f.config)], steps: dbSteps }));

  beforeEach(async () => {
    f = await dbFixture(dialect);
  });
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
    await f.cleanup();
  });

  describe('polling consumer', () => {
    it('delivers each row once and deletes it after the route succeeded', async () => {
      const t = await createJobs(f, 'jobs', 250);
      const e = newEngine();
      e.addRoutes(from<Row>(`${f.uri}?table=${t}&batchSize=40&delay=10`).routeId('poll').to('mock:out'));
      const out = e.mock('mock:out').expectCount(250);
      await e.start();
      await out.satisfied({ timeoutMs: 10_000 });
      await waitFor(async () => (await count(f, `SELECT COUNT(*) AS n FROM ${t}`)) === 0, 5000, 'rows deleted');
      const ids = out.bodies.map((b) => Number((b as Row).id));
      expect(new Set(ids).size).to.equal(250);
      expect(out.received[0]!.headers['busbar.db.table']).to.equal(t);
    });

    it('onConsume=mark sets the status and never polls a done row again', async () => {
      const t = await createJobs(f, 'jobs', 30);
      const e = newEngine();
      e.addRoutes(from<Row>(`${f.uri}?table=${t}&onConsume=mark&delay=5&maxIdleDelay=20`).to('mock:out'));
      const out = e.mock('mock:out').expectCount(30);
      await e.start();
      await out.satisfied();
      await waitFor(async () => (await count(f, `SELECT COUNT(*) AS n FROM ${t} WHERE status = 'done'`)) === 30, 5000, 'rows marked');
      await insertJobs(f, t, 31, 31); // a later row is still picked up, the done ones are not
      await waitFor(() => out.received.length >= 31, 5000, 'row 31');
      await e.stop();
      expect(out.received.length).to.equal(31);
    });

    it('onConsumeFailed=retry counts attempts and stops polling a row after maxRetries', async () => {
      const t = await createJobs(f, 'jobs', 5);
      const e = newEngine();
      e.addRoutes(from<Row>(`${f.uri}?table=${t}&maxRetries=3&delay=5&maxIdleDelay=20&claimTimeout=100000`).to('mock:out'));
      const out = e.mock('mock:out').whenReceived((m) => {
        if ((m.body as Row).id === 3) throw new Error('row 3 is poison');
      });
      await e.start();
      await waitFor(async () => (await count(f, `SELECT COUNT(*) AS n FROM ${t} WHERE id <> 3`)) === 0, 5000, 'good rows consumed');
      await waitFor(async () => (await count(f, `SELECT retries AS n FROM ${t} WHERE id = 3`)) === 3, 5000, 'row 3 retried');
      await e.stop();
      expect(out.bodies.filter((b) => (b as Row).id === 3)).to.have.length(3);
      const left = await f.admin.query(`SELECT id, claimed_by FROM ${t}`);
      expect(left.rows).to.have.length(1);
      expect(left.rows[0]!.claimed_by).to.equal(null);
    });

    it('onConsumeFailed=mark records the error code on the row', async () => {
      const t = await createJobs(f, 'jobs', 4);
      const e = newEngine();
      e.addRoutes(from<Row>(`${f.uri}?table=${t}&onConsume=mark&onConsumeFailed=mark&delay=5`).filter((r) => r.id !== 2 || Promise.reject(new Error('bad row'))).to('mock:out'));
      await e.start();
      await waitFor(async () => (await count(f, `SELECT COUNT(*) AS n FROM ${t} WHERE status IS NOT NULL`)) === 4, 5000, 'all rows settled');
      const failed = await f.admin.query(`SELECT id, status, error FROM ${t} WHERE status = 'failed'`);
      expect(failed.rows.map((r) => Number(r.id))).to.deep.equal([2]);
      expect(String(failed.rows[0]!.error)).to.match(/^BUSBAR_ERR_STEP_FAILED/);
    });

    it('a dead-lettered row counts as consumed, and the dead letter carries the reason', async () => {
      const t = await createJobs(f, 'jobs', 3);
      const e = newEngine();
      e.addRoutes(from<Row>(`${f.uri}?table=${t}&delay=5`).deadLetter('mock:dlq').to('mock:out'));
      e.mock('mock:out').whenReceived((m) => {
        if ((m.body as Row).id === 2) throw new Error('refused');
      });
      const dlq = e.mock('mock:dlq').expectCount(1);
      await e.start();
      await dlq.satisfied();
      await waitFor(async () => (await count(f, `SELECT COUNT(*) AS n FROM ${t}`)) === 0, 5000, 'rows deleted');
      expect((dlq.received[0]!.body as Row).id).to.equal(2);
      expect(dlq.received[0]!.headers['busbar.error.code']).to.equal('BUSBAR_ERR_STEP_FAILED');
    });

    it('perBatch delivers one message whose body is the rows of a poll', async () => {
      const t = await createJobs(f, 'jobs', 25);
      const e = newEngine();
      e.addRoutes(from<Row[]>(`${f.uri}?table=${t}&perBatch=true&batchSize=10&delay=5`).to('mock:out'));
      const out = e.mock('mock:out').expectCount(3);
      await e.start();
      await out.satisfied();
      expect(out.bodies.map((b) => (b as Row[]).length)).to.deep.equal([10, 10, 5]);
      expect((out.bodies.flat() as Row[]).map((r) => Number(r.id))).to.deep.equal(Array.from({ length: 25 }, (_, i) => i + 1));
    });

    it('a statement as onConsume is bound from the row', async () => {
      const t = await createJobs(f, 'jobs', 3);
      const log = f.t('consumed');
      await f.admin.query(`CREATE TABLE ${log} (id INTEGER, customer TEXT)`);
      const e = newEngine();
      const onConsume = encodeURIComponent(`INSERT INTO ${log} (id, customer) VALUES (:body.id, :body.customer)`);
      e.addRoutes(from<Row>(`${f.uri}?table=${t}&claim=none&where=${encodeURIComponent('id NOT IN (SELECT id FROM ' + log + ')')}&onConsume=${onConsume}&delay=5`).to('mock:out'));
      await e.start();
      await waitFor(async () => (await count(f, `SELECT COUNT(*) AS n FROM ${log}`)) === 3, 5000, 'log rows');
      const rows = await f.admin.query(`SELECT customer FROM ${log} ORDER BY id`);
      expect(rows.rows.map((r) => r.customer)).to.deep.equal(['c1', 'c2', 'c3']);
      expect(await count(f, `SELECT COUNT(*) AS n FROM ${t}`)).to.equal(3);
    });

    it('a query source polls a full SELECT and acknowledges with a statement', async () => {
      const t = await createJobs(f, 'jobs', 6);
      const e = newEngine();
      const query = encodeURIComponent(`SELECT id, customer FROM ${t} WHERE status IS NULL AND amount % 2 = 0 ORDER BY id`);
      const ack = encodeURIComponent(`UPDATE ${t} SET status = 'seen' WHERE id = :body.id`);
      e.addRoutes(from<Row>(`${f.uri}?query=${query}&onConsume=${ack}&delay=5`).to('mock:out'));
      const out = e.mock('mock:out').expectCount(3);
      await e.start();
      await out.satisfied();
      await waitFor(async () => (await count(f, `SELECT COUNT(*) AS n FROM ${t} WHERE status = 'seen'`)) === 3, 5000, 'rows acknowledged');
      await e.stop();
      expect(out.bodies.map((b) => Number((b as Row).id))).to.deep.equal([2, 4, 6]);
    });

    it('a missing table fails the route at start with DB_SCHEMA naming it', async () => {
      const e = newEngine();
      e.addRoutes(from(`${f.uri}?table=${f.t('nope')}`).to('mock:out'));
      const err = (await e.start().then(() => undefined, (x: unknown) => x)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_ROUTE_START_FAILED');
      const cause = err.cause as BusbarError;
      expect(cause.code).to.equal('BUSBAR_ERR_DB_SCHEMA');
      expect(cause.details.table).to.equal(f.t('nope'));
    });

    it('a missing claim column is a DB_SCHEMA error naming the column', async () => {
      const t = f.t('bare');
      await f.admin.query(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
      const e = newEngine();
      e.addRoutes(from(`${f.uri}?table=${t}&claim=update`).to('mock:out'));
      const err = (await e.start().then(() => undefined, (x: unknown) => x)) as BusbarError;
      const cause = err.cause as BusbarError;
      expect(cause.code).to.equal('BUSBAR_ERR_DB_SCHEMA');
      expect(cause.details.column).to.equal('claimed_by');
    });

    it('a row claimed by a crashed process is polled again once its claim expired, not before', async () => {
      const t = await createJobs(f, 'jobs', 2);
      const now = Date.now();
      await f.admin.query(`UPDATE ${t} SET claimed_by = 'crashed', claimed_until = ${now - 1000} WHERE id = 1`);
      await f.admin.query(`UPDATE ${t} SET claimed_by = 'alive', claimed_until = ${now + 3_600_000} WHERE id = 2`);
      await insertJobs(f, t, 3, 3);
      const e = newEngine();
      e.addRoutes(from<Row>(`${f.uri}?table=${t}&claim=update&delay=5`).to('mock:out'));
      const out = e.mock('mock:out');
      await e.start();
      await waitFor(() => out.received.length >= 2, 5000, 'rows 1 and 3');
      await e.stop();
      expect(out.bodies.map((b) => Number((b as Row).id)).sort()).to.deep.equal([1, 3]);
      expect(await count(f, `SELECT COUNT(*) AS n FROM ${t} WHERE id = 2`)).to.equal(1);
    });
  });

  describe('producer', () => {
    it('binds named parameters: an injection attempt in a header is stored as plain text', async () => {
      const t = f.t('notes');
      await f.admin.query(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, customer TEXT, note TEXT)`);
      const e = newEngine();
      const statement = encodeURIComponent(`INSERT INTO ${t} (id, customer, note) VALUES (:body.id, :header.customer, ':not.a.param')`);
      e.addRoutes(from<{ id: number }>('direct:in').to(`${f.uri}?statement=${statement}`));
      await e.start();
      const evil = `x'); DROP TABLE ${t}; --`;
      await e.send('direct:in', { id: 1 }, { customer: evil });
      const r = await f.admin.query(`SELECT customer, note FROM ${t}`);
      expect(r.rows).to.deep.equal([{ customer: evil, note: ':not.a.param' }]);
    });

    it('writes an array body in one transaction: one bad element writes nothing', async () => {
      const t = f.t('items');
      await f.admin.query(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, name TEXT)`);
      const e = newEngine();
      e.addRoutes(from('direct:in').to(`${f.uri}?table=${t}&operation=insert`));
      await e.start();
      await e.send('direct:in', [{ id: 1, name: 'a' }, { id: 2, name: 'b' }]);
      const err = (await e.send('direct:in', [{ id: 3, name: 'c' }, { id: 1, name: 'dup' }]).then(() => undefined, (x: unknown) => x)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_DB_QUERY');
      const r = await f.admin.query(`SELECT id, name FROM ${t} ORDER BY id`);
      expect(r.rows.map((x) => [Number(x.id), x.name])).to.deep.equal([[1, 'a'], [2, 'b']]);
    });

    it('upserts and updates rows from the body', async () => {
      const t = f.t('items');
      await f.admin.query(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)`);
      const e = newEngine();
      e.addRoutes(from('direct:up').to(`${f.uri}?table=${t}&operation=upsert`), from('direct:upd').to(`${f.uri}?table=${t}&operation=update`));
      await e.start();
      await e.send('direct:up', { id: 1, name: 'a', qty: 1 });
      await e.send('direct:up', { id: 1, name: 'b', qty: 2 });
      await e.send('direct:upd', { id: 1, qty: 7 });
      const r = await f.admin.query(`SELECT id, name, qty FROM ${t}`);
      expect(r.rows.map((x) => [Number(x.id), x.name, Number(x.qty)])).to.deep.equal([[1, 'b', 7]]);
    });

    it('a body field that is not a column is a DB_SCHEMA error naming it', async () => {
      const t = f.t('items');
      await f.admin.query(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, name TEXT)`);
      const e = newEngine();
      e.addRoutes(from('direct:in').to(`${f.uri}?table=${t}&operation=insert`));
      await e.start();
      const err = (await e.send('direct:in', { id: 1, 'name) VALUES (1); --': 'x' }).then(() => undefined, (x: unknown) => x)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_DB_SCHEMA');
      expect(err.details.column).to.equal('name) VALUES (1); --');
      expect(await count(f, `SELECT COUNT(*) AS n FROM ${t}`)).to.equal(0);
    });

    it('a query endpoint enriches the message (content enricher)', async () => {
      const t = f.t('customers');
      await f.admin.query(`CREATE TABLE ${t} (id TEXT PRIMARY KEY, name TEXT, tier TEXT)`);
      await f.admin.query(`INSERT INTO ${t} VALUES ('k1', 'Ada', 'gold'), ('k2', 'Bob', 'silver')`);
      const e = newEngine();
      const q = encodeURIComponent(`SELECT name, tier FROM ${t} WHERE id = :body.customerId`);
      e.addRoutes(from('direct:in').to(`${f.uri}?query=${q}&outputType=first&mergeInto=customer`));
      await e.start();
      expect(await e.request('direct:in', { orderId: 9, customerId: 'k2' })).to.deep.equal({ orderId: 9, customerId: 'k2', customer: { name: 'Bob', tier: 'silver' } });
      expect(await e.request('direct:in', { orderId: 10, customerId: 'zz' })).to.deep.equal({ orderId: 10, customerId: 'zz', customer: null });
    });

    it('groupCommit writes concurrent sends together and resolves each', async () => {
      const t = f.t('items');
      await f.admin.query(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, name TEXT)`);
      const e = newEngine();
      e.addRoutes(from('direct:in').to(`${f.uri}?table=${t}&operation=insert&groupCommit=true&batchSize=20`));
      await e.start();
      const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => e.send('direct:in', { id: i % 49, name: `n${i}` })));
      // ids 0..48 once, and id 0 twice: exactly one send fails, with a coded error
      const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      expect(failed).to.have.length(1);
      expect((failed[0]!.reason as BusbarError).code).to.equal('BUSBAR_ERR_DB_QUERY');
      expect(await count(f, `SELECT COUNT(*) AS n FROM ${t}`)).to.equal(49);
    });

    it('configuration problems are coded errors at route creation', () => {
      const e = newEngine();
      expect(codeOf(() => e.addRoutes(from('direct:a').to('db:postgres:nosuch?statement=DELETE%20FROM%20x')))).to.equal('BUSBAR_ERR_DB_CONFIG');
      expect(codeOf(() => e.addRoutes(from('direct:b').to(`${f.uri}?statement=${encodeURIComponent('DELETE FROM x WHERE id = :bogus.id')}`)))).to.equal('BUSBAR_ERR_DB_CONFIG');
      expect(codeOf(() => e.addRoutes(from('direct:c').to('db:postgres://u:secret@h/db?statement=x')))).to.equal('BUSBAR_ERR_DB_CONFIG');
      expect(codeOf(() => e.addRoutes(from('direct:d').to(`${f.uri}?table=${encodeURIComponent('x; drop')}&operation=insert`)))).to.equal('BUSBAR_ERR_DB_CONFIG');
      expect(codeOf(() => e.addRoutes(from(`${f.uri}?tabel=x`).to('mock:x')))).to.equal('BUSBAR_ERR_INVALID_OPTION');
    });
  });

  describe('stores', () => {
    const spec = (): Parameters<typeof openDatabase>[0] => (f.dialect === 'sqlite' ? { engine: 'sqlite', file: (f.config.connections!.t as { file: string }).file } : { engine: 'postgres', url: PG_URL, poolSize: 4 });

    it('idempotent repository: of competing adds exactly one wins', async () => {
      const a = new SqlIdempotentRepository(openDatabase(spec()), { table: f.t('idem') });
      const b = new SqlIdempotentRepository(openDatabase(spec()), { table: f.t('idem') });
      try {
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).add('route-1', 'order-7')));
        expect(results.filter(Boolean)).to.have.length(1);
        expect(await a.contains('route-1', 'order-7')).to.equal(true);
        expect(await b.contains('route-2', 'order-7')).to.equal(false);
        await b.remove('route-1', 'order-7');
        expect(await a.add('route-1', 'order-7')).to.equal(true);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('aggregation store survives a restart and a group is taken once', async () => {
      const first = new SqlAggregationStore(openDatabase(spec()), { table: f.t('agg') });
      await first.append('agg', 'k1', createMessage({ n: 1 }), 1000);
      const g = await first.append('agg', 'k1', createMessage(Buffer.from('two')), 2000);
      await first.append('agg', 'k2', createMessage('x'), 1500);
      expect(g.messages.map((m: Message) => m.body)).to.deep.equal([{ n: 1 }, Buffer.from('two')]);
      await first.close();
      const again = new SqlAggregationStore(openDatabase(spec()), { table: f.t('agg') });
      try {
        const groups = await again.groups('agg');
        expect(groups.map((x) => [x.key, x.messages.length, x.createdAt, x.updatedAt])).to.deep.equal([
          ['k1', 2, 1000, 2000],
          ['k2', 1, 1500, 1500],
        ]);
        const takes = await Promise.all([again.take('agg', 'k1'), again.take('agg', 'k1')]);
        expect(takes.filter((x) => x !== undefined)).to.have.length(1);
        expect(await again.get('agg', 'k1')).to.equal(undefined);
      } finally {
        await again.close();
      }
    });

    it('claim-check store keeps bodies, Buffers included', async () => {
      const s = new SqlClaimCheckStore(openDatabase(spec()), { table: f.t('claims') });
      try {
        await s.put('a', { big: 'x'.repeat(10_000), n: [1, 2] });
        await s.put('b', Buffer.from([0, 1, 2, 255]));
        expect(await s.get('a')).to.deep.equal({ big: 'x'.repeat(10_000), n: [1, 2] });
        expect(await s.get('b')).to.deep.equal(Buffer.from([0, 1, 2, 255]));
        await s.delete('a');
        expect(await s.get('a')).to.equal(undefined);
      } finally {
        await s.close();
      }
    });
  });

  describe('transactional outbox', () => {
    it('writes business rows and the outbox row together; the relay delivers the message', async () => {
      const orders = f.t('orders');
      await f.admin.query(`CREATE TABLE ${orders} (id INTEGER PRIMARY KEY, customer TEXT)`);
      const outbox = f.t('outbox');
      const e = newEngine();
      e.addRoutes(
        from<{ id: number; customer: string }>('direct:place')
          .outbox({ db: 't', statements: [`INSERT INTO ${orders} (id, customer) VALUES (:body.id, :body.customer)`], table: outbox, topic: 'order.{header.kind}' })
          .to('mock:placed'),
        from(`db:t?outbox=${outbox}&delay=5`).to('mock:relayed'),
      );
      const relayed = e.mock('mock:relayed').expectCount(2);
      await e.start();
      await e.send('direct:place', { id: 1, customer: 'ada' }, { kind: 'new' });
      await e.send('direct:place', { id: 2, customer: 'bob' }, { kind: 'new' });
      // a failing business statement (duplicate key) must not leave an outbox row behind
      const err = (await e.send('direct:place', { id: 1, customer: 'again' }, { kind: 'new' }).then(() => undefined, (x: unknown) => x)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_DB_QUERY');
      await relayed.satisfied();
      await waitFor(async () => (await count(f, `SELECT COUNT(*) AS n FROM ${outbox}`)) === 0, 5000, 'outbox drained');
      expect(relayed.bodies).to.deep.equal([{ id: 1, customer: 'ada' }, { id: 2, customer: 'bob' }].filter((b) => relayed.bodies.some((x) => (x as { id: number }).id === b.id)));
      expect(relayed.bodies).to.have.length(2);
      expect(relayed.received[0]!.headers['busbar.outbox.topic']).to.equal('order.new');
      expect(relayed.received[0]!.headers.kind).to.equal('new');
      expect(await count(f, `SELECT COUNT(*) AS n FROM ${orders}`)).to.equal(2);
      expect(e.mock('mock:placed').received).to.have.length(2);
    });

    it('the config form of the outbox step works the same', async () => {
      const orders = f.t('orders');
      await f.admin.query(`CREATE TABLE ${orders} (id INTEGER PRIMARY KEY)`);
      const e = newEngine();
      e.addRoutes({ routes: [{ id: 'place', from: 'direct:in', steps: [{ outbox: { db: 't', statements: `INSERT INTO ${orders} (id) VALUES (:body.id)`, table: f.t('box') } }] }] });
      await e.start();
      await e.send('direct:in', { id: 5 });
      expect(await count(f, `SELECT COUNT(*) AS n FROM ${f.t('box')}`)).to.equal(1);
      expect(await count(f, `SELECT COUNT(*) AS n FROM ${orders}`)).to.equal(1);
    });
  });
}
