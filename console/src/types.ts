/** The shapes the console reads from the management API (see lib/graph and lib/console). */

export interface GraphNode {
  id: string;
  kind: 'route' | 'endpoint' | 'step';
  label: string;
  routeId?: string;
  pattern?: string;
  path?: string;
  uri?: string;
  roles?: string[];
  routes?: string[];
}

export interface NodeCounters {
  messages: number;
  failures: number;
  inflight: number;
  completed?: number;
  deadLettered?: number;
  state?: string;
  status?: string;
  error?: string;
}

export interface OpenExchange {
  routeId: string;
  messageId: string;
  step?: string;
  kind?: string;
  ageMs: number;
}

export interface RecentFailure {
  at: string;
  routeId: string;
  messageId: string;
  outcome: string;
  code: string;
  reason: string;
  step?: string;
}

export interface Snapshot {
  at: string;
  engine: string;
  counters: Record<string, NodeCounters>;
  inflight: OpenExchange[];
  failures: RecentFailure[];
}

export interface GraphAnswer extends Snapshot {
  nodes: GraphNode[];
  links: Array<{ id: string; kind: string; from: string; to: string; label?: string }>;
}

export interface DeadLetter {
  id: string;
  routeId: string;
  endpoint: string;
  messageId: string;
  code?: string;
  message?: string;
  failedAt?: string;
}
