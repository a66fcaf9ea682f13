import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, from } from '../../../lib/index.js';
import { createAmqpAdapter } from '../../../adapters/amqp/index.js';
import { createDbAdapter } from '../../../adapters/db/index.js';
import { createFileAdapter } from '../../../adapters/file/index.js';
import { httpAdapter } from '../../../adapters/http/index.js';
import { AMQP_URL, tempDir, testLogger, waitFor } from '../../helpers.js';
import { call, portOf } from '../../adapters/http/helpers.js';
import { engineFromModule } from '../../../lib/cli/main.js';

// span kinds of @opentelemetry/api
const SERVER = 1;
const CLIENT = 2;
const PRODUCER = 3;
const CONSUMER = 4;

function tracing(): { exporter: InMemorySpanExporter; provider: BasicTracerProvider } {
  const exporter = new InMemorySpanExporter();
  return { exporter, provider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }) };
}

const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const byName = (spans: ReadableSpan[], name: string): ReadableSpan => {
  const s = spans.find((x) => x.name === name);
  if (!s) throw new Error(`no span "${name}" among: ${spans.map((x) => x.name).join(', ')}`);
  return s;
};

/** A plain HTTP server (no busbar) that records the headers it was called with. */
async function recorder(): Promise<{ server: Server; port: number; seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, seen };
}

