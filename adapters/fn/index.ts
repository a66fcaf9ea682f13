import type { ValidateFunction } from 'ajv';
import type { Adapter, Endpoint, Producer, ProducerContext } from '../../lib/adapter.js';
import { from, type RouteBuilder } from '../../lib/builder.js';
import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';
import { createAjv, didYouMean, formatProblem, toProblems } from '../../lib/schema.js';
import { FUNCTION_NAME, fnConfigSchema, fnOptions, functionSchema, type FnConfigInput, type FnContext, type FnOptions, type FunctionDef, type FunctionInput } from './options.js';
import { emptyStats, FunctionPool, type FunctionStats } from './pool.js';

export { fnOptions, fnConfigSchema, functionSchema, type FnOptions, type FnConfig, type FnConfigInput, type FnContext, type FnHandler, type FunctionDef, type FunctionInput } from './options.js';
export type { FunctionStats } from './pool.js';
export { mountFunctionDeploy, type ManagementMount } from './deploy.js';

/** Per-message time limit header (ms), as the http client and the stubs read it. */
const TIMEOUT_HEADER = 'busbar.timeoutMs';

let validators: { config: ValidateFunction; fn: ValidateFunction } | undefined;
function checkers(): { config: ValidateFunction; fn: ValidateFunction } {
  return (validators ??= { config: createAjv().compile(fnConfigSchema), fn: createAjv().compile(functionSchema) });
}

function invalid(what: string, v: ValidateFunction, schema: object, base = ''): BusbarError {
  const problems = toProblems(v.errors, schema as Record<string, unknown>, base, 'option');
  return new BusbarError('INVALID_OPTION', `${what}: ${problems.map((p) => formatProblem(p)).join('; ')}`, { details: { problems } });
}

/** The pools of one engine, and each function's meter (kept across pool restarts and redeployments). */
interface EngineFunctions {
  pools: Map<string, FunctionPool>;
  stats: Map<string, FunctionStats>;
  /** Producers started per function: the pool lives while one does. */
  users: Map<string, number>;
}

/** The `fn` adapter, with the functions it knows (shared by the engines that use it). */
export interface FnAdapter extends Adapter<FnOptions> {
  /** Register (or replace) a function; a replaced one finishes its running calls on the old pool. */
  register(name: string, fn: FunctionInput): FunctionDef;
  /** Remove a function: calls to it fail with FN_NOT_FOUND from now on. */
  unregister(name: string): boolean;
  /** The registered functions. */
  functions(): ReadonlyMap<string, FunctionDef>;
  /** The deploy settings (undefined: deploying is off). */
  readonly deploy: { dir: string; token: string; maxModuleBytes: number } | undefined;
}

/**
 * `fn:` — functions as a service. A function is a plain module exporting a handler
 * `(body, context) => result`, registered by name; `to('fn:<name>')` runs it on a pool of
 * worker threads that scales from `minWorkers` (0: scale to zero) to `maxWorkers` with the
 * load and back after `idleTimeoutMs`, with a time limit, crash isolation, worker recycling
 * and per-function metering in `engine.stats().adapters.fn`.
 *
 * ```ts
 * const fns = createFnAdapter({ functions: { 'resize-image': { module: './fns/resize.ts', maxWorkers: 4 } } });
 * new Engine({ adapters: [fns] }).addRoutes(from('direct:in').to('fn:resize-image'));
 * ```
 */
