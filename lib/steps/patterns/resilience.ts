import { CircuitBreaker, type CircuitBreakerOptions } from '../../circuit-breaker.js';
import { Deadlines, sleep } from '../../clock.js';
import { BusbarError, isBusbarError, isRetryable, wrapStepError } from '../../errors.js';
import { withHeaders, type Message } from '../../message.js';
import type { RedeliveryPolicy } from '../../model.js';
import { ATTEMPT_HEADER, backoff } from '../../route.js';
import { isPromise, type MaybePromise, type Next, type StepDefinition, type StepKind } from '../../step.js';
import { patternStateOf } from './common.js';

const identity: Next = (m) => m;

/** Run a compiled fragment, turning a synchronous throw into a rejection. */
function attempt(run: Next, msg: Message): Promise<Message> {
  try {
    return Promise.resolve(run(msg));
  } catch (e) {
    return Promise.reject(e);
  }
}

function matches(err: BusbarError, codes: readonly string[] | undefined): boolean {
  if (!codes?.length) return true;
  const className = (err.cause as { constructor?: { name?: string } } | undefined)?.constructor?.name;
  return codes.some((c) => c === err.code || c === className || (c.endsWith('*') && err.code.startsWith(c.slice(0, -1))));
}

const redeliveryProps = {
  maxAttempts: { type: 'integer', minimum: 1, description: 'total attempts including the first' },
  delayMs: { type: 'number', minimum: 0, default: 0, description: 'delay before the first redelivery' },
  multiplier: { type: 'number', minimum: 1, default: 2, description: 'each further delay is multiplied by this' },
  maxDelayMs: { type: 'number', minimum: 0, description: 'cap of one delay' },
  jitter: { type: 'number', minimum: 0, maximum: 1, description: 'random spread 0..1' },
  retryNonRetryable: { type: 'boolean', default: false, description: 'retry errors flagged not retryable too' },
} as const;

// ---------------------------------------------------------------- step-level redelivery
export interface RetryArgs extends RedeliveryPolicy {
  /** The steps retried (only them: what follows is not re-run). */
  steps: StepDefinition[];
  /** Only retry errors with these codes / class names / code prefixes (`BUSBAR_ERR_DB_*`). */
  on?: string[] | undefined;
}

/**
 * Redelivery at a step (Camel's redelivery at the point of failure): only the wrapped steps
 * run again, with backoff on the engine clock and the attempt number in `busbar.attempt`.
 * When attempts run out, the error goes on to the route's policy (dead letter etc.).
 */
export const retryStep: StepKind<RetryArgs> = {
  name: 'retry',
  description: 'Step-level redelivery: re-run the wrapped steps on failure (max attempts, exponential backoff with multiplier, cap and jitter, attempt number in busbar.attempt) before the route\'s error policy sees the error.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['maxAttempts', 'steps'],
    properties: {
      ...redeliveryProps,
      on: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'only retry these error codes / class names / code prefixes ending in *' },
      steps: { type: 'array', minItems: 1, description: 'the steps to retry' },
    },
  },
  fromConfig(value, ctx) {
    const v = value as RetryArgs & { steps: unknown };
    return { ...v, steps: ctx.steps(v.steps, `${ctx.path}/steps`) };
  },
  compile(args, next, ctx) {
    const inner = ctx.compile(args.steps, identity, `${ctx.path}/steps`);
    const step = `${ctx.path} (retry)`;
    const run = async (msg: Message, first: unknown): Promise<Message> => {
      let failure = first;
      for (let n = 1; ; n++) {
        const err = isBusbarError(failure) ? failure : wrapStepError(failure, ctx.routeId, step);
        if (n >= args.maxAttempts || !(isRetryable(err) || args.retryNonRetryable) || !matches(err, args.on)) {
          err.details.stepAttempts = n;
          throw err;
        }
        const delay = backoff(args, n);
        ctx.logger.warn({ messageId: msg.id, attempt: n, code: err.code, delayMs: delay }, `retrying step after ${err.message}`);
        if (delay > 0) await sleep(ctx.clock, delay);
        try {
          return await inner(withHeaders(msg, { [ATTEMPT_HEADER]: n + 1 }));
        } catch (e) {
          failure = e;
        }
      }
    };
    return (msg) => {
      let r: MaybePromise<Message>;
      try {
        r = inner(msg);
      } catch (e) {
        return run(msg, e).then(next);
      }
      return isPromise(r) ? r.then(next, (e: unknown) => run(msg, e).then(next)) : next(r);
    };
  },
};

// ---------------------------------------------------------------- timeout
export interface TimeoutArgs {
  ms: number;
  steps: StepDefinition[];
}

/**
 * A time limit on some steps: past it the message fails with `BUSBAR_ERR_TIMEOUT`
 * (retryable). The late work is not cancelled (JavaScript cannot stop it), but its
 * outcome is ignored.
 */
