import { topicMatches } from '../../adapters/topic/index.js';
import type { ErrorPolicy, RouteDefinition } from '../model.js';
import type { StepDefinition } from '../step.js';

/** What a node stands for: a route (the box its steps sit in), an endpoint, or a step. */
export type GraphNodeKind = 'route' | 'endpoint' | 'step';

/** Why an endpoint is in the graph (one endpoint can be all three). */
export type EndpointRole = 'source' | 'output' | 'deadLetter';

/**
 * How a link connects two nodes:
 * - `flow`: the message goes on to the next step (or from a source into its route);
 * - `branch`: into a branch of a choice, multicast, scatter-gather, or a scope (retry, timeout, circuit breaker);
 * - `send`: one-way to an endpoint; `request`: request-reply (enrich, scatter-gather recipients);
 * - `tap`: a copy (wire tap); `channel`: a topic subscription matching a published topic;
 * - `deadLetter`: the error policy (or a splitter's failed parts) sends failures there.
 */
export type GraphLinkKind = 'flow' | 'branch' | 'send' | 'request' | 'tap' | 'channel' | 'deadLetter';

/** Broad family of a step's pattern, for drawing (colour) and filtering. */
export type PatternCategory = 'endpoint' | 'routing' | 'transformation' | 'aggregation' | 'resilience' | 'other';

export interface GraphNode {
  /**
   * Stable id, derived from the model only: `route:<id>`, `endpoint:<scheme>:<path>` (options
   * left out: `file:inbox?move=.done` and `file:inbox` are one folder), `step:<routeId><path>`
   * with the step's path as the engine names it (`/steps/3/when/0/steps/0`).
   */
  id: string;
  kind: GraphNodeKind;
  label: string;
  /** A second line: the step's most telling argument (the log template, `xml → json`, `500 ms`). */
  detail?: string;
  /** Steps: the route they belong to (also the `parent` node id `route:<routeId>`); routes: their id. */
  routeId?: string;
  parent?: string;
  /** Steps: the pattern kind (the step kind's name: `choice`, `split`, `aggregate`, `wireTap`, ...). */
  pattern?: string;
  category?: PatternCategory;
  /** Steps: where the step is in its route, as in error details and history (`/steps/2`). */
  path?: string;
  /** Endpoints: the URI as first written; steps that send somewhere: the target. */
  uri?: string;
  scheme?: string;
  roles?: EndpointRole[];
  /** Endpoints: the routes that read, write or dead-letter to it. */
  routes?: string[];
  /** Routes: their description and in-flight bound. */
  description?: string;
  maxInflight?: number;
}

export interface GraphLink {
  /** Stable: `<kind>:<from>-><to>`, with `#2`, `#3` for repeats (two branches sending to one endpoint). */
  id: string;
  kind: GraphLinkKind;
  from: string;
  to: string;
  label?: string;
}

/** The picture of a set of routes: the same model for builder and config routes. */
export interface RouteGraph {
  nodes: GraphNode[];
  links: GraphLink[];
}

const CATEGORY: Record<string, PatternCategory> = {
  to: 'endpoint', wireTap: 'endpoint', enrich: 'endpoint', awaitReply: 'endpoint', outbox: 'endpoint', log: 'endpoint',
  choice: 'routing', filter: 'routing', multicast: 'routing', recipientList: 'routing', scatterGather: 'routing', routingSlip: 'routing',
  dynamicRouter: 'routing', loadBalance: 'routing', throttle: 'routing', delay: 'routing', idempotent: 'routing',
  transform: 'transformation', process: 'transformation', setHeader: 'transformation', setHeaders: 'transformation', removeHeaders: 'transformation',
  setBody: 'transformation', marshal: 'transformation', unmarshal: 'transformation', convert: 'transformation', validate: 'transformation',
  claimCheck: 'transformation', soapFaultOnError: 'transformation',
  split: 'aggregation', aggregate: 'aggregation', resequence: 'aggregation', mapReduce: 'aggregation',
  retry: 'resilience', timeout: 'resilience', circuitBreaker: 'resilience',
};

/** In-memory channels are one channel per name, whatever options each side gives. */
export function endpointId(uri: string): string {
  const q = uri.indexOf('?');
  return `endpoint:${q < 0 ? uri : uri.slice(0, q)}`;
}

export function stepId(routeId: string, path: string): string {
  return `step:${routeId}${path}`;
}

