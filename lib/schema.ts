import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { distance } from 'fastest-levenshtein';
import { lazy } from './lazy.js';

/** ajv is loaded with the first schema compiled: an engine whose endpoints take no options compiles none. */
export const ajvLib = lazy<typeof import('ajv')>('ajv');

/** A JSON Schema document (draft 7 / 2019 subset that ajv accepts). */
export type JsonSchema = { readonly [key: string]: unknown };

type OptionSchemaOf<V> = [V] extends [boolean]
  ? { readonly type: 'boolean' }
  : [V] extends [number]
    ? { readonly type: 'integer' | 'number' }
    : [V] extends [string]
      ? string extends V
        ? { readonly type: 'string' }
        : { readonly anyOf: readonly { readonly const: V }[] }
      : never;

/**
 * The JSON Schema of a flat options object `T`, written as a plain literal and checked
 * against `T` by the compiler (`... as const satisfies FlatOptionsSchema<T>`): every option
 * of `T` present with a matching type, no option the type lacks. The in-memory adapters,
 * which load with every engine, declare their options this way rather than with TypeBox
 * (which the adapters with real option sets use), so importing busbar does not load TypeBox's
 * few hundred modules (about 7 MB resident).
 */
export type FlatOptionsSchema<T> = {
  readonly type: 'object';
  readonly properties: { readonly [K in keyof T]-?: OptionSchemaOf<T[K]> & { readonly default?: T[K]; readonly description: string; readonly minimum?: number } };
  readonly additionalProperties: false;
};

/** One problem in a piece of configuration: where it is, what is wrong, what to do. */
export interface Problem {
  /** JSON pointer-like path inside the document, e.g. `/routes/0/steps/2/choice`. */
  path: string;
  message: string;
  suggestion?: string;
}

/** The nearest candidate to `word`, if it is close enough to be a plausible typo. */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const w = word.toLowerCase();
  for (const c of candidates) {
    const d = distance(w, c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best === undefined) return undefined;
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const n = nearest(word, candidates);
  return n === undefined ? undefined : `did you mean "${n}"?`;
}

/** A fresh ajv configured the way busbar validates: all errors, defaults applied, strings coerced. */
export function createAjv(opts: { coerceTypes?: boolean } = {}): Ajv {
  // verbose: errors carry the offending value, so a problem can say what it got
  return new (ajvLib().Ajv)({ allErrors: true, useDefaults: true, coerceTypes: opts.coerceTypes ?? false, strict: false, verbose: true });
}

function propertiesOf(schema: JsonSchema | undefined, pointer: string): string[] {
  // walk `properties` along the data pointer to list the valid keys at that place
  let s: JsonSchema | undefined = schema;
  for (const seg of pointer.split('/').filter(Boolean)) {
    const props = s?.properties as Record<string, JsonSchema> | undefined;
    const items = s?.items as JsonSchema | undefined;
    s = props?.[seg] ?? (/^\d+$/.test(seg) ? items : undefined);
  }
  return Object.keys((s?.properties as Record<string, unknown> | undefined) ?? {});
}

/** Turn ajv's errors into one readable Problem each, paths prefixed with `base`. */
/**
 * ajv reports every branch of a failed `oneOf`/`anyOf`. Keep what explains the value: a union
 * of constants becomes one "must be one of" error; otherwise the branches whose type does not
 * even fit the value (a string branch for an object) are dropped, and the summary with them.
 */
function pruneAlternatives(errors: readonly ErrorObject[]): ErrorObject[] {
  let list = [...errors];
  const alts = list.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf').sort((a, b) => b.schemaPath.length - a.schemaPath.length);
  for (const alt of alts) {
    const prefix = `${alt.schemaPath}/`;
    const subs = list.filter((e) => e.schemaPath.startsWith(prefix));
    if (!subs.length) continue;
    const here = (e: ErrorObject): boolean => e.instancePath === alt.instancePath;
    if (subs.every((e) => here(e) && e.keyword === 'const')) {
      const allowedValues = subs.map((e) => (e.params as { allowedValue: unknown }).allowedValue);
      const merged: ErrorObject = { ...alt, keyword: 'enum', params: { allowedValues }, message: 'must be equal to one of the allowed values' };
      list = list.filter((e) => !subs.includes(e)).map((e) => (e === alt ? merged : e));
      continue;
    }
    const branches = new Map<string, ErrorObject[]>();
    for (const e of subs) {
      const b = e.schemaPath.slice(prefix.length).split('/')[0]!;
      branches.set(b, [...(branches.get(b) ?? []), e]);
    }
    const misfit = (es: ErrorObject[]): boolean => es.some((e) => here(e) && (e.keyword === 'type' || e.keyword === 'const' || e.keyword === 'enum'));
    const fitting = [...branches.values()].filter((es) => !misfit(es));
    if (fitting.length === 0) continue;
    const keep = new Set(fitting.flat());
    list = list.filter((e) => e !== alt && (!subs.includes(e) || keep.has(e)));
  }
  return list;
}

export function toProblems(errors: readonly ErrorObject[] | null | undefined, schema: JsonSchema | undefined, base = '', what = 'value'): Problem[] {
  const out: Problem[] = [];
  for (const e of pruneAlternatives(errors ?? [])) {
    const at = base + e.instancePath;
    switch (e.keyword) {
      case 'additionalProperties': {
        const name = String((e.params as { additionalProperty: string }).additionalProperty);
        const valid = propertiesOf(schema, e.instancePath);
        const p: Problem = { path: `${at}/${name}`, message: `unknown ${what} "${name}"${valid.length ? ` (valid: ${valid.join(', ')})` : ''}` };
        const s = didYouMean(name, valid);
        if (s) p.suggestion = s;
        out.push(p);
        break;
      }
      case 'enum': {
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
        const p: Problem = { path: at, message: `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}${e.data === undefined ? '' : `, got ${JSON.stringify(e.data)}`}` };
        const s = typeof e.data === 'string' ? didYouMean(e.data, allowed) : undefined;
        if (s) p.suggestion = s;
        out.push(p);
        break;
      }
      case 'required': {
        const name = (e.params as { missingProperty: string }).missingProperty;
        out.push({ path: `${at}/${name}`, message: `"${name}" is required` });
        break;
      }
      case 'if':
        break; // the failing `then` branch reports the real problem
      default:
        out.push({ path: at, message: `${e.message ?? 'is invalid'}${e.data !== undefined && typeof e.data !== 'object' ? `, got ${JSON.stringify(e.data)}` : ''}` });
    }
  }
  return out;
}

export function formatProblem(p: Problem): string {
  const hint = p.suggestion && !p.message.includes(p.suggestion) ? ` (${p.suggestion})` : '';
  return `${p.path || '/'}: ${p.message}${hint}`;
}

/** Compile once and remember by schema object (schemas are immutable declarations). */
export class SchemaCache {
  #ajv: Ajv | undefined;
  readonly #create: () => Ajv;
  readonly #compiled = new WeakMap<object, ValidateFunction>();
  /** `ajv` is created on the first compile. */
  constructor(ajv: () => Ajv) {
    this.#create = ajv;
  }
  get(schema: JsonSchema): ValidateFunction {
    let v = this.#compiled.get(schema);
    if (!v) {
      v = (this.#ajv ??= this.#create()).compile(schema as object);
      this.#compiled.set(schema, v);
    }
    return v;
  }
}
