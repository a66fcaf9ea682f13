import type { ValidateFunction } from 'ajv';
import { routeContractSchema, type RouteContract } from './contracts.js';
import { endpointsAsUris, type EndpointOptionValue } from './endpoint-options.js';
import { BusbarError, isBusbarError } from './errors.js';
import { compileExpression, type CompiledExpression } from './expression.js';
import type { ErrorPolicy, RouteDefinition } from './model.js';
import { createAjv, didYouMean, SchemaCache, toProblems, type Problem } from './schema.js';
import type { ConfigContext, NamedFunction, StepDefinition, StepRegistry } from './step.js';

/** A step in a config file: an object with one key naming the step kind. */
export type StepConfig = { readonly [kind: string]: unknown };

/** A route as plain JSON-compatible data. */
/**
 * An endpoint in a config file: its URI, or the URI with options as data
 * (`{ "uri": "db:main", "options": { "statement": "UPDATE c SET n = n + 1" } }`), whose values
 * are taken as they are (no URL decoding). Accepted wherever a config file takes an endpoint URI.
 */
export type EndpointConfig = string | { uri: string; options?: Readonly<Record<string, EndpointOptionValue>> };

/** An error policy in a config file: dead-letter endpoints may be given as data too. */
export type ErrorPolicyConfig = Omit<ErrorPolicy, 'deadLetter' | 'on'> & {
  deadLetter?: EndpointConfig;
  on?: Array<Omit<NonNullable<ErrorPolicy['on']>[number], 'deadLetter'> & { deadLetter?: EndpointConfig }>;
};

export interface RouteConfig {
  id?: string;
  from: EndpointConfig;
  description?: string;
  maxInflight?: number;
  history?: boolean;
  /** Input/output schema contracts of the route. */
  contract?: RouteContract;
  steps?: StepConfig[];
  errorPolicy?: ErrorPolicyConfig;
}

export interface RoutesConfig {
  routes: RouteConfig[];
}

const redeliverySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['maxAttempts'],
  properties: {
    maxAttempts: { type: 'integer', minimum: 1 },
    delayMs: { type: 'number', minimum: 0 },
    multiplier: { type: 'number', minimum: 1 },
    maxDelayMs: { type: 'number', minimum: 0 },
    jitter: { type: 'number', minimum: 0, maximum: 1 },
    retryNonRetryable: { type: 'boolean' },
  },
} as const;

const ruleProps = {
  redelivery: redeliverySchema,
  deadLetter: { type: 'string', minLength: 1, description: 'endpoint URI' },
  handled: { type: 'boolean' },
} as const;

export const errorPolicySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...ruleProps,
    on: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['codes'],
        properties: { codes: { type: 'array', items: { type: 'string' }, minItems: 1 }, ...ruleProps },
      },
    },
  },
} as const;

export const routeConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['from'],
  properties: {
    id: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9_.:-]+$' },
    from: { type: 'string', minLength: 1, description: 'source endpoint URI' },
    description: { type: 'string' },
    maxInflight: { type: 'integer', minimum: 1 },
    history: { type: 'boolean' },
    contract: routeContractSchema,
    steps: { type: 'array' },
    errorPolicy: errorPolicySchema,
  },
} as const;

/** Keys a routes document may have besides `routes` (read by the CLI's file loader). */
export const TOP_LEVEL_KEYS = ['routes', 'functions', 'adapters', 'engine', 'topology', 'channels', 'management'];

export interface ConfigReadOptions {
  steps: StepRegistry;
  functions: ReadonlyMap<string, NamedFunction>;
}

/**
 * Read routes given as plain data. Every problem is collected (not only the first), each
 * with its path in the document and a suggestion where one is plausible. No string is
 * ever evaluated as code: expressions are JSONata, functions are referred to by name.
 */
let configSchemas: SchemaCache | undefined;

/** Validators of config schemas, compiled once per schema object for all engines. */
function sharedConfigSchemas(): SchemaCache {
  return (configSchemas ??= new SchemaCache(() => createAjv()));
}

/** The kind of a placeholder for a config step that has problems (only `Engine.check` sees one, and skips it). */
export const INVALID_STEP = '#invalid';

export class ConfigReader {
  readonly #schemas = sharedConfigSchemas();
  readonly #routeValidator: ValidateFunction;
  readonly #opts: ConfigReadOptions;

  constructor(opts: ConfigReadOptions) {
    this.#opts = opts;
    this.#routeValidator = this.#schemas.get(routeConfigSchema);
  }

