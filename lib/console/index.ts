import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Engine } from '../engine.js';
import { routeGraph, type RouteGraph } from '../graph/graph.js';
import { sendJson } from '../management/server.js';
import { openEventStream } from '../management/sse.js';
import type { ManagementServer } from '../management/types.js';
import type { RouteState } from '../route.js';
import { StepCounters, type OpenExchange, type RecentFailure } from './step-counters.js';

export type { OpenExchange, RecentFailure, StepFigures } from './step-counters.js';

/** The live figures of one graph node (what applies to its kind). */
export interface NodeCounters {
  /** Routes: received; steps: exchanges that reached it; sources: received by the routes reading it; outputs: sent to it. */
  messages: number;
  failures: number;
  inflight: number;
  completed?: number;
  deadLettered?: number;
  /** Routes: their state. */
  state?: RouteState;
  /** Endpoints: connection status (`connected`, `reconnecting`, `down`...), and the last error while not up. */
  status?: string;
  error?: string;
}

/** One snapshot of the running hub, as `GET /api/v1/graph` and each `/api/v1/graph/events` event carry it. */
export interface ConsoleSnapshot {
  at: string;
  engine: string;
  counters: Record<string, NodeCounters>;
  inflight: OpenExchange[];
  failures: RecentFailure[];
}

export interface ConsoleOptions {
  /** How often `/api/v1/graph/events` pushes a snapshot while someone watches (default 500 ms). */
  intervalMs?: number;
}

/** busbar's package root, from here whether this runs from lib/ (tsx) or dist/lib/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (p.name === 'busbar') return dir;
    } catch {
      // not here
    }
    dir = dirname(dir);
  }
  return dirname(dirname(dirname(fileURLToPath(import.meta.url))));
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.svg': 'image/svg+xml' };

/** The page's files: `console/` (html, css) and the compiled modules in `dist/console/`; only these names are served. */
function consoleAssets(): Map<string, { type: string; body: Buffer }> {
  const root = packageRoot();
  const files = new Map<string, { type: string; body: Buffer }>();
  const add = (dir: string, prefix: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const ext = n.slice(n.lastIndexOf('.'));
      if (TYPES[ext] && !n.endsWith('.d.ts')) files.set(`${prefix}${n}`, { type: TYPES[ext]!, body: readFileSync(join(dir, n)) });
    }
  };
  add(join(root, 'console'), '');
  add(join(root, 'dist', 'console'), 'app/');
  return files;
}

/** Figures of every node of `graph`, from the engine's stats and health and the per-step counters. */
export function graphCounters(graph: RouteGraph, engine: Engine, steps: StepCounters): Record<string, NodeCounters> {
  const stats = engine.stats();
  const health = new Map(engine.health().routes.map((r) => [r.id, r]));
  const out: Record<string, NodeCounters> = {};
  const nodeById = new Map(graph.nodes.map((n) => [n.id, n]));
  const endpoint = (id: string): NodeCounters => (out[id] ??= { messages: 0, failures: 0, inflight: 0 });
  const figures = new Map<string, ReturnType<StepCounters['of']>>();
  for (const n of graph.nodes) {
    if (n.kind === 'route') {
      const s = stats.routes[n.routeId!];
      if (!s) continue;
      out[n.id] = { messages: s.received, completed: s.completed, failures: s.failed, deadLettered: s.deadLettered, inflight: s.inflight, state: s.state };
    } else if (n.kind === 'step') {
      let f = figures.get(n.routeId!);
      if (!f) figures.set(n.routeId!, (f = steps.of(n.routeId!)));
      const x = f.get(n.path!);
      out[n.id] = { messages: x?.messages ?? 0, failures: x?.failures ?? 0, inflight: x?.inflight ?? 0 };
    }
  }
  for (const n of graph.nodes) {
    if (n.kind !== 'endpoint') continue;
    const c = endpoint(n.id);
    for (const rid of n.routes ?? []) {
      const s = stats.routes[rid];
      const h = health.get(rid);
      if (!s || !h) continue;
      if (s.source.uri && n.roles?.includes('source') && n.id === `endpoint:${s.source.uri.split('?')[0]}`) {
        c.messages += s.received;
        c.inflight += s.inflight;
        c.status = s.source.status;
        if (s.source.error !== undefined) c.error = s.source.error;
      }
      for (const e of h.endpoints) {
        if (e.role === 'output' && `endpoint:${e.uri.split('?')[0]}` === n.id) {
          c.status = e.status;
          if (e.error !== undefined) c.error = e.error;
        }
      }
    }
  }
  // what reached an output endpoint: the count of the steps that send to it, the dead letters of the routes that use it
  for (const l of graph.links) {
    const to = out[l.to];
    if (!to) continue;
    // an endpoint routes read from counts what they received; one only written to, what was sent
    const isSource = nodeById.get(l.to)?.roles?.includes('source') === true;
    if ((l.kind === 'send' || l.kind === 'request' || l.kind === 'tap') && !isSource) to.messages += out[l.from]?.messages ?? 0;
    if (l.kind === 'deadLetter' && l.from.startsWith('route:')) {
      to.deadLettered = (to.deadLettered ?? 0) + (out[l.from]?.deadLettered ?? 0);
    }
  }
  return out;
}


