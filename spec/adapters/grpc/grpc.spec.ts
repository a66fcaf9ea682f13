import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { BusbarError, Engine, from, type Message } from '../../../lib/index.js';
import { createGrpcAdapter, grpcPort, GRPC_STATUS } from '../../../adapters/grpc/index.js';
import { rejection, testLogger } from '../../helpers.js';
import { foreignServer, listeningAddress, SHOP_PROTO, shopClient, unary, type ShopClient } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const P = `proto=${encodeURIComponent(SHOP_PROTO)}`;

describe('grpc: server routes called by grpc-js\'s own generic client', function () {
  this.timeout(20_000);
  let engine: Engine;
  let port: number;
  let client: ShopClient;
  const seen: Message[] = [];
  let inRoute = 0;
  let maxInRoute = 0;

  before(async () => {
    engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()], maxInflight: 4 });
    engine.addRoutes(
      from<{ id: string }>(`grpc:shop.Orders/GetOrder?port=0&${P}`)
        .routeId('get-order')
        .process((m: Message<{ id: string }>) => {
          seen.push(m);
          const id = m.body.id;
          if (id === 'missing') throw new BusbarError('NOT_FOUND', `no order ${id}`);
          if (id === 'bad') throw new BusbarError('VALIDATION_FAILED', 'id is bad', { details: { problems: [] } });
          if (id === 'boom') throw new Error('user code broke');
          return { ...m, body: { id, customer: `c-${id}`, total: 12.5, qty: '3' }, headers: { ...m.headers, 'grpc.reply.metadata.x-served-by': 'busbar' } };
        }),
      from<{ id: string }>(`grpc:shop.Orders/ListOrders?port=0&${P}`)
        .routeId('list-orders')
        .transform((req) => Array.from({ length: 40 }, (_, i) => ({ id: `${req.id}-${i}`, customer: 'acme', total: i, qty: String(i) }))),
      from<Array<{ sku: string; qty: number }>>(`grpc:shop.Orders/Upload?port=0&${P}`)
        .routeId('upload')
        .transform((items) => ({ count: items.length, total: items.reduce((s, i) => s + i.qty, 0) })),
      from<{ sku: string; qty: number }>(`grpc:shop.Orders/Chat?port=0&${P}`)
        .routeId('chat')
        .process(async (m: Message<{ sku: string; qty: number }>) => {
          inRoute++;
          maxInRoute = Math.max(maxInRoute, inRoute);
          // later items finish sooner: replies must still come back in request order
          await sleep(m.body.qty % 2 === 0 ? 6 : 1);
          inRoute--;
          return { ...m, body: { sku: m.body.sku.toUpperCase(), qty: m.body.qty * 10 } };
        }),
    );
    await engine.start();
    port = grpcPort(engine, 0)!;
    client = shopClient(port);
  });
  after(async () => {
    client?.close();
    await engine?.stop();
  });

  it('listens on 127.0.0.1 only by default', () => {
    expect(port).to.be.a('number').greaterThan(0);
    expect(listeningAddress(port)).to.equal('127.0.0.1');
  });

  it('unary: request -> message body, metadata -> grpc.metadata.* headers, reply metadata and correlation id', async () => {
    const md = new grpc.Metadata();
    md.set('x-tenant', 'acme');
    md.set('authorization', 'Bearer secret');
    md.set('x-correlation-id', 'corr-1');
    const deadline = Date.now() + 5000;
    const r = await unary<{ id: string; customer: string; total: number; qty: string }>(client, 'GetOrder', { id: '7' }, md, { deadline });
    expect(r.error).to.equal(undefined);
    expect(r.value).to.deep.equal({ id: '7', customer: 'c-7', total: 12.5, qty: '3' });
    expect(r.headers?.get('x-served-by')).to.deep.equal(['busbar']);
    const m = seen.at(-1)!;
    expect(m.body).to.deep.equal({ id: '7' });
    expect(m.headers['grpc.method']).to.equal('/shop.Orders/GetOrder');
    expect(m.headers['grpc.call.type']).to.equal('unary');
    expect(m.headers['grpc.metadata.x-tenant']).to.equal('acme');
    expect(m.headers['grpc.metadata.authorization']).to.equal('Bearer secret');
    expect(m.headers['grpc.deadline']).to.be.within(deadline - 1000, deadline + 1000);
    expect(m.correlationId).to.equal('corr-1');
  });

  it('failures become gRPC statuses by the table, with the busbar code in the trailers', async () => {
    const cases: Array<[string, number, string]> = [
      ['missing', GRPC_STATUS.NOT_FOUND, 'BUSBAR_ERR_NOT_FOUND'],
      ['bad', GRPC_STATUS.INVALID_ARGUMENT, 'BUSBAR_ERR_VALIDATION_FAILED'],
      ['boom', GRPC_STATUS.INTERNAL, 'BUSBAR_ERR_STEP_FAILED'],
    ];
    for (const [id, code, busbar] of cases) {
      const r = await unary(client, 'GetOrder', { id });
      expect(r.error?.code, id).to.equal(code);
      expect(r.error?.metadata.get('busbar-error-code'), id).to.deep.equal([busbar]);
    }
    // the user error's stack or internals never reach the client, its message does
    const r = await unary(client, 'GetOrder', { id: 'boom' });
    expect(r.error?.details).to.contain('user code broke').and.not.contain('at ');
  });

  it('server streaming: the reply body (a list) is written item by item', async () => {
    const got = await new Promise<Array<{ id: string }>>((resolve, reject) => {
      const items: Array<{ id: string }> = [];
      const s = client.ListOrders!({ id: 'o' }) as grpc.ClientReadableStream<{ id: string }>;
      s.on('data', (o) => items.push(o));
      s.on('error', reject);
      s.on('end', () => resolve(items));
    });
    expect(got.map((o) => o.id)).to.deep.equal(Array.from({ length: 40 }, (_, i) => `o-${i}`));
  });

  it('client streaming: the request stream is one message whose body is the list', async () => {
    const summary = await new Promise<{ count: number; total: number }>((resolve, reject) => {
      const w = client.Upload!((e: grpc.ServiceError | null, v: { count: number; total: number }) => (e ? reject(e) : resolve(v))) as grpc.ClientWritableStream<unknown>;
      for (let i = 1; i <= 25; i++) w.write({ sku: `s${i}`, qty: i });
      w.end();
    });
    expect(summary).to.deep.equal({ count: 25, total: 325 });
  });

  it('bidirectional: one message per request, replies in order, at most the route\'s in-flight bound at once', async () => {
    maxInRoute = 0;
    const n = 60;
    const got = await new Promise<Array<{ sku: string; qty: number }>>((resolve, reject) => {
      const items: Array<{ sku: string; qty: number }> = [];
      const s = client.Chat!() as grpc.ClientDuplexStream<unknown, { sku: string; qty: number }>;
      s.on('data', (o) => items.push(o));
      s.on('error', reject);
      s.on('end', () => resolve(items));
      for (let i = 0; i < n; i++) s.write({ sku: `k${i}`, qty: i });
      s.end();
    });
    expect(got).to.deep.equal(Array.from({ length: n }, (_, i) => ({ sku: `K${i}`, qty: i * 10 })));
    // the stream was read no faster than the route took messages (maxInflight 4)
    expect(maxInRoute).to.be.within(1, 4);
  });

  it('an RPC nobody serves answers UNIMPLEMENTED', async () => {
    const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve) => {
        raw.makeUnaryRequest('/shop.Orders/Nope', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e) => resolve(e!));
      });
      expect(err.code).to.equal(GRPC_STATUS.UNIMPLEMENTED);
    } finally {
      raw.close();
    }
  });
});

