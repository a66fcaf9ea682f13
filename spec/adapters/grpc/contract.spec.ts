import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Engine, from, type Message } from '../../../lib/index.js';
import { createGrpcAdapter, grpcPort, GRPC_STATUS } from '../../../adapters/grpc/index.js';
import { httpAdapter } from '../../../adapters/http/index.js';
import { latch, rejection, testLogger, waitFor } from '../../helpers.js';
import { foreignServer, SHOP_PROTO, shopClient, unary } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const P = `proto=${encodeURIComponent(SHOP_PROTO)}`;
const KINDS_PROTO = fileURLToPath(new URL('../../fixtures/grpc/kinds.proto', import.meta.url));
const K = `proto=${encodeURIComponent(KINDS_PROTO)}`;

/** grpc-js's generic client for kinds.Echo. */
function kindsClient(port: number): grpc.Client & Record<string, (...args: unknown[]) => unknown> {
  const def = protoLoader.loadSync(KINDS_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { kinds: { Echo: grpc.ServiceClientConstructor } };
  return new pkg.kinds.Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, (...args: unknown[]) => unknown>;
}

describe('grpc: bodies must fit their message type (nothing coerced or dropped silently)', function () {
  this.timeout(20_000);
  let engine: Engine;
  let port: number;
  let badReply: unknown;

  before(async () => {
    engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter({ protos: [KINDS_PROTO] })] });
    engine.addRoutes(
      from(`grpc:kinds.Echo/Same?port=0&${K}`).routeId('same').transform((b) => b),
      from(`grpc:kinds.Echo/Reply?port=0&${K}`).routeId('reply').transform(() => badReply),
    );
    await engine.start();
    port = grpcPort(engine, 0)!;
  });
  after(() => engine?.stop());

  it('every kind of field fits in the form busbar hands out: enum names, maps, bytes, oneofs, 64-bit text', async () => {
    const body = { color: 'GREEN', inner: { name: 'n', nums: [1, -2] }, inners: [{ name: 'a' }], by_name: { x: { name: 'x', nums: [3] } }, blob: Buffer.from('hi'), b: '9007199254740993', pick: 'b', u: 4294967295, flag: true, d: 0.5 };
    const reply = await engine.request<Record<string, unknown>>(`grpc://127.0.0.1:${port}/kinds.Echo/Same`, body);
    expect(reply).to.deep.include({ color: 'GREEN', b: '9007199254740993', pick: 'b', u: 4294967295, flag: true, d: 0.5 });
    expect(reply.inner).to.deep.equal({ name: 'n', nums: [1, -2] });
    expect(reply.by_name).to.deep.equal({ x: { name: 'x', nums: [3] } });
    expect(Buffer.from(reply.blob as Uint8Array).toString()).to.equal('hi');
    // numbers by their number, enums by number, base64 bytes: fit too
    const again = await engine.request<Record<string, unknown>>(`grpc://127.0.0.1:${port}/kinds.Echo/Same`, { color: 1, b: 7, blob: Buffer.from('yo').toString('base64'), d: '1.5' });
    expect(again).to.deep.include({ color: 'GREEN', b: '7', d: 1.5 });
  });

  it('a client body that does not fit is refused before the call, every problem with its JSON pointer', async () => {
    const err = await rejection(
      engine.request(`grpc://127.0.0.1:${port}/kinds.Echo/Same`, { color: 'BLUE', inner: { name: 5, nums: ['x'] }, u: -1, flag: 'yes', colour: 'RED', b: '12ab', by_name: { k: 'not a message' }, inners: { name: 'a' } }),
    );
    expect(err.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    const problems = err.details.problems as Array<{ path: string; message: string }>;
    expect(problems.map((p) => p.path)).to.have.members(['/color', '/inner/name', '/inner/nums/0', '/u', '/flag', '/colour', '/b', '/by_name/k', '/inners']);
    expect(err.message).to.include('kinds.All').and.include('/color: not a value of enum Color (RED, GREEN)').and.include('All has no field "colour"');
    // nothing reached the server: the route saw no exchange
    expect(engine.routeStats('same').received).to.equal(1 + 1);
  });

  it('a streamed body is checked item by item (the index in the pointer)', async () => {
    const shop = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter({ protos: [SHOP_PROTO] })] });
    const seen: unknown[] = [];
    const { port: fp, server } = await foreignServer({
      Upload(call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
        call.on('data', (i: unknown) => seen.push(i));
        call.on('end', () => cb(null, { count: seen.length, total: 0 }));
      },
    });
    await shop.start();
    try {
      const err = await rejection(shop.request(`grpc://127.0.0.1:${fp}/shop.Orders/Upload`, [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 1.5 }]));
      expect(err.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
      expect((err.details.problems as Array<{ path: string }>).map((p) => p.path)).to.deep.equal(['/1/qty']);
      expect(seen).to.have.length(0);
    } finally {
      await shop.stop();
      server.forceShutdown();
    }
  });

  it('a server route whose reply does not fit answers INTERNAL with GRPC_REPLY_INVALID naming the field', async () => {
    const c = kindsClient(port);
    try {
      badReply = { name: 'ok', nums: [1, 'two'], extra: true };
      const r = await new Promise<{ error?: grpc.ServiceError; value?: unknown }>((resolve) => c.Reply!({}, (error: grpc.ServiceError | null, value: unknown) => resolve(error ? { error } : { value })));
      expect(r.error?.code).to.equal(GRPC_STATUS.INTERNAL);
      expect(r.error?.metadata.get('busbar-error-code')).to.deep.equal(['BUSBAR_ERR_GRPC_REPLY_INVALID']);
      expect(r.error?.details).to.include('/nums/1').and.include('Inner has no field "extra"');
      badReply = { name: 'ok', nums: [1, 2] };
      const ok = await new Promise<{ error?: grpc.ServiceError; value?: unknown }>((resolve) => c.Reply!({}, (error: grpc.ServiceError | null, value: unknown) => resolve(error ? { error } : { value })));
      expect(ok.value).to.deep.equal({ name: 'ok', nums: [1, 2] });
    } finally {
      c.close();
    }
  });
});

