import { sleep } from '../../clock.js';
import { BusbarError, wrapStepError } from '../../errors.js';
import { deriveMessage, merged, withBody, withHeaders, type Message } from '../../message.js';
import { isPromise, then, thenWith, type CompileContext, type ConfigContext, type MaybePromise, type Next, type StepDefinition, type StepKind } from '../../step.js';
import { computedFromConfig, computedSchema, evaluator, type Computed } from '../core.js';
import { annotate, combineReplies, combinerSchema, copyBody, requesterCache, senderCache, syncSenderCache, type Combiner, type ReplyStrategy } from './common.js';

const identity: Next = (m) => m;

function combinerFromConfig(v: unknown, ctx: ConfigContext, path: string): Combiner | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v as Combiner;
  const f = ctx.fn((v as { fn: string }).fn, `${path}/fn`);
  return f ? (replies, original) => f(replies.map((r) => r.body), original) : undefined;
}

/** Run `run` over `items` in order (stopping at the first failure) or all at once (waiting for every one). */
function runAll<I>(items: readonly I[], parallel: boolean, run: (item: I, i: number) => MaybePromise<Message>, ctx: CompileContext, step: string): MaybePromise<Message[]> {
  if (parallel) {
    return Promise.allSettled(items.map((it, i) => Promise.resolve().then(() => run(it, i)))).then((rs) => {
      const failed = rs.findIndex((r) => r.status === 'rejected');
      if (failed >= 0) throw annotate((rs[failed] as PromiseRejectedResult).reason, { branch: failed }, ctx.routeId, step);
      return rs.map((r) => (r as PromiseFulfilledResult<Message>).value);
    });
  }
  const out: Message[] = [];
  const from = (i: number): MaybePromise<Message[]> => {
    for (; i < items.length; i++) {
      let r: MaybePromise<Message>;
      try {
        r = run(items[i]!, i);
      } catch (e) {
        throw annotate(e, { branch: i }, ctx.routeId, step);
      }
      if (isPromise(r)) {
        const at = i;
        return r.then(
          (m) => {
            out.push(m);
            return from(at + 1);
          },
          (e: unknown) => {
            throw annotate(e, { branch: at }, ctx.routeId, step);
          },
        );
      }
      out.push(r);
    }
    return out;
  };
  return from(0);
}

function toUris(v: unknown, delimiter: string, routeId: string, step: string): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return v.split(delimiter).map((s) => s.trim()).filter(Boolean);
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  throw new BusbarError('INVALID_URI', `route "${routeId}", step ${step}: recipients must be a string or an array of strings, got ${JSON.stringify(v)}`, { details: { routeId, step } });
}

// ---------------------------------------------------------------- recipient list
export interface RecipientListArgs {
  /** Static recipients (validated when the route is created). */
  recipients?: string[] | undefined;
  /** Recipients computed per message: a string (split on `delimiter`) or an array of URIs. */
  compute?: Computed | undefined;
  delimiter?: string | undefined;
  /** Send to all at once (default: one after another, stopping at the first failure). */
  parallel?: boolean | undefined;
  /** What the message becomes afterwards (default `original`: replies are ignored). */
  strategy?: Combiner | undefined;
}

