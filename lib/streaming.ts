/**
 * Streaming sources for splitting large inputs without loading them: each reads a byte
 * stream (a Node Readable, or any async iterable of Buffers/strings) and yields one item at a
 * time, holding at most one item (plus one chunk) in memory. A splitter consumes them;
 * because they are pull-based, a slow route slows the reading down (backpressure).
 */
import { Readable } from 'node:stream';
import { lazy } from './lazy.js';
import { BusbarError } from './errors.js';
import { csvError, csvParseOptions, type CsvOptions } from './codecs/csv.js';
import { DEFAULT_MAX_DEPTH, tooDeep } from './codecs/base.js';
import { checkProlog, localName, XmlMapper, type XmlOptions } from './codecs/xml.js';

const csvStream = lazy<typeof import('csv-parse')>('csv-parse');

export type ByteSource = AsyncIterable<Buffer | Uint8Array | string> | Iterable<Buffer | Uint8Array | string>;

/** Largest single item (element, array item, line) by default: 16 MiB. */
export const DEFAULT_MAX_ITEM_BYTES = 16 * 1024 * 1024;

async function* decodeChunks(source: ByteSource): AsyncGenerator<string> {
  // Each buffer should die young. Handed to a loop that yields its text, it would stay alive
  // for the whole chunk's processing (hundreds of awaited route sends), be promoted by the
  // scavenger and pile up until a full GC. So a Node stream decodes as data arrives (its own
  // decoder), and any other source's chunk is decoded in `next()`, outside this frame.
  if (source instanceof Readable && !source.readableObjectMode && source.readableEncoding === null) source.setEncoding('utf8');
  const decoder = new TextDecoder('utf-8');
  const it: AsyncIterator<Buffer | Uint8Array | string> | Iterator<Buffer | Uint8Array | string> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  const next = async (): Promise<string | undefined> => {
    const r = await it.next();
    if (r.done) return undefined;
    return typeof r.value === 'string' ? r.value : decoder.decode(r.value, { stream: true });
  };
  let finished = false;
  try {
    for (let text = await next(); text !== undefined; text = await next()) if (text) yield text;
    finished = true;
  } finally {
    // stopped early (the consumer broke off, or a parse error): close the source like for-await does
    if (!finished) await it.return?.();
  }
  const rest = decoder.decode();
  if (rest) yield rest;
}

function itemTooLarge(what: string, max: number): BusbarError {
  return new BusbarError('INPUT_TOO_LARGE', `${what}: an item is larger than ${max} characters (maxItemBytes)`, { details: { codec: what, maxItemBytes: max } });
}

// ------------------------------------------------------------------ text lines
export interface TextLinesOptions {
  /** Longest accepted line (default 16 MiB). */
  maxItemBytes?: number;
  /** Yield empty lines too (default false). */
  keepEmpty?: boolean;
}

/** Lines of a text stream (`\n` or `\r\n`), without their line ending. */
export async function* textLines(source: ByteSource, options: TextLinesOptions = {}): AsyncGenerator<string> {
  const max = options.maxItemBytes ?? DEFAULT_MAX_ITEM_BYTES;
  let buf = '';
  for await (const chunk of decodeChunks(source)) {
    buf += chunk;
    let start = 0;
    for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n', start)) {
      const line = buf.charCodeAt(nl - 1) === 13 ? buf.slice(start, nl - 1) : buf.slice(start, nl);
      start = nl + 1;
      if (line || options.keepEmpty) yield line;
    }
    buf = buf.slice(start);
    if (buf.length > max) throw itemTooLarge('text', max);
  }
  if (buf.endsWith('\r')) buf = buf.slice(0, -1);
  if (buf) yield buf;
}

// ------------------------------------------------------------------ CSV rows
/** Rows of a CSV stream (csv-parse): objects keyed by the header row, or arrays with `header: false`. */
export async function* csvRows<R = Record<string, string>>(source: ByteSource, options: CsvOptions = {}): AsyncGenerator<R> {
  const parser = csvStream().parse(csvParseOptions(options));
  const input = Readable.from(source as AsyncIterable<Buffer | string>, { objectMode: false });
  input.on('error', (e) => parser.destroy(e));
  input.pipe(parser);
  try {
    for await (const row of parser) yield row as R;
  } catch (e) {
    if (e instanceof BusbarError) throw e;
    throw (e as { code?: string }).code?.startsWith('CSV_') ? csvError(e) : e;
  } finally {
    input.unpipe(parser);
    input.destroy();
  }
}

