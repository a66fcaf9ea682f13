import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { expect } from 'chai';
import { createMessage, Engine, from, type Adapter, type ExchangeObserver, type Message } from '../../lib/index.js';
import { InflightTracker } from '../../lib/management/inflight.js';
import { latch, testLogger } from '../helpers.js';

/**
 * What observing a route costs per message (issues #18 and #13): the in-flight tracker files
 * only exchanges that outlive their first turn, step counts are counters the route made when
 * it was built, metrics take the route's own two clock reads, and tracing with no SDK behind
 * the API does no span work for a message that carries no trace context. Each keeps what
 * the management API and tracing promise.
 */
function sink(received: Message[]): Adapter {
  return {
    scheme: 'sink',
    description: 'a producer that completes synchronously',
    optionsSchema: { type: 'object', properties: {}, additionalProperties: false },
    createProducer() {
      return {
        send(msg) {
          received.push(msg);
          return undefined;
        },
      };
    },
  };
}

describe('observing a route, cheaply', () => {
  let engine: Engine;
  afterEach(async () => {
    await engine.stop();
  });

  it('lists exchanges that wait for something, with the step each is at (a direct: call inside one as its own), and step counts per step', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [sink(received)] });
    const { wait: gate, open: open } = latch();
    engine.addRoutes(
      from<number>('direct:a').routeId('a').transform((n) => n + 1).to('direct:b').to('sink:a'),
      from<number>('direct:b').routeId('b').process(async (m) => {
        if (m.body === 2) await gate;
        return m;
      }).to('sink:b'),
      from<number>('direct:c').routeId('c').transform((n) => n * 2).to('sink:c'),
    );
    const tracker = new InflightTracker(undefined, (id) => engine.stepHits(id));
    const unobserve = engine.observe(tracker);
    await engine.start();
    // synchronous exchanges: counted per step, never in flight once the call returned
    for (let i = 0; i < 5; i++) await engine.send('direct:c', i);
    expect(tracker.list()).to.deep.equal([]);
    expect(tracker.stepCounts('c')).to.deep.equal({ '/steps/0': 5, '/steps/1': 5 });
    const msg = createMessage(1);
    const sent = engine.sendMessage('direct:a', msg);
    const inflight = tracker.list().map((x) => ({ routeId: x.routeId, messageId: x.messageId, step: x.step, kind: x.kind }));
    expect(inflight).to.have.deep.members([
      { routeId: 'a', messageId: msg.id, step: '/steps/1', kind: 'to' },
      { routeId: 'b', messageId: msg.id, step: '/steps/0', kind: 'process' },
    ]);
    open();
    await sent;
    expect(tracker.list()).to.deep.equal([]);
    expect(received.map((m) => m.body)).to.deep.equal([0, 2, 4, 6, 8, 2, 2]);
    expect(tracker.stepCounts('a')).to.deep.equal({ '/steps/0': 1, '/steps/1': 1, '/steps/2': 1 });
    engine.resetRouteStats('c');
    expect(tracker.stepCounts('c')).to.deep.equal({});
    unobserve();
    // not observed: not counted
    await engine.send('direct:c', 9);
    expect(engine.stepHits('c')).to.deep.equal({});
  });

  it('metrics time every exchange with the route\'s clock reads (the histogram counts each one, by outcome)', async () => {
    engine = new Engine({ logger: testLogger(), adapters: [sink([])] });
    engine.addRoutes(from<number>('direct:m').routeId('m').process((m) => {
      if (m.body < 0) throw new Error('negative');
      return m;
    }).to('sink:m'));
    await engine.start();
    const metrics = await engine.metrics({ processMetrics: false });
    const tracker = new InflightTracker(undefined, (id) => engine.stepHits(id));
    const unobserve = engine.observe(tracker); // two observers: the tracker's token, metrics keep none
    for (let i = 0; i < 7; i++) await engine.send('direct:m', i);
    await engine.send('direct:m', -1).catch(() => undefined);
    const text = await metrics.text();
    metrics.close();
    unobserve();
    expect(text).to.match(/busbar_route_duration_seconds_count\{route="m",outcome="completed"\} 7\n/);
    expect(text).to.match(/busbar_route_duration_seconds_count\{route="m",outcome="failed"\} 1\n/);
    const sum = Number(/busbar_route_duration_seconds_sum\{route="m",outcome="completed"\} (\S+)/.exec(text)?.[1]);
    expect(sum).to.be.greaterThan(0).and.lessThan(5);
  });

  it('a route watched only by observers that ignore steps (metrics) calls none of them per step, nor counts step hits; one that wants steps gets every step', async () => {
    engine = new Engine({ logger: testLogger(), adapters: [sink([])] });
    engine.addRoutes(from<number>('direct:s').routeId('s').transform((n) => n + 1).transform((n) => n * 2).to('sink:s'));
    await engine.start();
    const seen: string[] = [];
    const exchanges: number[] = [];
    const counting = (ignoresSteps: boolean, name: string): ExchangeObserver => ({
      ignoresSteps,
      stateless: true,
      begin: () => undefined,
      step: (_r, _m, path) => void seen.push(`${name} ${path}`),
      end: () => void exchanges.push(1),
    });
    const unMetricsLike = engine.observe(counting(true, 'exchanges'));
    await engine.send('direct:s', 1);
    expect(exchanges).to.have.length(1);
    expect(seen).to.deep.equal([]);
    expect(engine.stepHits('s')).to.deep.equal({});
    const unSteps = engine.observe(counting(false, 'steps'));
    await engine.send('direct:s', 2);
    // the pair forwards steps to the one that wants them only
    expect(seen).to.deep.equal(['steps /steps/0', 'steps /steps/1', 'steps /steps/2']);
    expect(engine.stepHits('s')).to.deep.equal({ '/steps/0': 1, '/steps/1': 1, '/steps/2': 1 });
    unSteps();
    await engine.send('direct:s', 3);
    expect(seen).to.have.length(3);
    expect(exchanges).to.have.length(4);
    unMetricsLike();
  });

  it('tracing with no SDK registered hands the message on untouched (no span work), and uses an SDK registered later', async () => {
    const api = await import('@opentelemetry/api');
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [sink(received)], tracing: true });
    engine.addRoutes(from('direct:t').routeId('t').to('sink:t'));
    await engine.start();
    const plain = createMessage('plain');
    await engine.sendMessage('direct:t', plain);
    // the very message: no span, no copy carrying an (invalid) span context
    expect(received[0]).to.equal(plain);
    // an incoming trace context is passed on as it came (a no-op span keeps its parent's context)
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await engine.sendMessage('direct:t', createMessage('traced', { headers: { traceparent } }));
    expect(received[1]!.headers['busbar.trace.parent']).to.equal(traceparent);
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    api.trace.setGlobalTracerProvider(provider);
    try {
      await engine.send('direct:t', 'after');
      const spans = exporter.getFinishedSpans();
      expect(spans.map((s) => s.attributes['busbar.route.id'] ?? s.name)).to.include('t');
      expect(received[2]!.headers['busbar.trace.parent']).to.be.a('string');
    } finally {
      await provider.shutdown();
      api.trace.disable();
    }
  });
});
