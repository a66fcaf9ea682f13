import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BusbarError, Engine, from, type Message } from '../../lib/index.js';
import { createGrpcAdapter, grpcPort } from '../../adapters/grpc/index.js';
import { rejection, tempDir, testLogger } from '../helpers.js';
import { SHOP_PROTO } from '../adapters/grpc/helpers.js';

/** Debian's python3 with python3-grpcio (scripts/grpc-python.sh installs it). */
const PY = '/usr/bin/python3';
// the Python client and server beside the spec fixtures; the proto is the examples' (one shop.proto)
const FIXTURES = fileURLToPath(new URL('../fixtures/grpc', import.meta.url));

describe('grpc: Python grpcio as an independent client and server', function () {
  this.timeout(30_000);
  let stubs: ReturnType<typeof tempDir>;

  before(() => {
    const check = spawnSync('bash', ['scripts/grpc-python.sh'], { encoding: 'utf8' });
    expect(check.status, `python3-grpcio is needed: ${check.stderr}`).to.equal(0);
    stubs = tempDir('busbar-grpc-py-');
    const gen = spawnSync(PY, ['-m', 'grpc_tools.protoc', `-I${dirname(SHOP_PROTO)}`, `--python_out=${stubs.path}`, `--grpc_python_out=${stubs.path}`, SHOP_PROTO], { encoding: 'utf8' });
    expect(gen.status, gen.stderr).to.equal(0);
  });
  after(() => stubs?.cleanup());

  it('a Python client calls busbar\'s server routes: unary with metadata, both streams, and a coded failure', async () => {
    const seen: Message[] = [];
    const engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter({ protos: [SHOP_PROTO] })] });
    engine.addRoutes(
      from<{ id: string }>('grpc:shop.Orders/GetOrder?port=0').process((m: Message<{ id: string }>) => {
        seen.push(m);
        if (m.body.id === 'missing') throw new BusbarError('NOT_FOUND', `no order ${m.body.id}`);
        return { ...m, body: { id: m.body.id, customer: String(m.headers['grpc.metadata.x-tenant']), total: 4.25, qty: '9007199254740993' }, headers: { ...m.headers, 'grpc.reply.metadata.x-served-by': 'busbar' } };
      }),
      from<{ id: string }>('grpc:shop.Orders/ListOrders?port=0').transform((r) => [0, 1, 2, 3].map((i) => ({ id: `${r.id}${i}` }))),
      from<Array<{ qty: number }>>('grpc:shop.Orders/Upload?port=0').transform((items) => ({ count: items.length, total: items.reduce((s, i) => s + i.qty, 0) })),
      from<{ sku: string; qty: number }>('grpc:shop.Orders/Chat?port=0').transform((i) => [{ sku: i.sku, qty: i.qty }, { sku: i.sku.toUpperCase(), qty: -i.qty }]),
    );
    await engine.start();
    try {
      const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(PY, [join(FIXTURES, 'py_client.py'), stubs.path, String(grpcPort(engine, 0))]);
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d));
        p.stderr.on('data', (d: Buffer) => (stderr += d));
        p.on('close', (status) => resolve({ status, stdout, stderr }));
      });
      expect(run.status, run.stderr).to.equal(0);
      const r = JSON.parse(run.stdout) as Record<string, unknown>;
      expect(r.unary).to.deep.equal({ id: '7', customer: 'py', total: 4.25, qty: 9007199254740993 });
      expect(r.initial_metadata).to.include({ 'x-served-by': 'busbar' });
      expect(r.stream).to.deep.equal(['p0', 'p1', 'p2', 'p3']);
      expect(r.upload).to.deep.equal({ count: 10, total: 55 });
      expect(r.chat).to.deep.equal([['x', 1], ['X', -1], ['y', 2], ['Y', -2]]);
      expect(r.error).to.deep.include({ code: 'NOT_FOUND', details: 'no order missing' });
      expect((r.error as { trailers: Record<string, string> }).trailers).to.include({ 'busbar-error-code': 'BUSBAR_ERR_NOT_FOUND', 'busbar-error-retryable': 'false' });
      expect(seen[0]!.correlationId).to.equal('py-1');
      expect(String(seen[0]!.headers['grpc.metadata.user-agent'])).to.match(/grpc-python/);
    } finally {
      await engine.stop();
    }
  });

  it('busbar\'s client calls a Python server: the four kinds, metadata both ways, statuses mapped by the table', async () => {
    let py: ChildProcess | undefined;
    const engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter({ protos: [SHOP_PROTO] })] });
    try {
      py = spawn(PY, [join(FIXTURES, 'py_server.py'), stubs.path], { stdio: ['pipe', 'pipe', 'inherit'] });
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        py!.stdout!.on('data', (d: Buffer) => {
          out += d;
          const m = /port (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        py!.on('exit', (c) => reject(new Error(`python server exited with ${c}`)));
      });
      await engine.start();
      const base = `grpc://127.0.0.1:${port}/shop.Orders`;
      const reply = await engine.requestMessage(`${base}/GetOrder`, { id: 'm', body: { id: '5' }, headers: { 'grpc.request.metadata.x-tenant': 'acme' }, timestamp: Date.now(), correlationId: 'c' });
      expect(reply.body).to.deep.equal({ id: '5', customer: 'acme', total: 2.5, qty: '12345678901234' });
      expect(reply.headers['grpc.response.metadata.x-served-by']).to.equal('python');
      expect(await engine.request(`${base}/ListOrders`, { id: 'q' })).to.have.deep.members([0, 1, 2].map((i) => ({ id: `q-${i}`, customer: '', total: 0, qty: '0' })));
      expect(await engine.request(`${base}/Upload`, [{ sku: 'a', qty: 4 }, { sku: 'b', qty: 6 }])).to.deep.equal({ count: 2, total: 10 });
      expect(await engine.request(`${base}/Chat`, [{ sku: 'ab', qty: 3 }])).to.deep.equal([{ sku: 'abab', qty: 6 }]);
      const nf = await rejection(engine.request(`${base}/GetOrder`, { id: 'missing' }));
      expect(nf.code).to.equal('BUSBAR_ERR_NOT_FOUND');
      const denied = await rejection(engine.request(`${base}/GetOrder`, { id: 'denied' }));
      expect(denied.code).to.equal('BUSBAR_ERR_UNAUTHORIZED');
      expect(denied.details.grpcStatus).to.equal('PERMISSION_DENIED');
    } finally {
      await engine.stop();
      py?.stdin?.end();
      py?.kill();
    }
  });
});