describe('grpc: backpressure and deadlines of server routes', function () {
  this.timeout(20_000);
  let engine: Engine;
  let client: ShopClient;
  let release: () => void = () => undefined;

  before(async () => {
    engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()], maxInflight: 1 });
    engine.addRoutes(
      from<{ id: string }>(`grpc:shop.Orders/GetOrder?port=0&${P}`)
        .routeId('held')
        .process(async (m: Message<{ id: string }>) => {
          if (m.body.id === 'hold') await new Promise<void>((r) => (release = r));
          if (m.body.id === 'slow') await sleep(1000);
          return { ...m, body: { id: m.body.id } };
        }),
    );
    await engine.start();
    client = shopClient(grpcPort(engine, 0)!);
  });
  after(async () => {
    release();
    client?.close();
    await engine?.stop();
  });

  it('a unary call that finds the route full gets RESOURCE_EXHAUSTED (LIMIT_EXCEEDED), and the next one goes through', async () => {
    const held = unary(client, 'GetOrder', { id: 'hold' });
    // wait until the first call is in the route
    for (let i = 0; i < 100 && engine.stats().routes[0]?.inflight !== 1; i++) await sleep(10);
    const refused = await unary(client, 'GetOrder', { id: 'x' });
    expect(refused.error?.code).to.equal(GRPC_STATUS.RESOURCE_EXHAUSTED);
    expect(refused.error?.metadata.get('busbar-error-code')).to.deep.equal(['BUSBAR_ERR_LIMIT_EXCEEDED']);
    release();
    expect((await held).value).to.include({ id: 'hold' });
    expect((await unary(client, 'GetOrder', { id: 'y' })).value).to.include({ id: 'y' });
  });

  it('the route has the client\'s deadline or its own timeoutMs, whichever is sooner: DEADLINE_EXCEEDED', async () => {
    const e = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
    e.addRoutes(from(`grpc:shop.Orders/GetOrder?port=0&timeoutMs=300&${P}`).process(async (m: Message) => (await sleep(1000), m)));
    await e.start();
    const c = shopClient(grpcPort(e, 0)!);
    try {
      const t0 = Date.now();
      const r = await unary(c, 'GetOrder', { id: 'slow' }, new grpc.Metadata(), { deadline: Date.now() + 5000 });
      expect(r.error?.code).to.equal(GRPC_STATUS.DEADLINE_EXCEEDED);
      expect(r.error?.metadata.get('busbar-error-code')).to.deep.equal(['BUSBAR_ERR_TIMEOUT']);
      expect(Date.now() - t0).to.be.below(900); // timeoutMs=300 won over the client's 5 s
      // the client's own deadline, when sooner, is the route's limit too
      const r2 = await unary(c, 'GetOrder', { id: 'slow' }, new grpc.Metadata(), { deadline: Date.now() + 100 });
      expect(r2.error?.code).to.equal(GRPC_STATUS.DEADLINE_EXCEEDED);
    } finally {
      c.close();
      await e.stop();
    }
  });
});

