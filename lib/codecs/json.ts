import { BusbarError } from '../errors.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, decodeInput, limitsSchema, tooDeep, type Codec, type CodecLimits } from './base.js';

export type JsonOptions = CodecLimits & {
  /** Indentation of encoded JSON (0 = compact, the default). */
  indent?: number;
};

/**
 * Nesting depth of a parsed value, stopping as soon as it passes `max`. Iterative: a
 * hostile document must not be able to exhaust the stack of the check meant to stop it.
 */
function exceedsDepth(root: unknown, max: number): boolean {
  if (typeof root !== 'object' || root === null) return false;
  const stack: Array<{ v: object; d: number }> = [{ v: root, d: 1 }];
  let guard = 0;
  while (stack.length) {
    const { v, d } = stack.pop()!;
    if (d > max) return true;
    if (++guard > 50_000_000) return false;
    const values = Array.isArray(v) ? v : Object.values(v);
    for (const c of values) if (typeof c === 'object' && c !== null) stack.push({ v: c as object, d: d + 1 });
  }
  return false;
}

/**
 * Offset of the first syntax error, for messages that name a place: Node's JSON.parse does
 * not always report one. Only runs on the error path; an iterative scan (no recursion).
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const n = text.length;
  const ws = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const stack: Array<'{' | '['> = [];
  // expecting: a value; after a value: ',' or a closer; in an object after '{' or ',': a key
  let want: 'value' | 'after' | 'key' | 'first-key' | 'first-value' = 'value';
  for (let guard = 0; guard <= n + 1; guard++) {
    ws();
    if (i >= n) return stack.length || want !== 'after' ? n : -1;
    const c = text[i]!;
    if (want === 'after') {
      const top = stack[stack.length - 1];
      if (top === undefined) return i;
      if (c === ',') {
        want = top === '{' ? 'key' : 'value';
        i++;
      } else if ((c === '}' && top === '{') || (c === ']' && top === '[')) {
        stack.pop();
        i++;
      } else return i;
      continue;
    }
    if (want === 'key' || want === 'first-key') {
      if (c === '}' && want === 'first-key') {
        stack.pop();
        i++;
        want = 'after';
        continue;
      }
      if (c !== '"') return i;
      const end = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
      end.lastIndex = i;
      if (!end.test(text)) return i;
      i = end.lastIndex;
      ws();
      if (text[i] !== ':') return i;
      i++;
      want = 'value';
      continue;
    }
    if (c === ']' && want === 'first-value') {
      stack.pop();
      i++;
      want = 'after';
      continue;
    }
    if (c === '{' || c === '[') {
      stack.push(c);
      i++;
      want = c === '{' ? 'first-key' : 'first-value';
      continue;
    }
    const scalar = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null/y;
    scalar.lastIndex = i;
    if (!scalar.test(text)) return i;
    i = scalar.lastIndex;
    want = 'after';
  }
  return i;
}

// an exponent of 3+ digits, or a literal of 309+ digits (only in a text that long): tested
// apart, as one alternation tries the 309-digit branch at every digit of every message
const BIG_EXPONENT = /[eE]\+?\d{3}/;
const LONG_DIGITS = /\d{309}/;
const mayOverflow = (text: string): boolean => BIG_EXPONENT.test(text) || (text.length >= 309 && LONG_DIGITS.test(text));

/** JSON pointer of the first number that parsed as ±Infinity (iterative: depth is bounded but need not be small). */
function infinityAt(root: unknown): string | undefined {
  const todo: Array<[unknown, string]> = [[root, '']];
  while (todo.length) {
    const [v, path] = todo.pop()!;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return path;
    } else if (Array.isArray(v)) {
      for (let k = v.length - 1; k >= 0; k--) todo.push([v[k], `${path}/${k}`]);
    } else if (v !== null && typeof v === 'object') {
      for (const k of Object.keys(v).reverse()) todo.push([(v as Record<string, unknown>)[k], `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`]);
    }
  }
  return undefined;
}

/** Line and column of a JSON syntax error. */
function where(text: string): string | undefined {
  const pos = jsonErrorOffset(text);
  if (pos < 0) return undefined;
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  return `line ${line}, column ${pos - before.lastIndexOf('\n')}`;
}

export function createJsonCodec(options: JsonOptions = {}): Codec {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const indent = options.indent ?? 0;
  return {
    name: 'json',
    contentTypes: ['application/json', 'text/json'],
    optionsSchema: { type: 'object', additionalProperties: false, properties: { ...limitsSchema, indent: { type: 'integer', minimum: 0, maximum: 10, description: 'indentation of encoded JSON' } } },
    configure: (o) => createJsonCodec({ ...options, ...(o as JsonOptions) }),
    decode(input) {
      // a string that cannot exceed the limit (UTF-8 takes at most 3 bytes per UTF-16 unit) as it is
      const text = typeof input === 'string' && input.length * 3 <= maxBytes ? input : decodeInput(input, 'json', maxBytes);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        const msg = (e as Error).message.replace(/\s+/g, ' ');
        const at = where(text);
        throw new BusbarError('PARSE', `json: ${at ? `${at}: ` : ''}${msg.length > 200 ? `${msg.slice(0, 197)}...` : msg}`, { cause: e, details: { codec: 'json', ...(at ? { at } : {}) } });
      }
      // a depth of d needs at least 2d characters, so short documents skip the walk
      if (text.length > 2 * maxDepth && exceedsDepth(value, maxDepth)) throw tooDeep('json', maxDepth);
      // only a literal with an exponent or 309+ digits can overflow: the walk runs only then
      if (mayOverflow(text)) {
        const at = infinityAt(value);
        if (at !== undefined) throw new BusbarError('PARSE', `json: the number at ${at || '/'} is too large for a double (it would become Infinity)`, { details: { codec: 'json', at: at || '/', reason: 'number-overflow' } });
      }
      return value;
    },
    encode(value) {
      try {
        let s: string | undefined;
        try {
          s = JSON.stringify(value, undefined, indent || undefined);
        } catch (e) {
          // long ids arrive as bigint from some drivers: write them as strings rather than fail
          if (!(e instanceof TypeError) || !/BigInt/i.test(e.message)) throw e;
          s = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent || undefined);
        }
        if (s === undefined) throw new Error(`${typeof value} has no JSON form`);
        return s;
      } catch (e) {
        throw new BusbarError('ENCODE', `json: cannot encode: ${(e as Error).message}`, { cause: e, details: { codec: 'json' } });
      }
    },
  };
}

export const jsonCodec: Codec = createJsonCodec();
