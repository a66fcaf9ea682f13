import { BusbarError } from '../../errors.js';
import { merged, withBody, withHeaders, withoutHeaders, type Message } from '../../message.js';
import type { ClaimCheckStore, IdempotentRepository } from '../../stores.js';
import { MemoryIdempotentRepository } from '../../stores-memory.js';
import { isPromise, then, type MaybePromise, type StepKind } from '../../step.js';
import { computedFromConfig, computedSchema, evaluator, type Computed } from '../core.js';
import { keyOf, namedStore, patternStateOf } from './common.js';

// ---------------------------------------------------------------- content enricher
export interface EnrichArgs {
  uri: string;
  /** The request sent to the endpoint (default: the message as is). */
  request?: Computed | undefined;
  /** Put the reply body under this field of the (object) body. */
  into?: string | undefined;
  /** How long to wait for the answer (default: the endpoint's own, e.g. amqp `replyTimeoutMs`). */
  timeoutMs?: number | undefined;
  /** `merge` (default): shallow-merge two objects, otherwise the reply replaces the body; `replace`; or a function. */
  merge?: 'merge' | 'replace' | ((original: unknown, reply: unknown, msg: Message) => MaybePromise<unknown>) | undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

export const enrichStep: StepKind<EnrichArgs> = {
  name: 'enrich',
  description: 'Content enricher: ask an endpoint (request-reply, whatever the source of the route) and merge its reply into the body: shallow merge of objects, into a field, replace, or a function.',
  configSchema: {
    oneOf: [
      { type: 'string', minLength: 1, description: 'endpoint URI; the reply is merged into the body' },
      {
        type: 'object',
        additionalProperties: false,
        required: ['uri'],
        properties: {
          uri: { type: 'string', minLength: 1, description: 'endpoint to call' },
          request: { ...computedSchema, description: 'the request body (default: the body)' },
          into: { type: 'string', minLength: 1, description: 'put the reply under this field' },
          timeoutMs: { type: 'integer', minimum: 1, description: 'how long to wait for the answer (default: the endpoint\'s own)' },
          merge: { oneOf: [{ enum: ['merge', 'replace'] }, { type: 'object', additionalProperties: false, required: ['fn'], properties: { fn: { type: 'string' } } }], description: 'merge (default), replace, or { fn } called with ({ original, reply })' },
        },
      },
    ],
  },
  fromConfig(value, ctx) {
    if (typeof value === 'string') return { uri: value };
    const v = value as { uri: string; request?: unknown; into?: string; merge?: unknown; timeoutMs?: number };
    const args: EnrichArgs = { uri: v.uri, into: v.into, timeoutMs: v.timeoutMs };
    if (v.request !== undefined) args.request = computedFromConfig(v.request, ctx, `${ctx.path}/request`);
    if (typeof v.merge === 'string') args.merge = v.merge as 'merge' | 'replace';
    else if (v.merge) {
      const f = ctx.fn((v.merge as { fn: string }).fn, `${ctx.path}/merge/fn`);
      if (f) args.merge = (original, reply, msg) => f({ original, reply }, msg);
    }
    return args;
  },
  compile(args, next, ctx) {
    // an enricher needs the endpoint's answer: ask for one (an endpoint that cannot answer fails here)
    const send = ctx.requester(args.uri, args.timeoutMs === undefined ? undefined : { timeoutMs: args.timeoutMs });
    const request = args.request ? evaluator(args.request) : undefined;
    const merge = args.merge ?? 'merge';
    const combine = (original: unknown, reply: unknown, msg: Message): MaybePromise<unknown> => {
      if (args.into !== undefined) {
        if (!isPlainObject(original)) {
          throw new BusbarError('VALIDATION_FAILED', `route "${ctx.routeId}", step ${ctx.path} (enrich): "into" needs an object body, got ${original === null ? 'null' : typeof original}`, { details: { routeId: ctx.routeId, step: ctx.path } });
        }
        return merged(original, { [args.into]: reply });
      }
      if (typeof merge === 'function') return merge(original, reply, msg);
      if (merge === 'merge' && isPlainObject(original) && isPlainObject(reply)) return merged(original, reply);
      return reply;
    };
    return (msg) => {
      const req = request ? then(request(msg), (b) => withBody(msg, b)) : msg;
      return Promise.resolve(req)
        .then((r) => send(r))
        .then((reply) => {
          return then(combine(msg.body, reply.body, msg), (body) => next(withBody(msg, body)));
        });
    };
  },
};

// ---------------------------------------------------------------- claim check
export const CLAIM_CHECK_HEADER = 'busbar.claimCheck';

export interface ClaimCheckArgs {
  /** `checkIn` parks the body and carries a key; `checkOut` restores (and forgets) it; `peek` restores and keeps it. */
  operation: 'checkIn' | 'checkOut' | 'peek';
  /** The key (default: the message id at check-in, the claim header at check-out). */
  key?: Computed | undefined;
  /** A store instance (builder) or the name of one registered on the engine; default: the engine's shared memory store. */
  store?: ClaimCheckStore | string | undefined;
}

export const claimCheckStep: StepKind<ClaimCheckArgs> = {
  name: 'claimCheck',
  description: 'Claim check: checkIn parks the body in a store and carries its key in busbar.claimCheck (body becomes null); checkOut / peek restore it later, in this route or another.',
  configSchema: {
    oneOf: [
      { enum: ['checkIn', 'checkOut', 'peek'] },
      {
        type: 'object',
        additionalProperties: false,
        required: ['operation'],
        properties: {
          operation: { enum: ['checkIn', 'checkOut', 'peek'] },
          key: { ...computedSchema, description: 'the claim key (default: message id at checkIn, the busbar.claimCheck header at checkOut)' },
          store: { type: 'string', minLength: 1, description: 'name of a claim-check store registered on the engine (default memory)' },
        },
      },
    ],
  },
  fromConfig(value, ctx) {
    if (typeof value === 'string') return { operation: value as ClaimCheckArgs['operation'] };
    const v = value as { operation: ClaimCheckArgs['operation']; key?: unknown; store?: string };
    const args: ClaimCheckArgs = { operation: v.operation, store: v.store };
    if (v.key !== undefined) args.key = computedFromConfig(v.key, ctx, `${ctx.path}/key`);
    return args;
  },
  compile(args, next, ctx) {
    const state = patternStateOf(ctx);
    const store = typeof args.store === 'object' ? args.store : namedStore(state.claimCheckStores, args.store ?? 'memory', 'claim-check store');
    const step = `${ctx.path} (claimCheck)`;
    if (args.operation === 'checkIn') {
      const keyFn = args.key ? evaluator(args.key) : (m: Message) => m.id;
      return async (msg) => {
        const key = keyOf(await keyFn(msg), 'claim key', ctx.routeId, step);
        await store.put(key, msg.body);
        return next(withHeaders(withBody(msg, null), { [CLAIM_CHECK_HEADER]: key }));
      };
    }
    const keyFn = args.key ? evaluator(args.key) : (m: Message) => m.headers[CLAIM_CHECK_HEADER];
    const forget = args.operation === 'checkOut';
    return async (msg) => {
      const key = keyOf(await keyFn(msg), 'claim key', ctx.routeId, step);
      const body = await store.get(key);
      if (body === undefined) {
        throw new BusbarError('CLAIM_NOT_FOUND', `route "${ctx.routeId}", step ${step}: no body parked under claim key "${key}"`, { details: { routeId: ctx.routeId, step, key } });
      }
      const out = await next(withoutHeaders(withBody(msg, body), [CLAIM_CHECK_HEADER]));
      // forget only once the rest of the route succeeded: a redelivery can check out again
      if (forget) await store.delete(key);
      return out;
    };
  },
};

// ---------------------------------------------------------------- idempotent consumer
export const DUPLICATE_HEADER = 'busbar.duplicate';

export interface IdempotentArgs {
  /** The message key (default: the message id). */
  key?: Computed | undefined;
  /** A repository instance (builder) or the name of one registered on the engine; default: in memory, bounded by `maxKeys`. */
  repository?: IdempotentRepository | string | undefined;
  /** Bound of the default in-memory repository (default 10 000 keys; the oldest are forgotten). */
  maxKeys?: number | undefined;
  /** Send duplicates here (with `busbar.duplicate: true`) instead of skipping them. */
  duplicateUri?: string | undefined;
  /** Forget the key when the rest of the route fails, so a redelivery is processed (default true). */
  removeOnFailure?: boolean | undefined;
}

export const idempotentStep: StepKind<IdempotentArgs> = {
  name: 'idempotent',
  description: 'Idempotent consumer: a message whose key was already seen is skipped (counted, see patternState(engine).duplicates) or sent to a duplicates endpoint; a failed message\'s key is forgotten so its redelivery is processed.',
  configSchema: {
    oneOf: [
      { const: true, description: 'key = the message id, in-memory repository' },
      { type: 'string', minLength: 1, description: 'JSONata expression giving the key' },
      {
        type: 'object',
        additionalProperties: false,
        properties: {
          expr: { type: 'string', minLength: 1, description: 'JSONata expression giving the key (default: message id)' },
          fn: { type: 'string', minLength: 1, description: 'registered function giving the key' },
          repository: { type: 'string', minLength: 1, description: 'name of an idempotent repository registered on the engine' },
          maxKeys: { type: 'integer', minimum: 1, default: 10000, description: 'bound of the default in-memory repository' },
          duplicateUri: { type: 'string', minLength: 1, description: 'endpoint receiving duplicates (default: skip them)' },
          removeOnFailure: { type: 'boolean', default: true, description: 'forget the key of a message that failed' },
        },
      },
    ],
  },
  fromConfig(value, ctx) {
    if (value === true) return {};
    if (typeof value === 'string') return { key: computedFromConfig(value, ctx) };
    const v = value as { expr?: string; fn?: string; repository?: string; maxKeys?: number; duplicateUri?: string; removeOnFailure?: boolean };
    const args: IdempotentArgs = { repository: v.repository, maxKeys: v.maxKeys, duplicateUri: v.duplicateUri, removeOnFailure: v.removeOnFailure };
    if (v.expr !== undefined) args.key = computedFromConfig({ expr: v.expr }, ctx);
    else if (v.fn !== undefined) args.key = computedFromConfig({ fn: v.fn }, ctx);
    return args;
  },
  compile(args, next, ctx) {
    const state = patternStateOf(ctx);
    const repo: IdempotentRepository =
      typeof args.repository === 'object' ? args.repository : args.repository !== undefined ? namedStore(state.idempotentRepositories, args.repository, 'idempotent repository') : new MemoryIdempotentRepository({ maxKeys: args.maxKeys ?? 10_000 });
    const scope = `${ctx.routeId}${ctx.path}`;
    const step = `${ctx.path} (idempotent)`;
    const keyFn = args.key ? evaluator(args.key) : (m: Message) => m.id;
    const dup = args.duplicateUri ? ctx.producer(args.duplicateUri) : undefined;
    const removeOnFailure = args.removeOnFailure ?? true;
    if (!state.duplicates.has(scope)) state.duplicates.set(scope, 0);
    const memory = repo instanceof MemoryIdempotentRepository ? repo : undefined;

    const proceed = (msg: Message, key: string, added: boolean): MaybePromise<Message> => {
      if (!added) {
        state.duplicates.set(scope, (state.duplicates.get(scope) ?? 0) + 1);
        ctx.logger.debug({ messageId: msg.id, key }, 'duplicate message');
        return dup ? dup(withHeaders(msg, { [DUPLICATE_HEADER]: true })).then(() => msg) : msg;
      }
      if (!removeOnFailure) return next(msg);
      const forget = (e: unknown): Promise<never> => repo.remove(scope, key).then(() => Promise.reject(e));
      try {
        const r = next(msg);
        return isPromise(r) ? r.then(undefined, forget) : r;
      } catch (e) {
        return forget(e);
      }
    };
    return (msg) =>
      then(keyFn(msg), (k) => {
        const key = keyOf(k, 'idempotency key', ctx.routeId, step);
        // the in-memory repository answers synchronously: keep the pipeline's fast path
        return memory ? proceed(msg, key, memory.addSync(scope, key)) : repo.add(scope, key).then((added) => proceed(msg, key, added));
      });
  },
};

export const contentSteps = [enrichStep, claimCheckStep, idempotentStep];
