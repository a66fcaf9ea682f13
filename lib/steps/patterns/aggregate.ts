import { Deadlines, type TimerHandle } from '../../clock.js';
import { traceLinks, TRACE_HEADERS } from '../../tracing/context.js';
import { BusbarError, wrapStepError } from '../../errors.js';
import { createMessage, headersWithout, withBody, withHeaders, type Message } from '../../message.js';
import type { AggregationGroup, AggregationStore } from '../../stores.js';
import { MemoryAggregationStore } from '../../stores-memory.js';
import { then, thenWith, type CompileContext, type ConfigContext, type MaybePromise, type Next, type StepKind } from '../../step.js';
import { computedFromConfig, computedSchema, evaluator, type Computed } from '../core.js';
import { AGGREGATE_HEADERS, keyOf, namedStore, patternStateOf, SPLIT_HEADERS } from './common.js';

export type CompletionReason = 'size' | 'split' | 'predicate' | 'timeout' | 'deadline' | 'interval' | 'stop' | 'capacity';

/** Header a late arrival (a message for a closed correlation key) carries on its way to `lateArrivals`. */
export const AGGREGATE_LATE_HEADER = 'busbar.aggregate.late';

export type AggregateStrategy = 'array' | 'concat' | 'sum' | 'count' | 'merge' | 'first' | 'last';

export interface AggregateArgs {
  /** Correlation key; default: the message's correlation id (split parts share their parent's). */
  correlate?: Computed | undefined;
  /** How the group's bodies become the output body (default `array`). */
  strategy?: AggregateStrategy | undefined;
  /** A function of the bodies (builder), or a JSONata expression / named function over the array of bodies (config). */
  combine?: ((bodies: unknown[], msgs: Message[]) => MaybePromise<unknown>) | Computed | undefined;
  /** Complete a group when it has this many messages. */
  size?: number | undefined;
  /** Complete when all parts of a split arrived (by `busbar.split.size` or the last-part flag). */
  fromSplit?: boolean | undefined;
  /** Complete when this holds for the group: a function of the bodies (builder), or an expression over the array of bodies. */
  predicate?: ((bodies: unknown[], msgs: Message[]) => MaybePromise<boolean>) | Computed | undefined;
  /** Complete a group that got no message for this long. */
  timeoutMs?: number | undefined;
  /** Complete every open group this often. */
  intervalMs?: number | undefined;
  /** Complete open groups when the route stops (default true); false leaves them in the (persistent) store. */
  completeOnStop?: boolean | undefined;
  /** The group store: an instance (builder) or the name of one registered on the engine (config). Default: in memory. */
  store?: AggregationStore | string | undefined;
  /** Bound on open groups (default 10 000): a new group beyond it completes the oldest (`capacity`). */
  maxGroups?: number | undefined;
  /** Complete a group this long after its first message, however busy it is (`deadline`). */
  completionDeadlineMs?: number | undefined;
  /**
   * Close a key when its group completes: later messages with that key are late arrivals
   * (counted in the route stats as `lateArrivals`, discarded or sent to `lateArrivals`).
   * Closed keys are remembered for `ttlMs` (default 300 000) and at most `maxKeys` of them
   * (default 10 000, oldest forgotten first).
   */
  close?: boolean | { ttlMs?: number | undefined; maxKeys?: number | undefined } | undefined;
  /** Endpoint late arrivals go to (with `busbar.aggregate.late: true`) instead of being discarded. */
  lateArrivals?: string | undefined;
}

function isComputed(v: unknown): v is Computed {
  return typeof v === 'object' && v !== null && ('fn' in v || 'expr' in v);
}

function strategyFn(s: AggregateStrategy): (bodies: unknown[]) => unknown {
  switch (s) {
    case 'array':
      return (b) => b;
    case 'concat':
      return (b) => (b.every((x) => typeof x === 'string') ? b.join('') : b.flat());
    case 'sum':
      return (b) => b.reduce<number>((a, x) => a + Number(x), 0);
    case 'count':
      return (b) => b.length;
    case 'merge':
      return (b) => Object.assign({}, ...b.map((x) => (x && typeof x === 'object' ? x : {})));
    case 'first':
      return (b) => b[0];
    case 'last':
      return (b) => b[b.length - 1];
  }
}