describe('grpc: backpressure of streams, seen from the peer', function () {
  this.timeout(30_000);

  it('a bidirectional stream is not read while the route is full: the writer is held by flow control, then every reply comes in order', async () => {
    const { wait: gate, open: open } = latch();
    let entered = 0;
    const engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()], maxInflight: 2 });
    engine.addRoutes(
      from<{ sku: string; qty: number }>(`grpc:shop.Orders/Chat?port=0&${P}`).process(async (m: Message<{ sku: string; qty: number }>) => {
        entered++;
        await gate;
        return { ...m, body: { sku: 'ok', qty: m.body.qty } };
      }),
    );
    await engine.start();
    const client = shopClient(grpcPort(engine, 0)!);
    try {
      const n = 2000;
      const s = client.Chat!() as grpc.ClientDuplexStream<unknown, { qty: number }>;
      const replies: number[] = [];
      s.on('data', (o) => replies.push(o.qty));
      const ended = new Promise<void>((resolve, reject) => {
        s.on('end', resolve);
        s.on('error', reject);
      });
      // a well-behaved writer: it waits for 'drain'. Count what it could write while the route is held.
      let written = 0;
      const pad = 'x'.repeat(4000);
      const writer = (async () => {
        for (let i = 0; i < n; i++) {
          written++;
          if (!s.write({ sku: pad, qty: i })) await new Promise<void>((r) => s.once('drain', r));
        }
        s.end();
      })();
      await sleep(500);
      const heldAt = written;
      await sleep(300);
      // held: the route took one call's window (1 of maxInflight 2), the writer is stuck far below n
      expect(entered).to.equal(1);
      expect(written).to.equal(heldAt);
      expect(written, `written while held: ${written}`).to.be.below(n / 4); // ~1 MB in HTTP/2 windows and buffers, not 8 MB
      open();
      await writer;
      await ended;
      expect(replies).to.deep.equal(Array.from({ length: n }, (_, i) => i));
    } finally {
      open();
      client.close();
      await engine.stop();
    }
  });

  it('a response stream is written as the client reads it: a paused reader holds the route\'s writes, then gets every item', async () => {
    const n = 2000;
    let pulled = 0;
    const engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
    engine.addRoutes(
      from(`grpc:shop.Orders/ListOrders?port=0&${P}`).transform(function* () {
        for (let i = 0; i < n; i++) {
          pulled++;
          yield { id: String(i), customer: 'c'.repeat(4000), total: i, qty: String(i) };
        }
      }),
    );
    await engine.start();
    const client = shopClient(grpcPort(engine, 0)!);
    try {
      const s = client.ListOrders!({ id: 'all' }) as grpc.ClientReadableStream<{ id: string }>;
      const ids: string[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        s.on('end', resolve);
        s.on('error', reject);
      });
      s.once('data', (o) => {
        ids.push(o.id);
        s.pause();
      });
      await waitFor(() => ids.length === 1, 5000, 'the first item');
      await sleep(500);
      const heldAt = pulled;
      await sleep(300);
      expect(pulled).to.equal(heldAt);
      expect(pulled, `produced while paused: ${pulled}`).to.be.below(n / 4); // most of the 8 MB was not produced into memory
      s.on('data', (o) => ids.push(o.id));
      s.resume();
      await ended;
      expect(ids).to.have.length(n);
      expect(ids.at(-1)).to.equal(String(n - 1));
      expect(pulled).to.equal(n);
    } finally {
      client.close();
      await engine.stop();
    }
  });
});

