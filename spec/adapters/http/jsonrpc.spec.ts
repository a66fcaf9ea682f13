import { expect } from 'chai';
import { Engine, from, BusbarError } from '../../../lib/index.js';
import { httpAdapter } from '../../../adapters/http/index.js';
import { testLogger } from '../../helpers.js';
import { call, portOf } from './helpers.js';

interface RpcReply {
  jsonrpc: string;
  id: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: { code?: string; problems?: unknown[] } };
}

describe('http adapter: JSON-RPC 2.0', () => {
  let e: Engine;
  let port: number;
  const seen: string[] = [];
  beforeEach(async () => {
    seen.length = 0;
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e.addRoutes(
      from<unknown>('http:/rpc?port=0&protocol=jsonrpc&maxBatch=5').process((m) => {
        const method = m.headers['rpc.method'];
        seen.push(String(method));
        const p = m.body as number[] | { a: number; b: number };
        switch (method) {
          case 'add':
            return { ...m, body: Array.isArray(p) ? p[0]! + p[1]! : p.a + p.b };
          case 'log':
            return m;
          case 'check':
            throw new BusbarError('VALIDATION_FAILED', 'bad params', { details: { problems: [{ path: '/0', message: 'must be a number' }] } });
          case 'missing':
            throw new BusbarError('NOT_FOUND', 'no such order');
          default:
            throw new BusbarError('RPC_METHOD_NOT_FOUND', `no method ${String(method)}`);
        }
      }),
    );
    await e.start();
    port = portOf(e);
  });
  afterEach(() => e.stop({ timeoutMs: 2000 }));

  const post = async (body: unknown): Promise<{ status: number; doc: unknown }> => {
    const r = await call(port, 'POST', '/rpc', typeof body === 'string' ? body : JSON.stringify(body), { 'content-type': 'application/json' });
    return { status: r.status, doc: r.text ? JSON.parse(r.text) : undefined };
  };

  it('answers a call with positional or named params', async () => {
    expect((await post({ jsonrpc: '2.0', method: 'add', params: [2, 3], id: 1 })).doc).to.deep.equal({ jsonrpc: '2.0', id: 1, result: 5 });
    expect((await post({ jsonrpc: '2.0', method: 'add', params: { a: 1, b: 1 }, id: 'x' })).doc).to.deep.equal({ jsonrpc: '2.0', id: 'x', result: 2 });
  });

  it('runs notifications without answering them (204)', async () => {
    const r = await post({ jsonrpc: '2.0', method: 'log', params: ['hello'] });
    expect(r.status).to.equal(204);
    expect(seen).to.deep.equal(['log']);
  });

  it('answers batches in any order by id, leaves notifications out, and checks the batch size', async () => {
    const r = await post([
      { jsonrpc: '2.0', method: 'add', params: [1, 2], id: 1 },
      { jsonrpc: '2.0', method: 'log', params: [] },
      { jsonrpc: '2.0', method: 'nope', id: 2 },
      { foo: 'bar' },
    ]);
    const replies = r.doc as RpcReply[];
    expect(replies).to.have.length(3);
    expect(replies.find((x) => x.id === 1)!.result).to.equal(3);
    expect(replies.find((x) => x.id === 2)!.error!.code).to.equal(-32601);
    expect(replies.find((x) => x.id === null)!.error!.code).to.equal(-32600);
    const big = await post(Array.from({ length: 6 }, (_, i) => ({ jsonrpc: '2.0', method: 'add', params: [i, i], id: i })));
    expect((big.doc as RpcReply).error!.code).to.equal(-32600);
    expect((await post([])).doc).to.have.nested.property('error.code', -32600);
    expect((await post([{ jsonrpc: '2.0', method: 'log' }])).status).to.equal(204);
  });

  it('uses the standard error codes, keeping the busbar code in data', async () => {
    expect(((await post('{"jsonrpc":"2.0","method":')).doc as RpcReply).error!.code).to.equal(-32700);
    expect(((await post({ jsonrpc: '1.0', method: 'add', id: 1 })).doc as RpcReply).error!.code).to.equal(-32600);
    expect(((await post({ jsonrpc: '2.0', method: 'add', params: 5, id: 1 })).doc as RpcReply).error!.code).to.equal(-32600);
    const invalid = (await post({ jsonrpc: '2.0', method: 'check', params: ['x'], id: 3 })).doc as RpcReply;
    expect(invalid.error!.code).to.equal(-32602);
    expect(invalid.error!.data!.problems).to.have.length(1);
    const missing = (await post({ jsonrpc: '2.0', method: 'missing', id: 4 })).doc as RpcReply;
    expect(missing.error!.code).to.equal(-32000);
    expect(missing.error!.data!.code).to.equal('BUSBAR_ERR_NOT_FOUND');
  });

  it('client: calls, notifications, batches, and remote errors as coded errors', async () => {
    const uri = `http://127.0.0.1:${port}/rpc?protocol=jsonrpc`;
    expect(await e.request(`${uri}&rpcMethod=add`, [20, 22])).to.equal(42);
    expect(await e.request(uri, { a: 1, b: 2 }, { 'rpc.method': 'add' })).to.equal(3);
    await e.request(`${uri}&rpcMethod=log&notify=true`, ['x']);
    expect(seen).to.include('log');
    const notFound = (await e.request(`${uri}&rpcMethod=missing`, []).catch((x: BusbarError) => x)) as BusbarError;
    expect(notFound.code).to.equal('BUSBAR_ERR_NOT_FOUND');
    expect(notFound.details.remote).to.equal(true);
    const noMethod = (await e.request(`${uri}&rpcMethod=zzz`, []).catch((x: BusbarError) => x)) as BusbarError;
    expect(noMethod.code).to.equal('BUSBAR_ERR_RPC_METHOD_NOT_FOUND');
    const invalid = (await e.request(`${uri}&rpcMethod=check`, ['x']).catch((x: BusbarError) => x)) as BusbarError;
    expect(invalid.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    expect(invalid.details.problems).to.have.length(1);
    const batch = await e.request(`${uri}&batch=true`, [
      { method: 'add', params: [1, 1] },
      { method: 'log', params: ['y'], notify: true },
      { method: 'zzz' },
    ]);
    expect(batch).to.have.length(3);
    expect((batch as unknown[])[0]).to.deep.equal({ result: 2 });
    expect((batch as unknown[])[1]).to.equal(null);
    expect((batch as Array<{ error: { code: string } }>)[2]!.error.code).to.equal('BUSBAR_ERR_RPC_METHOD_NOT_FOUND');
  });

  it('client: a non-JSON-RPC answer is RPC_INVALID_REQUEST, an HTTP error stays an HTTP error', async () => {
    e.stop();
    const e2 = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    e2.addRoutes(from('http:/plain?port=0').transform(() => ({ hello: 'world' })));
    await e2.start();
    try {
      const p = portOf(e2);
      const bad = (await e2.request(`http://127.0.0.1:${p}/plain?protocol=jsonrpc&rpcMethod=x`, []).catch((x: BusbarError) => x)) as BusbarError;
      expect(bad.code).to.equal('BUSBAR_ERR_RPC_INVALID_REQUEST');
      const gone = (await e2.request(`http://127.0.0.1:${p}/other?protocol=jsonrpc&rpcMethod=x`, []).catch((x: BusbarError) => x)) as BusbarError;
      expect(gone.code).to.equal('BUSBAR_ERR_HTTP_CLIENT_ERROR');
      expect(gone.details.status).to.equal(404);
    } finally {
      await e2.stop();
    }
  });
});
