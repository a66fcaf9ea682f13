/**
 * The busbar console: every route drawn as its graph with live counters, route operations,
 * endpoint status, exchanges in flight, the last failures, dead letters with replay.
 * Plain modules, no framework: the server lays the graph out (SVG), the page fills it in.
 */
import { getJson, getText, post, setToken, subscribe, takeTokenFromLocation, token, Unauthorized } from './api.js';
import { age, byId, el, rows } from './dom.js';
import type { DeadLetter, GraphAnswer, GraphNode, NodeCounters, Snapshot } from './types.js';

let graph: GraphAnswer | undefined;
let streams: AbortController | undefined;
let deadLetterMark = '';

function status(text: string, bad = false): void {
  const s = byId('status');
  s.textContent = text;
  s.classList.toggle('bad', bad);
}

function counterText(n: GraphNode, c: NodeCounters): string {
  if (n.kind === 'route') return `${c.state ?? ''} · ${c.messages} in · ${c.failures} failed · ${c.inflight} now`;
  if (n.kind === 'endpoint') {
    const what = n.roles?.includes('source') ? 'in' : n.roles?.includes('deadLetter') && !n.roles.includes('output') ? 'dead' : 'out';
    const count = what === 'dead' ? (c.deadLettered ?? 0) : c.messages;
    return `${c.status ? `${c.status} · ` : ''}${count} ${what}`;
  }
  return `${c.messages} msgs${c.failures ? ` · ${c.failures} failed` : ''}${c.inflight ? ` · ${c.inflight} now` : ''}`;
}

/** Write the figures into the drawing: each node's `text.counter`, a class for failing nodes and route states. */
function paint(s: Snapshot): void {
  if (!graph) return;
  const svg = byId('graph').querySelector('svg');
  if (!svg) return;
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  for (const t of svg.querySelectorAll<SVGTextElement>('text.counter')) {
    const id = t.getAttribute('data-counter-for')!;
    const n = nodes.get(id);
    const c = s.counters[id];
    if (!n || !c) continue;
    t.textContent = counterText(n, c);
    t.classList.toggle('failing', c.failures > 0 || (c.status !== undefined && !['connected', 'idle', 'listening'].includes(c.status)));
    if (n.kind === 'route') {
      const g = t.closest('g');
      for (const st of ['started', 'stopped', 'suspended', 'starting', 'stopping']) g?.classList.toggle(st, c.state === st);
    }
  }
}

async function operate(routeId: string, op: string): Promise<void> {
  try {
    await post(`/api/v1/routes/${encodeURIComponent(routeId)}/${op}`);
    status(`${op}: route ${routeId} done`);
  } catch (e) {
    status(`${op} ${routeId}: ${(e as Error).message}`, true);
  }
}

function renderRoutes(s: Snapshot): void {
  if (!graph) return;
  const list = graph.nodes.filter((n) => n.kind === 'route').map((n) => {
    const c = s.counters[n.id] ?? { messages: 0, failures: 0, inflight: 0 };
    const buttons = el('td', { class: 'ops' });
    for (const op of ['stop', 'start', 'suspend', 'resume']) {
      const b = el('button', { 'data-op': op, type: 'button' }, op);
      const allowed = op === 'stop' ? c.state === 'started' || c.state === 'suspended' : op === 'start' ? c.state === 'stopped' : op === 'suspend' ? c.state === 'started' : c.state === 'suspended';
      b.disabled = !allowed;
      b.addEventListener('click', () => void operate(n.routeId!, op));
      buttons.append(b);
    }
    return el('tr', { 'data-route-id': n.routeId! }, el('td', {}, n.label), el('td', { class: `state ${c.state ?? ''}` }, c.state ?? ''), el('td', { class: 'num received' }, String(c.messages)), el('td', { class: 'num completed' }, String(c.completed ?? 0)), el('td', { class: 'num failed' }, String(c.failures)), el('td', { class: 'num inflight' }, String(c.inflight)), buttons);
  });
  rows(byId('routes'), list, 'no routes', 7);
}

function renderEndpoints(s: Snapshot): void {
  if (!graph) return;
  const list = graph.nodes.filter((n) => n.kind === 'endpoint').map((n) => {
    const c = s.counters[n.id];
    return el('tr', { 'data-endpoint': n.uri ?? n.label }, el('td', { class: 'uri' }, n.uri ?? n.label), el('td', {}, (n.roles ?? []).join(', ')), el('td', { class: `status ${c?.status ?? ''}` }, c?.status ?? '—'), el('td', { class: 'reason' }, c?.error ?? ''));
  });
  rows(byId('endpoints'), list, 'no endpoints', 4);
}

