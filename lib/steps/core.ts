import { BusbarError } from '../errors.js';
import type { CompiledExpression } from '../expression.js';
import { withBody, withHeader, withoutHeaders, type HeaderValue, type Message } from '../message.js';
import { bodyMap, isPromise, mapStep, sendStep, thenWith, type ConfigContext, type MaybePromise, type Next, type StepDefinition, type StepKind } from '../step.js';
import { renderTemplate } from '../template.js';

/** A body function, a message function, or a config expression: how predicates and mappings are given. */
export type BodyFn<T = unknown, U = unknown> = (body: T, msg: Message<T>) => MaybePromise<U>;

export interface Computed {
  fn?: BodyFn | undefined;
  expr?: CompiledExpression | undefined;
}

export const computedSchema = {
  oneOf: [
    { type: 'string', minLength: 1, description: 'a JSONata expression over the body' },
    {
      type: 'object',
      additionalProperties: false,
      properties: { fn: { type: 'string', description: 'name of a registered function' }, expr: { type: 'string' } },
      minProperties: 1,
      maxProperties: 1,
    },
  ],
} as const;

export function computedFromConfig(value: unknown, ctx: ConfigContext, path = ctx.path): Computed {
  if (typeof value === 'string') return { expr: ctx.expression(value, path) };
  const v = value as { fn?: string; expr?: string };
  if (v.fn !== undefined) return { fn: ctx.fn(v.fn, `${path}/fn`) };
  return { expr: ctx.expression(v.expr ?? '', `${path}/expr`) };
}

/** A computed value as a function of the message, synchronous when a function was given. */
export function evaluator(c: Computed): (msg: Message) => MaybePromise<unknown> {
  if (c.fn) {
    const fn = c.fn;
    return (msg) => fn(msg.body, msg);
  }
  if (c.expr) {
    const e = c.expr;
    return (msg) => e.evaluate(msg);
  }
  throw new BusbarError('INVALID_ROUTE', 'a step needs a function or an expression');
}

// ---------------------------------------------------------------- to
export const toStep: StepKind<{ uri: string }> = {
  name: 'to',
  description: 'Send the message to an endpoint, one-way: never waits for an answer (use `request` for that). Endpoints whose every call has a response (http, direct) give it and it replaces the message.',
  configSchema: { type: 'string', minLength: 1, description: 'endpoint URI' },
  fromConfig: (value) => ({ uri: value as string }),
  compile({ uri }, next, ctx) {
    const goOn = (msg: Message, reply: Message | undefined): MaybePromise<Message> => next(reply ?? msg);
    return sendStep({ send: ctx.sender(uri), later: ctx.continueWith, goOn, next });
  },
};

// ---------------------------------------------------------------- request
export interface RequestArgs {
  uri: string;
  /** How long to wait for the answer (default: the endpoint's own, e.g. amqp `replyTimeoutMs`). */
  timeoutMs?: number | undefined;
}

export const requestStep: StepKind<RequestArgs> = {
  name: 'request',
  description: 'Request-reply: send the message to an endpoint and wait for its answer, which replaces the message. An endpoint that cannot reply (queue:, topic:, file:...) is an error when the route is created.',
  configSchema: {
    oneOf: [
      { type: 'string', minLength: 1, description: 'endpoint URI' },
      {
        type: 'object',
        additionalProperties: false,
        required: ['uri'],
        properties: {
          uri: { type: 'string', minLength: 1, description: 'endpoint URI' },
          timeoutMs: { type: 'integer', minimum: 1, description: 'how long to wait for the answer (default: the endpoint\'s own)' },
        },
      },
    ],
  },
  fromConfig: (value) => (typeof value === 'string' ? { uri: value } : (value as RequestArgs)),
  compile({ uri, timeoutMs }, next, ctx) {
    const call = ctx.requester(uri, timeoutMs === undefined ? undefined : { timeoutMs });
    const later = ctx.continueWith;
    const goOn = (_: undefined, reply: Message): MaybePromise<Message> => next(reply);
    return (msg) => later(call(msg), goOn, undefined);
  },
};