/** A function of the group's bodies, from a builder function or a config expression (over the array of bodies). */
function overBodies<R>(c: ((bodies: unknown[], msgs: Message[]) => MaybePromise<R>) | Computed): (msgs: Message[]) => MaybePromise<R> {
  if (!isComputed(c)) return (msgs) => c(msgs.map((m) => m.body), msgs);
  const ev = evaluator(c);
  return (msgs) => ev(withBody(msgs[0]!, msgs.map((m) => m.body))) as MaybePromise<R>;
}

const HEADERS_TO_DROP = Object.values(SPLIT_HEADERS) as string[];
const TRACED_HEADERS_TO_DROP = [...HEADERS_TO_DROP, TRACE_HEADERS.parent, TRACE_HEADERS.state];

/**
 * Aggregator: collects messages by correlation key in a group store and, when a completion
 * rule fires, emits the combined group as a new exchange on the rest of the route. The
 * incoming messages end at the aggregator (their sources are acknowledged once the group
 * store has them: a persistent store makes that safe across a crash).
 */
export const aggregateStep: StepKind<AggregateArgs> = {
  name: 'aggregate',
  description: 'Aggregator: groups messages by a correlation key and emits each completed group (by size, split end, predicate, inactivity timeout, interval, or on stop) as a new message with busbar.aggregate.completedBy / size / key headers.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      correlate: { ...computedSchema, description: 'correlation key: a JSONata expression or { fn } (default: the correlation id)' },
      strategy: { enum: ['array', 'concat', 'sum', 'count', 'merge', 'first', 'last'], description: 'how the bodies are combined (default array)' },
      combine: { ...computedSchema, description: 'JSONata expression or { fn } over the array of bodies; overrides strategy' },
      size: { type: 'integer', minimum: 1, description: 'complete a group at this many messages' },
      fromSplit: { type: 'boolean', description: 'complete when every part of a split arrived' },
      predicate: { ...computedSchema, description: 'complete when this expression over the array of bodies is true' },
      timeoutMs: { type: 'number', exclusiveMinimum: 0, description: 'complete a group idle for this long' },
      intervalMs: { type: 'number', exclusiveMinimum: 0, description: 'complete every open group this often' },
      completeOnStop: { type: 'boolean', default: true, description: 'complete open groups when the route stops' },
      store: { type: 'string', minLength: 1, description: 'name of an aggregation store registered on the engine (default: memory)' },
      maxGroups: { type: 'integer', minimum: 1, default: 10000, description: 'bound on open groups; beyond it the oldest group is completed' },
      completionDeadlineMs: { type: 'number', exclusiveMinimum: 0, description: 'complete a group this long after its first message (completedBy deadline)' },
      close: {
        oneOf: [
          { type: 'boolean', description: 'close a key when its group completes: later messages with it are late arrivals' },
          {
            type: 'object',
            additionalProperties: false,
            properties: {
              ttlMs: { type: 'number', exclusiveMinimum: 0, default: 300000, description: 'how long a closed key is remembered' },
              maxKeys: { type: 'integer', minimum: 1, default: 10000, description: 'at most this many closed keys are remembered (oldest forgotten first)' },
            },
          },
        ],
      },
      lateArrivals: { type: 'string', minLength: 1, description: 'endpoint late arrivals (messages for a closed key) go to; default: discarded and counted' },
    },
  },
  fromConfig(value, ctx: ConfigContext) {
    const v = value as Record<string, unknown>;
    const args: AggregateArgs = {
      strategy: v.strategy as AggregateStrategy | undefined,
      size: v.size as number | undefined,
      fromSplit: v.fromSplit as boolean | undefined,
      timeoutMs: v.timeoutMs as number | undefined,
      intervalMs: v.intervalMs as number | undefined,
      completeOnStop: v.completeOnStop as boolean | undefined,
      store: v.store as string | undefined,
      maxGroups: v.maxGroups as number | undefined,
      completionDeadlineMs: v.completionDeadlineMs as number | undefined,
      close: v.close as AggregateArgs['close'],
      lateArrivals: v.lateArrivals as string | undefined,
    };
    if (args.lateArrivals !== undefined && !args.close) ctx.problem({ path: `${ctx.path}/lateArrivals`, message: 'lateArrivals needs close: late arrivals are messages for a key closed on completion' });
    if (v.correlate !== undefined) args.correlate = computedFromConfig(v.correlate, ctx, `${ctx.path}/correlate`);
    if (v.combine !== undefined) args.combine = computedFromConfig(v.combine, ctx, `${ctx.path}/combine`);
    if (v.predicate !== undefined) args.predicate = computedFromConfig(v.predicate, ctx, `${ctx.path}/predicate`);
    if (args.size === undefined && !args.fromSplit && v.predicate === undefined && args.timeoutMs === undefined && args.intervalMs === undefined && args.completionDeadlineMs === undefined) {
      ctx.problem({ path: ctx.path, message: 'an aggregator needs a completion rule: size, fromSplit, predicate, timeoutMs, completionDeadlineMs or intervalMs' });
    }
    return args;
  },
  compile(args, next, ctx) {
    if (args.size === undefined && !args.fromSplit && !args.predicate && args.timeoutMs === undefined && args.intervalMs === undefined && args.completionDeadlineMs === undefined) {
      throw new BusbarError('INVALID_ROUTE', 'an aggregator needs a completion rule: size, fromSplit, predicate, timeoutMs, completionDeadlineMs or intervalMs', { details: { routeId: ctx.routeId, step: ctx.path } });
    }
    const state = patternStateOf(ctx);
    const store: AggregationStore =
      args.store === undefined ? new MemoryAggregationStore() : typeof args.store === 'string' ? namedStore(state.aggregationStores, args.store, 'aggregation store') : args.store;
    const scope = `${ctx.routeId}${ctx.path}`;
    const step = `${ctx.path} (aggregate)`;
    const correlate = args.correlate ? evaluator(args.correlate) : (m: Message) => m.correlationId;
    const combine = args.combine ? overBodies(args.combine) : ((f) => (msgs: Message[]) => f(msgs.map((m) => m.body)))(strategyFn(args.strategy ?? 'array'));
    const predicate = args.predicate ? overBodies<boolean>(args.predicate) : undefined;
    // every group's idle timeout has one length, and so has its completion deadline: each kind
    // is one timer over the groups in deadline order (see Deadlines), not a timer per group
    // re-armed on every message
    const expired = (reason: CompletionReason) => (key: string): void => {
      complete(key, reason).catch((err: unknown) => ctx.logger.error({ err, key }, `aggregator ${reason} completion failed`));
    };
    const idle = args.timeoutMs === undefined ? undefined : new Deadlines<string>(ctx.clock, args.timeoutMs, { fire: expired('timeout') });
    /** Deadlines armed by a group's first message and never pushed back. */
    const deadlines = args.completionDeadlineMs === undefined ? undefined : new Deadlines<string>(ctx.clock, args.completionDeadlineMs, { fire: expired('deadline') });
    // closed keys, oldest first, with when they closed: bounded in time and count
    const closing = args.close ? (typeof args.close === 'object' ? args.close : {}) : undefined;
    const closedTtl = closing?.ttlMs ?? 300_000;
    const closedMax = closing?.maxKeys ?? 10_000;
    const closed = new Map<string, number>();
    const counters = ctx.counters();
    if (closing) {
      counters.lateArrivals = 0;
      counters.closedKeys = 0;
    }
    const sendLate = args.lateArrivals === undefined ? undefined : ctx.producer(args.lateArrivals);
    if (args.lateArrivals !== undefined && !closing) throw new BusbarError('INVALID_ROUTE', 'lateArrivals needs close: late arrivals are messages for a key closed on completion');
    const forgetExpired = (now: number): void => {
      for (const [k, at] of closed) {
        if (now - at < closedTtl && closed.size <= closedMax) break;
        closed.delete(k);
      }
      counters.closedKeys = closed.size;
    };
    const isClosed = (key: string): boolean => {
      if (!closing || !closed.size) return false;
      forgetExpired(ctx.clock.now());
      return closed.has(key);
    };
    const late = (key: string, msg: Message): MaybePromise<Message> => {
      counters.lateArrivals!++;
      ctx.logger.debug({ messageId: msg.id, key }, sendLate ? 'aggregator: late arrival for a closed key, sent to lateArrivals' : 'aggregator: late arrival for a closed key, discarded');
      return sendLate ? sendLate(withHeaders(msg, { [AGGREGATE_LATE_HEADER]: true, [AGGREGATE_HEADERS.key]: key })).then(() => msg) : msg;
    };
    /** Parts expected per group, learned from split headers (in process; rebuilt from the group after a restart). */
    const expected = new Map<string, number>();
    let interval: TimerHandle | undefined;
    let stopping = false;
    const maxGroups = args.maxGroups ?? 10_000;
    /** Open group keys, oldest first (this process's view; rebuilt from the store on start). */
    const open = new Set<string>();

    // resolves once the aggregate was handed to the route (not when it finished), so a stop
    // hook's forced completions are in flight before the engine waits for the route to drain
    const emit = async (g: AggregationGroup, reason: CompletionReason): Promise<void> => {
      const first = g.messages[0]!;
      let body: unknown;
      try {
        body = await combine(g.messages);
      } catch (err) {
        // the group's messages are already acknowledged: hand the failure to the route's error policy with the group as body
        const failed = createMessage(g.messages.map((m) => m.body), { headers: { [AGGREGATE_HEADERS.key]: g.key, [AGGREGATE_HEADERS.completedBy]: reason }, correlationId: first.correlationId });
        ctx.spawn(failed, () => {
          throw wrapStepError(err, ctx.routeId, step);
        });
        return;
      }
      // traced messages: the aggregate's exchange links every contributing message's span (instead of one parent)
      const links = traceLinks(g.messages);
      const headers = headersWithout(first.headers, links === undefined ? HEADERS_TO_DROP : TRACED_HEADERS_TO_DROP);
      headers[AGGREGATE_HEADERS.completedBy] = reason;
      headers[AGGREGATE_HEADERS.size] = g.messages.length;
      headers[AGGREGATE_HEADERS.key] = g.key;
      if (links !== undefined) headers[TRACE_HEADERS.links] = links;
      ctx.spawn(createMessage(body, { headers, correlationId: first.correlationId, causationId: first.id }), next);
    };

    const complete = async (key: string, reason: CompletionReason): Promise<void> => {
      idle?.delete(key);
      deadlines?.delete(key);
      // closed before the group is taken: a message arriving meanwhile is already late
      if (closing && reason !== 'stop') {
        closed.delete(key);
        closed.set(key, ctx.clock.now());
        forgetExpired(ctx.clock.now());
      }
      expected.delete(key);
      open.delete(key);
      const g = await store.take(scope, key);
      if (g && g.messages.length) await emit(g, reason);
    };

    const completeAll = async (reason: CompletionReason): Promise<void> => {
      for (const g of await store.groups(scope)) await complete(g.key, reason);
    };

    const splitDone = (key: string, g: AggregationGroup, msg: Message): boolean => {
      let want = expected.get(key);
      if (want === undefined) {
        const scan = (m: Message): number | undefined => {
          const size = m.headers[SPLIT_HEADERS.size];
          if (typeof size === 'number') return size;
          const index = m.headers[SPLIT_HEADERS.index];
          return m.headers[SPLIT_HEADERS.last] === true && typeof index === 'number' ? index + 1 : undefined;
        };
        want = scan(msg);
        // after a restart the part that knew the size may already be in the group
        if (want === undefined && g.messages.length > 1) for (const m of g.messages) if ((want = scan(m)) !== undefined) break;
        if (want !== undefined) expected.set(key, want);
      }
      return want !== undefined && g.messages.length >= want;
    };

    ctx.onStart(async () => {
      stopping = false;
      if (args.intervalMs !== undefined) {
        interval = ctx.clock.setInterval(() => {
          completeAll('interval').catch((err: unknown) => ctx.logger.error({ err }, 'aggregator interval completion failed'));
        }, args.intervalMs);
      }
      // groups left in a persistent store by an earlier run get their timeouts back
      // (each kind in its own deadline order: idle timeouts by last message, deadlines by first)
      const left = (await store.groups(scope)).sort((a, b) => a.createdAt - b.createdAt);
      for (const g of left) {
        open.add(g.key);
        deadlines?.add(g.key, g.createdAt + args.completionDeadlineMs!);
      }
      if (idle !== undefined) for (const g of left.sort((a, b) => a.updatedAt - b.updatedAt)) idle.add(g.key, g.updatedAt + args.timeoutMs!);
    });
    ctx.onStop(async () => {
      stopping = true;
      if (interval !== undefined) ctx.clock.clearInterval(interval);
      interval = undefined;
      idle?.clear();
      deadlines?.clear();
      if (args.completeOnStop !== false) await completeAll('stop');
    });

    const done = (key: string, reason: CompletionReason | undefined, msg: Message): MaybePromise<Message> => (reason ? complete(key, reason).then(() => msg) : msg);
    // `now`: the clock read once for the message (the store's time and the timeouts')
    const onAppended = (key: string, g: AggregationGroup, msg: Message, now: number): MaybePromise<Message> => {
      if (!stopping) {
        idle?.touch(key, now);
        if (g.messages.length === 1) deadlines?.add(key, now + args.completionDeadlineMs!);
      }
      if (args.size !== undefined && g.messages.length >= args.size) return done(key, 'size', msg);
      if (args.fromSplit && splitDone(key, g, msg)) return done(key, 'split', msg);
      if (!predicate) return msg;
      return then(predicate(g.messages), (yes) => done(key, yes ? 'predicate' : undefined, msg));
    };

    // with the in-memory store (and synchronous key functions) a message that completes
    // nothing stays on the pipeline's synchronous path
    const memory = store instanceof MemoryAggregationStore ? store : undefined;
    const append = (key: string, msg: Message, now: number): MaybePromise<Message> =>
      memory ? onAppended(key, memory.appendSync(scope, key, msg, now), msg, now) : store.append(scope, key, msg, now).then((g) => onAppended(key, g, msg, now));
    // no keys closed on completion: a group the in-memory store has open takes the message with one lookup (not the open set's and the store's)
    const fast = closing === undefined ? memory : undefined;
    const withKey = (msg: Message, k: unknown): MaybePromise<Message> => {
      const key = keyOf(k, 'correlation', ctx.routeId, step);
      const now = ctx.clock.now();
      if (fast !== undefined) {
        const g = fast.appendToOpen(scope, key, msg, now);
        if (g !== undefined) return onAppended(key, g, msg, now);
      }
      if (open.has(key)) return append(key, msg, now);
      if (isClosed(key)) return late(key, msg);
      open.add(key);
      // memory stays bounded however many keys come in: the oldest group goes out first
      if (open.size > maxGroups) return complete(open.values().next().value as string, 'capacity').then(() => append(key, msg, ctx.clock.now()));
      return append(key, msg, now);
    };
    // (no closure per message for the key: thenWith makes one only for a key that is a promise)
    const aggregate: Next = (msg) => thenWith(correlate(msg), withKey, msg);
    return aggregate;
  },
};