export const recipientListStep: StepKind<RecipientListArgs> = {
  name: 'recipientList',
  description: 'Recipient list: send the message to a static list of endpoints or to endpoints computed from the message; replies combined by a strategy (default: keep the original).',
  configSchema: {
    oneOf: [
      { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, description: 'static list of endpoint URIs' },
      {
        type: 'object',
        additionalProperties: false,
        properties: {
          recipients: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, description: 'static list of endpoint URIs' },
          expr: { type: 'string', minLength: 1, description: 'JSONata expression giving a URI, a delimited list, or an array of URIs' },
          fn: { type: 'string', minLength: 1, description: 'registered function giving the recipients' },
          delimiter: { type: 'string', minLength: 1, default: ',', description: 'separator of a computed string of URIs' },
          parallel: { type: 'boolean', default: false, description: 'send to all recipients at once' },
          strategy: { ...combinerSchema, description: 'how replies become the body (default original)' },
        },
      },
    ],
  },
  fromConfig(value, ctx) {
    if (Array.isArray(value)) return { recipients: value as string[] };
    const v = value as { recipients?: string[]; expr?: string; fn?: string; delimiter?: string; parallel?: boolean; strategy?: unknown };
    const args: RecipientListArgs = { recipients: v.recipients, delimiter: v.delimiter, parallel: v.parallel, strategy: combinerFromConfig(v.strategy, ctx, `${ctx.path}/strategy`) };
    if (v.expr !== undefined) args.compute = computedFromConfig({ expr: v.expr }, ctx);
    else if (v.fn !== undefined) args.compute = computedFromConfig({ fn: v.fn }, ctx);
    else if (!v.recipients) ctx.problem({ path: ctx.path, message: 'a recipient list needs recipients, expr or fn' });
    return args;
  },
  compile(args, next, ctx) {
    const step = `${ctx.path} (recipientList)`;
    const parallel = args.parallel ?? false;
    const strategy = args.strategy ?? 'original';
    const sender = senderCache(ctx);
    // a strategy that combines replies needs replies: ask each recipient for one
    const requester = strategy === 'original' ? undefined : requesterCache(ctx);
    const send = (msg: Message, uri: string): Promise<Message> => (requester ? requester(uri)(msg) : sender(uri)(msg).then((r) => r ?? msg));
    const finish = (msg: Message, replies: Message[]): MaybePromise<Message> => (strategy === 'original' ? next(msg) : then(combineReplies(strategy, replies, msg), (body) => next(withBody(msg, body))));
    // the common case (one after another, replies ignored): recipients that are done when
    // their send returns (in-memory sinks) cost no promise; a send that is not waits its turn
    const syncSender = strategy === 'original' && !parallel ? syncSenderCache(ctx) : sender;
    // `senders`: the recipients' senders when the list is fixed (resolved once, not looked up per message)
    type Senders = ReadonlyArray<(m: Message) => MaybePromise<Message | undefined>> | undefined;
    // a recipient still busy is waited for apart: closures made in inTurn would cost every
    // message a context for its variables, every recipient done at once or not
    const inTurnLater = (r: Promise<unknown>, msg: Message, uris: readonly string[], senders: Senders, at: number): Promise<Message> =>
      r.then(
        () => inTurn(msg, uris, senders, at + 1),
        (e: unknown) => {
          throw annotate(e, { branch: at }, ctx.routeId, step);
        },
      );
    const inTurn = (msg: Message, uris: readonly string[], senders: Senders, from = 0): MaybePromise<Message> => {
      for (let i = from; i < uris.length; i++) {
        let r: MaybePromise<Message | undefined>;
        try {
          r = (senders === undefined ? syncSender(uris[i]!) : senders[i]!)(msg);
        } catch (e) {
          throw annotate(e, { branch: i }, ctx.routeId, step);
        }
        if (isPromise(r)) return inTurnLater(r, msg, uris, senders, i);
      }
      return next(msg);
    };
    // decided now: the closures of the general case would cost the common one a context per message
    const deliver: (msg: Message, uris: readonly string[]) => MaybePromise<Message> =
      strategy === 'original' && !parallel
        ? (msg, uris) => inTurn(msg, uris, undefined)
        : (msg, uris) => then(runAll(uris, parallel, (u) => send(msg, u), ctx, step), (replies) => finish(msg, replies));
    if (args.recipients) {
      const uris = args.recipients;
      // resolve now: a wrong URI (or one that cannot reply) fails when the route is created
      const senders = uris.map((u) => (requester ?? syncSender)(u));
      if (!args.compute) return strategy === 'original' && !parallel ? (msg) => inTurn(msg, uris, senders) : (msg) => deliver(msg, uris);
    }
    if (!args.compute) throw new BusbarError('INVALID_ROUTE', 'a recipient list needs recipients or a function / expression computing them');
    const compute = evaluator(args.compute);
    const delimiter = args.delimiter ?? ',';
    const fixed = args.recipients ?? [];
    const deliverTo = (msg: Message, v: unknown): MaybePromise<Message> => {
      const computed = toUris(v, delimiter, ctx.routeId, step);
      return deliver(msg, fixed.length ? [...fixed, ...computed] : computed);
    };
    return (msg) => thenWith(compute(msg), deliverTo, msg);
  },
};

