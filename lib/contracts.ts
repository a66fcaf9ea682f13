/**
 * Schema contracts: ajv validators compiled once (per step or route, never per message),
 * and a coded error listing every problem with its JSON pointer. With TypeBox schemas the
 * TypeScript type comes from the same declaration (`Static<typeof Order>`), so the contract
 * and the type cannot drift.
 */
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { lazy } from './lazy.js';
import { BusbarError } from './errors.js';
import { withBody, type Message } from './message.js';
import type { RouteDefinition } from './model.js';
import { ajvLib, type JsonSchema } from './schema.js';
import type { Next } from './step.js';

/** One contract violation. */
export interface ContractProblem {
  /** JSON pointer into the body (`/lines/2/qty`; for a missing property, the property's would-be pointer). */
  pointer: string;
  message: string;
  /** The JSON Schema keyword that failed (`type`, `required`, `pattern`...). */
  keyword: string;
}

export interface ContractOptions {
  /** Name shown in errors (default `contract`). */
  name?: string;
  /** Coerce scalar types (`"42"` -> 42): for XML, whose values are all strings. The body is copied, never changed in place. */
  coerce?: boolean;
  /** Fill in schema defaults (on a copy). */
  defaults?: boolean;
  /** Stop listing problems after this many (default 100). */
  maxProblems?: number;
  /** Facts added to the error's details (route id, step). */
  details?: Record<string, unknown>;
}

/** A compiled contract: returns the (possibly coerced) body, or throws `BUSBAR_ERR_VALIDATION_FAILED`. */
export type Contract = (body: unknown, where?: string) => unknown;

// formats are added to contract validators only, loaded with the first contract
const addFormats = lazy<(ajv: Ajv) => Ajv>('ajv-formats');

function newAjv(coerce: boolean, defaults: boolean): Ajv {
  const ajv = new (ajvLib().Ajv)({ allErrors: true, verbose: true, strict: false, coerceTypes: coerce, useDefaults: defaults, allowUnionTypes: true });
  addFormats()(ajv);
  return ajv;
}

function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** ajv's errors as problems: pointers point at the offending value (or the missing property). */
export function contractProblems(errors: readonly ErrorObject[] | null | undefined, max = 100): ContractProblem[] {
  const out: ContractProblem[] = [];
  for (const e of errors ?? []) {
    if (out.length >= max) break;
    let pointer = e.instancePath;
    let message = e.message ?? 'is invalid';
    switch (e.keyword) {
      case 'required': {
        const p = (e.params as { missingProperty: string }).missingProperty;
        pointer = `${pointer}/${escapePointer(p)}`;
        message = 'is required';
        break;
      }
      case 'additionalProperties': {
        const p = (e.params as { additionalProperty: string }).additionalProperty;
        pointer = `${pointer}/${escapePointer(p)}`;
        message = 'is not allowed (no such property in the contract)';
        break;
      }
      case 'enum':
        message = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
        break;
      case 'if':
      case 'anyOf':
        if (out.length && e.keyword === 'if') continue;
        break;
      default:
    }
    if (e.data !== undefined && (typeof e.data !== 'object' || e.data === null) && e.keyword !== 'required') {
      const shown = JSON.stringify(e.data);
      message += `, got ${shown.length > 60 ? `${shown.slice(0, 57)}...` : shown}`;
    }
    out.push({ pointer, message, keyword: e.keyword });
  }
  return out;
}

export function violation(name: string, problems: ContractProblem[], extra: Record<string, unknown> = {}): BusbarError {
  const lines = problems.map((p) => `${p.pointer || '/'} ${p.message}`);
  return new BusbarError('VALIDATION_FAILED', `${name} violated: ${problems.length} problem${problems.length === 1 ? '' : 's'}: ${lines.join('; ')}`, {
    details: { contract: name, problems, ...extra },
  });
}

/**
 * Compile a JSON Schema (or TypeBox schema) once. A schema that does not compile is a
 * route-creation error (`BUSBAR_ERR_INVALID_ROUTE`), not a message-time one.
 */
export function compileContract(schema: JsonSchema, options: ContractOptions = {}): Contract {
  const name = options.name ?? 'contract';
  const copy = options.coerce === true || options.defaults === true;
  let validate: ValidateFunction;
  try {
    validate = newAjv(options.coerce ?? false, options.defaults ?? false).compile(schema as object);
  } catch (e) {
    throw new BusbarError('INVALID_ROUTE', `${name}: the schema does not compile: ${(e as Error).message}`, { cause: e, details: { contract: name } });
  }
  const max = options.maxProblems ?? 100;
  return (body, where) => {
    // coercion and defaults write into the data: work on a copy so the message stays immutable
    const data = copy && typeof body === 'object' && body !== null ? structuredClone(body) : body;
    if (validate(data)) return data;
    throw violation(where ? `${name} (${where})` : name, contractProblems(validate.errors, max), options.details);
  };
}

/** A step function validating the body against a compiled contract. */
export function validating(contract: Contract, next: Next, where?: string): Next {
  return (msg: Message) => {
    const body = contract(msg.body, where);
    return next(body === msg.body ? msg : withBody(msg, body));
  };
}

/** A route's input and output contracts (route setting `contract`). */
export interface RouteContract {
  /** Schema of the body as the source delivers it (after nothing: put a `convert` first and use `validate` for other shapes). */
  input?: JsonSchema;
  /** Schema of the body at the end of the route (the reply of a request-reply route). */
  output?: JsonSchema;
  /** Coerce scalar types (for XML and CSV input, whose values are strings). */
  coerce?: boolean;
}

export const routeContractSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    input: { type: 'object', description: 'JSON Schema of the body the source delivers' },
    output: { type: 'object', description: 'JSON Schema of the body at the end of the route' },
    coerce: { type: 'boolean', description: 'coerce scalar types (XML/CSV values are strings)' },
  },
} as const;

/** The end of a route without an output contract: one function for every route. */
const routeEnd: Next = (m) => m;

/**
 * Build a route's pipeline with its contracts around it: the input contract before the
 * first step, the output contract where the route ends. Violations are thrown inside the
 * pipeline, so the route's error policy (redelivery, dead letter with the reasons) applies.
 */
export function withRouteContract(def: RouteDefinition, build: (end: Next) => Next): Next {
  const c = def.contract;
  if (!c || (!c.input && !c.output)) return build(routeEnd);
  const opts = { coerce: c.coerce ?? false };
  const output = c.output ? compileContract(c.output, { ...opts, name: `route "${def.id}" output contract`, details: { routeId: def.id, step: '/contract/output' } }) : undefined;
  const input = c.input ? compileContract(c.input, { ...opts, name: `route "${def.id}" input contract`, details: { routeId: def.id, step: '/contract/input' } }) : undefined;
  const end: Next = output ? validating(output, routeEnd) : routeEnd;
  const pipeline = build(end);
  if (!input) return pipeline;
  return validating(input, pipeline);
}
