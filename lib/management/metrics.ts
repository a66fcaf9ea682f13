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

interface Cell {
  labels: { route: string; outcome: string };
  /** Observations per bucket (not cumulative; the last one is +Inf). */
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * `busbar_route_duration_seconds` as a prom-client metric of our own: an observation is a
 * bucket search and three additions on a cell found by route id and outcome. prom-client's
 * Histogram hashes its label object on every observe, even through a `labels()` child: that
 * was the largest cost of metrics per message (profiled with --cpu-prof). Exposition is the
 * same text format (cumulative `_bucket{le}`, `_sum`, `_count`).
 */
function durationHistogram(bounds: readonly number[]): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; observe(route: string, outcome: string, seconds: number): void; get(): Promise<unknown>; reset(): void } {
  const sorted = [...bounds].sort((a, b) => a - b);
  let cells = new Map<string, Record<string, Cell>>();
  const name = 'busbar_route_duration_seconds';
  const help = 'Time from a message entering a route to the route finishing with it (all outputs confirmed).';
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    observe(route, outcome, seconds) {
      let byOutcome = cells.get(route);
      if (byOutcome === undefined) cells.set(route, (byOutcome = {}));
      let c = byOutcome[outcome];
      if (c === undefined) byOutcome[outcome] = c = { labels: { route, outcome }, counts: new Float64Array(sorted.length + 1), sum: 0, count: 0 };
      let i = 0;
      while (i < sorted.length && seconds > sorted[i]!) i++;
      c.counts[i]!++;
      c.sum += seconds;
      c.count++;
    },
    async get() {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (const byOutcome of cells.values()) {
        for (const c of Object.values(byOutcome)) {
          let acc = 0;
          sorted.forEach((le, i) => {
            acc += c.counts[i]!;
            values.push({ labels: { ...c.labels, le }, value: acc, metricName: `${name}_bucket` });
          });
          values.push({ labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: `${name}_bucket` });
          values.push({ labels: { ...c.labels }, value: c.sum, metricName: `${name}_sum` });
          values.push({ labels: { ...c.labels }, value: c.count, metricName: `${name}_count` });
        }
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
    reset() {
      cells = new Map();
    },
  };
}

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
  const duration = durationHistogram(opts.buckets ?? [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]);
  registry.registerMetric(duration as unknown as import('prom-client').Metric);
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

  // no token and no clock of its own: the route reads the time once for every observer
  const observer: ExchangeObserver = {
    stateless: true,
    ignoresSteps: true,
    begin: (_route: Route, _msg: Message) => undefined,
    step() {},
    end: (route: Route, _token: unknown, outcome: ExchangeOutcome, _err?: unknown, began?: number, ended?: number) =>
      duration.observe(route.id, outcome, began === undefined || ended === undefined ? 0 : (ended - began) / 1000),
  };
  const unobserve = engine.observe(observer);
  return {
    registry,
    contentType: registry.contentType,
    text: () => registry.metrics(),
    close: unobserve,
  };
}