export function createFnAdapter(config: FnConfigInput = {}): FnAdapter {
  const checked = structuredClone(config) as FnConfigInput & { deploy?: { dir: string; token: string; maxModuleBytes: number } };
  const { config: validateConfig } = checkers();
  if (!validateConfig(checked)) throw invalid('fn adapter configuration', validateConfig, fnConfigSchema);
  const registry = new Map<string, FunctionDef>();
  const versions = new Map<string, number>();

  const register = (name: string, input: FunctionInput): FunctionDef => {
    if (!new RegExp(FUNCTION_NAME).test(name)) {
      throw new BusbarError('INVALID_OPTION', `fn adapter: function name "${name}" is not valid (lower-case letters, digits, ".", "_", "-"; at most 63)`, { details: { fn: name } });
    }
    const def = structuredClone(input) as FunctionDef;
    const { fn: validate } = checkers();
    if (!validate(def)) throw invalid(`fn adapter: function "${name}"`, validate, functionSchema, `/functions/${name}`);
    if (def.minWorkers > def.maxWorkers) {
      throw new BusbarError('INVALID_OPTION', `fn adapter: function "${name}": minWorkers (${def.minWorkers}) is above maxWorkers (${def.maxWorkers})`, { details: { fn: name, option: 'minWorkers' } });
    }
    registry.set(name, Object.freeze(def));
    versions.set(name, (versions.get(name) ?? 0) + 1);
    return def;
  };
  for (const [name, f] of Object.entries(checked.functions ?? {})) register(name, f);

  const notFound = (name: string): BusbarError => {
    const hint = didYouMean(name, registry.keys());
    return new BusbarError('FN_NOT_FOUND', `no function "${name}" is registered${hint ? ` (${hint})` : ''}; known: ${[...registry.keys()].join(', ') || 'none'}`, {
      details: { fn: name, known: [...registry.keys()], suggestion: hint },
    });
  };

  const engineState = (ctx: ProducerContext): EngineFunctions => ctx.state('functions', () => ({ pools: new Map(), stats: new Map(), users: new Map() }));

  /** The running pool of `name` for this engine, replacing one built from an older definition. */
  const poolOf = (ctx: ProducerContext, name: string): FunctionPool => {
    const def = registry.get(name);
    if (!def) throw notFound(name);
    const st = engineState(ctx);
    let pool = st.pools.get(name);
    if (pool && pool.def === def) return pool;
    let stats = st.stats.get(name);
    if (!stats) st.stats.set(name, (stats = emptyStats(def)));
    stats.version = versions.get(name) ?? 1;
    stats.isolation = def.isolation;
    stats.minWorkers = def.minWorkers;
    stats.maxWorkers = def.maxWorkers;
    const old = pool;
    pool = new FunctionPool(name, def, stats, ctx.logger, ctx.clock);
    pool.start();
    st.pools.set(name, pool);
    if (old) void old.close().catch((err: unknown) => ctx.logger.warn({ err, fn: name }, 'closing the replaced function pool failed'));
    return pool;
  };

  const adapter: FnAdapter = {
    scheme: 'fn',
    description: 'Functions as a service: plain modules exporting a handler, run on worker-thread pools that scale with load (from zero), with per-function time limits, crash isolation, worker recycling and usage metering.',
    optionsSchema: fnOptions,
    deploy: checked.deploy,
    register,
    unregister(name) {
      return registry.delete(name);
    },
    functions() {
      return registry;
    },
    createProducer(endpoint: Endpoint<FnOptions>, ctx: ProducerContext): Producer {
      const name = endpoint.path;
      if (!new RegExp(FUNCTION_NAME).test(name)) {
        throw new BusbarError('INVALID_URI', `endpoint "${endpoint.uri}": "${name}" is not a function name (fn:<name>)`, { details: { uri: endpoint.uri } });
      }
      let started = false;
      const invoke = async (msg: Message, limitMs?: number): Promise<Message> => {
        const pool = poolOf(ctx, name);
        const perMessage = Number(msg.headers[TIMEOUT_HEADER]);
        let timeoutMs = endpoint.options.timeoutMs ?? pool.def.timeoutMs;
        if (perMessage > 0) timeoutMs = Math.min(timeoutMs, perMessage);
        if (limitMs !== undefined && limitMs > 0) timeoutMs = Math.min(timeoutMs, limitMs);
        const fctx: FnContext = { fn: name, messageId: msg.id, correlationId: msg.correlationId, headers: plainHeaders(msg) };
        const body = await pool.call(msg.body, fctx, timeoutMs);
        return { ...msg, body };
      };
      const producer = {
        async start() {
          if (started) return;
          started = true;
          const st = engineState(ctx);
          st.users.set(name, (st.users.get(name) ?? 0) + 1);
          // a function deployed later is fine: its pool starts on the first call
          if (registry.has(name)) poolOf(ctx, name);
        },
        async stop() {
          if (!started) return;
          started = false;
          const st = engineState(ctx);
          const n = (st.users.get(name) ?? 1) - 1;
          st.users.set(name, n);
          if (n > 0) return;
          const pool = st.pools.get(name);
          st.pools.delete(name);
          await pool?.close();
        },
        /** Every call has an answer: the function's result replaces the body. */
        send: (msg: Message) => invoke(msg),
        request: (msg: Message, opts?: { timeoutMs?: number }) => invoke(msg, opts?.timeoutMs),
      };
      return producer;
    },
    stats(state) {
      const st = state<EngineFunctions>('functions');
      if (!st || st.stats.size === 0) return undefined;
      const functions: Record<string, FunctionStats> = {};
      for (const [name, s] of st.stats) {
        const pool = st.pools.get(name);
        functions[name] = pool ? pool.snapshot() : { ...s, coldStartMs: { ...s.coldStartMs }, moduleLoadMs: { ...s.moduleLoadMs }, workers: 0, queued: 0 };
      }
      return { functions };
    },
  };
  return adapter;
}

/** Headers a worker can receive (structured-clone-safe, no functions or symbols). */
function plainHeaders(msg: Message): FnContext['headers'] {
  const out: Record<string, string | number | boolean | null | readonly string[]> = {};
  const h = msg.headers;
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    out[k] = v;
  }
  return out;
}

export interface FunctionUrlOptions {
  /** Port of the http server (routes on the same host and port share it). */
  port: number;
  host?: string;
  /** URL path (default `/fn/<name>`). */
  path?: string;
  /** Use `https:` (an https adapter with a certificate must be registered). */
  scheme?: 'http' | 'https';
  /** Time the function has to answer before the caller gets 504 (default: the http adapter's 30 s). */
  timeoutMs?: number;
}

/**
 * A function URL: `POST http://host:port/fn/<name>` with a JSON (or text) body runs the
 * function and answers with its result; errors answer by code (TIMEOUT 504, FN_NOT_FOUND
 * 404, a full route 503...). Add it like any route: `engine.addRoutes(functionUrl('resize', { port: 8080 }))`.
 */
export function functionUrl(name: string, opts: FunctionUrlOptions): RouteBuilder<unknown, unknown> {
  const path = opts.path ?? `/fn/${name}`;
  const q = new URLSearchParams({ port: String(opts.port), method: 'POST' });
  if (opts.host) q.set('host', opts.host);
  if (opts.timeoutMs) q.set('timeoutMs', String(opts.timeoutMs));
  return from<unknown>(`${opts.scheme ?? 'http'}:${path}?${q.toString()}`).routeId(`fn-url.${name}`).to<unknown>(`fn:${name}`);
}