export function routeNodeId(routeId: string): string {
  return `route:${routeId}`;
}

interface Branch {
  label?: string;
  steps: readonly StepDefinition[];
  path: string;
  /** The branch's end goes on with the step after this one (choice); otherwise it returns to its step (multicast, scopes). */
  rejoins: boolean;
}

interface Target {
  uri: string;
  kind: GraphLinkKind;
  label?: string;
}

interface Shape {
  detail?: string;
  branches: Branch[];
  targets: Target[];
  /** The step hands the message on to the next step (false: a choice whose branches do it). */
  continues: boolean;
  /** Label of the link to the next step (a choice's no-match continuation). */
  nextLabel?: string;
}

type Args = Record<string, unknown>;

const short = (s: string, n = 36): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** A builder function or a config expression: show the expression, a function shows as nothing. */
function computed(c: unknown): string | undefined {
  const e = (c as { expr?: { source?: unknown } } | undefined)?.expr?.source;
  return typeof e === 'string' ? short(e) : undefined;
}

function isStepList(v: unknown): v is StepDefinition[] {
  return Array.isArray(v) && v.every((s) => s !== null && typeof s === 'object' && typeof (s as StepDefinition).kind === 'string' && 'args' in s);
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** What the graph needs of a step: its branches, the endpoints it reaches, a detail to show. */
function shapeOf(step: StepDefinition, path: string): Shape {
  const a = (step.args ?? {}) as Args;
  const s: Shape = { branches: [], targets: [], continues: true };
  const detail = (d: string | undefined): void => {
    if (d) s.detail = short(d);
  };
  switch (step.kind) {
    case 'to':
      s.targets.push({ uri: a.uri as string, kind: 'send' });
      break;
    case 'wireTap':
      s.targets.push({ uri: a.uri as string, kind: 'tap', label: 'copy' });
      break;
    case 'enrich':
      s.targets.push({ uri: a.uri as string, kind: 'request', label: 'request' });
      if (typeof a.into === 'string') detail(`into ${a.into}`);
      break;
    case 'outbox':
      s.targets.push({ uri: `db:${a.db as string}`, kind: 'send', label: typeof a.table === 'string' ? a.table : 'busbar_outbox' });
      break;
    case 'recipientList':
      for (const uri of strings(a.recipients)) s.targets.push({ uri, kind: 'send' });
      if (a.compute) detail(computed(a.compute) ?? 'computed recipients');
      if (a.parallel) s.detail = s.detail ? `${s.detail}, parallel` : 'parallel';
      break;
    case 'loadBalance':
      for (const uri of strings(a.targets)) s.targets.push({ uri, kind: 'send' });
      detail(typeof a.strategy === 'string' ? a.strategy : 'roundRobin');
      break;
    case 'scatterGather':
      for (const uri of strings(a.recipients)) s.targets.push({ uri, kind: 'request' });
      (Array.isArray(a.branches) ? (a.branches as unknown[]) : []).forEach((b, i) => {
        if (isStepList(b)) s.branches.push({ label: `branch ${i + 1}`, steps: b, path: `${path}/branches/${i}`, rejoins: false });
      });
      if (typeof a.timeoutMs === 'number') detail(`${a.timeoutMs} ms`);
      break;
    case 'multicast':
      (Array.isArray(a.branches) ? (a.branches as unknown[]) : []).forEach((b, i) => {
        if (isStepList(b)) s.branches.push({ label: `copy ${i + 1}`, steps: b, path: `${path}/branches/${i}`, rejoins: false });
      });
      if (a.parallel) detail('parallel');
      break;
    case 'choice': {
      const whens = (Array.isArray(a.whens) ? a.whens : []) as Array<{ predicate?: unknown; steps?: unknown }>;
      whens.forEach((w, i) => s.branches.push({ label: computed(w.predicate) ?? `when ${i + 1}`, steps: isStepList(w.steps) ? w.steps : [], path: `${path}/when/${i}/steps`, rejoins: true }));
      if (isStepList(a.otherwise)) s.branches.push({ label: 'otherwise', steps: a.otherwise, path: `${path}/otherwise`, rejoins: true });
      else if (a.onNoMatch === 'continue') s.nextLabel = 'no match';
      // the branches carry the message on; only a no-match continuation goes straight to the next step
      s.continues = s.nextLabel !== undefined;
      break;
    }
    case 'retry':
    case 'timeout':
    case 'circuitBreaker':
      if (isStepList(a.steps)) s.branches.push({ label: step.kind === 'retry' ? 'retried' : step.kind === 'timeout' ? 'bounded' : 'guarded', steps: a.steps, path: `${path}/steps`, rejoins: false });
      if (isStepList(a.fallback)) s.branches.push({ label: 'fallback', steps: a.fallback, path: `${path}/fallback`, rejoins: true });
      if (step.kind === 'retry' && typeof a.maxAttempts === 'number') detail(`${a.maxAttempts} attempts`);
      if (step.kind === 'timeout' && typeof a.ms === 'number') detail(`${a.ms} ms`);
      if (step.kind === 'circuitBreaker' && typeof a.name === 'string') detail(a.name);
      break;
    case 'split':
      if (typeof a.partDeadLetter === 'string') s.targets.push({ uri: a.partDeadLetter, kind: 'deadLetter', label: 'failed part' });
      detail(typeof a.tokenize === 'string' ? `on ${JSON.stringify(a.tokenize)}` : typeof a.stream === 'string' ? `stream ${a.stream}${typeof a.path === 'string' ? ` ${a.path}` : ''}` : computed(a.items));
      break;
    case 'idempotent':
      if (typeof a.duplicateUri === 'string') s.targets.push({ uri: a.duplicateUri, kind: 'send', label: 'duplicate' });
      break;
    case 'log':
      detail(typeof a.message === 'string' ? a.message : undefined);
      break;
    case 'transform':
    case 'filter':
      detail(computed(a));
      break;
    case 'setHeader':
      detail(typeof a.name === 'string' ? a.name : undefined);
      break;
    case 'setHeaders':
      detail(a.headers && typeof a.headers === 'object' ? Object.keys(a.headers).join(', ') : undefined);
      break;
    case 'removeHeaders':
      detail(strings(a.names).join(', '));
      break;
    case 'convert':
      detail(`${String(a.from)} → ${String(a.to)}`);
      break;
    case 'marshal':
    case 'unmarshal':
      detail(typeof a.format === 'string' ? a.format : undefined);
      break;
    case 'validate': {
      const title = (a.schema as { title?: unknown } | undefined)?.title;
      detail(typeof title === 'string' ? title : 'JSON Schema');
      break;
    }
    case 'aggregate':
      detail(typeof a.size === 'number' ? `size ${a.size}` : a.fromSplit ? 'split parts' : typeof a.timeoutMs === 'number' ? `${a.timeoutMs} ms idle` : undefined);
      break;
    case 'resequence':
      detail(typeof a.mode === 'string' ? a.mode : undefined);
      break;
    case 'throttle':
      detail(`${String(a.max)} / ${String(a.periodMs)} ms`);
      break;
    case 'delay':
      detail(typeof a.ms === 'number' ? `${a.ms} ms` : computed(a.compute));
      break;
    case 'claimCheck':
      detail(typeof a.operation === 'string' ? a.operation : undefined);
      break;
    case 'routingSlip':
      detail(a.compute ? (computed(a.compute) ?? 'computed') : `header ${typeof a.header === 'string' ? a.header : 'busbar.routingSlip'}`);
      break;
    case 'dynamicRouter':
      detail(computed(a.compute) ?? 'computed');
      break;
    default:
      // a plugin's step kind: follow the common shapes (an endpoint `uri`, nested `steps`, `branches`)
      if (typeof a.uri === 'string') s.targets.push({ uri: a.uri, kind: 'send' });
      if (isStepList(a.steps)) s.branches.push({ steps: a.steps, path: `${path}/steps`, rejoins: false });
      if (Array.isArray(a.branches)) {
        (a.branches as unknown[]).forEach((b, i) => {
          if (isStepList(b)) s.branches.push({ label: `branch ${i + 1}`, steps: b, path: `${path}/branches/${i}`, rejoins: false });
        });
      }
  }
  return s;
}

/** The dead-letter endpoints of a policy, each with the error codes that lead there. */
function deadLetters(policy: ErrorPolicy | undefined): Array<{ uri: string; label: string }> {
  const out: Array<{ uri: string; label: string }> = [];
  if (!policy) return out;
  for (const rule of policy.on ?? []) {
    const uri = rule.deadLetter ?? (rule.handled ? undefined : policy.deadLetter);
    if (uri) out.push({ uri, label: rule.codes.map((c) => c.replace(/^BUSBAR_ERR_/, '')).join(', ') });
  }
  if (policy.deadLetter) out.push({ uri: policy.deadLetter, label: policy.redelivery ? `after ${policy.redelivery.maxAttempts} attempts` : 'failures' });
  return out;
}

/**
 * The graph of some routes, from the one route model (builder and config routes alike):
 * sources, steps with their pattern kind, outputs; flow, branches, links between routes
 * through shared endpoints and matching topics, and the error policy's dead letters.
 * Pure and deterministic: the same routes give the same ids in the same order.
 */
export function routeGraph(routes: readonly RouteDefinition[]): RouteGraph {
  const nodes = new Map<string, GraphNode>();
  const links: GraphLink[] = [];
  const linkIds = new Map<string, number>();

  const link = (kind: GraphLinkKind, from: string, to: string, label?: string): void => {
    const base = `${kind}:${from}->${to}`;
    const n = (linkIds.get(base) ?? 0) + 1;
    linkIds.set(base, n);
    const l: GraphLink = { id: n === 1 ? base : `${base}#${n}`, kind, from, to };
    if (label) l.label = label;
    links.push(l);
  };

  const endpoint = (uri: string, role: EndpointRole, routeId: string): string => {
    const id = endpointId(uri);
    let node = nodes.get(id);
    if (!node) {
      const colon = uri.indexOf(':');
      node = { id, kind: 'endpoint', label: uri, uri, scheme: colon > 0 ? uri.slice(0, colon) : uri, roles: [], routes: [] };
      nodes.set(id, node);
    }
    if (!node.roles!.includes(role)) node.roles!.push(role);
    if (!node.routes!.includes(routeId)) node.routes!.push(routeId);
    return id;
  };

  for (const def of routes) {
    const routeId = def.id;
    const rid = routeNodeId(routeId);
    const rnode: GraphNode = { id: rid, kind: 'route', label: routeId, routeId };
    if (def.description) rnode.description = def.description;
    if (def.maxInflight !== undefined) rnode.maxInflight = def.maxInflight;
    nodes.set(rid, rnode);
    const source = endpoint(def.from, 'source', routeId);

    /** Add the nodes of a list of steps; `cont` is what follows the list's last step (if anything). */
    const walk = (steps: readonly StepDefinition[], base: string, cont: string | undefined): void => {
      steps.forEach((step, i) => {
        const path = `${base}/${i}`;
        const id = stepId(routeId, path);
        const next = i + 1 < steps.length ? stepId(routeId, `${base}/${i + 1}`) : cont;
        const shape = shapeOf(step, path);
        const node: GraphNode = { id, kind: 'step', label: step.kind, routeId, parent: rid, pattern: step.kind, category: CATEGORY[step.kind] ?? 'other', path };
        if (shape.detail) node.detail = shape.detail;
        if (shape.targets.length === 1) node.uri = shape.targets[0]!.uri;
        nodes.set(id, node);
        for (const t of shape.targets) link(t.kind, id, endpoint(t.uri, t.kind === 'deadLetter' ? 'deadLetter' : 'output', routeId), t.label);
        for (const b of shape.branches) {
          const after = b.rejoins ? next : undefined;
          const first = b.steps.length ? stepId(routeId, `${b.path}/0`) : after;
          if (first) link('branch', id, first, b.label);
          walk(b.steps, b.path, after);
        }
        if (shape.continues && next) link('flow', id, next, shape.nextLabel);
      });
    };

    link('flow', source, def.steps.length ? stepId(routeId, '/steps/0') : rid);
    walk(def.steps, '/steps', undefined);
    for (const d of deadLetters(def.errorPolicy)) link('deadLetter', rid, endpoint(d.uri, 'deadLetter', routeId), d.label);
  }

  // a subscription with wildcards (topic:orders.*) gets what is published to the topics it matches
  const topics = [...nodes.values()].filter((n) => n.kind === 'endpoint' && n.scheme === 'topic');
  for (const sub of topics) {
    if (!sub.roles!.includes('source')) continue;
    const pattern = sub.id.slice('endpoint:topic:'.length);
    if (!/[*#]/.test(pattern)) continue;
    for (const pub of topics) {
      if (pub === sub || !pub.roles!.some((r) => r !== 'source')) continue;
      if (topicMatches(pattern, pub.id.slice('endpoint:topic:'.length))) link('channel', pub.id, sub.id, 'subscribed');
    }
  }
  return { nodes: [...nodes.values()], links };
}