  /** Accepts `{ routes: [...] }`, an array of routes, or one route. */
  read(doc: unknown, base = ''): { routes: RouteDefinition[]; problems: Problem[] } {
    const problems: Problem[] = [];
    let list: unknown[];
    let listBase: string;
    if (Array.isArray(doc)) {
      list = doc;
      listBase = base;
    } else if (doc && typeof doc === 'object' && 'routes' in doc) {
      const extra = Object.keys(doc).filter((k) => !TOP_LEVEL_KEYS.includes(k));
      for (const k of extra) {
        const hint = didYouMean(k, TOP_LEVEL_KEYS);
        problems.push({ path: `${base}/${k}`, message: `unknown top-level key "${k}" (valid: ${TOP_LEVEL_KEYS.join(', ')})`, ...(hint ? { suggestion: hint } : {}) });
      }
      const r = (doc as { routes: unknown }).routes;
      if (!Array.isArray(r)) {
        problems.push({ path: `${base}/routes`, message: 'must be an array of routes' });
        return { routes: [], problems };
      }
      list = r;
      listBase = `${base}/routes`;
    } else if (doc && typeof doc === 'object' && 'from' in doc) {
      return this.#one(doc, base, problems, 0);
    } else {
      problems.push({ path: base || '/', message: 'expected { "routes": [...] }, an array of routes, or a route object with "from"' });
      return { routes: [], problems };
    }
    const routes: RouteDefinition[] = [];
    list.forEach((r, i) => routes.push(...this.#one(r, `${listBase}/${i}`, problems, i).routes));
    return { routes, problems };
  }

  #one(raw: unknown, path: string, problems: Problem[], index: number): { routes: RouteDefinition[]; problems: Problem[] } {
    // endpoints written as data ({ "uri", "options" }) become URIs before anything reads them
    const value = endpointsAsUris(routeConfigSchema, raw && typeof raw === 'object' && !Array.isArray(raw) ? { ...(raw as object) } : raw, path, problems);
    if (!this.#routeValidator(value)) {
      problems.push(...toProblems(this.#routeValidator.errors, routeConfigSchema, path, 'route key'));
      // the steps' own problems in the same pass (a wrong route key says nothing about them)
      const given = value as { id?: unknown; from?: unknown; steps?: unknown } | null;
      const steps = Array.isArray(given?.steps) ? this.steps(given.steps, `${path}/steps`, problems) : undefined;
      // its source and steps still go to Engine.check (endpoints, codecs): a definition with
      // problems is never added (the problems fail addRoutes first)
      if (steps && typeof given?.from === 'string') {
        return { routes: [{ id: typeof given.id === 'string' ? given.id : `route-${index + 1}`, from: given.from, steps }], problems };
      }
      return { routes: [], problems };
    }
    const rc = value as RouteConfig;
    const steps = this.steps(rc.steps ?? [], `${path}/steps`, problems);
    // endpointsAsUris made every endpoint a URI string
    const def: RouteDefinition = { id: rc.id ?? `route-${index + 1}`, from: rc.from as string, steps };
    if (rc.description !== undefined) def.description = rc.description;
    if (rc.maxInflight !== undefined) def.maxInflight = rc.maxInflight;
    if (rc.history !== undefined) def.history = rc.history;
    if (rc.contract !== undefined) def.contract = rc.contract;
    if (rc.errorPolicy !== undefined) def.errorPolicy = rc.errorPolicy as ErrorPolicy;
    return { routes: [def], problems };
  }

  steps(value: unknown, path: string, problems: Problem[]): StepDefinition[] {
    if (!Array.isArray(value)) {
      problems.push({ path, message: 'must be an array of steps' });
      return [];
    }
    const out: StepDefinition[] = [];
    value.forEach((step, i) => {
      const p = `${path}/${i}`;
      // a step with problems keeps its place (as a step `check` skips), so later steps keep their paths
      const failed = problems.length;
      const hold = (): void => {
        if (problems.length > failed && out.length === i) out.push({ kind: INVALID_STEP, args: undefined });
      };
      if (!step || typeof step !== 'object' || Array.isArray(step)) {
        problems.push({ path: p, message: 'a step is an object with one key naming its kind, e.g. { "to": "log:out" }' });
        hold();
        return;
      }
      const keys = Object.keys(step);
      if (keys.length !== 1) {
        problems.push({ path: p, message: `a step must have exactly one key naming its kind, got ${keys.length ? keys.map((k) => `"${k}"`).join(', ') : 'none'}` });
        hold();
        return;
      }
      const name = keys[0]!;
      const kind = this.#opts.steps.get(name);
      if (!kind) {
        const hint = didYouMean(name, this.#opts.steps.names());
        problems.push({ path: `${p}/${name}`, message: `unknown step "${name}"`, ...(hint ? { suggestion: hint } : { suggestion: `known steps: ${this.#opts.steps.names().join(', ')}` }) });
        hold();
        return;
      }
      const arg = (step as Record<string, unknown>)[name];
      const validate = this.#schemas.get(kind.configSchema);
      const copy = endpointsAsUris(kind.configSchema, arg && typeof arg === 'object' ? structuredClone(arg) : arg, `${p}/${name}`, problems);
      if (problems.length > failed) {
        hold();
        return;
      }
      if (!validate(copy)) {
        problems.push(...toProblems(validate.errors, kind.configSchema, `${p}/${name}`, `${name} key`));
        hold();
        return;
      }
      const before = problems.length;
      try {
        const args = kind.fromConfig(copy, this.#context(`${p}/${name}`, problems));
        if (problems.length === before) out.push({ kind: name, args });
      } catch (e) {
        problems.push({ path: `${p}/${name}`, message: isBusbarError(e) || e instanceof Error ? e.message : String(e) });
      }
      hold();
    });
    return out;
  }

  #context(path: string, problems: Problem[]): ConfigContext {
    return {
      path,
      problem: (p) => problems.push(p),
      steps: (value, at) => this.steps(value, at, problems),
      expression: (source, at): CompiledExpression | undefined => {
        try {
          return compileExpression(source);
        } catch (e) {
          problems.push({ path: at, message: (e as Error).message });
          return undefined;
        }
      },
      fn: (name, at): NamedFunction | undefined => {
        const f = this.#opts.functions.get(name);
        if (!f) {
          const hint = didYouMean(name, this.#opts.functions.keys());
          const known = [...this.#opts.functions.keys()];
          problems.push({ path: at, message: `unknown function "${name}"${known.length ? ` (registered: ${known.join(', ')})` : ' (no functions are registered: pass them as `functions` to the engine or export them from the routes file)'}`, ...(hint ? { suggestion: hint } : {}) });
        }
        return f;
      },
    };
  }
}

export function problemsError(problems: Problem[], what: string): BusbarError {
  const lines = problems.map((p) => `  ${p.path || '/'}: ${p.message}${p.suggestion ? ` (${p.suggestion})` : ''}`);
  return new BusbarError('INVALID_ROUTE', `${what}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${lines.join('\n')}`, { details: { problems } });
}