// ---------------------------------------------------------------- multicast
export interface MulticastArgs {
  branches: StepDefinition[][];
  parallel?: boolean | undefined;
  /** How branch replies become the body (default `array`: the reply bodies in branch order). */
  strategy?: Combiner | undefined;
  /** Give every branch the same body object instead of its own deep copy (faster; only for branches that do not mutate). */
  shareBody?: boolean | undefined;
}

export const multicastStep: StepKind<MulticastArgs> = {
  name: 'multicast',
  description: 'Multicast: every branch gets its own copy of the message (sequentially or in parallel); their replies are combined by a strategy (default: array of reply bodies) and the route goes on.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['branches'],
    properties: {
      branches: { type: 'array', minItems: 1, items: { type: 'array' }, description: 'lists of steps, one per branch' },
      parallel: { type: 'boolean', default: false, description: 'run the branches at once' },
      strategy: { ...combinerSchema, description: 'how replies become the body (default array)' },
      shareBody: { type: 'boolean', default: false, description: 'do not deep-copy the body for each branch' },
    },
  },
  fromConfig(value, ctx) {
    const v = value as { branches: unknown[]; parallel?: boolean; strategy?: unknown; shareBody?: boolean };
    return {
      branches: v.branches.map((b, i) => ctx.steps(b, `${ctx.path}/branches/${i}`)),
      parallel: v.parallel,
      shareBody: v.shareBody,
      strategy: combinerFromConfig(v.strategy, ctx, `${ctx.path}/strategy`),
    };
  },
  compile(args, next, ctx) {
    const branches = args.branches.map((b, i) => ctx.compile(b, identity, `${ctx.path}/branches/${i}`));
    const strategy = args.strategy ?? 'array';
    const copy = args.shareBody ? (m: Message) => m : (m: Message) => withBody(m, copyBody(m.body));
    return (msg) =>
      then(runAll(branches, args.parallel ?? false, (b) => b(copy(msg)), ctx, `${ctx.path} (multicast)`), (replies) => then(combineReplies(strategy, replies, msg), (body) => next(withBody(msg, body))));
  },
};

// ---------------------------------------------------------------- scatter-gather
/** One reply a scatter-gather got: from which recipient (its URI, or `branches/<i>`) and its index among the targets. */
export interface GatheredReply {
  /** Position among the targets: recipients first (in order), then branches. */
  readonly index: number;
  /** The recipient's endpoint URI, or `branches/<i>` for a branch of steps. */
  readonly recipient: string;
  readonly message: Message;
}

/** A recipient that gave no reply: it failed (its error code) or did not answer in time (`BUSBAR_ERR_TIMEOUT`). */
export interface MissingReply {
  readonly index: number;
  readonly recipient: string;
  readonly code: string;
  /** The error's message (for failed recipients). */
  readonly error?: string;
}

/** What a scatter-gather strategy gets besides the replies: who answered, who failed, who timed out. */
export interface GatherResult {
  /** Replies in target order (the same messages as the strategy's first argument). */
  readonly replies: readonly GatheredReply[];
  readonly failed: readonly MissingReply[];
  readonly timedOut: readonly MissingReply[];
}

/** A scatter-gather strategy: a name, or a function of the replies, the original (with `busbar.scatter.*` headers) and the gather result. */
export type ScatterCombiner = ReplyStrategy | ((replies: Message[], original: Message, gather: GatherResult) => unknown);

export interface ScatterGatherArgs {
  /** Endpoints to ask; and/or `branches` of steps. */
  recipients?: string[] | undefined;
  branches?: StepDefinition[][] | undefined;
  /** Give up waiting after this long and go on with the replies that arrived (default 5000). */
  timeoutMs?: number | undefined;
  /** Fewer replies than this is a failure (`BUSBAR_ERR_NO_REPLIES`); default 1. */
  minReplies?: number | undefined;
  strategy?: ScatterCombiner | undefined;
  /**
   * Log level of expected partial results (a recipient timing out, a branch failing while
   * enough replies came): `debug` by default, as they are counted in the route's stats.
   */
  logPartial?: 'debug' | 'info' | 'warn' | undefined;
}

