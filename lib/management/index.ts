import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Engine, EngineEvent } from '../engine.js';
import { BusbarError } from '../errors.js';
import { listDeadLetters, recordReason, replayDeadLetters } from './dead-letters.js';
import { InflightTracker } from './inflight.js';
import { ManagementHttpServer, readJson, sendError, sendJson } from './server.js';
import { openEventStream, type EventStream } from './sse.js';
import type { ManagementOptions, ManagementServer } from './types.js';

export type { ManagementHandler, ManagementOptions, ManagementServer } from './types.js';
export { DEFAULT_MANAGEMENT_PORT, isLoopback, readJson, sendError, sendJson } from './server.js';
export type { InflightExchange, StepCounts } from './inflight.js';
export { createMetrics, type BusbarMetrics, type MetricsOptions } from './metrics.js';
export { routesFileReloader, type FileReloadReport } from './reload.js';
export { listDeadLetters, replayDeadLetters, FILE_REASONS_DIR, REPLAYED_HEADER, type DeadLetter, type ReplayResult } from './dead-letters.js';

/** What the built-in handlers share: the engine, the server, the tracker. */
export interface ManagementContext {
  readonly engine: Engine;
  readonly server: ManagementHttpServer;
  readonly tracker: InflightTracker;
  readonly startedAt: number;
}

/**
 * Start the management API of `engine` (also `engine.management(opts)`): health, routes and
 * their operations, in-flight exchanges, events; plug-ins registered with
 * `engine.onManagement` mount theirs on the same server.
 */