describe('grpc: the client producer against a hand-written grpc-js server', function () {
  this.timeout(20_000);
  let foreign: { port: number; server: grpc.Server };
  let engine: Engine;
  const got: grpc.Metadata[] = [];
  const base = (): string => `grpc://127.0.0.1:${foreign.port}/shop.Orders`;

  before(async () => {
    foreign = await foreignServer({
      GetOrder(call: grpc.ServerUnaryCall<{ id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        got.push(call.metadata);
        const id = call.request.id;
        if (id === 'missing') return cb({ code: grpc.status.NOT_FOUND, details: 'no such order' });
        if (id === 'conflict') return cb({ code: grpc.status.ABORTED, details: 'try again' });
        if (id === 'slow') return void setTimeout(() => cb(null, { id }), 1500);
        const md = new grpc.Metadata();
        md.set('x-backend', 'grpc-js');
        call.sendMetadata(md);
        cb(null, { id, customer: 'foreign', total: 1.5, qty: '9007199254740993' });
      },
      ListOrders(call: grpc.ServerWritableStream<{ id: string }, unknown>) {
        for (let i = 0; i < 5; i++) call.write({ id: `${call.request.id}-${i}` });
        call.end();
      },
      Upload(call: grpc.ServerReadableStream<{ qty: number }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        let count = 0;
        let total = 0;
        call.on('data', (i: { qty: number }) => {
          count++;
          total += i.qty;
        });
        call.on('end', () => cb(null, { count, total }));
      },
      Chat(call: grpc.ServerDuplexStream<{ sku: string; qty: number }, unknown>) {
        call.on('data', (i: { sku: string; qty: number }) => call.write({ sku: i.sku + '!', qty: i.qty + 1 }));
        call.on('end', () => call.end());
      },
    });
    engine = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter({ protos: [SHOP_PROTO] })] });
    await engine.start();
  });
  after(async () => {
    await engine?.stop();
    foreign?.server.forceShutdown();
  });

  it('unary, as `request` (canReply): response body, response metadata, 64-bit integers as strings', async () => {
    const reply = await engine.requestMessage(`${base()}/GetOrder`, { id: 'm1', headers: { 'grpc.request.metadata.x-tenant': 'acme' }, body: { id: '1' }, timestamp: Date.now(), correlationId: 'c-1' });
    expect(reply.body).to.deep.equal({ id: '1', customer: 'foreign', total: 1.5, qty: '9007199254740993' });
    expect(reply.headers['grpc.response.metadata.x-backend']).to.equal('grpc-js');
    expect(reply.headers['grpc.response.status']).to.equal(0);
    expect(got.at(-1)!.get('x-tenant')).to.deep.equal(['acme']);
    expect(got.at(-1)!.get('x-correlation-id')).to.deep.equal(['c-1']);
  });

  it('server streaming (a list), client streaming (a list in) and bidirectional', async () => {
    expect(await engine.request(`${base()}/ListOrders`, { id: 'a' })).to.deep.equal(Array.from({ length: 5 }, (_, i) => ({ id: `a-${i}`, customer: '', total: 0, qty: '0' })));
    expect(await engine.request(`${base()}/Upload`, [{ sku: 'a', qty: 2 }, { sku: 'b', qty: 3 }])).to.deep.equal({ count: 2, total: 5 });
    expect(await engine.request(`${base()}/Chat`, [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }])).to.deep.equal([{ sku: 'a!', qty: 2 }, { sku: 'b!', qty: 3 }]);
  });

  it('statuses of a server without busbar trailers map by the table; a deadline from the step\'s timeout', async () => {
    const nf = await rejection(engine.request(`${base()}/GetOrder`, { id: 'missing' }));
    expect(nf.code).to.equal('BUSBAR_ERR_NOT_FOUND');
    expect(nf.details.grpcCode).to.equal(GRPC_STATUS.NOT_FOUND);
    const ab = await rejection(engine.request(`${base()}/GetOrder`, { id: 'conflict' }));
    expect(ab.code).to.equal('BUSBAR_ERR_GRPC_REMOTE_ERROR');
    expect(ab.details.grpcStatus).to.equal('ABORTED');
    expect(ab.retryable).to.equal(true);
    const t0 = Date.now();
    const slow = await rejection(engine.request(`${base()}/GetOrder`, { id: 'slow' }, undefined, { timeoutMs: 200 }));
    expect(slow.code).to.equal('BUSBAR_ERR_TIMEOUT');
    expect(slow.details.grpcStatus).to.equal('DEADLINE_EXCEEDED');
    expect(Date.now() - t0).to.be.below(1200);
  });

  it('a route `to` the client: deadline from the endpoint\'s timeoutMs; connection refused is GRPC_UNAVAILABLE (retryable)', async () => {
    const e = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
    e.addRoutes(
      from('direct:slow').to(`${base()}/GetOrder?timeoutMs=150&${P}`),
      from('direct:nowhere').to(`grpc://127.0.0.1:1/shop.Orders/GetOrder?timeoutMs=2000&${P}`),
    );
    await e.start();
    try {
      const slow = await rejection(e.request('direct:slow', { id: 'slow' }));
      expect(slow.code).to.equal('BUSBAR_ERR_TIMEOUT');
      const down = await rejection(e.request('direct:nowhere', { id: '1' }));
      expect(down.code).to.equal('BUSBAR_ERR_GRPC_UNAVAILABLE');
      expect(down.retryable).to.equal(true);
    } finally {
      await e.stop();
    }
  });
});

