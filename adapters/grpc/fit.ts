import type * as Protobuf from 'protobufjs';

/**
 * Does a body fit its .proto message type? protobufjs's own `fromObject` (what grpc-js
 * serializes with) coerces silently: `"abc"` for an int32 becomes 0, a misspelt field is
 * dropped, a number for a string field becomes its text. A body that would be changed that
 * way is refused instead, with every problem and its JSON pointer, before anything is sent.
 *
 * What fits is what busbar's own side produces (proto-loader with `longs: String, enums:
 * String, oneofs: true`): 64-bit integers as numbers or decimal strings, enums by name or
 * number, bytes as Buffers or base64, the oneof's virtual field naming its member, and
 * `null`/`undefined` for an absent field. `Type.verify` cannot be used: it refuses those
 * (it checks protobufjs message instances, not the plain objects proto-loader hands out).
 */
export interface FitProblem {
  path: string;
  message: string;
}

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64 = new Set(['uint64', 'fixed64']);
const MAX_PROBLEMS = 20;

const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'string' ? `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}` : typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`);

function integerIn(v: unknown, min: bigint, max: bigint): boolean {
  let n: bigint;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return false;
    n = BigInt(v);
  } else if (typeof v === 'string') {
    if (!/^-?\d{1,20}$/.test(v)) return false;
    n = BigInt(v);
  } else if (typeof v === 'bigint') n = v;
  else if (typeof v === 'object' && v !== null && typeof (v as { low?: unknown }).low === 'number' && typeof (v as { high?: unknown }).high === 'number') return true; // a Long
  else return false;
  return n >= min && n <= max;
}

/** One scalar or enum value against its field type: undefined when it fits, else what is wrong. */
function scalarProblem(type: string, resolved: Protobuf.ReflectionObject | null, v: unknown): string | undefined {
  if (resolved && 'values' in resolved) {
    const values = (resolved as Protobuf.Enum).values;
    if (typeof v === 'string') return v in values ? undefined : `not a value of enum ${resolved.name} (${Object.keys(values).join(', ')}), got ${describe(v)}`;
    return typeof v === 'number' && Number.isInteger(v) ? undefined : `an enum ${resolved.name} name or number expected, got ${describe(v)}`;
  }
  switch (type) {
    case 'string':
      return typeof v === 'string' ? undefined : `a string expected, got ${describe(v)}`;
    case 'bool':
      return typeof v === 'boolean' ? undefined : `true or false expected, got ${describe(v)}`;
    case 'double':
    case 'float':
      if (typeof v === 'number') return undefined;
      return typeof v === 'string' && (/^(NaN|-?Infinity)$/.test(v) || (v.trim() !== '' && Number.isFinite(Number(v)))) ? undefined : `a number expected, got ${describe(v)}`;
    case 'bytes':
      if (v instanceof Uint8Array) return undefined;
      return typeof v === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(v) ? undefined : `bytes (a Buffer or base64 text) expected, got ${describe(v)}`;
    default:
      if (INT32.has(type)) return integerIn(v, -(2n ** 31n), 2n ** 31n - 1n) ? undefined : `a 32-bit integer expected, got ${describe(v)}`;
      if (UINT32.has(type)) return integerIn(v, 0n, 2n ** 32n - 1n) ? undefined : `an unsigned 32-bit integer expected, got ${describe(v)}`;
      if (INT64.has(type)) return integerIn(v, -(2n ** 63n), 2n ** 63n - 1n) ? undefined : `a 64-bit integer (a number or decimal text) expected, got ${describe(v)}`;
      if (UINT64.has(type)) return integerIn(v, 0n, 2n ** 64n - 1n) ? undefined : `an unsigned 64-bit integer (a number or decimal text) expected, got ${describe(v)}`;
      return undefined;
  }
}

function check(type: Protobuf.Type, value: unknown, path: string, out: FitProblem[], depth: number): void {
  if (out.length >= MAX_PROBLEMS) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    out.push({ path: path || '/', message: `a ${type.name} message (an object) expected, got ${describe(value)}` });
    return;
  }
  if (depth > 100) {
    out.push({ path, message: 'nested more than 100 levels deep' });
    return;
  }
  const fields = type.fields;
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    const where = `${path}/${key}`;
    const field = fields[key];
    if (!field) {
      // the virtual field of a oneof (oneofs: true) names which member is set
      const oneof = type.oneofs?.[key];
      if (oneof) {
        if (v !== undefined && v !== null && !(typeof v === 'string' && oneof.oneof.includes(v))) out.push({ path: where, message: `the oneof ${key} names one of its fields (${oneof.oneof.join(', ')}), got ${describe(v)}` });
        continue;
      }
      if (v === undefined) continue;
      out.push({ path: where, message: `${type.name} has no field "${key}"; its fields: ${Object.keys(fields).join(', ')}` });
      continue;
    }
    if (v === undefined || v === null) continue;
    field.resolve();
    const resolved = field.resolvedType;
    const one = (item: unknown, at: string): void => {
      if (resolved && 'fields' in resolved) check(resolved as Protobuf.Type, item, at, out, depth + 1);
      else {
        const p = scalarProblem(field.type, resolved, item);
        if (p) out.push({ path: at, message: p });
      }
    };
    if (field.map) {
      if (typeof v !== 'object' || Array.isArray(v)) {
        out.push({ path: where, message: `a map (an object) expected, got ${describe(v)}` });
        continue;
      }
      const keyType = (field as unknown as Protobuf.MapField).keyType;
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        if (keyType !== 'string' && keyType !== 'bool' && !/^-?\d+$/.test(k)) out.push({ path: `${where}/${k}`, message: `a map key of type ${keyType} expected, got ${JSON.stringify(k)}` });
        else one(item, `${where}/${k}`);
      }
    } else if (field.repeated) {
      if (!Array.isArray(v)) {
        out.push({ path: where, message: `a list expected, got ${describe(v)}` });
        continue;
      }
      v.forEach((item, i) => one(item, `${where}/${i}`));
    } else one(v, where);
    if (out.length >= MAX_PROBLEMS) return;
  }
}

/** The problems of `value` as a `type` message (empty when it fits). */
export function fitProblems(type: Protobuf.Type, value: unknown): FitProblem[] {
  const out: FitProblem[] = [];
  check(type, value, '', out, 0);
  return out;
}

export function problemText(problems: readonly FitProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('; ');
}
