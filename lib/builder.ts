import { BusbarError } from './errors.js';
import type { HeaderValue, Message } from './message.js';
import type { ErrorPolicy, ErrorRule, RedeliveryPolicy, RouteDefinition } from './model.js';
import type { MaybePromise, StepDefinition } from './step.js';
import type { ChoiceArgs, Computed, SetHeaderArgs } from './steps/core.js';

const BRAND = Symbol.for('busbar.RouteBuilder');

export type Predicate<T> = (body: T, msg: Message<T>) => MaybePromise<boolean>;

/** A branch: a fragment that starts with body type T and ends with R, or a function building one. */
export type Branch<T, R> = RouteBuilder<R, T> | ((b: RouteBuilder<T, T>) => RouteBuilder<R, T>);

function branchSteps<T, R>(branch: Branch<T, R>): StepDefinition[] {
  const b = typeof branch === 'function' ? branch(new RouteBuilder<T, T>(undefined)) : branch;
  return [...b.steps];
}

export class ChoiceBuilder<T, R> {
  readonly whens: ChoiceArgs['whens'] = [];
  otherwiseSteps: StepDefinition[] | undefined;
  onNoMatchMode: ChoiceArgs['onNoMatch'];

  /** First match wins. */
  when(predicate: Predicate<T>, branch: Branch<T, R>): this {
    this.whens.push({ predicate: { fn: predicate as Computed['fn'] }, steps: branchSteps(branch) });
    return this;
  }

  otherwise(branch: Branch<T, R>): this {
    this.otherwiseSteps = branchSteps(branch);
    return this;
  }

  /**
   * Without `otherwise`, a message that matches nothing is an error (`BUSBAR_ERR_NO_MATCH`)
   * unless this says to `continue` with the rest of the route or to `stop` here.
   */
  onNoMatch(mode: 'error' | 'continue' | 'stop'): this {
    this.onNoMatchMode = mode;
    return this;
  }
}

/**
 * The typed fluent route builder. `T` is the body type at this point of the route, `In`
 * the type a fragment starts with. Each step's output type is the next step's input type,
 * so a step that expects another body type does not compile.
 */
export class RouteBuilder<T, In = unknown> {
  /** Phantom members: make the body types part of the builder's structural type. */
  declare readonly __in?: (input: In) => void;
  declare readonly __out?: () => T;
  readonly [BRAND] = true;

  readonly #from: string | undefined;
  readonly #steps: StepDefinition[] = [];
  readonly #settings: Omit<RouteDefinition, 'from' | 'steps' | 'id'> & { id?: string } = {};

  constructor(from: string | undefined) {
    this.#from = from;
  }

  get steps(): readonly StepDefinition[] {
    return this.#steps;
  }

  get source(): string | undefined {
    return this.#from;
  }

  /** Append any registered step kind (plugins); the body type is the caller's to state. */
  step<U = T>(kind: string, args: unknown): RouteBuilder<U, In> {
    this.#steps.push({ kind, args });
    return this as unknown as RouteBuilder<U, In>;
  }

  // ------------------------------------------------------------ route settings
  routeId(id: string): this {
    this.#settings.id = id;
    return this;
  }

  description(text: string): this {
    this.#settings.description = text;
    return this;
  }

  /** Bound on messages in flight in this route; when full, the source stops taking messages. */
  maxInflight(n: number): this {
    if (!Number.isInteger(n) || n < 1) throw new BusbarError('INVALID_ROUTE', `maxInflight must be a positive integer, got ${n}`);
    this.#settings.maxInflight = n;
    return this;
  }

  /** Record the steps each message passes, with times, in the `busbar.history` header. */
  history(on = true): this {
    this.#settings.history = on;
    return this;
  }

  errorPolicy(policy: ErrorPolicy): this {
    this.#settings.errorPolicy = { ...this.#settings.errorPolicy, ...policy };
    return this;
  }

  deadLetter(uri: string): this {
    return this.errorPolicy({ deadLetter: uri });
  }

  redelivery(policy: RedeliveryPolicy): this {
    return this.errorPolicy({ redelivery: policy });
  }

