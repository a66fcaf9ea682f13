import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createDbAdapter } from '../../adapters/db/index.js';
import { from } from '../../lib/index.js';
import { dbFixture, type DbFixture } from '../adapters/db/suite.js';
import { waitFor } from '../helpers.js';
import { BIN } from '../cli/hub.js';
import { call, managementFixture } from '../lib/management/fixture.js';

interface DL {
  id: string;
  routeId: string;
  endpoint: string;
  messageId: string;
  code: string;
  message: string;
  step: string;
  body: unknown;
}

/** The CLI against an embedded engine's management API; resolves on exit, `onStderr` sees each chunk. */
function cli(url: string, args: string[], onStderr: (all: string) => void = () => undefined): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, BUSBAR_MANAGEMENT_URL: url, BUSBAR_MANAGEMENT_TOKEN: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr(stderr);
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`management API: dead letters in a db table (${dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'})`, function () {
    this.timeout(60_000);
    const fx = managementFixture();
    let f: DbFixture;
    before(async () => {
      f = await dbFixture(dialect);
    });
    after(() => f.cleanup());

    const rows = async (t: string): Promise<Array<{ id: number; claimed_by: string | null }>> => (await f.admin.query(`SELECT id, claimed_by FROM ${t} ORDER BY id`)).rows as Array<{ id: number; claimed_by: string | null }>;

    it('lists the rows with their busbar.error.* reason, replays one and all into the route or to an endpoint; a row goes only after its replay was delivered; a failed replay keeps it', async () => {
      const table = f.t('dead_a');
      const dead = `${f.uri}?outbox=${table}`;
      const engine = fx.engine({ adapters: [createDbAdapter(f.config)] });
      const broken = new Set(['a', 'b', 'c']);
      // what the table held while each replayed message was being delivered
      const duringReplay: number[] = [];
      engine.addRoutes(
        from<{ k: string }>('direct:in')
          .routeId('orders')
          .deadLetter(dead)
          .process(async (msg) => {
            if (msg.headers['busbar.replayed'] !== undefined) duringReplay.push((await rows(table)).length);
            if (broken.has(msg.body.k)) throw new Error(`cannot take ${msg.body.k}`);
            return msg;
          })
          .to('mock:done'),
      );
      await engine.start();
      const m = await fx.serve(engine);
      for (const k of ['a', 'b', 'c', 'ok']) await engine.send('direct:in', { k }).catch(() => undefined);
      const listed = async (): Promise<DL[]> => (await call(m, 'GET', '/api/v1/dead-letters?route=orders')).body.deadLetters as DL[];
      const first = await listed();
      expect(first.map((d) => (d.body as { k: string }).k)).to.deep.equal(['a', 'b', 'c']);
      expect(first[0]).to.include({ routeId: 'orders', endpoint: dead, code: 'BUSBAR_ERR_STEP_FAILED', step: '/steps/0 (process)' });
      expect(first[0]!.message).to.contain('cannot take a');
      expect(await rows(table)).to.have.length(3);
      // the reason is readable from SQL as docs/management.md shows
      const sql =
        dialect === 'postgres'
          ? `SELECT id, message::json -> 'headers' ->> 'busbar.error.code' AS code, message::json -> 'headers' ->> 'busbar.error.message' AS reason FROM ${table} ORDER BY id`
          : `SELECT id, json_extract(message, '$.headers."busbar.error.code"') AS code FROM ${table}`;
      expect((await f.admin.query(sql)).rows.map((r) => r.code)).to.deep.equal(Array(3).fill('BUSBAR_ERR_STEP_FAILED'));

      // a replay whose own delivery fails (nobody consumes direct:nowhere) keeps the row, unclaimed
      const lost = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'orders', ids: [first[0]!.id], to: 'direct:nowhere' });
      expect(lost.status).to.equal(200);
      expect(lost.body).to.include({ total: 1, replayed: 0, failed: 1, remaining: 1 });
      expect((await rows(table)).map((r) => r.claimed_by)).to.deep.equal([null, null, null]);

      // one, by its row id, into the route: the row is still there while the route delivers it
      broken.delete('a');
      const one = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'orders', ids: [first[0]!.id] });
      expect(one.body).to.include({ total: 1, replayed: 1, deadLetteredAgain: 0, failed: 0 });
      expect(duringReplay).to.deep.equal([3]);
      expect((await listed()).map((d) => (d.body as { k: string }).k)).to.deep.equal(['b', 'c']);

      // all: b goes through, c fails again and is a new row with the new reason
      broken.delete('b');
      const all = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'orders' });
      expect(all.body).to.include({ total: 2, replayed: 1, deadLetteredAgain: 1, failed: 0, remaining: 1 });
      expect(engine.mock('mock:done').bodies).to.deep.equal([{ k: 'ok' }, { k: 'a' }, { k: 'b' }]);
      expect(engine.mock('mock:done').received[1]!.headers['busbar.error.code'], 'the old reason is not carried on').to.equal(undefined);
      const left = await listed();
      expect(left.map((d) => (d.body as { k: string }).k)).to.deep.equal(['c']);
      expect(left[0]!.id).to.not.equal(first[2]!.id);
      expect(await rows(table)).to.have.length(1);

      // to a named endpoint instead of the route
      const to = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'orders', to: 'mock:elsewhere' });
      expect(to.body).to.include({ total: 1, replayed: 1 });
      expect(engine.mock('mock:elsewhere').bodies).to.deep.equal([{ k: 'c' }]);
      expect(await rows(table)).to.deep.equal([]);
    });

    it('a row claimed by a replay running elsewhere is skipped, not replayed twice', async () => {
      const table = f.t('dead_b');
      const engine = fx.engine({ adapters: [createDbAdapter(f.config)] });
      engine.addRoutes(from('direct:in').routeId('orders').deadLetter(`${f.uri}?outbox=${table}`).to('direct:nobody'));
      await engine.start();
      const m = await fx.serve(engine);
      for (const k of ['a', 'b']) await engine.send('direct:in', { k }).catch(() => undefined);
      const [a] = await rows(table);
      await f.admin.query(`UPDATE ${table} SET claimed_by = 'replay:other', claimed_until = ${Date.now() + 60_000} WHERE id = ${a!.id}`);
      const r = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'orders', to: 'mock:out' });
      expect(r.body).to.include({ total: 2, replayed: 1, skipped: 1, remaining: 1 });
      expect(engine.mock('mock:out').bodies).to.deep.equal([{ k: 'b' }]);
      expect((await rows(table)).map((x) => x.id)).to.deep.equal([a!.id]);
    });

    if (dialect === 'sqlite') {
      it('busbar dead-letters ID lists them and --replay shows its progress while it replays many', async () => {
        const table = f.t('dead_c');
        const engine = fx.engine({ adapters: [createDbAdapter(f.config)] });
        const N = 40;
        let fixed = false;
        let seenProgress = false;
        engine.addRoutes(
          from<{ n: number }>('direct:in')
            .routeId('orders')
            .deadLetter(`${f.uri}?outbox=${table}`)
            .process(async (msg) => {
              if (!fixed) throw new Error(`not yet ${msg.body.n}`);
              // the replay holds at its half until the CLI has printed a progress line
              if (msg.body.n === N / 2) await waitFor(() => seenProgress, 20_000, 'a progress line');
              return msg;
            })
            .to('mock:done'),
        );
        await engine.start();
        const m = await fx.serve(engine);
        for (let n = 1; n <= N; n++) await engine.send('direct:in', { n }).catch(() => undefined);
        const list = await cli(m.url, ['dead-letters', 'orders']);
        expect(list.code, list.stderr).to.equal(0);
        expect(list.stdout).to.contain('BUSBAR_ERR_STEP_FAILED').and.contain('not yet 1');
        expect(list.stdout.trim().split('\n')).to.have.length(N + 1);
        fixed = true;
        const r = await cli(m.url, ['dead-letters', 'orders', '--replay'], (err) => {
          if (/replaying orders: \d+\/40/.test(err)) seenProgress = true;
        });
        expect(r.code, r.stderr).to.equal(0);
        expect(r.stderr).to.match(/replaying orders: (19|20)\/40/);
        expect(r.stdout).to.contain(`orders: replayed ${N}, dead-lettered again 0, failed (kept) 0, remaining 0`);
        expect(engine.mock('mock:done').bodies.map((b) => (b as { n: number }).n)).to.deep.equal([...Array(N).keys()].map((i) => i + 1));
        expect(await rows(table)).to.deep.equal([]);
      });
    }
  });
}
