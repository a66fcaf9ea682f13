import { expect } from 'chai';
import { from } from '../../../lib/builder.js';
import { Engine } from '../../../lib/engine.js';
import { createMessage } from '../../../lib/message.js';
import { startManagement } from '../../../lib/management/index.js';
import type { ManagementServer } from '../../../lib/management/types.js';
import { latch, rejection, waitFor } from '../../helpers.js';
import { get, post, managementFixture, remoteAdapter } from './fixture.js';

describe('management API (real sockets on 127.0.0.1)', () => {
  let engine: Engine;
  let m: ManagementServer | undefined;
  const fx = managementFixture();

  it('binds 127.0.0.1 by default and refuses any other address without a token', async () => {
    engine = fx.engine();
    await engine.start();
    m = await fx.serve(engine);
    expect(m.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    const err = await rejection(startManagement(engine, { host: '0.0.0.0', port: 0 }));
    expect(err.code).to.equal('BUSBAR_ERR_MANAGEMENT_CONFIG');
    expect(err.message).to.contain('0.0.0.0').and.contain('token');
    // with a token it may listen on every interface (reached here through 127.0.0.1 only)
    const wide = await startManagement(engine, { host: '0.0.0.0', port: 0, token: 's3cret' });
    try {
      const port = new URL(wide.url).port;
      expect((await get(`http://127.0.0.1:${port}/ready`)).status).to.equal(401);
      expect((await get(`http://127.0.0.1:${port}/ready`, 's3cret')).status).to.equal(200);
    } finally {
      await wide.close();
    }
  });

  it('needs the bearer token on everything but /live, and compares it exactly', async () => {
    engine = fx.engine();
    engine.addRoutes(from('direct:a').routeId('a').to('mock:out'));
    await engine.start();
    m = await fx.serve(engine, { token: 'tok-123' });
    expect((await get(`${m.url}/live`)).status).to.equal(200);
    const none = await get(`${m.url}/api/v1/routes`);
    expect(none.status).to.equal(401);
    expect((none.body.error as { code: string }).code).to.equal('BUSBAR_ERR_UNAUTHORIZED');
    expect((await get(`${m.url}/api/v1/routes`, 'tok-12')).status).to.equal(401);
    expect((await get(`${m.url}/api/v1/routes`, 'tok-1234')).status).to.equal(401);
    expect((await get(`${m.url}/metrics-nope`)).status, 'unknown paths do not leak without a token').to.equal(401);
    const ok = await get(`${m.url}/api/v1/routes`, 'tok-123');
    expect(ok.status).to.equal(200);
    expect((ok.body.routes as Array<{ id: string }>).map((r) => r.id)).to.deep.equal(['a']);
  });

  it('/ready is 503 with the per-route, per-endpoint breakdown while a source is down, 200 when it is back', async () => {
    const remote = remoteAdapter();
    engine = fx.engine({ adapters: [remote.adapter] });
    engine.addRoutes(from('remote:x').routeId('upstream').to('mock:out'), from('direct:b').routeId('local').to('mock:b'));
    await engine.start();
    m = await fx.serve(engine);
    expect((await get(`${m.url}/ready`)).status).to.equal(200);
    const before = Date.now();
    remote.ctx().setStatus('disconnected', new Error('connection refused'));
    const down = await get(`${m.url}/ready`);
    expect(down.status).to.equal(503);
    const routes = down.body.routes as Array<{ id: string; ready: boolean; endpoints: Array<{ uri: string; role: string; status: string; since: string; error?: string }> }>;
    const up = routes.find((r) => r.id === 'upstream')!;
    expect(up.ready).to.equal(false);
    expect(up.endpoints[0]).to.include({ uri: 'remote:x', role: 'source', status: 'disconnected', error: 'connection refused' });
    expect(Date.parse(up.endpoints[0]!.since)).to.be.at.least(before - 5);
    expect(routes.find((r) => r.id === 'local')!.ready).to.equal(true);
    remote.ctx().setStatus('connected');
    expect((await get(`${m.url}/ready`)).status).to.equal(200);
    // a route an operator stopped does not make the hub unready
    remote.ctx().setStatus('disconnected', new Error('gone'));
    await engine.stopRoute('upstream');
    expect((await get(`${m.url}/ready`)).status).to.equal(200);
  });

  it('lists routes with state and stats, and shows a route\'s structure: steps, kinds, endpoint URIs of branches', async () => {
    engine = fx.engine();
    engine.addRoutes(
      from<{ n: number }>('direct:orders')
        .routeId('orders')
        .deadLetter('mock:dead')
        .choice((c) => c.when((o) => o.n > 1, (b) => b.to('mock:big')).otherwise((b) => b.to('mock:small')))
        .to('mock:audit'),
    );
    await engine.start();
    m = await fx.serve(engine);
    await engine.send('direct:orders', { n: 2 });
    const list = await get(`${m.url}/api/v1/routes`);
    const r0 = (list.body.routes as Array<{ id: string; state: string; stats: { completed: number } }>)[0]!;
    expect(r0).to.include({ id: 'orders', state: 'started' });
    expect(r0.stats.completed).to.equal(1);
    const one = await get(`${m.url}/api/v1/routes/orders`);
    expect(one.status).to.equal(200);
    expect(one.body.from).to.equal('direct:orders');
    expect(one.body.deadLetters).to.deep.equal(['mock:dead']);
    const steps = one.body.steps as Array<{ path: string; kind: string; endpoints: string[]; children: Record<string, Array<{ kind: string; endpoints: string[] }>> }>;
    expect(steps.map((s) => s.kind)).to.deep.equal(['choice', 'to']);
    expect(steps[1]!.endpoints).to.deep.equal(['mock:audit']);
    const kids = steps[0]!.children;
    expect(Object.keys(kids).sort()).to.deep.equal(['otherwise', 'when/0/steps']);
    expect(kids['when/0/steps']![0]).to.deep.include({ kind: 'to', endpoints: ['mock:big'] });
    expect(kids.otherwise![0]).to.deep.include({ kind: 'to', endpoints: ['mock:small'] });
    expect((one.body.stepCounts as Record<string, number>)['/steps/0']).to.equal(1);
    const missing = await get(`${m.url}/api/v1/routes/nope`);
    expect(missing.status).to.equal(404);
    expect((missing.body.error as { code: string }).code).to.equal('BUSBAR_ERR_NOT_FOUND');
  });

  it('answers coded errors: unknown path 404, wrong method 405, bad JSON 400, wrong state 409', async () => {
    engine = fx.engine();
    engine.addRoutes(from('direct:a').routeId('a').to('mock:out'));
    await engine.start();
    m = await fx.serve(engine);
    expect((await get(`${m.url}/api/v1/nothing`)).status).to.equal(404);
    const wrong = await fetch(`${m.url}/api/v1/routes/a/stop`);
    expect(wrong.status).to.equal(405);
    const bad = await fetch(`${m.url}/api/v1/routes/a/stop`, { method: 'POST', body: '{nope' });
    expect(bad.status).to.equal(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_MANAGEMENT_REQUEST');
    expect((await post(`${m.url}/api/v1/routes/a/stop`)).body.state).to.equal('stopped');
    const suspend = await post(`${m.url}/api/v1/routes/a/suspend`);
    expect(suspend.status).to.equal(409);
    expect((suspend.body.error as { code: string; details: { state: string } }).code).to.equal('BUSBAR_ERR_ROUTE_STATE');
    expect((suspend.body.error as { details: { state: string } }).details.state).to.equal('stopped');
  });

  it('mounts plug-ins registered with engine.onManagement under the same auth; a throwing handler answers 500 and the server goes on', async () => {
    engine = fx.engine();
    engine.onManagement((s) => {
      s.addRoute('GET', '/api/v1/graph', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ graph: true }));
      });
      s.addRoute('GET', '/console/*', (_req, res, p) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`asset ${p['*']}`);
      });
      s.addRoute('GET', '/api/v1/boom', () => {
        throw new Error('plug-in bug');
      });
    });
    await engine.start();
    m = await fx.serve(engine, { token: 't' });
    expect((await fetch(`${m.url}/api/v1/graph`)).status).to.equal(401);
    expect(await get(`${m.url}/api/v1/graph`, 't')).to.deep.equal({ status: 200, body: { graph: true } });
    const asset = await fetch(`${m.url}/console/js/app.js`, { headers: { authorization: 'Bearer t' } });
    expect(await asset.text()).to.equal('asset js/app.js');
    const boom = await get(`${m.url}/api/v1/boom`, 't');
    expect(boom.status).to.equal(500);
    expect((boom.body.error as { message: string }).message).to.contain('plug-in bug');
    expect((await get(`${m.url}/live`)).status).to.equal(200);
  });

  it('lists exchanges in flight with message id, age and the step each is at', async () => {
    engine = fx.engine();
    const { wait: gate, open: release } = latch();
    engine.addRoutes(
      from('direct:slow')
        .routeId('slow')
        .transform((b) => b)
        .process(async (msg) => {
          await gate;
          return msg;
        }),
    );
    await engine.start();
    m = await fx.serve(engine);
    const msg = createMessage({ x: 1 });
    const done = engine.sendMessage('direct:slow', msg);
    await waitFor(async () => ((await get(`${m!.url}/api/v1/inflight`)).body.inflight as unknown[]).length === 1, 3000, 'one exchange in flight');
    const inflight = (await get(`${m.url}/api/v1/inflight?route=slow`)).body.inflight as Array<Record<string, unknown>>;
    expect(inflight[0]).to.include({ routeId: 'slow', messageId: msg.id, step: '/steps/1', kind: 'process' });
    expect(inflight[0]!.ageMs).to.be.a('number').and.at.least(0);
    release();
    await done;
    expect((await get(`${m.url}/api/v1/inflight`)).body.inflight).to.deep.equal([]);
  });
});