/**
 * The web console on the engine's management server (`engine.management()`, `busbar run
 * --management`): the page at `/console/`, the graph with live counters at
 * `/api/v1/graph` (`?format=svg` for the drawing), and `/api/v1/graph/events`, a stream of
 * snapshots. The page's files carry no data and need no token; everything it shows comes
 * from API calls that do (when the server has one).
 */
export function useConsole(engine: Engine, opts: ConsoleOptions = {}): Engine {
  return engine.onManagement((m) => mountConsole(engine, m, opts));
}

export function mountConsole(engine: Engine, m: ManagementServer, opts: ConsoleOptions = {}): void {
  const assets = consoleAssets();
  const steps = new StepCounters((routeId) => engine.stepHits(routeId));
  const unobserve = engine.observe(steps);
  (m as { onClose?: (fn: () => void) => unknown }).onClose?.(unobserve);
  let graph: { version: number; keys: unknown[]; graph: RouteGraph } | undefined;
  let svg: { version: number; text: Promise<string> } | undefined;
  // routes can be reloaded while the server runs: the graph follows the engine's models
  const current = (): { version: number; graph: RouteGraph } => {
    const models = engine.routeModels();
    // a reloaded route has a new model (new steps list); an unchanged one keeps its own
    const keys = models.flatMap((d) => [d.id, d.from, d.steps, d.errorPolicy]);
    if (!graph || keys.length !== graph.keys.length || keys.some((k, i) => k !== graph!.keys[i])) graph = { version: (graph?.version ?? 0) + 1, keys, graph: routeGraph(models) };
    return graph;
  };
  const snapshot = (g: RouteGraph): ConsoleSnapshot => ({ at: new Date().toISOString(), engine: engine.state, counters: graphCounters(g, engine, steps), inflight: steps.inflight(), failures: steps.failures() });

  const serve = (res: ServerResponse, name: string): void => {
    const file = assets.get(name);
    if (!file) {
      sendJson(res, 404, { error: { code: 'BUSBAR_ERR_NOT_FOUND', message: `no console file "${name}"` } });
      return;
    }
    res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', 'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:" });
    res.end(file.body);
  };
  m.addRoute('GET', '/console', (req, res) => {
    // `/console/` and `/console` are one path to the router: only the slash-less one is sent on
    if ((req.url ?? '').split('?')[0]!.endsWith('/')) return serve(res, 'index.html');
    res.writeHead(302, { location: '/console/' });
    res.end();
  }, { open: true });
  m.addRoute('GET', '/console/*', (_req, res, p) => serve(res, p['*'] || 'index.html'), { open: true });

  m.addRoute('GET', '/api/v1/graph', async (req: IncomingMessage, res) => {
    const format = new URL(req.url ?? '/', 'http://x').searchParams.get('format') ?? 'json';
    const g = current();
    if (format === 'svg') {
      if (svg?.version !== g.version) {
        const { toSvg } = await import('../graph/svg.js');
        svg = { version: g.version, text: toSvg(g.graph, { counters: true }) };
        svg.text.catch(() => (svg = undefined));
      }
      const text = await svg.text;
      res.writeHead(200, { 'content-type': 'image/svg+xml; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
      return;
    }
    if (format === 'mermaid') {
      const { toMermaid } = await import('../graph/mermaid.js');
      const text = toMermaid(g.graph);
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (format !== 'json') {
      sendJson(res, 400, { error: { code: 'BUSBAR_ERR_MANAGEMENT_REQUEST', message: `format must be json, svg or mermaid, not "${format}"`, details: { format } } });
      return;
    }
    sendJson(res, 200, { ...g.graph, ...snapshot(g.graph) });
  });

  m.addRoute('GET', '/api/v1/graph/events', (req, res) => {
    let last = '';
    openEventStream(m, req, res, {
      intervalMs: opts.intervalMs ?? 500,
      tick: (stream) => {
        const s = snapshot(current().graph);
        // the same figures again are not news: an idle hub sends a comment line to keep the stream open
        const key = JSON.stringify([s.counters, s.inflight, s.failures.length && s.failures[0]]);
        if (key === last) return stream.comment('idle');
        last = key;
        stream.event('snapshot', s);
      },
    });
  });

}
