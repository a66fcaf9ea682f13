import { expect } from 'chai';
import { request } from 'node:http';
import { createFnAdapter, mountFunctionDeploy } from '../../../adapters/fn/index.js';
import { Engine, from } from '../../../lib/index.js';
import { rejection, tempDir, testLogger } from '../../helpers.js';

const MGMT = 'the-management-token';

function call(port: number, method: string, path: string, body?: unknown, token?: string, mgmt = MGMT): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((res, rej) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = {};
    if (data !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
    if (token) headers['x-deploy-token'] = token;
    if (mgmt) headers.authorization = `Bearer ${mgmt}`;
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => res({ status: r.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }));
    });
    req.on('error', rej);
    req.end(data);
  });
}

describe('fn adapter: deploying functions to a running engine', function () {
  this.timeout(20_000);
  const TOKEN = 'a-deploy-token-of-some-length';

  it('is off unless configured', () => {
    const engine = new Engine({ logger: testLogger() });
    expect(() => mountFunctionDeploy({ addRoute: () => undefined }, createFnAdapter(), engine)).to.throw(/deploying functions is off/);
  });

  it('deploys, replaces and removes a function through the management API behind both tokens; routes call the new code', async () => {
    const dir = tempDir('busbar-deploy-');
    const fns = createFnAdapter({ deploy: { dir: dir.path, token: TOKEN } });
    const engine = new Engine({ logger: testLogger(), adapters: [fns] });
    engine.addRoutes(from('direct:greet').to('fn:greet'));
    engine.onManagement((m) => mountFunctionDeploy(m, fns, engine));
    await engine.start();
    const m = await engine.management({ port: 0, token: MGMT });
    const port = Number(new URL(m.url).port);
    try {
      // nothing deployed yet
      expect((await rejection(engine.request('direct:greet', { name: 'ada' }))).code).to.equal('BUSBAR_ERR_FN_NOT_FOUND');
      const v1 = { source: 'export default (b) => ({ hello: b.name })', maxWorkers: 1 };
      expect((await call(port, 'POST', '/api/v1/functions/greet', v1)).status).to.equal(401);
      expect((await call(port, 'POST', '/api/v1/functions/greet', v1, 'wrong-token-of-the-same-len')).status).to.equal(401);
      // the deploy token alone does not pass the management server's own
      expect((await call(port, 'POST', '/api/v1/functions/greet', v1, TOKEN, 'wrong')).status).to.equal(401);
      const created = await call(port, 'POST', '/api/v1/functions/greet', v1, TOKEN);
      expect(created.status, JSON.stringify(created.body)).to.equal(201);
      expect(await engine.request('direct:greet', { name: 'ada' })).to.deep.equal({ hello: 'ada' });

      const v2 = { source: 'export default function (b: { name: string }): { hi: string } { return { hi: b.name.toUpperCase() }; }', lang: 'ts' };
      expect((await call(port, 'POST', '/api/v1/functions/greet', v2, TOKEN)).status).to.equal(201);
      expect(await engine.request('direct:greet', { name: 'ada' })).to.deep.equal({ hi: 'ADA' });

      const listed = await call(port, 'GET', '/api/v1/functions', undefined, TOKEN);
      const greet = (listed.body.functions as Record<string, { usage: { version: number; invocations: number } }>).greet!;
      expect(greet.usage).to.include({ version: 2, invocations: 2 });

      const bad = await call(port, 'POST', '/api/v1/functions/greet', { source: 'x', maxWorkerz: 2 }, TOKEN);
      expect(bad.status).to.equal(400);
      expect((bad.body.error as { message: string }).message).to.include('maxWorkerz');

      expect((await call(port, 'DELETE', '/api/v1/functions/greet', undefined, TOKEN)).status).to.equal(200);
      expect((await rejection(engine.request('direct:greet', { name: 'ada' }))).code).to.equal('BUSBAR_ERR_FN_NOT_FOUND');
      expect((await call(port, 'DELETE', '/api/v1/functions/greet', undefined, TOKEN)).status).to.equal(404);
    } finally {
      await engine.stop();
      await m.close();
      dir.cleanup();
    }
  });
});
