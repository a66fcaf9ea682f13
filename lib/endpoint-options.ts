import { BusbarError } from './errors.js';
import type { JsonSchema, Problem } from './schema.js';

/** An option value given as data: what a URI query can carry. */
export type EndpointOptionValue = string | number | boolean;

/**
 * An endpoint URI with options given as data: each option is URL-encoded and appended to the
 * query, so a value holds any text as it is (`n = n + 1`, `&`, `#`, `%`) where the same text
 * written into the URI would be read as URL query text (`+` is a space there).
 * `endpointUri('db:main', { statement: 'UPDATE c SET n = n + 1' })` is
 * `db:main?statement=UPDATE%20c%20SET%20n%20%3D%20n%20%2B%201`, the form every adapter reads.
 */
export function endpointUri(uri: string, options: Readonly<Record<string, EndpointOptionValue>> = {}): string {
  if (typeof uri !== 'string' || uri.length === 0) {
    throw new BusbarError('INVALID_URI', `endpoint URI must be a non-empty string, got ${JSON.stringify(uri)}`, { details: { uri } });
  }
  const pairs: string[] = [];
  for (const [k, v] of Object.entries(options)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new BusbarError('INVALID_OPTION', `endpoint "${uri}": option ${k} must be a string, number or boolean, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`, {
        details: { uri, option: k },
      });
    }
    pairs.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  }
  if (pairs.length === 0) return uri;
  return `${uri}${uri.includes('?') ? (uri.endsWith('?') || uri.endsWith('&') ? '' : '&') : '?'}${pairs.join('&')}`;
}

/** `{ "uri": "...", "options": {...} }`: an endpoint written as data in a config file. */
function isEndpointData(v: unknown): v is { uri: string; options?: Record<string, unknown> } {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  if (!keys.includes('uri') || keys.some((k) => k !== 'uri' && k !== 'options')) return false;
  const o = (v as { options?: unknown }).options;
  return typeof (v as { uri: unknown }).uri === 'string' && (o === undefined || (typeof o === 'object' && o !== null && !Array.isArray(o)));
}

type Schema = { readonly [key: string]: unknown };

function branches(schema: Schema): Schema[] {
  const out: Schema[] = [];
  for (const k of ['oneOf', 'anyOf', 'allOf'] as const) {
    const list = schema[k];
    if (Array.isArray(list)) for (const s of list) if (s && typeof s === 'object') out.push(s as Schema);
  }
  return out;
}

function takesString(schema: Schema): boolean {
  const t = schema.type;
  if (t === 'string' || (Array.isArray(t) && t.includes('string'))) return true;
  return branches(schema).some(takesString);
}

/** Whether an object form of this place declares `uri` and `options` itself (then the object is its own, not an endpoint). */
function ownsUriAndOptions(schema: Schema): boolean {
  const p = schema.properties as Schema | undefined;
  if (p && 'uri' in p && 'options' in p) return true;
  return branches(schema).some(ownsUriAndOptions);
}

/**
 * Replace every endpoint written as data (`{ "uri": "db:main", "options": { "statement": "..." } }`)
 * in a config value by its URI string (`endpointUri`), wherever the value's schema takes a
 * string: a place that takes a string cannot mean an object, so the rewrite is unambiguous, and
 * what follows (the schema, the step's reader, the adapter's option check) sees the URI form.
 * A place that is not an endpoint gets a string that fails there as any wrong string would.
 * Returns a new value (the document is not changed); a bad option value is a problem at its path.
 */
export function endpointsAsUris(schema: JsonSchema | undefined, value: unknown, path: string, problems: Problem[]): unknown {
  if (!schema || typeof schema !== 'object') return value;
  if (isEndpointData(value) && takesString(schema) && !ownsUriAndOptions(schema)) {
    const options: Record<string, EndpointOptionValue> = {};
    for (const [k, v] of Object.entries(value.options ?? {})) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') options[k] = v;
      else problems.push({ path: `${path}/options/${k}`, message: `an endpoint option is a string, number or boolean, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}` });
    }
    return endpointUri(value.uri, options);
  }
  if (Array.isArray(value)) {
    const items = schema.items;
    const itemSchemas = items && typeof items === 'object' && !Array.isArray(items) ? [items as Schema] : branches(schema).map((b) => b.items).filter((s): s is Schema => !!s && typeof s === 'object' && !Array.isArray(s));
    if (itemSchemas.length === 0) return value;
    return value.map((v, i) => itemSchemas.reduce((acc, s) => endpointsAsUris(s, acc, `${path}/${i}`, problems), v));
  }
  if (value && typeof value === 'object') {
    const places: Schema[] = [schema, ...branches(schema)];
    let out: Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(value)) {
      let next = v;
      for (const s of places) {
        const p = (s.properties as Schema | undefined)?.[k] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
        if (p && typeof p === 'object') next = endpointsAsUris(p as Schema, next, `${path}/${k}`, problems);
      }
      if (next !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = next;
    }
    return out ?? value;
  }
  return value;
}
