export { routeGraph, endpointId, stepId, routeNodeId } from './graph.js';
export type { RouteGraph, GraphNode, GraphLink, GraphNodeKind, GraphLinkKind, EndpointRole, PatternCategory } from './graph.js';
export { toMermaid } from './mermaid.js';
export { toSvg, layoutGraph } from './svg.js';
export type { GraphLayout, PlacedNode, PlacedLink, SvgOptions } from './svg.js';