  /** A rule for some error codes (`BUSBAR_ERR_...`) or error class names; first match wins. */
  onError(codes: string | string[], rule: ErrorRule): this {
    const on = [...(this.#settings.errorPolicy?.on ?? []), { codes: Array.isArray(codes) ? codes : [codes], ...rule }];
    return this.errorPolicy({ on });
  }

  // ------------------------------------------------------------ steps
  /** Send to an endpoint. A request-reply endpoint's reply replaces the body: state its type as `R`. */
  to<R = T>(uri: string): RouteBuilder<R, In> {
    return this.step<R>('to', { uri });
  }

  /** Replace the body with `fn(body)`; the next step receives what `fn` returns. */
  transform<U>(fn: (body: T, msg: Message<T>) => U | Promise<U>): RouteBuilder<U, In> {
    return this.step<U>('transform', { fn: fn as Computed['fn'] } satisfies Computed);
  }

  /** Work on the whole message (headers, ids); return the new message. */
  process<U = T>(fn: (msg: Message<T>) => MaybePromise<Message<U>>): RouteBuilder<U, In> {
    return this.step<U>('process', { fn });
  }

  /** Message filter: only messages for which `predicate` holds go on. */
  filter(predicate: Predicate<T>): RouteBuilder<T, In> {
    return this.step<T>('filter', { fn: predicate } as Computed);
  }

  /** Content-based router. Branches must end with the body type `R` (by default unchanged). */
  choice<R = T>(build: (c: ChoiceBuilder<T, R>) => ChoiceBuilder<T, R>): RouteBuilder<R, In> {
    const c = build(new ChoiceBuilder<T, R>());
    const args: ChoiceArgs = { whens: c.whens, otherwise: c.otherwiseSteps, onNoMatch: c.onNoMatchMode };
    return this.step<R>('choice', args);
  }

  setHeader(name: string, value: HeaderValue | ((body: T, msg: Message<T>) => MaybePromise<HeaderValue>)): RouteBuilder<T, In> {
    const args: SetHeaderArgs = typeof value === 'function' ? { name, computed: { fn: value as Computed['fn'] } } : { name, value };
    return this.step<T>('setHeader', args);
  }

  /** Set a header from a `{template}` (`{body.id}`, `{header.x}`, `{date}`...). */
  setHeaderTemplate(name: string, template: string): RouteBuilder<T, In> {
    return this.step<T>('setHeader', { name, template } satisfies SetHeaderArgs);
  }

  removeHeaders(...names: string[]): RouteBuilder<T, In> {
    return this.step<T>('removeHeaders', { names });
  }

  log(template: string, level: 'trace' | 'debug' | 'info' | 'warn' | 'error' = 'info'): RouteBuilder<T, In> {
    return this.step<T>('log', { message: template, level });
  }

  /** Decode the body with a codec (`json`, `text`, `xml`, ...); state the decoded type as `U`. */
  unmarshal<U = unknown>(format: string): RouteBuilder<U, In> {
    return this.step<U>('unmarshal', { format });
  }

  /** Encode the body with a codec; the body becomes a string (a Buffer for `bytes`). */
  marshal(format: 'bytes'): RouteBuilder<Buffer, In>;
  marshal(format: string): RouteBuilder<string, In>;
  marshal(format: string): RouteBuilder<string | Buffer, In> {
    return this.step<string>('marshal', { format });
  }

  // ------------------------------------------------------------ patterns (EIPs)

  // ------------------------------------------------------------ transformation, codecs, contracts

  // ------------------------------------------------------------ adapters' steps (db outbox, ...)

  // ------------------------------------------------------------ model
  /** The internal route model. `id` is assigned by the engine when not set. */
  toDefinition(defaultId?: string): RouteDefinition {
    if (this.#from === undefined) {
      throw new BusbarError('INVALID_ROUTE', 'a route needs a source: start it with from(uri)', { details: {} });
    }
    const id = this.#settings.id ?? defaultId;
    if (id === undefined) throw new BusbarError('INVALID_ROUTE', `route from "${this.#from}" has no id`);
    return { ...this.#settings, id, from: this.#from, steps: [...this.#steps] };
  }
}

export function isRouteBuilder(v: unknown): v is RouteBuilder<unknown, unknown> {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[BRAND] === true;
}

/** Start a route at an endpoint; `T` is the body type the source delivers. */
export function from<T = unknown>(uri: string): RouteBuilder<T, T> {
  return new RouteBuilder<T, T>(uri);
}

/** A fragment (for branches) that starts with body type `T`. */
export function pipe<T>(): RouteBuilder<T, T> {
  return new RouteBuilder<T, T>(undefined);
}

/** A fragment that sends to an endpoint: `.when(pred, to('direct:big'))`. */
export function to<T>(uri: string): RouteBuilder<T, T> {
  return pipe<T>().to<T>(uri);
}
