import { isUtf8 } from 'node:buffer';
import { XMLBuilder, XMLParser, type X2jOptions, type XmlBuilderOptions } from 'fast-xml-parser';
import { BusbarError, isBusbarError } from '../errors.js';
import { checkSize, DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, decodeInput, isPlainObject, limitsSchema, tooDeep, type Codec, type CodecLimits } from './base.js';
import { countXml, RESERVED_NAMES, scanXml } from './xml-check.js';

/** Default bound on the elements of one document (larger documents: split them with `xmlElements`). */
export const DEFAULT_MAX_NODES = 200_000;
/** Default bound on the attributes of one element. */
export const DEFAULT_MAX_ATTRIBUTES = 256;

/** Marks a reserved name (`constructor`, `toString`) on its way through fast-xml-parser, which refuses or renames them; never valid in XML, so it cannot clash. */
const RESERVED_MARK = '\u0001';

/**
 * How XML maps to data and back. The defaults keep everything a round trip needs:
 * attributes (`@name`), namespace prefixes and declarations, CDATA (`#cdata`), and every
 * value as a string (leading zeros and long ids survive).
 */
export interface XmlOptions extends CodecLimits {
  /** Prefix of attribute keys (default `@`). */
  attributePrefix?: string;
  /** Key of an element's text when it also has attributes or children (default `#text`). */
  textKey?: string;
  /** Key that keeps CDATA sections apart so they are written back as CDATA (default `#cdata`); `false` merges CDATA into the text. */
  cdataKey?: string | false;
  /**
   * Elements that are always arrays, even when there is one: dotted paths from the root
   * (`Invoice.InvoiceLine`, `/` works too) or `..name` / `*.name` for any depth.
   */
  arrays?: readonly string[];
  /** Drop namespace prefixes from names (and the `xmlns` declarations). Default false (round-trip safe). */
  stripPrefixes?: boolean;
  /** Turn numeric-looking values into numbers. Default false: `00042` and 20-digit ids stay strings. */
  parseNumbers?: boolean;
  /** Trim whitespace around text values (default true). */
  trimValues?: boolean;
  /**
   * Check well-formedness before mapping (default true): balanced tags, one root, attribute
   * syntax, defined entities only, legal characters, valid UTF-8 bytes, a DOCTYPE only in the
   * prolog. The limits (`maxNodes`, `maxAttributes`, `maxDepth`, `maxBytes`) apply either way.
   */
  strict?: boolean;
  /** Most elements in one document (default 200,000; applies with `strict: false` too). */
  maxNodes?: number;
  /** Most attributes on one element (default 256; applies with `strict: false` too). */
  maxAttributes?: number;
  /** Encode: start with `<?xml version="1.0" encoding="UTF-8"?>` (default true). */
  declaration?: boolean;
  /** Encode: indent with this many spaces (default 0: one line). */
  indent?: number;
}

export const xmlOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...limitsSchema,
    attributePrefix: { type: 'string', description: 'prefix of attribute keys (default "@")' },
    textKey: { type: 'string', minLength: 1, description: 'key of the text of an element that also has attributes or children (default "#text")' },
    cdataKey: { oneOf: [{ type: 'string', minLength: 1 }, { const: false }], description: 'key keeping CDATA apart (default "#cdata"); false merges CDATA into text' },
    arrays: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'element paths that are always arrays: "Invoice.InvoiceLine", "..entry"' },
    stripPrefixes: { type: 'boolean', description: 'drop namespace prefixes and xmlns declarations (default false)' },
    parseNumbers: { type: 'boolean', description: 'turn numeric-looking values into numbers (default false: values stay strings)' },
    trimValues: { type: 'boolean', description: 'trim whitespace around text (default true)' },
    strict: { type: 'boolean', description: 'check well-formedness (XML 1.0: tags, attributes, entities, characters, UTF-8) before mapping (default true)' },
    maxNodes: { type: 'integer', minimum: 1, description: `most elements in one document (default ${200_000}; also with strict: false)` },
    maxAttributes: { type: 'integer', minimum: 1, description: `most attributes on one element (default ${256}; also with strict: false)` },
    declaration: { type: 'boolean', description: 'encode: write the <?xml ...?> declaration (default true)' },
    indent: { type: 'integer', minimum: 0, maximum: 8, description: 'encode: spaces of indentation (default 0: one line)' },
  },
} as const;

const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const ENTITY_RE = /&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot|apos);/g;