export const SCATTER_HEADERS = {
  replies: 'busbar.scatter.replies',
  failed: 'busbar.scatter.failed',
  timedOut: 'busbar.scatter.timedOut',
  errors: 'busbar.scatter.errors',
} as const;

export const scatterGatherStep: StepKind<ScatterGatherArgs> = {
  name: 'scatterGather',
  description: 'Scatter-gather: ask several endpoints or branches in parallel, gather the replies that arrive within a timeout (partial results allowed, with busbar.scatter.* headers saying what is missing), combine them and go on.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      recipients: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'endpoint URIs to ask' },
      branches: { type: 'array', items: { type: 'array' }, description: 'lists of steps, one per branch' },
      timeoutMs: { type: 'number', exclusiveMinimum: 0, default: 5000, description: 'how long to wait for replies' },
      minReplies: { type: 'integer', minimum: 0, default: 1, description: 'fewer replies than this fails the message' },
      strategy: { ...combinerSchema, description: 'how replies become the body (default array); a function gets (reply bodies, original message, gather result)' },
      logPartial: { enum: ['debug', 'info', 'warn'], default: 'debug', description: 'log level of expected partial results (timed-out or failed recipients); they are counted in the route stats' },
    },
  },
  fromConfig(value, ctx) {
    const v = value as { recipients?: string[]; branches?: unknown[]; timeoutMs?: number; minReplies?: number; strategy?: unknown; logPartial?: ScatterGatherArgs['logPartial'] };
    if (!v.recipients?.length && !v.branches?.length) ctx.problem({ path: ctx.path, message: 'a scatter-gather needs recipients or branches' });
    let strategy: ScatterCombiner | undefined;
    if (typeof v.strategy === 'string') strategy = v.strategy as ReplyStrategy;
    else if (v.strategy !== undefined) {
      const f = ctx.fn((v.strategy as { fn: string }).fn, `${ctx.path}/strategy/fn`) as ((bodies: unknown, original: Message, gather: GatherResult) => unknown) | undefined;
      if (f) strategy = (replies, original, gather) => f(replies.map((r) => r.body), original, gather);
    }
    return {
      recipients: v.recipients,
      branches: v.branches?.map((b, i) => ctx.steps(b, `${ctx.path}/branches/${i}`)),
      timeoutMs: v.timeoutMs,
      minReplies: v.minReplies,
      strategy,
      logPartial: v.logPartial,
    };
  },
  compile(args, next, ctx) {
    const targets: Array<{ recipient: string; call: (m: Message) => MaybePromise<Message> }> = [];
    const timeoutMs = args.timeoutMs ?? 5000;
    const step = `${ctx.path} (scatterGather)`;
    // each recipient is asked for an answer, which it has as long as the gather waits
    for (const uri of args.recipients ?? []) targets.push({ recipient: uri, call: ctx.requester(uri, { timeoutMs }) });
    (args.branches ?? []).forEach((b, i) => targets.push({ recipient: `branches/${i}`, call: ctx.compile(b, identity, `${ctx.path}/branches/${i}`) }));
    if (!targets.length) throw new BusbarError('INVALID_ROUTE', 'a scatter-gather needs recipients or branches');
    const minReplies = args.minReplies ?? 1;
    const strategy = args.strategy ?? 'array';
    const level = args.logPartial ?? 'debug';
    // expected partial results are figures, not alarms: counted here, logged at `level`
    const counters = ctx.counters();
    counters.timedOutRecipients = 0;
    counters.failedRecipients = 0;
    counters.partialGathers = 0;
    const combine = (got: Message[], original: Message, gather: GatherResult): MaybePromise<unknown> =>
      typeof strategy === 'function' ? strategy(got, original, gather) : combineReplies(strategy, got, original);
    return (msg) =>
      new Promise<Message>((resolve, reject) => {
        const replies: Array<Message | undefined> = new Array(targets.length).fill(undefined);
        const failures: MissingReply[] = [];
        let settled = 0;
        let done = false;
        const finish = (timedOut: boolean): void => {
          if (done) return;
          done = true;
          ctx.clock.clearTimeout(timer);
          const answered: GatheredReply[] = [];
          replies.forEach((r, index) => {
            if (r !== undefined) answered.push({ index, recipient: targets[index]!.recipient, message: r });
          });
          const failedAt = new Set(failures.map((f) => f.index));
          const late: MissingReply[] = [];
          targets.forEach((t, index) => {
            if (replies[index] === undefined && !failedAt.has(index)) late.push({ index, recipient: t.recipient, code: 'BUSBAR_ERR_TIMEOUT' });
          });
          const failed = [...failures].sort((a, b) => a.index - b.index);
          const errors = failed.map((f) => f.code);
          if (late.length || failed.length) {
            counters.timedOutRecipients! += late.length;
            counters.failedRecipients! += failed.length;
            counters.partialGathers!++;
            ctx.logger[level]({ messageId: msg.id, replies: answered.length, of: targets.length, timedOut: late.map((l) => l.recipient), failed: failed.map((f) => `${f.recipient} (${f.code})`) }, 'scatter-gather: partial replies');
          }
          const got = answered.map((a) => a.message);
          if (got.length < minReplies) {
            reject(new BusbarError('NO_REPLIES', `route "${ctx.routeId}", step ${step}: ${got.length} of ${targets.length} replies${timedOut ? ` within ${timeoutMs} ms` : ''}, at least ${minReplies} needed${errors.length ? ` (errors: ${errors.join(', ')})` : ''}`, {
              details: { routeId: ctx.routeId, step: ctx.path, replies: got.length, failed: errors.length, timedOut, errors, missing: [...failed, ...late].map((m) => m.recipient) },
            }));
            return;
          }
          // the facts are on the message before the strategy runs, so it can read them too
          const withFacts = withHeaders(msg, {
            [SCATTER_HEADERS.replies]: got.length,
            [SCATTER_HEADERS.failed]: errors.length,
            [SCATTER_HEADERS.timedOut]: timedOut,
            [SCATTER_HEADERS.errors]: errors,
          });
          const gather: GatherResult = { replies: answered, failed, timedOut: late };
          // runs in a timer or a settled branch's callback, outside the route's chain: a
          // strategy that throws must fail this message, never escape to the process
          try {
            Promise.resolve(then(combine(got, withFacts, gather), (body) => next(withBody(withFacts, body)))).then(resolve, (e: unknown) => reject(wrapStepError(e, ctx.routeId, step)));
          } catch (e) {
            reject(wrapStepError(e, ctx.routeId, step));
          }
        };
        const timer = ctx.clock.setTimeout(() => finish(true), timeoutMs);
        targets.forEach((t, i) => {
          Promise.resolve()
            .then(() => t.call(withBody(msg, copyBody(msg.body))))
            .then(
              (r) => {
                if (!done) replies[i] = r;
              },
              (e: unknown) => {
                if (done) return;
                const err = e as { code?: unknown; message?: unknown };
                const f: { index: number; recipient: string; code: string; error?: string } = { index: i, recipient: t.recipient, code: typeof err?.code === 'string' ? err.code : 'BUSBAR_ERR_STEP_FAILED' };
                if (typeof err?.message === 'string') f.error = err.message;
                failures.push(f);
                ctx.logger[level]({ messageId: msg.id, branch: i, recipient: t.recipient, err: e }, 'scatter-gather recipient failed');
              },
            )
            .finally(() => {
              if (++settled === targets.length) finish(false);
            });
        });
      });
  },
};

