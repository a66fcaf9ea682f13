import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { expect } from 'chai';
import { join } from 'node:path';
import { createEventlogAdapter, PartitionReader } from '../../../adapters/eventlog/index.js';
import { createP2pAdapter, p2pPeer } from '../../../adapters/p2p/index.js';
import { Engine, from } from '../../../lib/index.js';
import { tempDir, testLogger, waitFor } from '../../helpers.js';

// span kinds of @opentelemetry/api
const PRODUCER = 3;
const CONSUMER = 4;

const TRACE = '9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a';
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const routeSpan = (spans: ReadableSpan[], id: string): ReadableSpan => {
  const s = spans.find((x) => x.attributes['busbar.route.id'] === id);
  if (!s) throw new Error(`no span of route "${id}" among: ${spans.map((x) => x.name).join(', ')}`);
  return s;
};

function tracing(): { exporter: InMemorySpanExporter; provider: BasicTracerProvider } {
  const exporter = new InMemorySpanExporter();
  return { exporter, provider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }) };
}

/**
 * The transports that carry a message's header map as such: the context goes as W3C
 * `traceparent` / `tracestate` (the producer span's), the engine's own `busbar.trace.*`
 * does not go onto the wire and is not taken off it; the consumer side continues the trace.
 */
describe('tracing over the event log and the p2p bus', function () {
  this.timeout(60_000);

  it('eventlog: the record headers carry the PRODUCER span as traceparent/tracestate; the log consumer continues the trace', async () => {
    const { exporter, provider } = tracing();
    const dir = tempDir('busbar-trace-log-');
    const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: dir.path })], tracing: { tracerProvider: provider } });
    engine.addRoutes(
      from('direct:in').routeId('write').to('eventlog:orders'),
      from('eventlog:orders?group=g&pollMs=5').routeId('read').to('mock:read'),
    );
    await engine.start();
    try {
      await engine.send('direct:in', { n: 1 }, { traceparent: `00-${TRACE}-1111111111111111-01`, tracestate: 'v=1' });
      await waitFor(() => exporter.getFinishedSpans().some((s) => s.attributes['busbar.route.id'] === 'read'), 10_000, 'the record consumed');
      const spans = exporter.getFinishedSpans();
      const append = spans.find((s) => s.kind === PRODUCER && s.attributes['messaging.system'] === 'eventlog')!;
      expect(append, spans.map((s) => s.name).join(', ')).to.not.equal(undefined);
      expect(append.spanContext().traceId).to.equal(TRACE);
      expect(parentOf(append)).to.equal(routeSpan(spans, 'write').spanContext().spanId);
      const read = routeSpan(spans, 'read');
      expect(read.kind).to.equal(CONSUMER);
      expect(read.spanContext().traceId).to.equal(TRACE);
      expect(parentOf(read)).to.equal(append.spanContext().spanId);
      // what the record holds: the W3C pair of the append span, not the engine's header
      const reader = new PartitionReader(join(dir.path, 'orders'), 0, 0);
      const [record] = await reader.read(10);
      reader.close();
      expect(record!.headers.traceparent).to.equal(`00-${TRACE}-${append.spanContext().spanId}-01`);
      expect(record!.headers.tracestate).to.equal('v=1');
      expect(Object.keys(record!.headers).filter((k) => k.startsWith('busbar.trace.'))).to.deep.equal([]);
    } finally {
      await engine.stop();
      dir.cleanup();
    }
  });

  it('eventlog: a busbar.trace.* record header is not taken as the context', async () => {
    const { exporter, provider } = tracing();
    const dir = tempDir('busbar-trace-log-');
    // written by an engine that does not trace: the header is the user's, it goes as it is
    const writer = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: dir.path })] });
    writer.addRoutes(from('direct:in').routeId('write').to('eventlog:raw'));
    const reader = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: dir.path })], tracing: { tracerProvider: provider } });
    reader.addRoutes(from('eventlog:raw?group=g&pollMs=5').routeId('read').to('mock:read'));
    await writer.start();
    try {
      await writer.send('direct:in', 'x', { 'busbar.trace.links': '00-55555555555555555555555555555555-6666666666666666-01' });
      await reader.start();
      await waitFor(() => exporter.getFinishedSpans().some((s) => s.attributes['busbar.route.id'] === 'read'), 10_000, 'consumed');
      const read = routeSpan(exporter.getFinishedSpans(), 'read');
      expect(read.links).to.deep.equal([]);
      expect(parentOf(read)).to.equal(undefined);
    } finally {
      await reader.stop();
      await writer.stop();
      dir.cleanup();
    }
  });

  it('p2p: a request to a peer carries the PRODUCER span as traceparent; the peer\'s route continues the trace', async () => {
    const { exporter, provider } = tracing();
    const secret = 'trace-spec-secret-0123456789abcdef';
    const a = new Engine({ name: 'a', logger: testLogger(), adapters: [createP2pAdapter({ secret, name: 'a' })], tracing: { tracerProvider: provider } });
    a.addRoutes(from('direct:go').routeId('caller').to('p2p:direct:svc'));
    await a.start();
    const b = new Engine({ name: 'b', logger: testLogger(), adapters: [createP2pAdapter({ secret, name: 'b', seeds: [p2pPeer(a)!.address] })], tracing: { tracerProvider: provider } });
    b.addRoutes(from('p2p:direct:svc').routeId('service').to('mock:served'));
    await b.start();
    try {
      await waitFor(() => p2pPeer(a)!.members().some((m) => m.name === 'b' && m.state === 'alive'), 20_000, 'b joined');
      // b's service announced to a
      await waitFor(async () => (await a.send('direct:go', { n: 1 }, { traceparent: `00-${TRACE}-2222222222222222-01` }).then(() => true, () => false)), 20_000, 'the call went through');
      await waitFor(() => exporter.getFinishedSpans().some((s) => s.attributes['busbar.route.id'] === 'service'), 10_000, 'service span');
      const spans = exporter.getFinishedSpans();
      const service = routeSpan(spans, 'service');
      const call = spans.find((s) => s.kind === PRODUCER && s.attributes['messaging.system'] === 'p2p' && s.spanContext().spanId === parentOf(service));
      expect(call, spans.map((s) => `${s.name} ${s.kind}`).join(', ')).to.not.equal(undefined);
      expect(service.kind).to.equal(CONSUMER);
      expect(service.spanContext().traceId).to.equal(TRACE);
      expect(parentOf(call!)).to.equal(spans.find((s) => s.attributes['busbar.route.id'] === 'caller' && s.spanContext().spanId === parentOf(call!))!.spanContext().spanId);
      // the wire form: toWire is what a peer sends (frames.ts)
      const { toWire, fromWire } = await import('../../../adapters/p2p/frames.js');
      const { createMessage } = await import('../../../lib/message.js');
      const sent = toWire(createMessage('x', { headers: { 'busbar.trace.parent': `00-${TRACE}-3333333333333333-01`, 'busbar.trace.state': 's=1', 'busbar.trace.links': '[]', keep: 'me' } }));
      expect(sent.headers).to.deep.equal({ keep: 'me', traceparent: `00-${TRACE}-3333333333333333-01`, tracestate: 's=1' });
      expect(fromWire({ ...sent, headers: { 'busbar.trace.parent': `00-${TRACE}-4444444444444444-01`, other: 1 } }).headers).to.deep.equal({ other: 1 });
    } finally {
      await b.stop();
      await a.stop();
    }
  });
});
