import { BusbarError } from '../../errors.js';
import { type Headers, type Message, createMessage, merged } from '../../message.js';
import { isPromise, then, type MaybePromise, type Next, type StepKind } from '../../step.js';
import { computedFromConfig, computedSchema, evaluator, type Computed } from '../core.js';
import { csvRows, jsonArrayItems, textLines, xmlElements, type ByteSource } from '../../streaming.js';
import { annotate, errorHeaders, SPLIT_HEADERS } from './common.js';

/** Streaming readers of lib/streaming.ts, by the name the config form uses. */
export type StreamFormat = 'lines' | 'json' | 'csv' | 'xml';

export interface SplitArgs {
  /** What to split: a function / expression giving an array, iterable or async iterable. Default: the body. */
  items?: Computed | undefined;
  /** Split text (a string, a Buffer, or a stream of string/Buffer chunks) on this delimiter, e.g. "\n". */
  tokenize?: string | undefined;
  /** Parts processed at once (default 1: in order, one at a time). */
  parallel?: number | undefined;
  /**
   * Where a part that fails goes (with `busbar.error.*` headers); the split goes on with the
   * next part. Without it, the first failing part fails the whole message.
   */
  partDeadLetter?: string | undefined;
  /**
   * Read the input (a string, Buffer, or stream of chunks such as a file body) as a stream
   * of items: text lines, the items of a JSON array, CSV rows, or XML elements at `path`.
   */
  stream?: StreamFormat | undefined;
  /** `stream: 'xml'`: the elements to split on, e.g. `orders.order` or `..order`. */
  path?: string | undefined;
}

type Source = { kind: 'array'; items: readonly unknown[] } | { kind: 'sync'; it: Iterator<unknown> } | { kind: 'async'; it: AsyncIterator<unknown> };

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

function isIterable(v: unknown): v is Iterable<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

/** Split a stream of text chunks on a delimiter without holding more than one line plus one chunk. */
export async function* tokenizeChunks(chunks: AsyncIterable<unknown> | Iterable<unknown>, delimiter: string): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = '';
  for await (const chunk of chunks as AsyncIterable<unknown>) {
    rest += typeof chunk === 'string' ? chunk : decoder.decode(chunk as Uint8Array, { stream: true });
    let at: number;
    while ((at = rest.indexOf(delimiter)) !== -1) {
      yield rest.slice(0, at);
      rest = rest.slice(at + delimiter.length);
    }
  }
  rest += decoder.decode();
  if (rest.length) yield rest;
}

function streamOf(value: unknown, format: StreamFormat, path: string | undefined): AsyncIterator<unknown> | undefined {
  const bytes: ByteSource | undefined = typeof value === 'string' || Buffer.isBuffer(value) ? [value] : isAsyncIterable(value) || isIterable(value) ? (value as ByteSource) : undefined;
  if (!bytes) return undefined;
  const it = format === 'lines' ? textLines(bytes) : format === 'json' ? jsonArrayItems(bytes) : format === 'csv' ? csvRows(bytes) : xmlElements(bytes, path ?? '');
  return it[Symbol.asyncIterator]();
}

function sourceOf(value: unknown, tokenize: string | undefined, where: string, routeId: string, step: string, stream?: { format: StreamFormat; path: string | undefined }): Source {
  if (stream) {
    const it = streamOf(value, stream.format, stream.path);
    if (it) return { kind: 'async', it };
  } else if (tokenize !== undefined) {
    if (typeof value === 'string') return { kind: 'array', items: value.length ? dropTrailingEmpty(value.split(tokenize)) : [] };
    if (Buffer.isBuffer(value)) return sourceOf(value.toString('utf8'), tokenize, where, routeId, step);
    if (isAsyncIterable(value) || isIterable(value)) return { kind: 'async', it: tokenizeChunks(value, tokenize)[Symbol.asyncIterator]() };
  } else {
    if (Array.isArray(value)) return { kind: 'array', items: value };
    if (typeof value !== 'string' && !Buffer.isBuffer(value)) {
      if (isAsyncIterable(value)) return { kind: 'async', it: value[Symbol.asyncIterator]() };
      if (isIterable(value)) return { kind: 'sync', it: value[Symbol.iterator]() };
    }
  }
  const type = value === null ? 'null' : Buffer.isBuffer(value) ? 'Buffer' : Array.isArray(value) ? 'array' : typeof value;
  throw new BusbarError('SPLIT_INPUT', `route "${routeId}", step ${step}: cannot split ${where} of type ${type}; give an array, an iterable, an async iterable${tokenize === undefined ? ', or set tokenize for text' : ', text or a stream of text chunks'}`, {
    details: { routeId, step, type },
  });
}