// ---------------------------------------------------------------- wire tap
export const WIRE_TAP_HEADER = 'busbar.wireTap';

export const wireTapStep: StepKind<{ uri: string }> = {
  name: 'wireTap',
  description: 'Wire tap: send a copy (new message id, same correlation) to a side endpoint as its own exchange, without waiting for it or letting it affect the main flow; its failures go to the route\'s error policy.',
  configSchema: { type: 'string', minLength: 1, description: 'endpoint URI of the tap' },
  fromConfig: (value) => ({ uri: value as string }),
  compile({ uri }, next, ctx) {
    const send = ctx.producer(uri);
    const tap: Next = (m) => send(m).then((r) => r ?? m);
    return (msg) => {
      ctx.spawn(deriveMessage(msg, copyBody(msg.body), merged(msg.headers, { [WIRE_TAP_HEADER]: uri })), tap);
      return next(msg);
    };
  },
};

// ---------------------------------------------------------------- routing slip
export const ROUTING_SLIP_HEADER = 'busbar.routingSlip';

export interface RoutingSlipArgs {
  /** Header holding the slip (a delimited string or an array of URIs); default `busbar.routingSlip`. */
  header?: string | undefined;
  /** Or compute the slip from the message. */
  compute?: Computed | undefined;
  delimiter?: string | undefined;
}

