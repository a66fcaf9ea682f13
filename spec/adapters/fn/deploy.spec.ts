import { expect } from 'chai';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFnAdapter, mountFunctionDeploy, type ManagementMount } from '../../../adapters/fn/index.js';
import { Engine, from } from '../../../lib/index.js';
import { rejection, tempDir, testLogger } from '../../helpers.js';

type Handler = Parameters<ManagementMount['addRoute']>[2];

/**
 * A server offering ManagementMount's addRoute (`:param` segments), standing in for the
 * management API's until it lands, so the deploy handlers are driven over a real socket.
 */
function mountServer(): { mount: ManagementMount; listen(): Promise<number>; close(): Promise<void> } {
  const routes: Array<{ method: string; parts: string[]; handler: Handler }> = [];
  let server: Server | undefined;
  return {
    mount: { addRoute: (method, path, handler) => void routes.push({ method, parts: path.split('/'), handler }) },
    listen: () =>
      new Promise((res) => {
        server = createServer((req: IncomingMessage, resp: ServerResponse) => {
          const parts = (req.url ?? '/').split('?')[0]!.split('/');
          for (const r of routes) {
            if (r.method !== req.method || r.parts.length !== parts.length) continue;
            const params: Record<string, string> = {};
            if (r.parts.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = decodeURIComponent(parts[i]!)), true) : p === parts[i]))) {
              void r.handler(req, resp, params);
              return;
            }
          }
          resp.writeHead(404).end();
        }).listen(0, '127.0.0.1', () => res((server!.address() as AddressInfo).port));
      }),
    close: () => new Promise((res) => (server ? server.close(() => res()) : res())),
  };
}

function call(port: number, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((res, rej) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = {};
    if (data !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
    if (token) headers.authorization = `Bearer ${token}`;
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
    expect(() => mountFunctionDeploy(mountServer().mount, createFnAdapter(), engine)).to.throw(/deploying functions is off/);
  });

  it('deploys, replaces and removes a function behind a bearer token; routes call the new code', async () => {
    const dir = tempDir('busbar-deploy-');
    const fns = createFnAdapter({ deploy: { dir: dir.path, token: TOKEN } });
    const engine = new Engine({ logger: testLogger(), adapters: [fns] });
    engine.addRoutes(from('direct:greet').to('fn:greet'));
    const m = mountServer();
    mountFunctionDeploy(m.mount, fns, engine);
    const port = await m.listen();
    await engine.start();
    try {
      // nothing deployed yet
      expect((await rejection(engine.request('direct:greet', { name: 'ada' }))).code).to.equal('BUSBAR_ERR_FN_NOT_FOUND');
      const v1 = { source: 'export default (b) => ({ hello: b.name })', maxWorkers: 1 };
      expect((await call(port, 'POST', '/api/v1/functions/greet', v1)).status).to.equal(401);
      expect((await call(port, 'POST', '/api/v1/functions/greet', v1, 'wrong-token-of-the-same-len')).status).to.equal(401);
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