function decodeEntity(_whole: string, ref: string): string {
  if (ref.charCodeAt(0) !== 35 /* # */) return NAMED[ref]!;
  const cp = ref.charCodeAt(1) === 120 /* x */ ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
  // a reference to a code point that does not exist is kept as written rather than guessed at
  return cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp === 0 ? _whole : String.fromCodePoint(cp);
}

/**
 * The entity decoder given to fast-xml-parser: the five XML entities and character
 * references only, in one pass (so `&amp;#233;` stays `&#233;`). Entities a DOCTYPE
 * declares are never registered, so nothing can expand, whatever the parser reads.
 */
const entityDecoder = {
  setExternalEntities(): void {},
  addInputEntities(): void {},
  reset(): void {},
  setXmlVersion(): void {},
  decode: (text: string): string => (text.indexOf('&') === -1 ? text : text.replace(ENTITY_RE, decodeEntity)),
};

/**
 * Refuse DTDs that declare entities or point outside the document, by reading only the
 * prolog (what precedes the root element): no scan of the whole document per message.
 */
export function checkProlog(text: string, codec = 'xml'): void {
  let i = 0;
  const n = text.length;
  for (let guard = 0; guard < 10_000; guard++) {
    while (i < n && (text.charCodeAt(i) <= 32 || text.charCodeAt(i) === 0xfeff)) i++;
    if (text.charCodeAt(i) !== 60 /* < */) return;
    const c1 = text.charCodeAt(i + 1);
    if (c1 === 63 /* ? */) {
      const end = text.indexOf('?>', i + 2);
      if (end === -1) return;
      i = end + 2;
    } else if (text.startsWith('<!--', i)) {
      const end = text.indexOf('-->', i + 4);
      if (end === -1) return;
      i = end + 3;
    } else if (text.startsWith('<!DOCTYPE', i)) {
      const gt = text.indexOf('>', i);
      const bracket = text.indexOf('[', i);
      let end = gt;
      if (bracket !== -1 && (gt === -1 || bracket < gt)) {
        const close = text.indexOf(']', bracket);
        end = close === -1 ? n : text.indexOf('>', close);
      }
      const decl = text.slice(i, end === -1 ? n : end + 1);
      const head = bracket !== -1 && bracket < (gt === -1 ? n : gt) ? decl.slice(0, bracket - i) : decl;
      if (/\b(SYSTEM|PUBLIC)\b/.test(head) || /<!ENTITY[^>]*\b(SYSTEM|PUBLIC)\b/.test(decl)) {
        throw new BusbarError('XML_EXTERNAL_ENTITY', `${codec}: the DOCTYPE refers to an external DTD or entity; external resources are never fetched and such documents are refused`, {
          details: { codec, at: 'DOCTYPE' },
        });
      }
      if (decl.includes('<!ENTITY')) {
        const name = /<!ENTITY\s+%?\s*([^\s"'>]+)/.exec(decl)?.[1];
        throw new BusbarError('XML_ENTITY_FORBIDDEN', `${codec}: the DOCTYPE declares entities${name ? ` (first: "${name}")` : ''}; entity declarations are refused (no entity expansion)`, {
          details: { codec, at: 'DOCTYPE', ...(name ? { entity: name } : {}) },
        });
      }
      i = end === -1 ? n : end + 1;
    } else return;
  }
}

interface ArrayPaths {
  exact: Set<string>;
  anywhere: Set<string>;
}

function arrayPaths(list: readonly string[] = []): ArrayPaths {
  const exact = new Set<string>();
  const anywhere = new Set<string>();
  for (const raw of list) {
    const p = raw.replace(/\//g, '.').replace(/^\.(?!\.)/, '');
    if (p.startsWith('..')) anywhere.add(p.slice(2));
    else if (p.startsWith('*.')) anywhere.add(p.slice(2));
    else exact.add(p);
  }
  return { exact, anywhere };
}

/** Map a fast-xml-parser failure to a coded error; the library reports position in its text. */
function parseError(e: unknown, codec: string, maxDepth: number): BusbarError {
  if (isBusbarError(e)) return e;
  const msg = (e as Error)?.message ?? String(e);
  if (/Maximum nested tags exceeded/i.test(msg)) return tooDeep(codec, maxDepth);
  return new BusbarError('PARSE', `${codec}: ${msg}`, { cause: e, details: { codec } });
}

const RESERVED_RE = new RegExp(`[<\\s](?:${[...RESERVED_NAMES].join('|')})[\\s=/>]`);

/** Own properties under the reserved names again (defineProperty: `__proto__` stays a plain key). */
function restoreReserved(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (let k = 0; k < value.length; k++) value[k] = restoreReserved(value[k]);
    return value;
  }
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const name = key.includes(RESERVED_MARK) ? key.replace(RESERVED_MARK, '') : key;
    Object.defineProperty(out, name, { value: restoreReserved(value[key]), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Where bytes stop being UTF-8 (XML 1.0 makes that a fatal error; decoding would turn them into U+FFFD). */
function notUtf8(input: Uint8Array, codec: string): BusbarError {
  const offset = firstBadUtf8(input);
  return new BusbarError('PARSE', `${codec}: the document is not valid UTF-8 (byte ${offset}: 0x${(input[offset] ?? 0).toString(16)}); decode other encodings to text before parsing`, { details: { codec, reason: 'encoding', byteOffset: offset } });
}

/** Offset of the first byte that is not part of a well-formed UTF-8 sequence (only called when `isUtf8` said no). */
function firstBadUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len === 0 || i + len > b.length) return i;
    for (let k = 1; k < len; k++) if ((b[i + k]! & 0xc0) !== 0x80) return i;
    const cp = len === 3 ? ((c & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) : len === 4 ? ((c & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) : -1;
    if (len === 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return i;
    if (len === 4 && (cp < 0x10000 || cp > 0x10ffff)) return i;
    i += len;
  }
  return b.length;
}

/** A parser and a builder configured once; `parse` and `build` are what codecs and the SOAP helpers share. */
export class XmlMapper {
  readonly options: Readonly<XmlOptions>;
  readonly #parser: XMLParser;
  readonly #parserOptions: X2jOptions;
  /** The parser for documents with reserved names (made when the first one comes). */
  #reservedParser: XMLParser | undefined;
  readonly #builder: XMLBuilder;
  readonly #maxBytes: number;
  readonly #maxDepth: number;
  readonly #strict: boolean;
  readonly #declaration: boolean;
  readonly #prefix: string;
  readonly #textKey: string;

  constructor(options: XmlOptions = {}) {
    this.options = options;
    this.#maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.#strict = options.strict ?? true;
    this.#declaration = options.declaration ?? true;
    this.#prefix = options.attributePrefix ?? '@';
    this.#textKey = options.textKey ?? '#text';
    const arrays = arrayPaths(options.arrays);
    const hasArrays = arrays.exact.size + arrays.anywhere.size > 0;
    const common = {
      ignoreAttributes: false,
      attributeNamePrefix: this.#prefix,
      textNodeName: this.#textKey,
      cdataPropName: options.cdataKey === undefined ? '#cdata' : options.cdataKey,
    };
    const parserOptions: X2jOptions = {
      ...common,
      removeNSPrefix: options.stripPrefixes ?? false,
      parseTagValue: options.parseNumbers ?? false,
      parseAttributeValue: options.parseNumbers ?? false,
      numberParseOptions: { hex: false, leadingZeros: false, eNotation: false },
      trimValues: options.trimValues ?? true,
      ignoreDeclaration: true,
      processEntities: true,
      htmlEntities: false,
      entityDecoder,
      maxNestedTags: this.#maxDepth,
      ...(hasArrays ? { isArray: (name: string, jpath: unknown, _leaf: boolean, isAttr: boolean) => !isAttr && (arrays.anywhere.has(name) || arrays.exact.has(String(jpath))) } : {}),
    };
    this.#parser = new XMLParser(parserOptions);
    this.#parserOptions = parserOptions;
    const builderOptions: XmlBuilderOptions = {
      ...common,
      format: (options.indent ?? 0) > 0,
      indentBy: ' '.repeat(options.indent ?? 0),
      suppressEmptyNode: true,
      suppressBooleanAttributes: false,
      processEntities: true,
    };
    this.#builder = new XMLBuilder(builderOptions);
  }

  get attributePrefix(): string {
    return this.#prefix;
  }

  get textKey(): string {
    return this.#textKey;
  }

  get maxDepth(): number {
    return this.#maxDepth;
  }

  /** Text or bytes -> data, with the limits and the DTD policy applied first. */
  parse(input: unknown, codec = 'xml'): Record<string, unknown> {
    if (this.#strict && (Buffer.isBuffer(input) || input instanceof Uint8Array)) {
      checkSize(input, this.#maxBytes, codec);
      if (!isUtf8(input)) throw notUtf8(input, codec);
    }
    const text = decodeInput(input, codec, this.#maxBytes);
    checkProlog(text, codec);
    // the scan replaces a second validation pass: the mapping below is lenient
    const limits = { maxDepth: this.#maxDepth, maxNodes: this.options.maxNodes ?? DEFAULT_MAX_NODES, maxAttributes: this.options.maxAttributes ?? DEFAULT_MAX_ATTRIBUTES };
    let reserved: boolean;
    if (this.#strict) reserved = scanXml(text, limits, codec).reservedNames;
    else {
      // lenient about well-formedness, never about cost: the same limits, counted in one cheap pass
      countXml(text, limits, codec);
      reserved = RESERVED_RE.test(text);
    }
    let value: unknown;
    try {
      value = reserved ? restoreReserved(this.#reservedNamesParser().parse(text)) : this.#parser.parse(text);
    } catch (e) {
      throw parseError(e, codec, this.#maxDepth);
    }
    if (!isPlainObject(value) || Object.keys(value).length === 0) {
      throw new BusbarError('PARSE', `${codec}: no root element found`, { details: { codec } });
    }
    return value;
  }

  #reservedNamesParser(): XMLParser {
    const mark = (name: string): string => (RESERVED_NAMES.has(name) ? RESERVED_MARK + name : name);
    const isArray = this.#parserOptions.isArray;
    return (this.#reservedParser ??= new XMLParser({
      ...this.#parserOptions,
      transformTagName: mark,
      transformAttributeName: mark,
      ...(isArray ? { isArray: (name: string, jpath: unknown, leaf: boolean, isAttr: boolean) => isArray(name.replace(RESERVED_MARK, ''), String(jpath).replaceAll(RESERVED_MARK, ''), leaf, isAttr) } : {}),
    }));
  }

  /** Data -> XML text. The value must have exactly one root element. */
  build(value: unknown, codec = 'xml', declaration = this.#declaration): string {
    if (!isPlainObject(value)) {
      throw new BusbarError('ENCODE', `${codec}: expected an object with one root element, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`, { details: { codec } });
    }
    const roots = Object.keys(value).filter((k) => !k.startsWith('?') && !k.startsWith(this.#prefix));
    if (roots.length !== 1) {
      throw new BusbarError('ENCODE', `${codec}: a document needs exactly one root element, got ${roots.length}${roots.length ? ` (${roots.slice(0, 5).join(', ')})` : ''}`, { details: { codec, roots } });
    }
    let xml: string;
    try {
      xml = this.#builder.build(value) as string;
    } catch (e) {
      throw new BusbarError('ENCODE', `${codec}: ${(e as Error).message}`, { cause: e, details: { codec } });
    }
    return declaration ? `<?xml version="1.0" encoding="UTF-8"?>${this.options.indent ? '\n' : ''}${xml}` : xml;
  }

  /** Build a fragment (no declaration, any number of top-level elements): SOAP bodies and headers. */
  fragment(value: Record<string, unknown>): string {
    try {
      return this.#builder.build(value) as string;
    } catch (e) {
      throw new BusbarError('ENCODE', `xml: ${(e as Error).message}`, { cause: e, details: { codec: 'xml' } });
    }
  }
}

export function createXmlCodec(options: XmlOptions = {}): Codec {
  const mapper = new XmlMapper(options);
  return {
    name: 'xml',
    contentTypes: ['application/xml', 'text/xml'],
    optionsSchema: xmlOptionsSchema,
    configure: (o) => createXmlCodec({ ...options, ...(o as XmlOptions) }),
    decode: (input) => mapper.parse(input, 'xml'),
    encode: (value) => mapper.build(value, 'xml'),
  };
}

export const xmlCodec: Codec = createXmlCodec();

/** Parse XML with busbar's hardened defaults (or other options). */
export function parseXml(input: string | Buffer, options?: XmlOptions): Record<string, unknown> {
  return new XmlMapper(options).parse(input);
}

export function buildXml(value: Record<string, unknown>, options?: XmlOptions): string {
  return new XmlMapper(options).build(value);
}

/** `ns:Name` -> `Name`. */
export function localName(qname: string): string {
  const i = qname.indexOf(':');
  return i === -1 ? qname : qname.slice(i + 1);
}

export function prefixOf(qname: string): string {
  const i = qname.indexOf(':');
  return i === -1 ? '' : qname.slice(0, i);
}