export async function startManagement(engine: Engine, opts: ManagementOptions = {}): Promise<ManagementServer> {
  const logger = engine.logger.child({ component: 'management' });
  const server = await ManagementHttpServer.listen({ logger, ...opts });
  const tracker = new InflightTracker(
    (_route, uri, msg, reply) => {
      return recordReason(engine, uri, msg, reply).catch((err: unknown) => logger.warn({ err, uri, messageId: msg.id }, 'could not record the reason of a dead letter'));
    },
    (id) => engine.stepHits(id),
  );
  const unobserve = engine.observe(tracker);
  server.onClose(unobserve);
  const ctx: ManagementContext = { engine, server, tracker, startedAt: Date.now() };
  mountCore(ctx, opts);
  if (opts.metrics !== false) {
    const { createMetrics } = await import('./metrics.js');
    const metrics = await createMetrics(engine, opts.metrics === true || opts.metrics === undefined ? {} : opts.metrics);
    server.onClose(() => metrics.close());
    server.addRoute('GET', '/metrics', async (_req, res) => {
      const text = await metrics.text();
      res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  }
  try {
    for (const plug of engine.managementPlugins) await plug(server);
  } catch (e) {
    await server.close();
    throw e;
  }
  logger.info({ url: server.url, auth: opts.token !== undefined }, 'management API listening');
  return server;
}

function routeSummary(engine: Engine, id: string): Record<string, unknown> {
  const stats = engine.routeStats(id);
  const d = engine.describeRoute(id);
  return { id, from: d.from, state: stats.state, ...(d.description !== undefined ? { description: d.description } : {}), stats };
}

function mountCore(ctx: ManagementContext, opts: ManagementOptions): void {
  const { engine, server, tracker } = ctx;
  server.addRoute('GET', '/live', (_req, res) => sendJson(res, 200, { status: 'live' }), { open: true });
  server.addRoute('GET', '/ready', (_req, res) => {
    const h = engine.health();
    sendJson(res, h.ready ? 200 : 503, { status: h.ready ? 'ready' : 'not-ready', engine: engine.state, routes: h.routes });
  });
  server.addRoute('GET', '/api/v1/status', (_req, res) => {
    const stats = engine.stats();
    const h = engine.health();
    const totals = { received: 0, completed: 0, failed: 0, deadLettered: 0, redelivered: 0, inflight: 0 };
    for (const s of Object.values(stats.routes)) for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += s[k];
    sendJson(res, 200, {
      name: engine.name,
      state: stats.state,
      ready: h.ready,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000),
      routes: Object.keys(stats.routes).length,
      totals,
    });
  });
  server.addRoute('GET', '/api/v1/routes', (_req, res) => {
    sendJson(res, 200, { routes: engine.routeIds().map((id) => routeSummary(engine, id)) });
  });
  server.addRoute('GET', '/api/v1/routes/:id', (_req, res, p) => {
    const d = engine.describeRoute(p.id!);
    sendJson(res, 200, { ...d, stats: engine.routeStats(p.id!), stepCounts: tracker.stepCounts(p.id!) });
  });
  const op = (name: string, run: (id: string, body: Record<string, unknown>) => Promise<unknown>): void => {
    server.addRoute('POST', `/api/v1/routes/:id/${name}`, async (req: IncomingMessage, res: ServerResponse, p) => {
      const body = await readJson(req);
      engine.describeRoute(p.id!); // 404 before anything happens
      const result = await run(p.id!, body);
      sendJson(res, 200, { ...routeSummary(engine, p.id!), ...(result && typeof result === 'object' ? { result } : {}) });
    });
  };
  op('stop', (id, body) => {
    const t = body.timeoutMs;
    if (t !== undefined && (typeof t !== 'number' || t < 0)) throw new BusbarError('MANAGEMENT_REQUEST', 'timeoutMs must be a number >= 0', { details: { timeoutMs: t } });
    return engine.stopRoute(id, typeof t === 'number' ? { timeoutMs: t } : {});
  });
  op('start', (id) => engine.startRoute(id));
  op('suspend', (id) => engine.suspendRoute(id));
  op('resume', (id) => engine.resumeRoute(id));
  op('reset-stats', async (id) => {
    engine.resetRouteStats(id);
    tracker.resetSteps(id);
  });
  server.addRoute('GET', '/api/v1/inflight', (req, res) => {
    const route = new URL(req.url ?? '/', 'http://x').searchParams.get('route') ?? undefined;
    if (route !== undefined) engine.describeRoute(route);
    sendJson(res, 200, { inflight: tracker.list(route) });
  });
  const replays = new Map<string, { done: number; total: number }>();
  server.addRoute('GET', '/api/v1/dead-letters', async (req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    const route = q.get('route') ?? undefined;
    if (route !== undefined) engine.describeRoute(route);
    const limit = q.has('limit') ? Number(q.get('limit')) : 1000;
    if (!Number.isInteger(limit) || limit < 1) throw new BusbarError('MANAGEMENT_REQUEST', `limit must be a positive integer, not "${q.get('limit')}"`, { details: { limit: q.get('limit') } });
    sendJson(res, 200, await listDeadLetters(engine, route, limit));
  });
  server.addRoute('POST', '/api/v1/dead-letters/replay', async (req, res) => {
    const b = await readJson(req);
    if (typeof b.route !== 'string') throw new BusbarError('MANAGEMENT_REQUEST', 'replay needs "route": the id of the route whose dead letters to replay', { details: {} });
    if (b.ids !== undefined && (!Array.isArray(b.ids) || b.ids.some((x) => typeof x !== 'string'))) throw new BusbarError('MANAGEMENT_REQUEST', '"ids" must be a list of dead-letter ids', { details: {} });
    for (const k of ['to', 'endpoint'] as const) if (b[k] !== undefined && typeof b[k] !== 'string') throw new BusbarError('MANAGEMENT_REQUEST', `"${k}" must be an endpoint URI`, { details: {} });
    if (replays.has(b.route)) throw new BusbarError('ROUTE_STATE', `a replay of route "${b.route}" is running`, { details: { routeId: b.route, state: 'replaying' } });
    const route = b.route;
    replays.set(route, { done: 0, total: 0 });
    try {
      const r = await replayDeadLetters(engine, { route, ...(b.ids ? { ids: b.ids as string[] } : {}), ...(typeof b.to === 'string' ? { to: b.to } : {}), ...(typeof b.endpoint === 'string' ? { endpoint: b.endpoint } : {}) }, (done, total) => replays.set(route, { done, total }));
      sendJson(res, 200, r);
    } finally {
      replays.delete(route);
    }
  });
  server.addRoute('GET', '/api/v1/dead-letters/replay', (req, res) => {
    const route = new URL(req.url ?? '/', 'http://x').searchParams.get('route') ?? '';
    const p = replays.get(route);
    sendJson(res, 200, p ? { route, replay: p } : { route });
  });
  server.addRoute('POST', '/api/v1/reload', async (req, res) => {
    await readJson(req);
    if (!opts.reload) throw new BusbarError('MANAGEMENT_REQUEST', 'nothing to reload: this management API was started without a routes file (busbar run <file>, or the `reload` option of engine.management)', { details: {} });
    sendJson(res, 200, await opts.reload());
  });
  server.addRoute('GET', '/api/v1/events', (req, res) => events(ctx, req, res, opts.eventsIntervalMs ?? 1000));
}

/** Server-sent events: lifecycle and failure events as they happen, `stats` every interval. */
function events(ctx: ManagementContext, req: IncomingMessage, res: ServerResponse, intervalMs: number): void {
  const { engine, server, tracker } = ctx;
  const stats = (s: EventStream): void => {
    const st = engine.stats();
    s.event('stats', { at: new Date().toISOString(), ...st, steps: Object.fromEntries(Object.keys(st.routes).map((id) => [id, tracker.stepCounts(id)])) });
  };
  let stream: EventStream | undefined;
  // completed messages are summed in `stats`; one event per message would flood the stream
  const sub = engine.events$.subscribe((ev: EngineEvent) => {
    if (ev.type !== 'message.completed') stream?.event(ev.type, ev);
  });
  stream = openEventStream(server, req, res, { intervalMs, tick: stats, onEnd: () => sub.unsubscribe() });
}
