import type { GraphLink, GraphNode, RouteGraph } from './graph.js';

/** Mermaid node ids are plain words: the stable id with everything else turned into `_`, kept unique. */
function mermaidIds(nodes: readonly GraphNode[]): Map<string, string> {
  const ids = new Map<string, string>();
  const used = new Set<string>();
  for (const n of nodes) {
    const base = `n_${n.id.replace(/[^A-Za-z0-9]+/g, '_').replace(/_+$/, '')}`;
    let id = base;
    for (let i = 2; used.has(id); i++) id = `${base}_${i}`;
    used.add(id);
    ids.set(n.id, id);
  }
  return ids;
}

/** Text inside a quoted Mermaid label: quotes and angle brackets as Mermaid's entity codes. */
function text(s: string): string {
  return s.replace(/#/g, '#35;').replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;').replace(/[\r\n]+/g, ' ');
}

function nodeLabel(n: GraphNode): string {
  return text(n.detail ? `${n.label}: ${n.detail}` : n.label);
}

function shape(n: GraphNode, id: string): string {
  const l = nodeLabel(n);
  if (n.kind === 'endpoint') return n.roles?.includes('deadLetter') && n.roles.length === 1 ? `${id}[("${l}")]` : `${id}(["${l}"])`;
  if (n.pattern === 'choice' || n.pattern === 'filter') return `${id}{"${l}"}`;
  if (n.category === 'routing' || n.category === 'aggregation') return `${id}[["${l}"]]`;
  return `${id}["${l}"]`;
}

const ARROW: Record<GraphLink['kind'], string> = {
  flow: '-->', branch: '-->', send: '-->', request: '<-->', tap: '-.->', channel: '==>', deadLetter: '-.->',
};

/**
 * The graph as a Mermaid flowchart: a subgraph per route holding its steps, endpoints
 * between them, dotted arrows for wire taps and dead letters, thick ones for topic
 * subscriptions. Paste it into a Markdown file on GitHub or GitLab to see it drawn.
 */
export function toMermaid(graph: RouteGraph, direction: 'LR' | 'TD' = 'LR'): string {
  const ids = mermaidIds(graph.nodes);
  const out = [`flowchart ${direction}`];
  const byRoute = new Map<string, GraphNode[]>();
  for (const n of graph.nodes) {
    if (n.kind === 'step' && n.parent) {
      const list = byRoute.get(n.parent) ?? [];
      list.push(n);
      byRoute.set(n.parent, list);
    }
  }
  for (const n of graph.nodes) {
    if (n.kind === 'endpoint') out.push(`  ${shape(n, ids.get(n.id)!)}`);
    if (n.kind !== 'route') continue;
    out.push(`  subgraph ${ids.get(n.id)!}["route ${text(n.label)}"]`);
    for (const s of byRoute.get(n.id) ?? []) out.push(`    ${shape(s, ids.get(s.id)!)}`);
    out.push('  end');
  }
  for (const l of graph.links) {
    const label = l.label ? `|"${text(l.label)}"|` : '';
    out.push(`  ${ids.get(l.from)!} ${ARROW[l.kind]}${label} ${ids.get(l.to)!}`);
  }
  out.push('  classDef endpoint fill:#e8f1fb,stroke:#3b6ea8', '  classDef deadLetter fill:#fdecea,stroke:#b3261e');
  const eps = graph.nodes.filter((n) => n.kind === 'endpoint');
  const dl = eps.filter((n) => n.roles?.includes('deadLetter'));
  const plain = eps.filter((n) => !n.roles?.includes('deadLetter'));
  if (plain.length) out.push(`  class ${plain.map((n) => ids.get(n.id)!).join(',')} endpoint`);
  if (dl.length) out.push(`  class ${dl.map((n) => ids.get(n.id)!).join(',')} deadLetter`);
  return `${out.join('\n')}\n`;
}
