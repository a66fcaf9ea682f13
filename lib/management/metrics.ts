import type { Registry } from 'prom-client';
import type { Engine } from '../engine.js';
import type { Message } from '../message.js';
import type { ExchangeObserver, ExchangeOutcome, Route } from '../route.js';

export interface MetricsOptions {
  /** Register busbar's metrics here (your own prom-client registry); by default a new one. */
  registry?: Registry;
  /** Process metrics (CPU, memory, event loop lag) too; default true on busbar's own registry, false on yours. */
  processMetrics?: boolean;
  /** Histogram buckets of `busbar_route_duration_seconds`. */
  buckets?: number[];
}

export interface BusbarMetrics {
  readonly registry: Registry;
  /** The Prometheus text exposition. */
  text(): Promise<string>;
  readonly contentType: string;
  /** Stop observing routes (the metrics stay registered until you remove them). */
  close(): void;
}

type Child = { observe(v: number): void };

/**
 * busbar's Prometheus metrics with prom-client (loaded only here). Counters and gauges are read
 * from `engine.stats()` when scraped, so routes pay nothing for them; the duration histogram is
 * the only per-exchange cost (one clock read and one observation).
 */
export async function createMetrics(engine: Engine, opts: MetricsOptions = {}): Promise<BusbarMetrics> {
  const prom = await import('prom-client');
  const own = opts.registry === undefined;
  const registry = opts.registry ?? new prom.Registry();
  if (opts.processMetrics ?? own) {
    prom.collectDefaultMetrics({ register: registry });
    // gauges prom-client names with a counter's `_total` suffix: promtool rejects them
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  }
  const registers = [registry];

  new prom.Counter({
    name: 'busbar_route_messages_total',
    help: 'Exchanges a route finished, by outcome (completed, failed, dead_lettered) and redeliveries made (redelivered).',
    labelNames: ['route', 'outcome'],
    registers,
    collect() {
      this.reset();
      for (const [route, s] of Object.entries(engine.stats().routes)) {
        this.inc({ route, outcome: 'completed' }, s.completed);
        this.inc({ route, outcome: 'failed' }, Math.max(0, s.failed - s.deadLettered));
        this.inc({ route, outcome: 'dead_lettered' }, s.deadLettered);
        this.inc({ route, outcome: 'redelivered' }, s.redelivered);
      }
    },
  });
  new prom.Gauge({
    name: 'busbar_route_inflight',
    help: 'Exchanges in flight on a route now.',
    labelNames: ['route'],
    registers,
    collect() {
      this.reset();
      for (const [route, s] of Object.entries(engine.stats().routes)) this.set({ route }, s.inflight);
    },
  });
  new prom.Gauge({
    name: 'busbar_route_up',
    help: 'Whether a route is started (1) or stopped, suspended, starting or stopping (0).',
    labelNames: ['route'],
    registers,
    collect() {
      this.reset();
      for (const [route, s] of Object.entries(engine.stats().routes)) this.set({ route }, s.state === 'started' ? 1 : 0);
    },
  });
  const duration = new prom.Histogram({
    name: 'busbar_route_duration_seconds',
    help: 'Time from a message entering a route to the route finishing with it (all outputs confirmed).',
    labelNames: ['route', 'outcome'],
    buckets: opts.buckets ?? [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
    registers,
  });
  new prom.Counter({
    name: 'busbar_endpoint_messages_total',
    help: 'Messages through an endpoint: in (a route source) or out (an output, a dead-letter endpoint).',
    labelNames: ['endpoint', 'direction'],
    registers,
    async collect() {
      const e = await engine.endpointStats();
      this.reset();
      for (const s of e.sources) this.inc({ endpoint: s.uri, direction: 'in' }, s.received);
      for (const o of e.outputs) this.inc({ endpoint: o.uri, direction: 'out' }, o.sent);
    },
  });
  new prom.Gauge({
    name: 'busbar_endpoint_connected',
    help: 'Whether an endpoint holding a connection is up (1) or down (0).',
    labelNames: ['endpoint'],
    registers,
    collect() {
      this.reset();
      for (const r of engine.health().routes) for (const e of r.endpoints) this.set({ endpoint: e.uri }, e.status === 'connected' || e.status === 'idle' || e.status === 'ended' ? 1 : 0);
    },
  });
  new prom.Counter({
    name: 'busbar_endpoint_connection_failures_total',
    help: 'Times a source lost its connection (went disconnected or backing off).',
    labelNames: ['endpoint'],
    registers,
    async collect() {
      const e = await engine.endpointStats();
      this.reset();
      for (const s of e.sources) this.inc({ endpoint: s.uri }, s.connectionFailures);
    },
  });
  new prom.Gauge({
    name: 'busbar_endpoint_lag_messages',
    help: 'Messages waiting at a source (queue depth), where the source knows it.',
    labelNames: ['endpoint'],
    registers,
    async collect() {
      const e = await engine.endpointStats();
      this.reset();
      for (const s of e.sources) if (s.backlog !== undefined) this.set({ endpoint: s.uri }, s.backlog);
    },
  });

  // one histogram child per route and outcome, made once
  const children = new Map<string, Child>();
  const child = (route: string, outcome: ExchangeOutcome): Child => {
    const k = `${route}\u0000${outcome}`;
    let c = children.get(k);
    if (!c) children.set(k, (c = duration.labels({ route, outcome })));
    return c;
  };
  const observer: ExchangeObserver = {
    begin: (_route: Route, _msg: Message) => performance.now(),
    step() {},
    end: (route: Route, token: unknown, outcome: ExchangeOutcome) => child(route.id, outcome).observe((performance.now() - (token as number)) / 1000),
  };
  const unobserve = engine.observe(observer);
  return {
    registry,
    contentType: registry.contentType,
    text: () => registry.metrics(),
    close: unobserve,
  };
}