describe('tracing (OpenTelemetry)', function () {
  this.timeout(30_000);

  it('one continuous trace: http -> route -> amqp -> route -> file -> route -> JSON-RPC, parent to child', async () => {
    const { exporter, provider } = tracing();
    const queue = `busbar.spec.trace.${randomUUID()}`;
    const dir = tempDir('busbar-trace-');
    const rpc = new Engine({ logger: testLogger(), adapters: [httpAdapter], tracing: { tracerProvider: provider } });
    rpc.addRoutes(from('http:/rpc?port=0&protocol=jsonrpc').routeId('book').to('mock:booked').transform(() => ({ booked: true })));
    await rpc.start();
    const hub = new Engine({ logger: testLogger(), adapters: [httpAdapter, createAmqpAdapter({ url: AMQP_URL }), createFileAdapter()], tracing: { tracerProvider: provider } });
    hub.addRoutes(
      from('http:/orders?port=0&method=POST').routeId('intake').to(`amqp:queue:${queue}`).transform(() => ({ accepted: true })),
      from(`amqp:queue:${queue}?bodyType=json`).routeId('relay').to(`file:${dir.path}/inbox?fileName={id}.json`),
      from(`file:${dir.path}/inbox?delay=20&readLock=rename&include=*.json&bodyType=string`).routeId('booking').transform((text) => JSON.parse(text as string) as unknown).to(`http://127.0.0.1:${portOf(rpc)}/rpc?protocol=jsonrpc&rpcMethod=orders.book`),
    );
    await hub.start();
    try {
      const upstream = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };
      const res = await call(portOf(hub), 'POST', '/orders', '{"id":"o-1","amount":5}', { 'content-type': 'application/json', traceparent: `00-${upstream.traceId}-${upstream.spanId}-01`, tracestate: 'vendor=abc' });
      expect(res.status).to.equal(200);
      await waitFor(() => rpc.mock('mock:booked').received.length === 1, 10_000, 'the JSON-RPC call');
      await waitFor(() => exporter.getFinishedSpans().filter((s) => s.attributes['busbar.route.id'] === 'booking').length === 1, 5000, 'booking finished');
      const spans = exporter.getFinishedSpans();
      // every span of every hop is in the caller's trace
      expect(new Set(spans.map((s) => s.spanContext().traceId))).to.deep.equal(new Set([upstream.traceId]));

      const intake = spans.find((s) => s.attributes['busbar.route.id'] === 'intake')!;
      expect(intake.kind).to.equal(SERVER);
      expect(intake.name).to.equal('POST /orders');
      expect(parentOf(intake)).to.equal(upstream.spanId);
      expect(intake.attributes['http.request.method']).to.equal('POST');

      const publish = byName(spans, `publish ${queue}`);
      expect(publish.kind).to.equal(PRODUCER);
      expect(parentOf(publish)).to.equal(intake.spanContext().spanId);
      expect(publish.attributes).to.include({ 'messaging.system': 'rabbitmq', 'messaging.destination.name': queue, 'messaging.operation.type': 'send', 'messaging.rabbitmq.destination.routing_key': queue });
      expect(publish.attributes['messaging.message.id']).to.be.a('string');

      const relay = spans.find((s) => s.attributes['busbar.route.id'] === 'relay')!;
      expect(relay.kind).to.equal(CONSUMER);
      expect(relay.name).to.equal(`process ${queue}`);
      expect(parentOf(relay)).to.equal(publish.spanContext().spanId);
      expect(relay.attributes).to.include({ 'messaging.system': 'rabbitmq', 'messaging.operation.type': 'process', 'messaging.rabbitmq.destination.routing_key': queue });
      // the caller's tracestate travelled with the context
      expect(relay.spanContext().traceState?.get('vendor')).to.equal('abc');

      const write = spans.find((s) => s.kind === PRODUCER && s.attributes['messaging.system'] === 'file')!;
      expect(parentOf(write)).to.equal(relay.spanContext().spanId);

      const booking = spans.find((s) => s.attributes['busbar.route.id'] === 'booking')!;
      expect(booking.kind).to.equal(CONSUMER);
      expect(parentOf(booking)).to.equal(write.spanContext().spanId);

      const rpcCall = spans.find((s) => s.kind === CLIENT && s.attributes['rpc.system'] === 'jsonrpc')!;
      expect(rpcCall.name).to.equal('orders.book');
      expect(rpcCall.attributes).to.include({ 'rpc.method': 'orders.book', 'rpc.system': 'jsonrpc', 'server.address': '127.0.0.1' });
      expect(parentOf(rpcCall)).to.equal(booking.spanContext().spanId);

      const served = spans.find((s) => s.attributes['busbar.route.id'] === 'book')!;
      expect(served.kind).to.equal(SERVER);
      expect(served.attributes).to.include({ 'rpc.system': 'jsonrpc', 'rpc.method': 'orders.book' });
      expect(parentOf(served)).to.equal(rpcCall.spanContext().spanId);
      expect(parentOf(byName(spans, 'publish booked'))).to.equal(served.spanContext().spanId);

      // the trace headers are the tracer's: none of them is left on the message as a plain header
      // a parent across a wire (HTTP, AMQP, a file, JSON-RPC) is remote; one in this process (the
      // exchange's span to its output's) is local: the tracer hands the span's own context on
      const remote = (x: ReadableSpan): boolean => x.parentSpanContext?.isRemote === true;
      expect([intake, publish, relay, write, booking, rpcCall, served].map(remote)).to.deep.equal([true, false, true, false, true, false, true]);

      const booked = rpc.mock('mock:booked').received[0]!;
      expect(booked.headers).to.not.have.property('traceparent');
      // the file's sidecar was removed with the file
      await waitFor(() => readdirSync(join(dir.path, 'inbox')).filter((n) => n.endsWith('.trace')).length === 0, 5000, 'the sidecar removed');
    } finally {
      await hub.stop({ timeoutMs: 2000 });
      await rpc.stop({ timeoutMs: 2000 });
      dir.cleanup();
      const amqp = await import('amqplib');
      const conn = await amqp.connect(AMQP_URL);
      const ch = await conn.createChannel();
      await ch.deleteQueue(queue);
      await conn.close();
    }
  });

  it('http client: traceparent of the CLIENT span on the wire, none when tracing is off', async () => {
    const { exporter, provider } = tracing();
    const rec = await recorder();
    const on = new Engine({ logger: testLogger(), adapters: [httpAdapter], tracing: { tracerProvider: provider } });
    const off = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    for (const e of [on, off]) e.addRoutes(from('direct:call').to(`http://127.0.0.1:${rec.port}/x?method=POST`));
    await on.start();
    await off.start();
    try {
      // an incoming traceparent header on the message is not a wire header of another transport
      await on.send('direct:call', { a: 1 }, { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' });
      await off.send('direct:call', { a: 1 });
      const client = exporter.getFinishedSpans().find((s) => s.kind === CLIENT)!;
      expect(client.name).to.equal('POST');
      expect(rec.seen[0]!.traceparent).to.equal(`00-${client.spanContext().traceId}-${client.spanContext().spanId}-01`);
      expect(client.spanContext().traceId).to.equal('11111111111111111111111111111111');
      expect(rec.seen[1]!.traceparent).to.equal(undefined);
    } finally {
      await on.stop();
      await off.stop();
      rec.server.close();
    }
  });

  it('SOAP: the client span\'s context goes in the HTTP headers and the SOAP server continues it', async () => {
    const { exporter, provider } = tracing();
    const NS = 'urn:busbar:trace';
    const server = new Engine({ logger: testLogger(), adapters: [httpAdapter], tracing: { tracerProvider: provider } });
    server.addRoutes(from(`http:/ws/orders?port=0&protocol=soap&operation=GetOrder&namespace=${NS}`).routeId('soap-server').transform(() => ({ id: '7', total: '1.00' })));
    await server.start();
    const client = new Engine({ logger: testLogger(), adapters: [httpAdapter], tracing: { tracerProvider: provider } });
    client.addRoutes(from('direct:soap').routeId('soap-client').to(`http://127.0.0.1:${portOf(server)}/ws/orders?protocol=soap&operation=GetOrder&namespace=${encodeURIComponent(NS)}`));
    await client.start();
    try {
      expect(await client.request('direct:soap', { id: '7' })).to.deep.equal({ id: '7', total: '1.00' });
      await waitFor(() => exporter.getFinishedSpans().some((s) => s.attributes['busbar.route.id'] === 'soap-client'), 5000, 'client span');
      const spans = exporter.getFinishedSpans();
      const call = spans.find((s) => s.kind === CLIENT)!;
      expect(call.name).to.equal('GetOrder');
      expect(call.attributes).to.include({ 'rpc.system': 'soap', 'rpc.method': 'GetOrder' });
      const served = spans.find((s) => s.attributes['busbar.route.id'] === 'soap-server')!;
      expect(served.kind).to.equal(SERVER);
      expect(served.attributes).to.include({ 'rpc.system': 'soap', 'rpc.method': 'GetOrder' });
      expect(served.spanContext().traceId).to.equal(call.spanContext().traceId);
      expect(parentOf(served)).to.equal(call.spanContext().spanId);
    } finally {
      await client.stop();
      await server.stop();
    }
  });

  it('amqp: the context comes from the W3C header only; a busbar.trace.* header on the wire is not taken', async () => {
    const { exporter, provider } = tracing();
    const queue = `busbar.spec.trace.${randomUUID()}`;
    const engine = new Engine({ logger: testLogger(), adapters: [createAmqpAdapter({ url: AMQP_URL })], tracing: { tracerProvider: provider } });
    engine.addRoutes(from(`amqp:queue:${queue}`).routeId('in').to('mock:got'));
    await engine.start();
    const amqp = await import('amqplib');
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    try {
      ch.sendToQueue(queue, Buffer.from('a'), { headers: { 'busbar.trace.parent': '00-55555555555555555555555555555555-6666666666666666-01' } });
      ch.sendToQueue(queue, Buffer.from('b'), { headers: { traceparent: '00-77777777777777777777777777777777-8888888888888888-01' } });
      await waitFor(() => exporter.getFinishedSpans().filter((s) => s.attributes['busbar.route.id'] === 'in').length === 2, 5000, 'both consumed');
      const spans = exporter.getFinishedSpans().filter((s) => s.attributes['busbar.route.id'] === 'in');
      const a = spans.find((s) => s.spanContext().traceId !== '77777777777777777777777777777777')!;
      const b = spans.find((s) => s.spanContext().traceId === '77777777777777777777777777777777')!;
      expect(a.spanContext().traceId).to.not.equal('55555555555555555555555555555555');
      expect(parentOf(a)).to.equal(undefined);
      expect(parentOf(b)).to.equal('8888888888888888');
    } finally {
      await engine.stop({ timeoutMs: 2000 });
      await ch.deleteQueue(queue);
      await conn.close();
    }
  });

  it('is an option of config files too (engine.tracing), using the registered provider', () => {
    const { engine } = engineFromModule({ routes: [], engine: { tracing: true } }, testLogger());
    expect(engine.tracing).to.equal(true);
    expect(new Engine({ logger: testLogger() }).tracing).to.equal(false);
  });

  it('tracing: true uses the registered SDK (sdk-trace-node), and user code sees the exchange\'s span as the active one', async () => {
    const api = await import('@opentelemetry/api');
    const { NodeTracerProvider } = await import('@opentelemetry/sdk-trace-node');
    const exporter = new InMemorySpanExporter();
    const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    provider.register();
    const engine = new Engine({ logger: testLogger(), tracing: true });
    let active: string | undefined;
    engine.addRoutes(
      from('direct:active')
        .routeId('active')
        .process(async (m) => {
          await new Promise((r) => setTimeout(r, 5));
          active = api.trace.getActiveSpan()?.spanContext().spanId;
          return m;
        }),
    );
    await engine.start();
    try {
      await engine.send('direct:active', 1);
      const route = exporter.getFinishedSpans().find((s) => s.attributes['busbar.route.id'] === 'active')!;
      expect(active).to.equal(route.spanContext().spanId);
    } finally {
      await engine.stop();
      await provider.shutdown();
      api.trace.disable();
      api.context.disable();
      api.propagation.disable();
    }
  });

  it('a failure sets the span status and records the coded error', async () => {
    const { exporter, provider } = tracing();
    const engine = new Engine({ logger: testLogger(), tracing: { tracerProvider: provider } });
    engine.addRoutes(
      from('direct:fail').routeId('failing').to('mock:broken'),
    );
    await engine.start();
    engine.mock('mock:broken').whenReceived(() => {
      throw new Error('disk on fire');
    });
    try {
      await engine.send('direct:fail', 1).then(() => expect.fail('should fail'), () => undefined);
      const spans = exporter.getFinishedSpans();
      const route = spans.find((s) => s.attributes['busbar.route.id'] === 'failing')!;
      const out = byName(spans, 'publish broken');
      for (const s of [route, out]) {
        expect(s.status.code).to.equal(2);
        expect(s.status.message).to.contain('disk on fire');
        expect(s.events.some((e) => e.name === 'exception')).to.equal(true);
      }
      expect(route.attributes['error.type']).to.equal('BUSBAR_ERR_STEP_FAILED');
    } finally {
      await engine.stop();
    }
  });

  it('split parts start traces linked to the split; an aggregate links every contributing message', async () => {
    const { exporter, provider } = tracing();
    const engine = new Engine({ logger: testLogger(), tracing: { tracerProvider: provider } });
    engine.addRoutes(
      from('direct:split').routeId('splitter').split().to('mock:part'),
      from('direct:agg').routeId('gather').aggregate({ correlate: () => 'all', size: 3 }).to('mock:all'),
    );
    await engine.start();
    try {
      await engine.send('direct:split', [1, 2, 3]);
      const spans = exporter.getFinishedSpans();
      const split = spans.find((s) => s.attributes['busbar.route.id'] === 'splitter' && s.kind === CONSUMER)!;
      const parts = spans.filter((s) => s.name === 'split splitter');
      expect(parts).to.have.length(3);
      for (const p of parts) {
        expect(p.spanContext().traceId).to.not.equal(split.spanContext().traceId);
        expect(p.links.map((l) => l.context.spanId)).to.deep.equal([split.spanContext().spanId]);
      }
      // each part's output belongs to the part's trace
      const outs = spans.filter((s) => s.name === 'publish part');
      expect(outs.map((o) => parentOf(o)).sort()).to.deep.equal(parts.map((p) => p.spanContext().spanId).sort());

      exporter.reset();
      for (const n of [1, 2, 3]) await engine.send('direct:agg', n);
      await waitFor(() => engine.mock('mock:all').received.length === 1, 5000, 'the aggregate');
      await waitFor(() => exporter.getFinishedSpans().filter((s) => s.attributes['busbar.route.id'] === 'gather').length === 4, 5000, 'aggregate spans');
      const gathered = exporter.getFinishedSpans().filter((s) => s.attributes['busbar.route.id'] === 'gather');
      const aggregate = gathered.find((s) => s.links.length > 0)!;
      const contributors = gathered.filter((s) => s !== aggregate);
      expect(aggregate.links.map((l) => l.context.spanId).sort()).to.deep.equal(contributors.map((c) => c.spanContext().spanId).sort());
      expect(parentOf(byName(exporter.getFinishedSpans(), 'publish all'))).to.equal(aggregate.spanContext().spanId);
    } finally {
      await engine.stop();
    }
  });

  it('db: a row keeps its trace context in the table\'s traceparent column, and the db consumer continues it', async () => {
    const { exporter, provider } = tracing();
    const dir = tempDir('busbar-trace-db-');
    const file = join(dir.path, 'app.db');
    const Sqlite = (await import('better-sqlite3')).default;
    const setup = new Sqlite(file);
    setup.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, traceparent TEXT, tracestate TEXT, retries INTEGER DEFAULT 0)');
    setup.exec('CREATE TABLE plain (id INTEGER PRIMARY KEY, item TEXT)');
    setup.close();
    const engine = new Engine({ logger: testLogger(), adapters: [createDbAdapter()], tracing: { tracerProvider: provider } });
    engine.addRoutes(
      from('direct:save').routeId('save').to(`db:sqlite:${file}?operation=insert&table=orders`).to(`db:sqlite:${file}?operation=insert&table=plain`),
      from(`db:sqlite:${file}?table=orders&claim=none&delay=20`).routeId('work').to('mock:worked'),
    );
    await engine.start();
    try {
      await engine.send('direct:save', { id: 1, item: 'pen' }, { traceparent: '00-33333333333333333333333333333333-4444444444444444-01', tracestate: 'k=v' });
      await waitFor(() => engine.mock('mock:worked').received.length === 1, 5000, 'the row consumed');
      await waitFor(() => exporter.getFinishedSpans().some((s) => s.attributes['busbar.route.id'] === 'work'), 5000, 'work span');
      const spans = exporter.getFinishedSpans();
      const insert = byName(spans, 'INSERT orders');
      expect(insert.kind).to.equal(CLIENT);
      expect(insert.attributes).to.include({ 'db.system.name': 'sqlite', 'db.collection.name': 'orders', 'db.operation.name': 'INSERT' });
      const row = engine.mock('mock:worked').received[0]!.body as { traceparent: string; tracestate: string };
      expect(engine.mock('mock:worked').received[0]!.headers).to.not.have.property('traceparent');
      const check = new Sqlite(file, { readonly: true });
      const plain = check.prepare('SELECT * FROM plain WHERE id = 1').get() as Record<string, unknown>;
      check.close();
      expect(row.traceparent).to.equal(`00-33333333333333333333333333333333-${insert.spanContext().spanId}-01`);
      expect(row.tracestate).to.equal('k=v');
      expect(plain).to.deep.equal({ id: 1, item: 'pen' });
      // the second output is a child of the exchange too, not of the first output (whose answer the route went on with)
      const save = spans.find((s) => s.attributes['busbar.route.id'] === 'save')!;
      expect(parentOf(insert)).to.equal(save.spanContext().spanId);
      expect(parentOf(byName(spans, 'INSERT plain'))).to.equal(save.spanContext().spanId);
      const work = spans.find((s) => s.attributes['busbar.route.id'] === 'work')!;
      expect(work.kind).to.equal(CONSUMER);
      expect(parentOf(work)).to.equal(insert.spanContext().spanId);
      expect(work.attributes).to.include({ 'messaging.system': 'sqlite', 'messaging.destination.name': 'orders' });
    } finally {
      await engine.stop();
      dir.cleanup();
    }
  });

  it('file: the context is in a hidden .<name>.trace sidecar, written only while tracing', async () => {
    const { provider } = tracing();
    const dir = tempDir('busbar-trace-file-');
    const on = new Engine({ logger: testLogger(), adapters: [createFileAdapter()], tracing: { tracerProvider: provider } });
    const off = new Engine({ logger: testLogger(), adapters: [createFileAdapter()] });
    for (const e of [on, off]) e.addRoutes(from('direct:w').to(`file:${dir.path}?fileName={body.name}`));
    await on.start();
    await off.start();
    try {
      await on.send('direct:w', { name: 'a.json' });
      await off.send('direct:w', { name: 'b.json' });
      const side = JSON.parse(readFileSync(join(dir.path, '.a.json.trace'), 'utf8')) as { traceparent: string };
      expect(side.traceparent).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(existsSync(join(dir.path, '.b.json.trace'))).to.equal(false);
    } finally {
      await on.stop();
      await off.stop();
      dir.cleanup();
    }
  });
});