export const routingSlipStep: StepKind<RoutingSlipArgs> = {
  name: 'routingSlip',
  description: 'Routing slip: send the message through the endpoints listed in a header (or computed), in order, each reply feeding the next; then go on.',
  configSchema: {
    oneOf: [
      { type: 'string', minLength: 1, description: 'header holding the slip' },
      {
        type: 'object',
        additionalProperties: false,
        properties: {
          header: { type: 'string', minLength: 1, description: 'header holding the slip (default busbar.routingSlip)' },
          expr: { type: 'string', minLength: 1, description: 'JSONata expression giving the slip' },
          fn: { type: 'string', minLength: 1, description: 'registered function giving the slip' },
          delimiter: { type: 'string', minLength: 1, default: ',', description: 'separator of a string slip' },
        },
      },
    ],
  },
  fromConfig(value, ctx) {
    if (typeof value === 'string') return { header: value };
    const v = value as { header?: string; expr?: string; fn?: string; delimiter?: string };
    const args: RoutingSlipArgs = { header: v.header, delimiter: v.delimiter };
    if (v.expr !== undefined) args.compute = computedFromConfig({ expr: v.expr }, ctx);
    else if (v.fn !== undefined) args.compute = computedFromConfig({ fn: v.fn }, ctx);
    return args;
  },
  compile(args, next, ctx) {
    const step = `${ctx.path} (routingSlip)`;
    const header = args.header ?? ROUTING_SLIP_HEADER;
    const slipOf = args.compute ? evaluator(args.compute) : (m: Message) => m.headers[header];
    const delimiter = args.delimiter ?? ',';
    const sender = senderCache(ctx);
    return (msg) =>
      then(slipOf(msg), async (slip) => {
        let current = msg;
        for (const uri of toUris(slip, delimiter, ctx.routeId, step)) current = (await sender(uri)(current)) ?? current;
        return next(current);
      });
  },
};

// ---------------------------------------------------------------- dynamic router
export const DYNAMIC_ROUTER_HOP_HEADER = 'busbar.dynamicRouter.hop';

export interface DynamicRouterArgs {
  /** Gives the next endpoint(s) for the message (the hop number is in `busbar.dynamicRouter.hop`); nothing = done. */
  compute: Computed;
  /** A guard against loops (default 100): more hops is `BUSBAR_ERR_LIMIT_EXCEEDED`. */
  maxHops?: number | undefined;
}

export const dynamicRouterStep: StepKind<DynamicRouterArgs> = {
  name: 'dynamicRouter',
  description: 'Dynamic router: asks a function / expression for the next endpoint after each hop (the message carries busbar.dynamicRouter.hop), until it gives none; bounded by maxHops.',
  configSchema: {
    oneOf: [
      { type: 'string', minLength: 1, description: 'JSONata expression giving the next URI(s) or nothing' },
      {
        type: 'object',
        additionalProperties: false,
        properties: {
          expr: { type: 'string', minLength: 1 },
          fn: { type: 'string', minLength: 1 },
          maxHops: { type: 'integer', minimum: 1, default: 100, description: 'loop guard' },
        },
        minProperties: 1,
      },
    ],
  },
  fromConfig(value, ctx) {
    if (typeof value === 'string') return { compute: computedFromConfig(value, ctx) };
    const v = value as { expr?: string; fn?: string; maxHops?: number };
    return { compute: computedFromConfig(v.fn !== undefined ? { fn: v.fn } : { expr: v.expr ?? '' }, ctx), maxHops: v.maxHops };
  },
  compile(args, next, ctx) {
    const step = `${ctx.path} (dynamicRouter)`;
    const compute = evaluator(args.compute);
    const maxHops = args.maxHops ?? 100;
    const sender = senderCache(ctx);
    return async (msg) => {
      let current = msg;
      for (let hop = 0; ; hop++) {
        current = withHeaders(current, { [DYNAMIC_ROUTER_HOP_HEADER]: hop });
        const uris = toUris(await compute(current), ',', ctx.routeId, step);
        if (!uris.length) break;
        if (hop >= maxHops) {
          throw new BusbarError('LIMIT_EXCEEDED', `route "${ctx.routeId}", step ${step}: more than ${maxHops} hops (a routing loop?)`, { details: { routeId: ctx.routeId, step, maxHops } });
        }
        for (const uri of uris) current = (await sender(uri)(current)) ?? current;
      }
      return next(current);
    };
  },
};