describe('grpc: busbar to busbar', function () {
  this.timeout(20_000);

  it('the busbar code survives the call both ways (CIRCUIT_OPEN -> UNAVAILABLE -> CIRCUIT_OPEN)', async () => {
    const server = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
    server.addRoutes(
      from(`grpc:shop.Orders/GetOrder?port=0&${P}`).process(() => {
        throw new BusbarError('CIRCUIT_OPEN', 'backend circuit open');
      }),
    );
    await server.start();
    const client = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter({ protos: [SHOP_PROTO] })] });
    await client.start();
    try {
      const err = await rejection(client.request(`grpc://127.0.0.1:${grpcPort(server, 0)}/shop.Orders/GetOrder`, { id: '1' }));
      expect(err.code).to.equal('BUSBAR_ERR_CIRCUIT_OPEN');
      expect(err.details.grpcStatus).to.equal('UNAVAILABLE');
      expect(err.details.remote).to.equal(true);
      expect(err.retryable).to.equal(true);
    } finally {
      await client.stop();
      await server.stop();
    }
  });

  it('grpc.* headers stay on their side: not forwarded by the next gRPC hop unless allow-listed, credentials only by exact name', async () => {
    const seen: Message[] = [];
    const back = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
    back.addRoutes(from(`grpc:shop.Orders/GetOrder?port=0&${P}`).process((m: Message) => (seen.push(m), { ...m, body: { id: 'ok' } })));
    await back.start();
    const bp = grpcPort(back, 0)!;
    const front = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
    front.addRoutes(
      from(`grpc:shop.Orders/GetOrder?port=0&${P}`).routeId('plain').to(`grpc://127.0.0.1:${bp}/shop.Orders/GetOrder?${P}`),
      from(`grpc:shop.Orders/ListOrders?port=0&${P}`)
        .routeId('allow')
        .transform((b) => b)
        .to(`grpc://127.0.0.1:${bp}/shop.Orders/GetOrder?${P}&headers=${encodeURIComponent('grpc.metadata.x-*,grpc.metadata.authorization')}`)
        .transform((b) => [b]),
      from(`grpc:shop.Orders/Upload?port=0&${P}`)
        .routeId('pattern')
        .transform((items) => ({ id: (items as Array<{ sku: string }>)[0]!.sku }))
        .to(`grpc://127.0.0.1:${bp}/shop.Orders/GetOrder?${P}&headers=${encodeURIComponent('grpc.metadata.*')}`)
        .transform(() => ({ count: 1, total: 0 })),
    );
    await front.start();
    const c = shopClient(grpcPort(front, 0)!);
    const md = (): grpc.Metadata => {
      const m = new grpc.Metadata();
      m.set('x-tenant', 'acme');
      m.set('authorization', 'Bearer secret');
      return m;
    };
    try {
      await unary(c, 'GetOrder', { id: '1' }, md());
      expect(seen.at(-1)!.headers['grpc.metadata.x-tenant']).to.equal(undefined);
      expect(seen.at(-1)!.headers['grpc.metadata.authorization']).to.equal(undefined);

      await new Promise<void>((resolve, reject) => {
        const s = c.ListOrders!({ id: '1' }, md()) as grpc.ClientReadableStream<unknown>;
        s.on('data', () => undefined);
        s.on('error', reject);
        s.on('end', resolve);
      });
      expect(seen.at(-1)!.headers['grpc.metadata.x-tenant']).to.equal('acme');
      expect(seen.at(-1)!.headers['grpc.metadata.authorization']).to.equal('Bearer secret');

      await new Promise<void>((resolve, reject) => {
        const w = c.Upload!(md(), (e: grpc.ServiceError | null) => (e ? reject(e) : resolve())) as grpc.ClientWritableStream<unknown>;
        w.write({ sku: '1', qty: 1 });
        w.end();
      });
      expect(seen.at(-1)!.headers['grpc.metadata.x-tenant']).to.equal('acme');
      expect(seen.at(-1)!.headers['grpc.metadata.authorization']).to.equal(undefined);
    } finally {
      c.close();
      await front.stop();
      await back.stop();
    }
  });
});

