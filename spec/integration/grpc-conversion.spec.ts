import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { Engine } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { createGrpcAdapter, grpcPort, GRPC_STATUS } from '../../adapters/grpc/index.js';
import { testLogger } from '../helpers.js';
import { call, portOf } from '../adapters/http/helpers.js';
import { foreignServer, shopClient, unary } from '../adapters/grpc/helpers.js';
import { restToGrpcRoutes } from '../../examples/grpc-rest-facade/routes.js';
import { backendRoutes, grpcToSoapRoutes } from '../../examples/grpc-soap-gateway/routes.js';
import { requireSoapLite, startPerlSoapServer } from './soap-perl.js';

describe('example grpc-rest-facade: REST in -> a gRPC service (grpc-js, not busbar) -> JSON out', function () {
  this.timeout(30_000);
  let backend: { port: number; server: grpc.Server };
  let e: Engine;
  let port: number;
  const metadata: grpc.Metadata[] = [];
  before(async () => {
    backend = await foreignServer({
      GetOrder(c: grpc.ServerUnaryCall<{ id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        metadata.push(c.metadata);
        if (c.request.id === '7') return cb(null, { id: '7', customer: 'ACME', total: 12.5, qty: '3' });
        if (c.request.id === 'bad') return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'bad id' });
        cb({ code: grpc.status.NOT_FOUND, details: `no order ${c.request.id}` });
      },
      Upload(c: grpc.ServerReadableStream<{ qty: number }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        const items: Array<{ qty: number }> = [];
        c.on('data', (i: { qty: number }) => items.push(i));
        c.on('end', () => cb(null, { count: items.length, total: items.reduce((s, i) => s + i.qty, 0) }));
      },
      ListOrders: () => undefined,
      Chat: () => undefined,
    });
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter, createGrpcAdapter()] });
    e.addRoutes(restToGrpcRoutes({ restPort: 0, grpcAddress: `127.0.0.1:${backend.port}` }));
    await e.start();
    port = portOf(e);
  });
  after(async () => {
    await e?.stop({ timeoutMs: 2000 });
    backend?.server.forceShutdown();
  });

  it('GET /api/orders/7 answers JSON from the gRPC service; X-Tenant travels as metadata, Authorization does not', async () => {
    const r = await call(port, 'GET', '/api/orders/7', undefined, { 'x-tenant': 'acme', authorization: 'Bearer caller-secret' });
    expect(r.status).to.equal(200);
    expect(r.json()).to.deep.equal({ id: '7', customer: 'ACME', total: 12.5, quantity: 3 });
    expect(metadata.at(-1)!.get('x-tenant')).to.deep.equal(['acme']);
    expect(metadata.at(-1)!.get('authorization')).to.deep.equal([]);
  });

  it('gRPC statuses become HTTP statuses: NOT_FOUND 404, INVALID_ARGUMENT 422', async () => {
    const nf = await call(port, 'GET', '/api/orders/9');
    expect(nf.status).to.equal(404);
    expect((nf.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_NOT_FOUND');
    expect((await call(port, 'GET', '/api/orders/bad')).status).to.equal(422);
  });

  it('POST /api/uploads streams the list to the client-streaming RPC', async () => {
    const r = await call(port, 'POST', '/api/uploads', JSON.stringify([{ sku: 'a', qty: 2 }, { sku: 'b', qty: 40 }]), { 'content-type': 'application/json' });
    expect(r.status).to.equal(200);
    expect(r.json()).to.deep.equal({ count: 2, total: 42 });
  });

  it('an unreachable gRPC service is a 502 with BUSBAR_ERR_GRPC_UNAVAILABLE', async () => {
    const e2 = new Engine({ logger: testLogger(), adapters: [httpAdapter, createGrpcAdapter()] });
    e2.addRoutes(restToGrpcRoutes({ restPort: 0, grpcAddress: '127.0.0.1:1' }));
    await e2.start();
    try {
      const r = await call(portOf(e2), 'GET', '/api/orders/7');
      expect(r.status).to.equal(502);
      expect((r.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_GRPC_UNAVAILABLE');
    } finally {
      await e2.stop({ timeoutMs: 2000 });
    }
  });
});

describe('example grpc-soap-gateway: gRPC in -> a Perl SOAP::Lite service and a node:http REST service', function () {
  this.timeout(30_000);
  let legacy: Awaited<ReturnType<typeof startPerlSoapServer>>;
  let rest: Server;
  let e: Engine;
  let client: ReturnType<typeof shopClient>;
  before(async () => {
    await requireSoapLite();
    legacy = await startPerlSoapServer();
    rest = createServer((req, res) => {
      const m = /^\/customers\/([^/]+)\/orders$/.exec(req.url ?? '');
      const text = m && m[1] !== 'nobody' ? JSON.stringify([{ id: `${m[1]}-a`, total: 5 }, { id: `${m[1]}-b`, total: 7.5 }]) : JSON.stringify({ error: 'no such customer' });
      res.writeHead(m && m[1] !== 'nobody' ? 200 : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
    await new Promise<void>((r) => rest.listen(0, '127.0.0.1', r));
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter, createGrpcAdapter()] });
    e.addRoutes(grpcToSoapRoutes({ grpcPort: 0, soapUrl: legacy.url, restBaseUrl: `http://127.0.0.1:${(rest.address() as { port: number }).port}` }));
    await e.start();
    client = shopClient(grpcPort(e, 0)!);
  });
  after(async () => {
    client?.close();
    await e?.stop({ timeoutMs: 2000 });
    await legacy?.stop();
    rest?.closeAllConnections();
    await new Promise((r) => rest?.close(r));
  });

  it('GetOrder answers from the SOAP service; a SOAP fault is UNKNOWN with its reason and BUSBAR_ERR_SOAP_FAULT', async () => {
    const ok = await unary<Record<string, unknown>>(client, 'GetOrder', { id: '7' });
    expect(ok.value).to.deep.equal({ id: '7', customer: 'ACME', total: 99.5, qty: '0' });
    const fault = await unary(client, 'GetOrder', { id: '999' });
    expect(fault.error?.code).to.equal(GRPC_STATUS.UNKNOWN);
    expect(fault.error?.details).to.contain('no order 999');
    expect(fault.error?.metadata.get('busbar-error-code')).to.deep.equal(['BUSBAR_ERR_SOAP_FAULT']);
  });

  it('ListOrders streams the REST service\'s list; a REST 404 is NOT_FOUND', async () => {
    const list = (c: string): Promise<{ items: unknown[]; error?: grpc.ServiceError }> =>
      new Promise((resolve) => {
        const items: unknown[] = [];
        const s = client.ListOrders!({ id: c }) as grpc.ClientReadableStream<unknown>;
        s.on('data', (o) => items.push(o));
        s.on('error', (error: grpc.ServiceError) => resolve({ items, error }));
        s.on('end', () => resolve({ items }));
      });
    const ok = await list('acme');
    expect(ok.error).to.equal(undefined);
    expect(ok.items).to.deep.equal([{ id: 'acme-a', customer: '', total: 5, qty: '1' }, { id: 'acme-b', customer: '', total: 7.5, qty: '1' }]);
    const nf = await list('nobody');
    expect(nf.error?.code).to.equal(GRPC_STATUS.NOT_FOUND);
  });

  it('with busbar backends, their NOT_FOUND reaches the gRPC client as NOT_FOUND', async () => {
    const backends = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    backends.addRoutes(backendRoutes({ soapPort: 0, restPort: 0 }));
    await backends.start();
    const gw = new Engine({ logger: testLogger(), adapters: [httpAdapter, createGrpcAdapter()] });
    const p = portOf(backends);
    gw.addRoutes(grpcToSoapRoutes({ grpcPort: 0, soapUrl: `http://127.0.0.1:${p}/legacy`, restBaseUrl: `http://127.0.0.1:${p}` }));
    await gw.start();
    const c = shopClient(grpcPort(gw, 0)!);
    try {
      expect((await unary(c, 'GetOrder', { id: '7' })).value).to.include({ id: '7', customer: 'ACME' });
      const nf = await unary(c, 'GetOrder', { id: '8' });
      expect(nf.error?.code).to.equal(GRPC_STATUS.NOT_FOUND);
      expect(nf.error?.metadata.get('busbar-error-code')).to.deep.equal(['BUSBAR_ERR_SOAP_FAULT']);
    } finally {
      c.close();
      await gw.stop({ timeoutMs: 2000 });
      await backends.stop({ timeoutMs: 2000 });
    }
  });
});