describe('grpc: metadata stays on its transport; the trace context crosses it', function () {
  this.timeout(20_000);

  /** A plain HTTP server (no busbar) that records the headers it was called with. */
  async function recorder(): Promise<{ server: Server; port: number; seen: IncomingHttpHeaders[] }> {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"customer":"rest"}'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, port: (server.address() as { port: number }).port, seen };
  }

  it('grpc.* headers (metadata, peer, method, credentials) are not written by another transport: gRPC in -> HTTP out', async () => {
    const rec = await recorder();
    const engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter(), httpAdapter] });
    engine.addRoutes(
      from<{ id: string }>(`grpc:shop.Orders/GetOrder?port=0&${P}`)
        .request(`http://127.0.0.1:${rec.port}/orders?method=POST`)
        .transform((b) => ({ id: '1', customer: (b as { customer: string }).customer })),
    );
    await engine.start();
    const c = shopClient(grpcPort(engine, 0)!);
    try {
      const md = new grpc.Metadata();
      md.set('x-tenant', 'acme');
      md.set('authorization', 'Bearer secret');
      const r = await unary<{ customer: string }>(c, 'GetOrder', { id: '1' }, md);
      expect(r.value?.customer).to.equal('rest');
      const h = rec.seen[0]!;
      const text = JSON.stringify(h);
      expect(text).not.to.include('acme');
      expect(text).not.to.include('Bearer secret');
      expect(Object.keys(h).filter((k) => k.startsWith('grpc') || k.includes('metadata'))).to.deep.equal([]);
    } finally {
      c.close();
      await engine.stop();
      rec.server.close();
    }
  });

  it('traceparent in and out: a foreign caller\'s span is the route\'s parent; the client call\'s span goes out as metadata', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const got: grpc.Metadata[] = [];
    const backend = await foreignServer({
      GetOrder(call: grpc.ServerUnaryCall<{ id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        got.push(call.metadata);
        cb(null, { id: call.request.id, customer: 'backend', total: 1, qty: '1' });
      },
    });
    const engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter({ protos: [SHOP_PROTO] })], tracing: { tracerProvider: provider } });
    engine.addRoutes(from(`grpc:shop.Orders/GetOrder?port=0`).routeId('front').to(`grpc://127.0.0.1:${backend.port}/shop.Orders/GetOrder`));
    await engine.start();
    const c = shopClient(grpcPort(engine, 0)!);
    try {
      const upstream = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };
      const md = new grpc.Metadata();
      md.set('traceparent', `00-${upstream.traceId}-${upstream.spanId}-01`);
      md.set('tracestate', 'vendor=abc');
      const r = await unary<{ customer: string }>(c, 'GetOrder', { id: '9' }, md);
      expect(r.value?.customer).to.equal('backend');
      await waitFor(() => exporter.getFinishedSpans().length >= 2, 5000, 'two spans');
      const spans = exporter.getFinishedSpans();
      const server = spans.find((s) => s.kind === 1)!; // SERVER
      const client = spans.find((s) => s.kind === 2)!; // CLIENT
      expect(server.name).to.equal('shop.Orders/GetOrder');
      expect(server.attributes).to.include({ 'rpc.system': 'grpc', 'rpc.service': 'shop.Orders', 'rpc.method': 'GetOrder', 'busbar.route.id': 'front' });
      expect(server.spanContext().traceId).to.equal(upstream.traceId);
      expect(server.parentSpanContext?.spanId).to.equal(upstream.spanId);
      expect(client.attributes).to.include({ 'rpc.system': 'grpc', 'server.address': '127.0.0.1', 'server.port': backend.port, 'rpc.grpc.status_code': 0 });
      expect(client.parentSpanContext?.spanId).to.equal(server.spanContext().spanId);
      // the backend got the CLIENT span as its parent, and the caller's tracestate
      expect(got[0]!.get('traceparent')).to.deep.equal([`00-${upstream.traceId}-${client.spanContext().spanId}-01`]);
      expect(got[0]!.get('tracestate')).to.deep.equal(['vendor=abc']);
    } finally {
      c.close();
      await engine.stop();
      backend.server.forceShutdown();
      await provider.shutdown();
    }
  });
});
