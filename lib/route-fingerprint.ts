import type { RouteDefinition } from './model.js';

/**
 * A stable text of a route model, to tell whether a reloaded route changed: object keys
 * sorted, functions by their source, regular expressions by their text. Two functions with
 * the same source but different captured values look the same: a reload compares what the
 * file says, not the state a closure holds.
 */
export function routeFingerprint(def: RouteDefinition): string {
  const seen = new WeakSet<object>();
  const walk = (v: unknown): unknown => {
    if (typeof v === 'function') return `fn:${v.toString()}`;
    if (typeof v === 'bigint') return `bigint:${v.toString()}`;
    if (typeof v === 'symbol') return `symbol:${v.description ?? ''}`;
    if (v === undefined) return '\u0000undefined';
    if (v === null || typeof v !== 'object') return v;
    if (v instanceof RegExp) return `re:${v.toString()}`;
    if (v instanceof Date) return `date:${v.toISOString()}`;
    if (Buffer.isBuffer(v)) return `buf:${v.toString('base64')}`;
    if (seen.has(v)) return '\u0000cycle';
    seen.add(v);
    try {
      if (Array.isArray(v)) return v.map(walk);
      if (v instanceof Map) return { '\u0000map': [...v.entries()].map(([k, x]) => [walk(k), walk(x)]) };
      if (v instanceof Set) return { '\u0000set': [...v].map(walk) };
      const out: Record<string, unknown> = {};
      // the class matters too (two step argument objects of different kinds with the same fields)
      const proto = Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null;
      if (proto && proto !== Object.prototype && proto.constructor?.name) out['\u0000class'] = proto.constructor.name;
      for (const k of Object.keys(v).sort()) out[k] = walk((v as Record<string, unknown>)[k]);
      return out;
    } finally {
      seen.delete(v);
    }
  };
  const { id: _id, ...rest } = def;
  return JSON.stringify(walk(rest));
}
