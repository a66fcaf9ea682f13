import { XMLBuilder, XMLParser, XMLValidator, type X2jOptions, type XmlBuilderOptions } from 'fast-xml-parser';
import { BusbarError, isBusbarError } from '../errors.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, decodeInput, isPlainObject, limitsSchema, tooDeep, type Codec, type CodecLimits } from './base.js';

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
  /** Check well-formedness (mismatched or unclosed tags) before mapping (default true). */
  strict?: boolean;
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
    strict: { type: 'boolean', description: 'check well-formedness before mapping (default true)' },
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

/** A parser and a builder configured once; `parse` and `build` are what codecs and the SOAP helpers share. */
export class XmlMapper {
  readonly options: Readonly<XmlOptions>;
  readonly #parser: XMLParser;
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
    const text = decodeInput(input, codec, this.#maxBytes);
    checkProlog(text, codec);
    if (this.#strict) {
      const ok = XMLValidator.validate(text, { allowBooleanAttributes: false });
      if (ok !== true) {
        throw new BusbarError('PARSE', `${codec}: ${ok.err.msg} (line ${ok.err.line}, column ${ok.err.col})`, {
          details: { codec, line: ok.err.line, column: ok.err.col, reason: ok.err.code },
        });
      }
    }
    let value: unknown;
    try {
      value = this.#parser.parse(text);
    } catch (e) {
      throw parseError(e, codec, this.#maxDepth);
    }
    if (!isPlainObject(value) || Object.keys(value).length === 0) {
      throw new BusbarError('PARSE', `${codec}: no root element found`, { details: { codec } });
    }
    return value;
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