// ---------------------------------------------------------------- transform
export const transformStep: StepKind<Computed> = mapStep({
  name: 'transform',
  description: 'Replace the body with a computed value (a typed function in the builder, JSONata in config).',
  configSchema: computedSchema,
  fromConfig: (value, ctx) => computedFromConfig(value, ctx),
  map(args) {
    if (args.fn) {
      return bodyMap(args.fn);
    }
    const ev = evaluator(args);
    return bodyMap((_body, msg) => ev(msg));
  },
});

// ---------------------------------------------------------------- process (builder only)
export const processStep: StepKind<{ fn: (msg: Message) => MaybePromise<Message> }> = mapStep({
  name: 'process',
  description: 'Run a function on the whole message, returning a new message (builder only).',
  configSchema: { not: {}, description: 'process takes a function: use the TypeScript builder, or transform with { "fn": name }' },
  fromConfig: () => {
    throw new BusbarError('INVALID_ROUTE', 'process is only available in the TypeScript builder');
  },
  map: ({ fn }) => fn,
});

// ---------------------------------------------------------------- filter
export const filterStep: StepKind<Computed> = {
  name: 'filter',
  description: 'Message filter: messages for which the predicate is false end here (successfully).',
  configSchema: computedSchema,
  fromConfig: (value, ctx) => computedFromConfig(value, ctx),
  compile(args, next, ctx) {
    const test = evaluator(args);
    const later = ctx.continueWith;
    const pass = (msg: Message, ok: unknown): MaybePromise<Message> => (ok ? next(msg) : msg);
    return (msg) => {
      const ok = test(msg);
      return isPromise(ok) ? later(ok, pass, msg) : pass(msg, ok);
    };
  },
};

// ---------------------------------------------------------------- choice
export interface ChoiceArgs {
  whens: Array<{ predicate: Computed; steps: StepDefinition[] }>;
  otherwise?: StepDefinition[] | undefined;
  /** What happens to a message no branch matches when there is no otherwise. */
  onNoMatch?: 'error' | 'continue' | 'stop' | undefined;
}

export const choiceStep: StepKind<ChoiceArgs> = {
  name: 'choice',
  description: 'Content-based router: the first branch whose predicate holds gets the message; then the route goes on.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['when'],
    properties: {
      when: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['if', 'steps'],
          properties: { if: computedSchema, steps: { type: 'array' } },
        },
      },
      otherwise: { type: 'array' },
      onNoMatch: { enum: ['error', 'continue', 'stop'], default: 'error' },
    },
  },
  fromConfig(value, ctx) {
    const v = value as { when: Array<{ if: unknown; steps: unknown }>; otherwise?: unknown; onNoMatch?: ChoiceArgs['onNoMatch'] };
    return {
      whens: v.when.map((w, i) => ({
        predicate: computedFromConfig(w.if, ctx, `${ctx.path}/when/${i}/if`),
        steps: ctx.steps(w.steps, `${ctx.path}/when/${i}/steps`),
      })),
      otherwise: v.otherwise === undefined ? undefined : ctx.steps(v.otherwise, `${ctx.path}/otherwise`),
      onNoMatch: v.onNoMatch,
    };
  },
  compile(args, next, ctx) {
    const branches = args.whens.map((w, i) => ({ test: evaluator(w.predicate), run: ctx.compile(w.steps, next, `${ctx.path}/when/${i}/steps`) }));
    const otherwise = args.otherwise ? ctx.compile(args.otherwise, next, `${ctx.path}/otherwise`) : undefined;
    const onNoMatch = args.onNoMatch ?? 'error';
    const noMatch: Next = (msg) => {
      if (otherwise) return otherwise(msg);
      if (onNoMatch === 'continue') return next(msg);
      if (onNoMatch === 'stop') return msg;
      throw new BusbarError('NO_MATCH', `route "${ctx.routeId}", step ${ctx.path} (choice): no branch matched and there is no otherwise`, {
        details: { routeId: ctx.routeId, step: ctx.path },
      });
    };
    // a predicate given as a function is called directly (no evaluator closure between)
    const fns = args.whens.map((w) => w.predicate.fn);
    // an asynchronous predicate is continued apart (a closure made in the loop would cost every
    // message a context, for msg, and every branch tried another): one `then` for the verdict and
    // what follows, its failure labelled with the choice (see continueWith)
    const resumeAt = branches.map(({ run }, at) => (msg: Message, yes: unknown): MaybePromise<Message> => (yes ? run(msg) : from(msg, at + 1)));
    const later = ctx.continueWith;
    // the step itself (from the first branch on; `at` only where an asynchronous predicate resumes)
    const from = (msg: Message, at?: number): MaybePromise<Message> => {
      for (let i = at ?? 0; i < branches.length; i++) {
        const fn = fns[i];
        const ok = fn !== undefined ? fn(msg.body, msg) : branches[i]!.test(msg);
        if (isPromise(ok)) return later(ok, resumeAt[i]!, msg);
        if (ok) return branches[i]!.run(msg);
      }
      return noMatch(msg);
    };
    return from;
  },
};