function renderInflight(s: Snapshot): void {
  rows(byId('inflight'), s.inflight.map((x) => el('tr', {}, el('td', {}, x.routeId), el('td', { class: 'id' }, x.messageId), el('td', {}, x.step ? `${x.step} (${x.kind ?? ''})` : 'entering'), el('td', { class: 'num' }, age(x.ageMs)))), 'nothing in flight', 4);
}

function renderFailures(s: Snapshot): void {
  rows(byId('failures'), s.failures.slice(0, 12).map((f) => el('tr', {}, el('td', {}, new Date(f.at).toLocaleTimeString()), el('td', {}, f.routeId), el('td', {}, f.step ?? ''), el('td', { class: 'code' }, f.code.replace(/^BUSBAR_ERR_/, '')), el('td', { class: 'reason' }, f.reason), el('td', {}, f.outcome === 'dead_lettered' ? 'dead-lettered' : 'failed'))), 'no failures', 6);
}

async function loadDeadLetters(): Promise<void> {
  const tbody = byId('dead-letters');
  let answer: { deadLetters: DeadLetter[]; unreadable?: Array<{ routeId: string; endpoint: string }> };
  try {
    answer = await getJson('/api/v1/dead-letters');
  } catch (e) {
    rows(tbody, [], `dead letters unavailable: ${(e as Error).message}`, 6);
    return;
  }
  const list = answer.deadLetters.map((d) => {
    const b = el('button', { type: 'button', 'data-replay': d.id }, 'replay');
    b.addEventListener('click', () => void replay(d.routeId, [d.id]));
    return el('tr', { 'data-dead-letter': d.id, 'data-route-id': d.routeId }, el('td', {}, d.routeId), el('td', { class: 'uri' }, d.endpoint), el('td', { class: 'code' }, (d.code ?? '').replace(/^BUSBAR_ERR_/, '')), el('td', { class: 'reason' }, d.message ?? ''), el('td', {}, d.failedAt ? new Date(d.failedAt).toLocaleTimeString() : ''), el('td', {}, b));
  });
  rows(tbody, list, 'no dead letters', 6);
  const unreadable = answer.unreadable ?? [];
  byId('dead-letters-note').textContent = unreadable.length ? `not listed (the console cannot read these endpoints): ${unreadable.map((u) => u.endpoint).join(', ')}` : '';
}

async function replay(route: string, ids: string[]): Promise<void> {
  try {
    const r = await post<{ replayed: number; deadLetteredAgain: number; failed: number }>('/api/v1/dead-letters/replay', { route, ids });
    status(`replay ${route}: ${r.replayed} replayed, ${r.deadLetteredAgain} dead-lettered again, ${r.failed} failed`);
  } catch (e) {
    status(`replay ${route}: ${(e as Error).message}`, true);
  }
  await loadDeadLetters();
}

function onSnapshot(s: Snapshot): void {
  paint(s);
  renderRoutes(s);
  renderEndpoints(s);
  renderInflight(s);
  renderFailures(s);
  byId('engine-state').textContent = s.engine;
  // dead letters are read again when their count changes, not on a timer
  const mark = Object.values(s.counters).map((c) => c.deadLettered ?? 0).join(',');
  if (mark !== deadLetterMark) {
    deadLetterMark = mark;
    void loadDeadLetters();
  }
}

function askForToken(why: string): void {
  streams?.abort();
  const form = byId<HTMLFormElement>('login');
  form.hidden = false;
  status(why, true);
}

async function start(): Promise<void> {
  byId<HTMLFormElement>('login').hidden = true;
  status('loading');
  try {
    graph = await getJson<GraphAnswer>('/api/v1/graph');
    const svgText = await getText('/api/v1/graph?format=svg');
    const doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
    byId('graph').replaceChildren(document.importNode(doc.documentElement, true));
  } catch (e) {
    if (e instanceof Unauthorized) return askForToken(token() ? 'wrong token' : 'this hub needs its management token');
    status(`cannot load the graph: ${(e as Error).message}`, true);
    return;
  }
  onSnapshot(graph);
  streams?.abort();
  streams = new AbortController();
  subscribe('/api/v1/graph/events', (type, data) => {
    if (type === 'snapshot') onSnapshot(data as Snapshot);
  }, streams.signal, (ok, why) => {
    if (why instanceof Unauthorized) askForToken('the token was refused');
    else status(ok ? 'live' : 'reconnecting…', !ok);
  });
  // lifecycle events of the management API: a route stopping or a message dead-lettered shows at once
  subscribe('/api/v1/events', (type, data) => {
    if (type === 'message.failed' && (data as { deadLettered?: boolean }).deadLettered) void loadDeadLetters();
  }, streams.signal);
}

function init(): void {
  takeTokenFromLocation();
  byId<HTMLFormElement>('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    setToken(byId<HTMLInputElement>('token').value.trim() || null);
    void start();
  });
  byId('logout').addEventListener('click', () => {
    setToken(null);
    location.reload();
  });
  void start();
}

init();