// ---------------------------------------------------------------- resequencer
export interface ResequenceArgs {
  /** `batch`: collect, sort, emit; `stream`: emit as soon as the next sequence number is there. */
  mode: 'batch' | 'stream';
  /** The sequence key: a number for stream mode; anything comparable for batch mode. */
  by: Computed;
  /** Batch mode: emit a batch at this many messages (default 100). */
  batchSize?: number | undefined;
  /** Batch: emit a batch this long after its first message; stream: skip a gap nobody filled for this long (default 1000). */
  timeoutMs?: number | undefined;
  /** Stream mode: at most this many messages wait for a gap; then the gap is skipped (default 1000). */
  capacity?: number | undefined;
  /** Stream mode: the first sequence number (default: the first one seen). */
  start?: number | undefined;
  /** Batch mode: sort descending. */
  reverse?: boolean | undefined;
}

export const RESEQUENCE_LATE_HEADER = 'busbar.resequence.late';

/**
 * Resequencer. Messages end here and are re-emitted, in order, as new exchanges on the
 * rest of the route. Nothing is dropped: a message later than a skipped gap (or a
 * duplicate number) is emitted at once with `busbar.resequence.late: true`.
 */
export const resequenceStep: StepKind<ResequenceArgs> = {
  name: 'resequence',
  description: 'Resequencer: re-emits messages in the order of a sequence key, in batches (collect, sort, emit) or as a stream (emit as soon as the next number is there; gaps skipped after a timeout or at capacity).',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['by'],
    properties: {
      mode: { enum: ['batch', 'stream'], default: 'batch', description: 'batch: collect, sort, emit; stream: emit as soon as the next number arrives' },
      by: { ...computedSchema, description: 'sequence key: JSONata expression or { fn }' },
      batchSize: { type: 'integer', minimum: 1, description: 'batch mode: messages per batch (default 100)' },
      timeoutMs: { type: 'number', exclusiveMinimum: 0, description: 'batch: max wait after a batch\'s first message; stream: how long a gap may stay open (default 1000)' },
      capacity: { type: 'integer', minimum: 1, description: 'stream mode: max messages waiting for a gap (default 1000)' },
      start: { type: 'integer', description: 'stream mode: the first sequence number (default: the first seen)' },
      reverse: { type: 'boolean', description: 'batch mode: descending order' },
    },
  },
  fromConfig(value, ctx) {
    const v = value as Omit<ResequenceArgs, 'by'> & { by: unknown };
    return { ...v, mode: v.mode ?? 'batch', by: computedFromConfig(v.by, ctx, `${ctx.path}/by`) };
  },
  compile(args, next, ctx) {
    const seqOf = evaluator(args.by);
    const timeoutMs = args.timeoutMs ?? 1000;
    const step = `${ctx.path} (resequence)`;
    return args.mode === 'stream' ? streamResequencer(args, next, ctx, seqOf, timeoutMs, step) : batchResequencer(args, next, ctx, seqOf, timeoutMs, step);
  },
};