// ---------------------------------------------------------------- load balancer
export interface LoadBalanceArgs {
  targets: string[];
  strategy?: 'roundRobin' | 'random' | 'weighted' | 'failover' | undefined;
  /** `weighted`: one weight per target (smooth weighted round robin). */
  weights?: number[] | undefined;
  /** `failover`: start each message at the next target in turn instead of always the first. */
  roundRobin?: boolean | undefined;
  /** `failover`: only fail over on errors flagged retryable (default: on any error). */
  retryableOnly?: boolean | undefined;
}

export const LOAD_BALANCER_TARGET_HEADER = 'busbar.loadBalancer.target';

export const loadBalanceStep: StepKind<LoadBalanceArgs> = {
  name: 'loadBalance',
  description: 'Load balancer: send each message to one of several endpoints, by round robin, random, weights (smooth weighted round robin), or failover (try the next target when one fails).',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['targets'],
    properties: {
      targets: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'endpoint URIs' },
      strategy: { enum: ['roundRobin', 'random', 'weighted', 'failover'], default: 'roundRobin' },
      weights: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 }, description: 'weighted: one weight per target' },
      roundRobin: { type: 'boolean', default: false, description: 'failover: start at the next target in turn' },
      retryableOnly: { type: 'boolean', default: false, description: 'failover: only on retryable errors' },
    },
  },
  fromConfig(value, ctx) {
    const v = value as LoadBalanceArgs;
    if (v.strategy === 'weighted' && v.weights?.length !== v.targets.length) ctx.problem({ path: `${ctx.path}/weights`, message: `weighted needs one weight per target (${v.targets.length})` });
    return v;
  },
  compile(args, next, ctx) {
    const targets = args.targets.map((uri) => ({ uri, send: ctx.producer(uri) }));
    const n = targets.length;
    const strategy = args.strategy ?? 'roundRobin';
    const deliver = (i: number, msg: Message): Promise<Message> => {
      const t = targets[i]!;
      return t.send(msg).then((r) => r ?? msg);
    };
    // the strategies that send once: the send continued (and its failure labelled) in one `then`
    const later = ctx.continueWith;
    const goOn = (msg: Message, reply: Message | undefined): MaybePromise<Message> => next(reply ?? msg);
    const sendOnce = (i: number, msg: Message): Promise<Message> => later(targets[i]!.send(msg), goOn, msg);
    let rr = 0;
    if (strategy === 'roundRobin') return (msg) => sendOnce(rr++ % n, msg);
    if (strategy === 'random') return (msg) => sendOnce(Math.floor(Math.random() * n), msg);
    if (strategy === 'weighted') {
      const weights = args.weights ?? [];
      if (weights.length !== n || weights.some((w) => !(w > 0))) throw new BusbarError('INVALID_ROUTE', `loadBalance weighted: needs ${n} positive weights, got ${JSON.stringify(weights)}`);
      const total = weights.reduce((a, b) => a + b, 0);
      const current = new Array<number>(n).fill(0);
      const pick = (): number => {
        let best = 0;
        for (let i = 0; i < n; i++) {
          current[i]! += weights[i]!;
          if (current[i]! > current[best]!) best = i;
        }
        current[best]! -= total;
        return best;
      };
      return (msg) => sendOnce(pick(), msg);
    }
    return async (msg) => {
      const start = args.roundRobin ? rr++ % n : 0;
      let last: unknown;
      for (let k = 0; k < n; k++) {
        const i = (start + k) % n;
        let reply: Message;
        try {
          reply = await deliver(i, k ? withHeaders(msg, { [LOAD_BALANCER_TARGET_HEADER]: targets[i]!.uri }) : msg);
        } catch (e) {
          last = e;
          const retryable = (e as { retryable?: unknown })?.retryable !== false;
          if (args.retryableOnly && !retryable) throw e;
          ctx.logger.warn({ messageId: msg.id, target: targets[i]!.uri, err: e }, 'load balancer target failed; failing over');
          continue;
        }
        return next(reply);
      }
      throw annotate(last, { failover: targets.map((t) => t.uri) }, ctx.routeId, `${ctx.path} (loadBalance)`);
    };
  },
};

