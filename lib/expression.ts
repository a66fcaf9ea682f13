import { lazy } from './lazy.js';

const jsonataLib = lazy<typeof import('jsonata')>('jsonata');

/**
 * JSONata is loaded on the first expression, not with the engine: it is about a sixth of
 * the library's resident memory, and routes built with the TypeScript builder never use it.
 */
function jsonata(source: string): ReturnType<typeof import('jsonata')> {
  return jsonataLib()(source);
}
import { BusbarError } from './errors.js';
import type { Message } from './message.js';

/**
 * Expressions in config routes are JSONata, compiled once per route (never `eval`).
 * The body is the input (`amount > 400`); `$headers`, `$id`, `$correlationId` and
 * `$timestamp` are bound.
 */
export interface CompiledExpression {
  readonly source: string;
  evaluate(msg: Message): Promise<unknown>;
}

export function compileExpression(source: string): CompiledExpression {
  let expr: ReturnType<typeof jsonata>;
  try {
    expr = jsonata(source);
  } catch (e) {
    const err = e as { message?: string; position?: number };
    throw new BusbarError('EXPRESSION', `cannot compile expression ${JSON.stringify(source)}: ${err.message ?? String(e)}${err.position !== undefined ? ` at character ${err.position}` : ''}`, {
      cause: e,
      details: { expression: source, position: err.position },
    });
  }
  return {
    source,
    async evaluate(msg) {
      try {
        return plain(await expr.evaluate(msg.body, { headers: msg.headers, id: msg.id, correlationId: msg.correlationId, timestamp: msg.timestamp }));
      } catch (e) {
        throw new BusbarError('EXPRESSION', `expression ${JSON.stringify(source)} failed: ${(e as Error).message ?? String(e)}`, { cause: e, details: { expression: source } });
      }
    },
  };
}

/** JSONata builds null-prototype objects and tagged arrays; hand the route plain data. */
function plain(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(plain);
  if (Buffer.isBuffer(v) || v instanceof Date) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = plain(x);
  return out;
}