function dropTrailingEmpty(parts: string[]): string[] {
  if (parts.length && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

function part(parent: Message, item: unknown, index: number, last: boolean, size: number | undefined): Message {
  const headers: Record<string, Headers[string]> = merged(parent.headers, { [SPLIT_HEADERS.index]: index, [SPLIT_HEADERS.last]: last });
  if (size !== undefined) headers[SPLIT_HEADERS.size] = size;
  return createMessage(item, { headers, correlationId: parent.correlationId, causationId: parent.id });
}

/**
 * Splitter: each item becomes a message (new id, same correlation id, `busbar.split.*`
 * headers) that runs through the rest of the route. The incoming message completes when
 * every part has; an async iterable is pulled one item ahead of the parts in flight, so
 * a large input is never held whole.
 */
export const splitStep: StepKind<SplitArgs> = {
  name: 'split',
  description: 'Splitter: each item of the body (array, iterable, async iterable, or text split on a delimiter) continues the route as its own message carrying index, size (when known) and a last-part flag.',
  configSchema: {
    oneOf: [
      { const: true, description: 'split the body itself' },
      { type: 'string', minLength: 1, description: 'a JSONata expression giving the array to split' },
      {
        type: 'object',
        additionalProperties: false,
        properties: {
          expr: { type: 'string', minLength: 1, description: 'JSONata expression giving the array to split (default: the body)' },
          fn: { type: 'string', minLength: 1, description: 'registered function returning an array, iterable or async iterable' },
          tokenize: { type: 'string', minLength: 1, description: 'split text (string, Buffer or stream of chunks) on this delimiter, e.g. "\\n"' },
          parallel: { type: 'integer', minimum: 1, maximum: 10000, description: 'parts processed at once (default 1, in order)' },
          partDeadLetter: { type: 'string', minLength: 1, description: 'endpoint a failing part goes to (with busbar.error.* headers) while the split goes on' },
          stream: { enum: ['lines', 'json', 'csv', 'xml'], description: 'read the body (text, bytes or a stream of chunks) as a stream of lines, JSON array items, CSV rows or XML elements' },
          path: { type: 'string', minLength: 1, description: 'stream xml: the elements to split on, e.g. orders.order or ..order' },
        },
      },
    ],
  },
  fromConfig(value, ctx) {
    if (value === true) return {};
    if (typeof value === 'string') return { items: computedFromConfig(value, ctx) };
    const v = value as { expr?: string; fn?: string; tokenize?: string; parallel?: number; partDeadLetter?: string; stream?: StreamFormat; path?: string };
    const args: SplitArgs = { tokenize: v.tokenize, parallel: v.parallel, partDeadLetter: v.partDeadLetter, stream: v.stream, path: v.path };
    if (v.stream === 'xml' && v.path === undefined) ctx.problem({ path: `${ctx.path}/path`, message: 'stream "xml" needs the element path to split on, e.g. "orders.order"' });
    if (v.stream !== undefined && v.tokenize !== undefined) ctx.problem({ path: `${ctx.path}/tokenize`, message: 'use either stream or tokenize, not both' });
    if (v.expr !== undefined) args.items = computedFromConfig({ expr: v.expr }, ctx, `${ctx.path}`);
    else if (v.fn !== undefined) args.items = computedFromConfig({ fn: v.fn }, ctx, `${ctx.path}`);
    return args;
  },
  compile(args, next, ctx) {
    const items = args.items ? evaluator(args.items) : (m: Message) => m.body;
    const parallel = args.parallel ?? 1;
    if (!Number.isInteger(parallel) || parallel < 1) throw new BusbarError('INVALID_ROUTE', `split: parallel must be a positive integer, got ${parallel}`);
    const dlq = args.partDeadLetter ? ctx.producer(args.partDeadLetter) : undefined;
    const where = args.items ? 'the split expression\'s result' : 'the body';
    const step = `${ctx.path} (split)`;
    if (args.stream === 'xml' && !args.path) throw new BusbarError('INVALID_ROUTE', 'split stream "xml" needs the element path to split on (path)');
    const stream = args.stream ? { format: args.stream, path: args.path } : undefined;

    // One part: on failure either dead-letter it (and go on) or fail the split with its index.
    // tracing on: each part is a trace of its own, linked to the split exchange's span (docs/tracing.md)
    const tracing = ctx.tracing;
    const handle = (p: Message, index: number): MaybePromise<unknown> =>
      tracing === undefined ? handlePart(p, index) : tracing.run(p, { name: `split ${ctx.routeId}`, newTrace: true, attributes: { 'busbar.route.id': ctx.routeId, 'busbar.split.index': index } }, (m) => handlePart(m, index) as MaybePromise<Message>);
    const handlePart = (p: Message, index: number): MaybePromise<unknown> => {
      const fail = (e: unknown): MaybePromise<unknown> => {
        if (!dlq) throw annotate(e, { splitIndex: index }, ctx.routeId, step);
        ctx.logger.warn({ messageId: p.id, splitIndex: index, err: e }, 'split part failed; sent to the part dead-letter endpoint');
        return dlq(errorHeaders(p, e, ctx.routeId, step, ctx.clock.now()));
      };
      try {
        const r = next(p);
        return isPromise(r) ? r.then(undefined, fail) : r;
      } catch (e) {
        return fail(e);
      }
    };

    // Arrays, in order: stays synchronous while the rest of the route does.
    const runArray = (parent: Message, arr: readonly unknown[]): MaybePromise<Message> => {
      const n = arr.length;
      const from = (i: number): MaybePromise<Message> => {
        for (; i < n; i++) {
          const r = handle(part(parent, arr[i], i, i === n - 1, n), i);
          if (isPromise(r)) {
            const at = i;
            return r.then(() => from(at + 1));
          }
        }
        return parent;
      };
      return from(0);
    };

    // Everything else (and arrays in parallel): a window of `parallel` parts in flight.
    const runWindowed = async (parent: Message, src: Source): Promise<Message> => {
      let index = 0;
      let size: number | undefined;
      let pull: () => MaybePromise<IteratorResult<unknown>>;
      if (src.kind === 'array') {
        const arr = src.items;
        size = arr.length;
        let i = 0;
        pull = () => (i < arr.length ? { done: false, value: arr[i++] } : { done: true, value: undefined });
      } else {
        const it = src.it;
        pull = () => it.next() as MaybePromise<IteratorResult<unknown>>;
      }
      const active = new Set<Promise<unknown>>();
      let failure: { error: unknown } | undefined;
      let ahead = await pull();
      try {
        while (!ahead.done && !failure) {
          const item = ahead.value;
          ahead = await pull();
          const i = index++;
          const p = Promise.resolve(handle(part(parent, item, i, ahead.done === true, size), i)).then(
            () => {
              active.delete(p);
            },
            (e: unknown) => {
              active.delete(p);
              failure ??= { error: e };
            },
          );
          active.add(p);
          if (active.size >= parallel) await Promise.race(active);
        }
      } finally {
        await Promise.all(active);
        // stop a stream we did not read to the end (closes files, sockets)
        if (!ahead.done && src.kind !== 'array') await src.it.return?.();
      }
      if (failure) throw failure.error;
      return parent;
    };

    return (msg) =>
      then(items(msg), (value) => {
        const src = sourceOf(value, args.tokenize, where, ctx.routeId, step, stream);
        if (src.kind === 'array' && parallel === 1) return runArray(msg, src.items);
        return runWindowed(msg, src);
      });
  },
};

export const splitSteps = [splitStep];