// ------------------------------------------------------------------ JSON array items
export interface JsonItemsOptions {
  /** Largest single item (default 16 MiB). */
  maxItemBytes?: number;
  /** Deepest nesting inside one item (default 100). */
  maxDepth?: number;
}

/** The items of a top-level JSON array (`[ {...}, {...} ]`), parsed one at a time. */
export async function* jsonArrayItems<T = unknown>(source: ByteSource, options: JsonItemsOptions = {}): AsyncGenerator<T> {
  const max = options.maxItemBytes ?? DEFAULT_MAX_ITEM_BYTES;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  let buf = '';
  let pos = 0;
  let state: 'start' | 'before-item' | 'item' | 'after-item' | 'end' = 'start';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let itemStart = 0;
  let consumed = 0; // characters dropped from the front of buf, for error offsets
  const fail = (msg: string): never => {
    throw new BusbarError('PARSE', `json: ${msg} at character ${consumed + pos}`, { details: { codec: 'json', at: consumed + pos } });
  };
  for await (const chunk of decodeChunks(source)) {
    buf += chunk;
    while (pos < buf.length) {
      const c = buf.charCodeAt(pos);
      if (state === 'item') {
        if (inString) {
          if (escaped) escaped = false;
          else if (c === 92 /* \ */) escaped = true;
          else if (c === 34 /* " */) inString = false;
          pos++;
          continue;
        }
        if (c === 34) inString = true;
        else if (c === 123 || c === 91) {
          if (++depth > maxDepth) throw tooDeep('json', maxDepth, `character ${consumed + pos}`);
        } else if (c === 125 || c === 93) {
          if (depth === 0) {
            // the closing bracket of the array ends a scalar item
            if (c === 125) fail('unexpected }');
            yield parseItem<T>(buf.slice(itemStart, pos), consumed + itemStart);
            state = 'end';
            pos++;
            continue;
          }
          depth--;
        } else if (c === 44 /* , */ && depth === 0) {
          yield parseItem<T>(buf.slice(itemStart, pos), consumed + itemStart);
          state = 'before-item';
          pos++;
          continue;
        }
        pos++;
        continue;
      }
      if (c === 32 || c === 10 || c === 13 || c === 9 || c === 0xfeff) {
        pos++;
        continue;
      }
      if (state === 'start') {
        if (c !== 91) fail('expected a top-level array "["');
        state = 'before-item';
        pos++;
      } else if (state === 'before-item') {
        if (c === 93) {
          state = 'end';
          pos++;
          continue;
        }
        if (c === 44) fail('unexpected ","');
        state = 'item';
        itemStart = pos;
        depth = 0;
      } else if (state === 'end') {
        fail('unexpected content after the array');
      }
    }
    // keep only the item being read
    const keep = state === 'item' ? itemStart : pos;
    if (state === 'item' && pos - itemStart > max) throw itemTooLarge('json', max);
    buf = buf.slice(keep);
    consumed += keep;
    pos -= keep;
    itemStart -= keep;
  }
  if (state !== 'end') fail(state === 'start' ? 'empty input, expected an array' : 'unexpected end of input inside the array');
}

function parseItem<T>(text: string, at: number): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new BusbarError('PARSE', `json: item at character ${at}: ${(e as Error).message}`, { cause: e, details: { codec: 'json', at } });
  }
}

// ------------------------------------------------------------------ XML elements
export interface XmlElementsOptions extends XmlOptions {
  /** Largest single element (default 16 MiB). */
  maxItemBytes?: number;
}

interface OpenElement {
  name: string;
  /** Namespace declarations on the start tag (` xmlns:a="..."`), re-declared on split elements. */
  ns: string;
}