function batchResequencer(args: ResequenceArgs, next: Next, ctx: CompileContext, seqOf: (m: Message) => MaybePromise<unknown>, timeoutMs: number, step: string): Next {
  const batchSize = args.batchSize ?? 100;
  let batch: Array<{ seq: unknown; msg: Message; n: number }> = [];
  let timer: TimerHandle | undefined;
  let counter = 0;
  const flush = (): void => {
    if (timer !== undefined) ctx.clock.clearTimeout(timer);
    timer = undefined;
    const out = batch;
    batch = [];
    const dir = args.reverse ? -1 : 1;
    // stable: equal keys keep their arrival order. Runs in a timer: keys that cannot be
    // compared fail their messages through the error policy instead of escaping
    try {
      out.sort((a, b) => (a.seq === b.seq ? a.n - b.n : (a.seq! < b.seq! ? -1 : 1) * dir));
    } catch (err) {
      for (const e of out) ctx.spawn(e.msg, () => {
        throw wrapStepError(err, ctx.routeId, step);
      });
      return;
    }
    for (const e of out) ctx.spawn(e.msg, next);
  };
  ctx.onStop(flush);
  return async (msg) => {
    const seq = await seqOf(msg);
    keyOf(seq, 'sequence', ctx.routeId, step);
    batch.push({ seq, msg, n: counter++ });
    if (batch.length >= batchSize) flush();
    else if (timer === undefined) timer = ctx.clock.setTimeout(flush, timeoutMs);
    return msg;
  };
}

