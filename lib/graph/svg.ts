import type { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api.js';
import { BusbarError } from '../errors.js';
import type { GraphLink, GraphNode, RouteGraph } from './graph.js';

/** A node with its place, in SVG user units (the laid-out graph the console can draw itself). */
export interface PlacedNode {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedLink {
  id: string;
  /** The polyline of the link, start to end. */
  points: Array<{ x: number; y: number }>;
  label?: { x: number; y: number; width: number; height: number };
}

export interface GraphLayout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  links: PlacedLink[];
}

export interface SvgOptions {
  /** Leave a line in every node for live counters (the console fills `<text class="counter">`). */
  counters?: boolean;
}

// a monospace font makes text width computable without a browser: 0.6em per character
const FONT = 12;
const CHAR = FONT * 0.61;
const LINE = 15;
const ROUTE_HEADER = 2 * LINE + 8;
const MAX_CHARS = 42;

const clip = (s: string): string => (s.length > MAX_CHARS ? `${s.slice(0, MAX_CHARS - 1)}…` : s);

function lines(n: GraphNode): string[] {
  if (n.kind === 'endpoint') return [clip(n.label)];
  const out = [n.label];
  if (n.detail) out.push(clip(n.detail));
  return out;
}

function size(n: GraphNode, counters: boolean): { width: number; height: number } {
  const l = lines(n);
  const chars = Math.max(...l.map((s) => s.length), counters ? 18 : 0);
  return { width: Math.max(80, Math.ceil(chars * CHAR) + 20), height: (l.length + (counters ? 1 : 0)) * LINE + 12 };
}

type Elk = { layout(graph: ElkNode): Promise<ElkNode> };
let elkInstance: Promise<Elk> | undefined;

/** elkjs is loaded on the first layout: nothing else in busbar needs it. */
function elk(): Promise<Elk> {
  elkInstance ??= import('elkjs/lib/elk.bundled.js').then(
    (m) => {
      const ELK = (m as unknown as { default: new () => Elk }).default;
      return new ELK();
    },
    (e: unknown) => {
      elkInstance = undefined;
      throw new BusbarError('GRAPH_LAYOUT', `the graph layout needs the elkjs package: ${(e as Error).message}`, { cause: e });
    },
  );
  return elkInstance;
}

/**
 * Lay the graph out with ELK's layered algorithm, left to right: every route a box holding
 * its steps, endpoints outside, links routed around nodes. Coordinates are absolute.
 */
export async function layoutGraph(graph: RouteGraph, opts: SvgOptions = {}): Promise<GraphLayout> {
  const counters = opts.counters === true;
  const routes = new Map<string, ElkNode>();
  const children: ElkNode[] = [];
  for (const n of graph.nodes) {
    if (n.kind === 'route') {
      const title = Math.ceil(Math.max(`route ${n.label}`.length, counters ? 30 : 0) * CHAR) + 24;
      const box: ElkNode = {
        id: n.id,
        children: [],
        layoutOptions: {
          'elk.padding': `[top=${ROUTE_HEADER},left=12,bottom=12,right=12]`,
          'elk.nodeSize.constraints': 'MINIMUM_SIZE',
          'elk.nodeSize.minimum': `(${title}, ${ROUTE_HEADER + 20})`,
        },
      };
      routes.set(n.id, box);
      children.push(box);
    }
  }
  for (const n of graph.nodes) {
    if (n.kind === 'route') continue;
    const node: ElkNode = { id: n.id, ...size(n, counters) };
    const parent = n.parent ? routes.get(n.parent) : undefined;
    (parent ? parent.children! : children).push(node);
  }
  const edges: ElkExtendedEdge[] = graph.links.map((l) => {
    const e: ElkExtendedEdge = { id: l.id, sources: [l.from], targets: [l.to] };
    if (l.label) e.labels = [{ text: l.label, width: Math.ceil(Math.min(l.label.length, 28) * CHAR * 0.9) + 6, height: LINE }];
    return e;
  });
  const root: ElkNode = {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.edgeRouting': 'ORTHOGONAL',
      'elk.layered.spacing.nodeNodeBetweenLayers': '36',
      'elk.spacing.nodeNode': '22',
      'elk.spacing.edgeLabel': '4',
      'elk.edgeLabels.placement': 'CENTER',
      'elk.padding': '[top=16,left=16,bottom=16,right=16]',
      'elk.json.edgeCoords': 'ROOT',
      'elk.json.shapeCoords': 'ROOT',
    },
    children,
    edges,
  };
  const engine = await elk();
  let out: ElkNode;
  try {
    out = await engine.layout(root);
  } catch (e) {
    throw new BusbarError('GRAPH_LAYOUT', `laying out the route graph failed: ${(e as Error).message}`, { cause: e });
  }
  const nodes: PlacedNode[] = [];
  const visit = (n: ElkNode): void => {
    for (const c of n.children ?? []) {
      nodes.push({ id: c.id, x: c.x ?? 0, y: c.y ?? 0, width: c.width ?? 0, height: c.height ?? 0 });
      visit(c);
    }
  };
  visit(out);
  const links: PlacedLink[] = (out.edges ?? []).map((e) => {
    const points = (e.sections ?? []).flatMap((s) => [s.startPoint, ...(s.bendPoints ?? []), s.endPoint]);
    const p: PlacedLink = { id: e.id, points };
    const l = e.labels?.[0];
    if (l) p.label = { x: l.x ?? 0, y: l.y ?? 0, width: l.width ?? 0, height: l.height ?? 0 };
    return p;
  });
  return { width: Math.ceil(out.width ?? 0), height: Math.ceil(out.height ?? 0), nodes, links };
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const STYLE = `
.busbar-graph { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: ${FONT}px; }
.busbar-graph .route > rect { fill: #f7f7f9; stroke: #8a8fa3; stroke-width: 1; }
.busbar-graph .route > .title { font-weight: bold; fill: #30344a; }
.busbar-graph .node > rect { stroke-width: 1.2; }
.busbar-graph .endpoint > rect { fill: #e8f1fb; stroke: #3b6ea8; }
.busbar-graph .endpoint.dead-letter > rect { fill: #fdecea; stroke: #b3261e; }
.busbar-graph .step > rect { fill: #ffffff; stroke: #6b7080; }
.busbar-graph .step.cat-routing > rect { fill: #fff4de; stroke: #b7791f; }
.busbar-graph .step.cat-transformation > rect { fill: #eaf7ee; stroke: #2f855a; }
.busbar-graph .step.cat-aggregation > rect { fill: #f1ecfb; stroke: #6b46c1; }
.busbar-graph .step.cat-resilience > rect { fill: #fbeaf3; stroke: #b83280; }
.busbar-graph .node .label { font-weight: bold; fill: #1f2330; }
.busbar-graph .detail { fill: #555b6e; }
.busbar-graph .counter { fill: #1a5e20; }
.busbar-graph .counter.failing { fill: #b3261e; }
.busbar-graph .link path { fill: none; stroke: #6b7080; stroke-width: 1.2; marker-end: url(#busbar-arrow); }
.busbar-graph .link-tap path, .busbar-graph .link-deadLetter path { stroke-dasharray: 5 3; }
.busbar-graph .link-deadLetter path { stroke: #b3261e; }
.busbar-graph .link-channel path { stroke: #3b6ea8; stroke-width: 2.2; }
.busbar-graph .link text { fill: #555b6e; font-size: ${FONT - 2}px; }
.busbar-graph .route.stopped > rect, .busbar-graph .route.suspended > rect { fill: #eeeeee; stroke-dasharray: 4 3; }
`;

/**
 * The graph as a standalone SVG document, laid out here (no browser): nodes carry
 * `data-node-id` and links `data-link-id` with the graph's stable ids, so a page can
 * find a node and write its live counters into its `text.counter`.
 */
export async function toSvg(graph: RouteGraph, opts: SvgOptions = {}): Promise<string> {
  const layout = await layoutGraph(graph, opts);
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const linkById = new Map<string, GraphLink>(graph.links.map((l) => [l.id, l]));
  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" class="busbar-graph" width="${layout.width}" height="${layout.height}" viewBox="0 0 ${layout.width} ${layout.height}">`,
    `<style>${STYLE}</style>`,
    '<defs><marker id="busbar-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7080"/></marker></defs>',
  ];
  const counters = opts.counters === true;
  // routes first (the boxes), then links, then the nodes on top
  const placed = layout.nodes.map((p) => ({ p, n: byId.get(p.id)! }));
  for (const { p, n } of placed) {
    if (n.kind !== 'route') continue;
    const id = escapeXml(n.id);
    out.push(`<g class="route" data-node-id="${id}" data-route-id="${escapeXml(n.routeId ?? n.label)}">`);
    out.push(`<title>${escapeXml(n.description ? `route ${n.label}: ${n.description}` : `route ${n.label}`)}</title>`);
    out.push(`<rect x="${p.x}" y="${p.y}" width="${p.width}" height="${p.height}" rx="6"/>`);
    out.push(`<text class="title" x="${p.x + 10}" y="${p.y + LINE + 2}">route ${escapeXml(n.label)}</text>`);
    if (counters) out.push(`<text class="counter" data-counter-for="${id}" x="${p.x + 10}" y="${p.y + 2 * LINE + 2}"></text>`);
    out.push('</g>');
  }
  for (const pl of layout.links) {
    const l = linkById.get(pl.id);
    if (!l || pl.points.length < 2) continue;
    const d = pl.points.map((pt, i) => `${i ? 'L' : 'M'}${round(pt.x)},${round(pt.y)}`).join(' ');
    out.push(`<g class="link link-${l.kind}" data-link-id="${escapeXml(l.id)}" data-from="${escapeXml(l.from)}" data-to="${escapeXml(l.to)}"><path d="${d}"/>`);
    if (l.label && pl.label) out.push(`<text x="${round(pl.label.x + 3)}" y="${round(pl.label.y + LINE - 4)}">${escapeXml(l.label.length > 28 ? `${l.label.slice(0, 27)}…` : l.label)}</text>`);
    out.push('</g>');
  }
  for (const { p, n } of placed) {
    if (n.kind === 'route') continue;
    const id = escapeXml(n.id);
    const cls = n.kind === 'endpoint' ? `node endpoint${n.roles?.includes('deadLetter') ? ' dead-letter' : ''}` : `node step cat-${n.category ?? 'other'} pattern-${n.pattern ?? 'step'}`;
    const tip = n.kind === 'endpoint' ? `${n.uri ?? n.label} (${(n.roles ?? []).join(', ')})` : `${n.pattern} ${n.path ?? ''}${n.detail ? `: ${n.detail}` : ''}${n.uri ? ` → ${n.uri}` : ''}`;
    out.push(`<g class="${cls}" data-node-id="${id}">`);
    out.push(`<title>${escapeXml(tip)}</title>`);
    out.push(`<rect x="${p.x}" y="${p.y}" width="${p.width}" height="${p.height}" rx="${n.kind === 'endpoint' ? Math.min(14, p.height / 2) : 3}"/>`);
    lines(n).forEach((t, i) => out.push(`<text class="${i ? 'detail' : 'label'}" x="${p.x + 10}" y="${p.y + 6 + (i + 1) * LINE - 3}">${escapeXml(t)}</text>`));
    if (counters) out.push(`<text class="counter" data-counter-for="${id}" x="${p.x + 10}" y="${p.y + 6 + (lines(n).length + 1) * LINE - 3}"></text>`);
    out.push('</g>');
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

const round = (v: number): number => Math.round(v * 10) / 10;
