import { Type, type Static } from '@sinclair/typebox';

/** Endpoint options of `fn:<name>` (a destination: `to('fn:resize-image')`). */
export const fnOptions = Type.Object(
  {
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: 'Time limit of one invocation from this endpoint, instead of the function\'s own `timeoutMs` (a step\'s request timeout wins when shorter).' })),
  },
  { additionalProperties: false },
);

export type FnOptions = Static<typeof fnOptions>;

/** Function names: what goes after `fn:` and into a function URL. */
export const FUNCTION_NAME = '^[a-z0-9][a-z0-9._-]{0,62}$';

/** How one function runs: its module, its pool's bounds, its limits. */
export const functionSchema = Type.Object(
  {
    module: Type.String({ minLength: 1, description: 'The module exporting the handler: a path (relative to the working directory) or a file: URL; .js, .mjs, .ts and .mts load (TypeScript through tsx).' }),
    export: Type.String({ minLength: 1, default: 'default', description: 'Name of the exported handler `(body, context) => result`; `default` falls back to an export named `handler`.' }),
    minWorkers: Type.Integer({ minimum: 0, maximum: 256, default: 0, description: 'Worker threads kept when idle (0: the pool scales to zero and the next call pays a cold start).' }),
    maxWorkers: Type.Integer({ minimum: 1, maximum: 256, default: 4, description: 'Most worker threads at once; a call that finds every worker busy starts one more up to this bound, then waits in the queue.' }),
    idleTimeoutMs: Type.Integer({ minimum: 0, default: 30000, description: 'A worker idle this long is stopped (down to `minWorkers`).' }),
    timeoutMs: Type.Integer({ minimum: 1, default: 30000, description: 'Time limit of one invocation; a function still running then has its worker stopped (a loop cannot block the pool) and the call fails with TIMEOUT.' }),
    maxQueue: Type.Integer({ minimum: 0, default: 1024, description: 'Calls waiting for a worker at most; more fail with LIMIT_EXCEEDED (retryable). The route\'s in-flight bound normally keeps the queue far below.' }),
    maxInvocationsPerWorker: Type.Optional(Type.Integer({ minimum: 1, description: 'Recycle a worker after this many invocations (a function that leaks cannot grow for ever).' })),
    maxHeapMb: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Recycle a worker whose heap has grown past this many MB after an invocation (a soft bound, checked between calls).' })),
    maxOldGenerationMb: Type.Optional(Type.Integer({ minimum: 8, description: 'Hard heap limit of each worker (V8 resourceLimits): a function exceeding it loses its worker (FN_CRASHED) instead of the process running out of memory.' })),
    isolation: Type.Union([Type.Literal('worker'), Type.Literal('in-process')], { default: 'worker', description: '`worker`: on the pool\'s worker threads. `in-process`: on the main thread, for functions of a few microseconds where a thread hop costs more than the work (no timeout can stop a loop there, no crash isolation).' }),
    meterCpu: Type.Boolean({ default: true, description: 'Measure the CPU time of each invocation (the worker thread\'s own time on Linux, from /proc/thread-self/schedstat; elsewhere the process\'s).' }),
  },
  { additionalProperties: false },
);

export type FunctionDef = Static<typeof functionSchema>;
/** A function as given (defaults filled in when registered). */
export type FunctionInput = Partial<FunctionDef> & { module: string };

/** Configuration of the `fn` adapter (`createFnAdapter(config)`, `"adapters": { "fn": {...} }`). */
export const fnConfigSchema = Type.Object(
  {
    functions: Type.Record(Type.String({ pattern: FUNCTION_NAME }), functionSchema, { default: {}, description: 'Functions by name (`fn:<name>`).' }),
    deploy: Type.Optional(
      Type.Object(
        {
          dir: Type.String({ minLength: 1, description: 'Directory deployed modules are written to.' }),
          token: Type.String({ minLength: 16, description: 'Token a deploy request must carry in its X-Deploy-Token header (on top of the management API\'s own bearer token).' }),
          maxModuleBytes: Type.Integer({ minimum: 1, default: 1048576, description: 'Largest module source accepted.' }),
        },
        { additionalProperties: false, description: 'Deploying functions through the management API (off unless given): `POST /api/v1/functions/<name>` with the module source. Deployed code runs with the hub\'s rights: give the token only to who may run code there.' },
      ),
    ),
  },
  { additionalProperties: false },
);

export type FnConfig = Static<typeof fnConfigSchema>;
export interface FnConfigInput {
  functions?: Record<string, FunctionInput>;
  deploy?: { dir: string; token: string; maxModuleBytes?: number };
}

/** What a handler gets besides the body. */
export interface FnContext {
  /** The function's name. */
  readonly fn: string;
  readonly messageId: string;
  readonly correlationId: string;
  /** The message headers (a copy; changing them changes nothing). */
  readonly headers: Readonly<Record<string, string | number | boolean | null | readonly string[]>>;
}

/** A function: the body in, the new body out (or a promise of it). */
export type FnHandler<I = unknown, O = unknown> = (body: I, context: FnContext) => O | Promise<O>;