function streamResequencer(args: ResequenceArgs, next: Next, ctx: CompileContext, seqOf: (m: Message) => MaybePromise<unknown>, timeoutMs: number, step: string): Next {
  const capacity = args.capacity ?? 1000;
  const waiting = new Map<number, Message>();
  let expected: number | undefined = args.start;
  let gapTimer: TimerHandle | undefined;

  const drain = (): void => {
    while (expected !== undefined && waiting.has(expected)) {
      const m = waiting.get(expected)!;
      waiting.delete(expected);
      expected++;
      ctx.spawn(m, next);
    }
    if (gapTimer !== undefined) ctx.clock.clearTimeout(gapTimer);
    gapTimer = waiting.size ? ctx.clock.setTimeout(skipGap, timeoutMs) : undefined;
  };
  const skipGap = (): void => {
    gapTimer = undefined;
    if (!waiting.size) return;
    const lowest = Math.min(...waiting.keys());
    ctx.logger.warn({ from: expected, to: lowest - 1 }, 'resequencer: skipping a gap in the sequence');
    expected = lowest;
    drain();
  };
  ctx.onStop(() => {
    if (gapTimer !== undefined) ctx.clock.clearTimeout(gapTimer);
    gapTimer = undefined;
    for (const k of [...waiting.keys()].sort((a, b) => a - b)) ctx.spawn(waiting.get(k)!, next);
    waiting.clear();
  });
  return async (msg) => {
    const raw = await seqOf(msg);
    const seq = typeof raw === 'number' ? raw : Number(raw);
    if (!Number.isInteger(seq)) {
      throw new BusbarError('CORRELATION_KEY', `route "${ctx.routeId}", step ${step}: stream resequencing needs an integer sequence number, got ${JSON.stringify(raw)}`, { details: { routeId: ctx.routeId, step } });
    }
    expected ??= seq;
    if (seq < expected || waiting.has(seq)) {
      ctx.spawn(withHeaders(msg, { [RESEQUENCE_LATE_HEADER]: true }), next);
      return msg;
    }
    waiting.set(seq, msg);
    if (waiting.size > capacity) skipGap();
    else drain();
    return msg;
  };
}

export const aggregateSteps = [aggregateStep, resequenceStep];