// ---------------------------------------------------------------- headers
export interface SetHeaderArgs {
  name: string;
  value?: HeaderValue;
  template?: string;
  computed?: Computed;
}

export const setHeaderStep: StepKind<SetHeaderArgs> = mapStep({
  name: 'setHeader',
  description: 'Set a header to a constant, a `{template}`, or a computed value (function or JSONata).',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: {
      name: { type: 'string', minLength: 1 },
      value: { type: ['string', 'number', 'boolean', 'null'] },
      template: { type: 'string' },
      expr: { type: 'string' },
      fn: { type: 'string' },
    },
    minProperties: 2,
    maxProperties: 2,
  },
  fromConfig(value, ctx) {
    const v = value as { name: string; value?: HeaderValue; template?: string; expr?: string; fn?: string };
    if (v.expr !== undefined || v.fn !== undefined) {
      return { name: v.name, computed: computedFromConfig(v.expr !== undefined ? { expr: v.expr } : { fn: v.fn }, ctx) };
    }
    return v.template !== undefined ? { name: v.name, template: v.template } : { name: v.name, value: v.value };
  },
  map(args) {
    const { name } = args;
    if (args.computed) {
      const compute = evaluator(args.computed);
      const set = (msg: Message, v: unknown): Message => withHeader(msg, name, v as HeaderValue);
      return (msg) => thenWith(compute(msg), set, msg);
    }
    if (args.template !== undefined) {
      const t = args.template;
      return (msg) => withHeader(msg, name, renderTemplate(t, msg));
    }
    const value = args.value;
    return (msg) => withHeader(msg, name, value);
  },
});

export const removeHeadersStep: StepKind<{ names: string[] }> = mapStep({
  name: 'removeHeaders',
  description: 'Remove headers by name.',
  configSchema: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1 }] },
  fromConfig: (value) => ({ names: typeof value === 'string' ? [value] : (value as string[]) }),
  map:
    ({ names }) =>
    (msg) =>
      withoutHeaders(msg, names),
});

// ---------------------------------------------------------------- log
export const logStep: StepKind<{ message: string; level: 'trace' | 'debug' | 'info' | 'warn' | 'error' }> = mapStep({
  name: 'log',
  description: 'Log a `{template}` line through the route\'s pino logger.',
  configSchema: {
    oneOf: [
      { type: 'string' },
      {
        type: 'object',
        additionalProperties: false,
        required: ['message'],
        properties: { message: { type: 'string' }, level: { enum: ['trace', 'debug', 'info', 'warn', 'error'], default: 'info' } },
      },
    ],
  },
  fromConfig: (value) => (typeof value === 'string' ? { message: value, level: 'info' } : (value as { message: string; level: 'info' })),
  map({ message, level }, ctx) {
    const log = ctx.logger;
    const path = ctx.path;
    return (msg) => {
      if (log.isLevelEnabled(level)) log[level]({ messageId: msg.id, step: path }, renderTemplate(message, msg));
      return msg;
    };
  },
});

// marshal / unmarshal live in ./transform.ts (codec options, content-type negotiation)

export const coreSteps: StepKind<never>[] = [
  toStep,
  requestStep,
  transformStep,
  processStep,
  filterStep,
  choiceStep,
  setHeaderStep,
  removeHeadersStep,
  logStep,
] as unknown as StepKind<never>[];
