import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFileAdapter } from '../../../adapters/file/index.js';
import { from } from '../../../lib/builder.js';
import { Engine } from '../../../lib/engine.js';
import type { ManagementServer } from '../../../lib/management/types.js';
import { tempDir } from '../../helpers.js';
import { call, managementFixture } from './fixture.js';

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

describe('management API: dead letters', () => {
  let engine: Engine;
  let m: ManagementServer | undefined;
  const fx = managementFixture();

  it('lists in-memory dead letters with their busbar.error.* reason and replays them into the route; one that fails again is dead-lettered again, counted', async () => {
    engine = fx.engine();
    const broken = new Set(['a', 'b', 'c']);
    engine.addRoutes(
      from<{ k: string }>('direct:in')
        .routeId('orders')
        .deadLetter('mock:dead')
        .process((msg) => {
          if (broken.has(msg.body.k)) throw new Error(`cannot take ${msg.body.k}`);
          return msg;
        })
        .to('mock:done'),
    );
    await engine.start();
    m = await fx.serve(engine);
    for (const k of ['a', 'b', 'c', 'ok']) await engine.send('direct:in', { k }).catch(() => undefined);
    const list = await call(m, 'GET', '/api/v1/dead-letters?route=orders');
    const dls = list.body.deadLetters as DL[];
    expect(dls.map((d) => (d.body as { k: string }).k)).to.deep.equal(['a', 'b', 'c']);
    expect(dls[0]).to.include({ routeId: 'orders', endpoint: 'mock:dead', code: 'BUSBAR_ERR_STEP_FAILED', step: '/steps/0 (process)' });
    expect(dls[0]!.message).to.contain('cannot take a');
    // fix two of three, replay all
    broken.delete('a');
    broken.delete('b');
    const r = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'orders' });
    expect(r.status).to.equal(200);
    expect(r.body).to.include({ total: 3, replayed: 2, deadLetteredAgain: 1, failed: 0 });
    expect(engine.mock('mock:done').bodies).to.deep.equal([{ k: 'ok' }, { k: 'a' }, { k: 'b' }]);
    const done = engine.mock('mock:done').received;
    expect(done[1]!.headers['busbar.replayed']).to.equal(1);
    expect(done[1]!.headers['busbar.error.code'], 'the old reason is not carried on').to.equal(undefined);
    const left = (await call(m, 'GET', '/api/v1/dead-letters')).body.deadLetters as DL[];
    expect(left.map((d) => (d.body as { k: string }).k)).to.deep.equal(['c']);
    expect(engine.routeStats('orders')).to.include({ received: 7, completed: 3, deadLettered: 4 });
  });

  it('reads a file folder dead-letter endpoint (reasons kept beside it) and replays one by id or all to a named endpoint; nothing is lost', async () => {
    const dir = tempDir('busbar-dlq-');
    try {
      engine = fx.engine({ adapters: [createFileAdapter({ baseDir: dir.path })] });
      let fail = true;
      engine.addRoutes(
        from<string>('direct:in')
          .routeId('files')
          .deadLetter('file:dead')
          .process((msg) => {
            if (fail) throw new Error(`bad ${msg.body}`);
            return msg;
          })
          .to('mock:ok'),
      );
      await engine.start();
      m = await fx.serve(engine);
      for (const b of ['x1', 'x2', 'x3']) await engine.send('direct:in', b).catch(() => undefined);
      expect(readdirSync(join(dir.path, 'dead')).filter((f) => !f.startsWith('.') && !f.endsWith('.error.json')).sort()).to.have.length(3);
      const dls = (await call(m, 'GET', '/api/v1/dead-letters?route=files')).body.deadLetters as DL[];
      expect(dls.map((d) => d.body)).to.have.members(['x1', 'x2', 'x3']);
      expect(dls.every((d) => d.code === 'BUSBAR_ERR_STEP_FAILED' && d.message.includes('bad '))).to.equal(true);
      // a replay that fails again: dead-lettered again with the new reason, still one file
      const again = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'files', ids: [dls[0]!.id] });
      expect(again.body).to.include({ total: 1, replayed: 0, deadLetteredAgain: 1 });
      expect(((await call(m, 'GET', '/api/v1/dead-letters?route=files')).body.deadLetters as DL[]).map((d) => d.body)).to.have.members(['x1', 'x2', 'x3']);
      fail = false;
      const all = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'files' });
      expect(all.body).to.include({ total: 3, replayed: 3, deadLetteredAgain: 0, failed: 0 });
      expect(engine.mock('mock:ok').bodies).to.have.members(['x1', 'x2', 'x3']);
      expect(readdirSync(join(dir.path, 'dead')).filter((f) => !f.startsWith('.') && !f.endsWith('.error.json'))).to.deep.equal([]);
      expect(((await call(m, 'GET', '/api/v1/dead-letters')).body.deadLetters as DL[]).length).to.equal(0);
      // a replay to an endpoint that fails keeps the original
      fail = true;
      await engine.send('direct:in', 'x4').catch(() => undefined);
      const kept = await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'files', to: 'direct:nobody' });
      expect(kept.body).to.include({ total: 1, replayed: 0, failed: 1 });
      const x4 = ((await call(m, 'GET', '/api/v1/dead-letters?route=files')).body.deadLetters as DL[]).find((d) => d.body === 'x4')!;
      expect(existsSync(join(dir.path, 'dead', x4.id))).to.equal(true);
      expect(readFileSync(join(dir.path, 'dead', x4.id), 'utf8')).to.equal('x4');
    } finally {
      dir.cleanup();
    }
  });

  it('says which dead-letter endpoints it cannot read, and refuses a bad replay request with a coded error', async () => {
    engine = fx.engine();
    engine.addRoutes(from('direct:q').routeId('q').deadLetter('queue:dead').to('mock:x'));
    await engine.start();
    m = await fx.serve(engine);
    const l = await call(m, 'GET', '/api/v1/dead-letters');
    expect(l.body.unreadable).to.deep.equal([{ routeId: 'q', endpoint: 'queue:dead' }]);
    const bad = await call(m, 'POST', '/api/v1/dead-letters/replay', {});
    expect(bad.status).to.equal(400);
    expect((bad.body.error as { code: string }).code).to.equal('BUSBAR_ERR_MANAGEMENT_REQUEST');
    expect((await call(m, 'POST', '/api/v1/dead-letters/replay', { route: 'nope' })).status).to.equal(404);
  });
});