describe('grpc: configuration errors', function () {
  this.timeout(10_000);

  it('an unknown service or method, or a proto that does not load, fails at start with GRPC_CONFIG naming it', async () => {
    for (const [uri, hint] of [
      [`grpc:shop.Orders/Nope?port=0&${P}`, 'GetOrder'],
      [`grpc:shop.Shops/GetOrder?port=0&${P}`, 'shop.Orders'],
      ['grpc:shop.Orders/GetOrder?port=0&proto=/nonexistent/x.proto', '/nonexistent/x.proto'],
    ] as const) {
      const e = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
      e.addRoutes(from(uri).to('mock:out'));
      const err = await rejection(e.start());
      const cause = (err.cause ?? err) as BusbarError;
      expect(cause.code, uri).to.equal('BUSBAR_ERR_GRPC_CONFIG');
      expect(cause.message, uri).to.contain(hint);
      await e.stop();
    }
  });

  it('an unknown endpoint option is refused with the nearest name', () => {
    const e = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
    const err = (() => {
      try {
        e.addRoutes(from(`grpc:shop.Orders/GetOrder?prot=x`).to('mock:out'));
      } catch (x) {
        return x as BusbarError;
      }
      throw new Error('expected a failure');
    })();
    expect(err.code).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(err.message).to.contain('proto');
  });
});