export const timeoutStep: StepKind<TimeoutArgs> = {
  name: 'timeout',
  description: 'Per-step timeout: the wrapped steps must finish within `ms` (engine clock) or the message fails with BUSBAR_ERR_TIMEOUT.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['ms', 'steps'],
    properties: { ms: { type: 'number', exclusiveMinimum: 0, description: 'time limit in milliseconds' }, steps: { type: 'array', minItems: 1, description: 'the steps under the limit' } },
  },
  fromConfig(value, ctx) {
    const v = value as { ms: number; steps: unknown };
    return { ms: v.ms, steps: ctx.steps(v.steps, `${ctx.path}/steps`) };
  },
  compile({ ms, steps }, next, ctx) {
    const inner = ctx.compile(steps, identity, `${ctx.path}/steps`);
    // one time limit for every message: one timer over the messages in the steps (see Deadlines), not one each
    const limits = new Deadlines(ctx.clock, ms);
    return (msg) => {
      const r = attempt(inner, msg);
      return new Promise<Message>((resolve, reject) => {
        const expire = (): void => reject(new BusbarError('TIMEOUT', `route "${ctx.routeId}", step ${ctx.path} (timeout): did not finish within ${ms} ms`, { details: { routeId: ctx.routeId, step: `${ctx.path} (timeout)`, timeoutMs: ms } }));
        limits.add(expire);
        r.then(
          (v) => {
            limits.delete(expire);
            resolve(v);
          },
          (e: unknown) => {
            limits.delete(expire);
            reject(e);
          },
        );
      }).then(next);
    };
  },
};

// ---------------------------------------------------------------- circuit breaker
export const CIRCUIT_HEADER = 'busbar.circuit.state';

export interface CircuitBreakerArgs extends CircuitBreakerOptions {
  /** Name (default `<routeId><step path>`); `patternState(engine).breakers` finds it by name. */
  name?: string | undefined;
  steps: StepDefinition[];
  /** Run instead when the circuit is open or the steps failed (the message carries busbar.error.* / busbar.circuit.state). */
  fallback?: StepDefinition[] | undefined;
}

export const circuitBreakerStep: StepKind<CircuitBreakerArgs> = {
  name: 'circuitBreaker',
  description: 'Circuit breaker around some steps: opens when the failure rate over the latest calls reaches a threshold, refuses calls (BUSBAR_ERR_CIRCUIT_OPEN, or the fallback) while open, lets trial calls through when half-open.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['steps'],
    properties: {
      name: { type: 'string', minLength: 1, description: 'breaker name (default route id + step path)' },
      failureRateThreshold: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.5, description: 'failure rate that opens the circuit' },
      windowSize: { type: 'integer', minimum: 1, default: 20, description: 'latest calls the rate is computed over' },
      minimumCalls: { type: 'integer', minimum: 1, default: 5, description: 'calls needed before the circuit may open' },
      openMs: { type: 'number', minimum: 0, default: 30000, description: 'how long the circuit stays open' },
      halfOpenCalls: { type: 'integer', minimum: 1, default: 1, description: 'trial calls when half-open' },
      steps: { type: 'array', minItems: 1, description: 'the protected steps' },
      fallback: { type: 'array', description: 'steps run when open or failed' },
    },
  },
  fromConfig(value, ctx) {
    const v = value as CircuitBreakerArgs & { steps: unknown; fallback?: unknown };
    return { ...v, steps: ctx.steps(v.steps, `${ctx.path}/steps`), fallback: v.fallback === undefined ? undefined : ctx.steps(v.fallback, `${ctx.path}/fallback`) };
  },
  compile(args, next, ctx) {
    const inner = ctx.compile(args.steps, identity, `${ctx.path}/steps`);
    const fallback = args.fallback ? ctx.compile(args.fallback, next, `${ctx.path}/fallback`) : undefined;
    const name = args.name ?? `${ctx.routeId}${ctx.path}`;
    const step = `${ctx.path} (circuitBreaker)`;
    // one breaker per name: steps naming the same breaker share its state (and `engine.check` reuses it)
    const breakers = patternStateOf(ctx).breakers;
    let breaker = breakers.get(name);
    if (!breaker) {
      const b = new CircuitBreaker(name, ctx.clock, args);
      b.onStateChange((state) => ctx.logger.warn({ breaker: name, state, failureRate: b.failureRate }, `circuit breaker ${state}`));
      breakers.set(name, (breaker = b));
    }
    const cb = breaker;
    const withFallback = (msg: Message, err: BusbarError): MaybePromise<Message> => {
      if (!fallback) throw err;
      return fallback(
        withHeaders(msg, { [CIRCUIT_HEADER]: cb.state, 'busbar.error.code': err.code, 'busbar.error.message': err.message }),
      );
    };
    return (msg) => {
      if (!cb.tryAcquire()) return withFallback(msg, cb.openError(ctx.routeId, step));
      return attempt(inner, msg).then(
        (reply) => {
          cb.success();
          return next(reply);
        },
        (e: unknown) => {
          cb.failure();
          return withFallback(msg, isBusbarError(e) ? e : wrapStepError(e, ctx.routeId, step));
        },
      );
    };
  },
};

export const resilienceSteps = [retryStep, timeoutStep, circuitBreakerStep];