/** The rest of a tag up to its `>`, skipping `>` inside quoted attribute values (sticky: matched at lastIndex). */
const TAG_END = /(?:[^"'>]|"[^"]*"|'[^']*')*>/y;

const TAG_NAME = /[^\s/>]+/y;

const NS_DECL = /\sxmlns(?::[^\s=]+)?\s*=\s*(?:"[^"]*"|'[^']*')/g;

function pathMatcher(path: string): (stack: readonly OpenElement[]) => boolean {
  const anyDepth = path.startsWith('..') || path.startsWith('*.');
  const segs = (anyDepth ? path.slice(2) : path.replace(/^\//, '')).split(/[./]/).filter(Boolean);
  if (!segs.length) throw new BusbarError('INVALID_ROUTE', `xmlElements: empty element path "${path}"`, { details: { path } });
  const same = (seg: string, name: string): boolean => seg === '*' || seg === name || (!seg.includes(':') && localName(name) === seg);
  return (stack) => {
    if (!anyDepth && stack.length !== segs.length) return false;
    if (stack.length < segs.length) return false;
    const off = stack.length - segs.length;
    for (let i = 0; i < segs.length; i++) if (!same(segs[i]!, stack[off + i]!.name)) return false;
    return true;
  };
}

/**
 * The elements at `path` of an XML stream, one at a time: `xmlElements(stream, 'orders.order')`
 * (from the root; prefixes optional, `*` for any name) or `..order` (at any depth). Each is
 * yielded parsed (its content, as the xml codec maps it) or, with `raw: true`, as XML text
 * carrying the namespace declarations of its ancestors so it stands on its own.
 */
export function xmlElements(source: ByteSource, path: string, options: XmlElementsOptions & { raw: true }): AsyncGenerator<string>;
export function xmlElements<T = Record<string, unknown>>(source: ByteSource, path: string, options?: XmlElementsOptions & { raw?: false }): AsyncGenerator<T>;
export async function* xmlElements(source: ByteSource, path: string, options: XmlElementsOptions & { raw?: boolean } = {}): AsyncGenerator<unknown> {
  const { raw = false, maxItemBytes, ...xmlOptions } = options;
  const max = maxItemBytes ?? DEFAULT_MAX_ITEM_BYTES;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  // each element was checked for balance by the scanner, so the per-element parse can be lenient
  const mapper = new XmlMapper({ strict: false, ...xmlOptions, maxBytes: max });
  const matches = pathMatcher(path);
  const stack: OpenElement[] = [];
  let buf = '';
  let pos = 0;
  let consumed = 0;
  let capture = -1; // start of the element being captured, or -1
  let captureDepth = 0;
  let captureNs = '';
  let seenRoot = false;
  let waitFrom = 0;
  const fail = (msg: string): never => {
    throw new BusbarError('PARSE', `xml: ${msg} at character ${consumed + pos}`, { details: { codec: 'xml', at: consumed + pos } });
  };
  const emit = (end: number): unknown => {
    let text = buf.slice(capture, end);
    // raw text must stand on its own; parsed content is what a whole-document parse gives
    // for the element, where the ancestors' declarations stay with the ancestors
    if (raw && captureNs) {
      const gt = text.search(/\s|\/?>/);
      text = text.slice(0, gt) + captureNs + text.slice(gt);
    }
    capture = -1;
    if (raw) return text;
    const doc = mapper.parse(text);
    return doc[Object.keys(doc)[0]!];
  };

  for await (const chunk of decodeChunks(source)) {
    buf += chunk;
    scan: while (pos < buf.length) {
      const lt = buf.indexOf('<', pos);
      if (lt === -1) {
        pos = buf.length;
        break;
      }
      pos = lt;
      if (pos + 1 >= buf.length) break;
      const c1 = buf.charCodeAt(pos + 1);
      if (c1 === 33 /* ! */) {
        if (buf.startsWith('<!--', pos)) {
          const end = buf.indexOf('-->', pos + 4);
          if (end === -1) break scan;
          pos = end + 3;
        } else if (buf.startsWith('<![CDATA[', pos)) {
          const end = buf.indexOf(']]>', pos + 9);
          if (end === -1) break scan;
          pos = end + 3;
        } else if (buf.startsWith('<!DOCTYPE', pos)) {
          const gt = buf.indexOf('>', pos);
          const br = buf.indexOf('[', pos);
          let end = gt;
          if (br !== -1 && (gt === -1 || br < gt)) {
            const close = buf.indexOf(']', br);
            end = close === -1 ? -1 : buf.indexOf('>', close);
          }
          if (end === -1) break scan;
          checkProlog(buf.slice(pos, end + 1));
          pos = end + 1;
        } else if (buf.length - pos < 9) break scan;
        else fail('unexpected "<!"');
        continue;
      }
      if (c1 === 63 /* ? */) {
        const end = buf.indexOf('?>', pos + 2);
        if (end === -1) break scan;
        pos = end + 2;
        continue;
      }
      // a start or end tag: find its '>' outside quoted attribute values
      // a tag still open at the end of the buffer: rescan only once a new '>' has arrived
      if (waitFrom > 0 && buf.indexOf('>', waitFrom) === -1) break scan;
      waitFrom = 0;
      TAG_END.lastIndex = pos + 1;
      if (!TAG_END.test(buf)) {
        waitFrom = buf.length;
        break scan;
      }
      const tagEnd = TAG_END.lastIndex;
      const i = tagEnd - 1;
      if (c1 === 47 /* / */) {
        const open = stack.pop();
        // compare in place: the common case needs no substring
        const n = open ? open.name.length : 0;
        if (!open || !buf.startsWith(open.name, pos + 2) || (pos + 2 + n !== i && buf.slice(pos + 2 + n, i).trim() !== '')) {
          const name = buf.slice(pos + 2, i).trim();
          fail(open ? `expected </${open.name}>, found </${name}>` : `closing tag </${name}> without an open element`);
        }
        pos = tagEnd;
        if (capture !== -1 && stack.length === captureDepth - 1) yield emit(tagEnd);
        continue;
      }
      const selfClosing = buf.charCodeAt(i - 1) === 47;
      TAG_NAME.lastIndex = pos + 1;
      const m = TAG_NAME.exec(buf);
      if (!m) fail('malformed start tag');
      const name = m![0];
      if (stack.length === 0) {
        if (seenRoot) fail('a second root element');
        seenRoot = true;
      }
      let decls = '';
      if (capture === -1) {
        const body = buf.slice(pos + 1, selfClosing ? i - 1 : i);
        if (body.includes('xmlns')) decls = (body.match(NS_DECL) ?? []).join('');
      }
      stack.push({ name, ns: decls });
      if (stack.length > maxDepth) throw tooDeep('xml', maxDepth, `character ${consumed + pos}`);
      if (capture === -1 && matches(stack)) {
        capture = pos;
        captureDepth = stack.length;
        // declarations of the ancestors, unless the element declares the same prefix itself
        const own = new Set(decls.match(/xmlns(?::[^\s=]+)?/g) ?? []);
        const inherited = new Map<string, string>();
        for (let k = 0; k < stack.length - 1; k++) {
          for (const d of stack[k]!.ns.match(NS_DECL) ?? []) {
            const key = /xmlns(?::[^\s=]+)?/.exec(d)![0];
            if (!own.has(key)) inherited.set(key, d);
          }
        }
        captureNs = [...inherited.values()].join('');
      }
      pos = tagEnd;
      if (selfClosing) {
        stack.pop();
        if (capture !== -1 && stack.length === captureDepth - 1) yield emit(tagEnd);
      }
    }
    const keep = capture !== -1 ? capture : pos;
    if (capture !== -1 && pos - capture > max) throw itemTooLarge('xml', max);
    buf = buf.slice(keep);
    consumed += keep;
    pos -= keep;
    if (waitFrom > 0) waitFrom = Math.max(1, waitFrom - keep);
    if (capture !== -1) capture = 0;
    if (buf.length > max + 65536) throw itemTooLarge('xml', max);
  }
  if (stack.length) fail(`unexpected end of document inside <${stack[stack.length - 1]!.name}>`);
  if (!seenRoot) fail('no root element');
}