// ---------------------------------------------------------------- throttle & delay
export interface ThrottleArgs {
  /** At most this many messages... */
  max: number;
  /** ...per this many milliseconds (sliding window). */
  periodMs: number;
}

/**
 * Throttler as backpressure: a message over the rate waits (holding its in-flight slot)
 * instead of being dropped, so a full route makes its source stop taking messages.
 */
export const throttleStep: StepKind<ThrottleArgs> = {
  name: 'throttle',
  description: 'Throttler: at most `max` messages per `periodMs` (sliding window) go on; messages over the rate wait in order (backpressure on the source), none is dropped.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['max', 'periodMs'],
    properties: {
      max: { type: 'integer', minimum: 1, description: 'messages per period' },
      periodMs: { type: 'number', exclusiveMinimum: 0, description: 'the period in milliseconds' },
    },
  },
  fromConfig: (value) => value as ThrottleArgs,
  compile({ max, periodMs }, next, ctx) {
    if (!Number.isInteger(max) || max < 1 || !(periodMs > 0)) throw new BusbarError('INVALID_ROUTE', `throttle: max must be a positive integer and periodMs > 0, got ${max} / ${periodMs}`);
    // admission times of the latest `max` messages: message k may go at ring[k % max] + period
    const ring = new Array<number>(max).fill(-Infinity);
    let head = 0;
    return (msg) => {
      const now = ctx.clock.now();
      const at = Math.max(now, ring[head]! + periodMs);
      ring[head] = at;
      head = (head + 1) % max;
      if (at <= now) return next(msg);
      return ctx.continueWith(sleep(ctx.clock, at - now), next, msg);
    };
  },
};

export interface DelayArgs {
  ms?: number | undefined;
  compute?: Computed | undefined;
}

export const delayStep: StepKind<DelayArgs> = {
  name: 'delay',
  description: 'Delayer: hold each message for a fixed or computed number of milliseconds (on the engine clock) before it goes on.',
  configSchema: {
    oneOf: [
      { type: 'number', minimum: 0, description: 'milliseconds' },
      { type: 'object', additionalProperties: false, properties: { expr: { type: 'string', minLength: 1 }, fn: { type: 'string', minLength: 1 } }, minProperties: 1, maxProperties: 1 },
    ],
  },
  fromConfig: (value, ctx) => (typeof value === 'number' ? { ms: value } : { compute: computedFromConfig(value, ctx) }),
  compile(args, next, ctx) {
    const compute = args.compute ? evaluator(args.compute) : () => args.ms ?? 0;
    return (msg) =>
      then(compute(msg), (v) => {
        const ms = Number(v);
        if (!Number.isFinite(ms) || ms < 0) throw new BusbarError('VALIDATION_FAILED', `route "${ctx.routeId}", step ${ctx.path} (delay): delay must be a number of milliseconds >= 0, got ${JSON.stringify(v)}`, { details: { routeId: ctx.routeId, step: ctx.path } });
        return ms > 0 ? ctx.continueWith(sleep(ctx.clock, ms), next, msg) : next(msg);
      });
  },
};

export const routingSteps = [recipientListStep, multicastStep, scatterGatherStep, wireTapStep, routingSlipStep, dynamicRouterStep, loadBalanceStep, throttleStep, delayStep];


