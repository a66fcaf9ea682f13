import { BusbarError } from '../../lib/errors.js';
import { createJsonCodec, createXmlCodec, type Codec } from '../../lib/codecs.js';

export type BodyFormat = 'auto' | 'json' | 'xml' | 'text' | 'raw';

const XML_ROOT = 'response';

/** Codecs with the body limit of one endpoint (built once per endpoint, not per message). */
export class Formats {
  readonly json: Codec;
  readonly xml: Codec;
  constructor(maxBytes: number) {
    this.json = createJsonCodec({ maxBytes });
    this.xml = createXmlCodec({ maxBytes, declaration: true });
  }

  /** Which format a content type names (`auto` falls back to raw bytes for anything else). */
  static kindOf(contentType: string | undefined): Exclude<BodyFormat, 'auto'> {
    const t = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
    if (t === 'application/json' || t.endsWith('+json') || t === 'text/json') return 'json';
    if (t === 'application/xml' || t === 'text/xml' || (t.endsWith('+xml') && t !== 'application/soap+xml')) return 'xml';
    if (t.startsWith('text/') || t === 'application/x-www-form-urlencoded') return 'text';
    return 'raw';
  }

  // the content type of the last request and its kind: clients send the same one over and over
  #lastType: string | undefined;
  #lastKind: Exclude<BodyFormat, 'auto'> = 'raw';

  /** Bytes off the wire -> a body. An empty body is `undefined`. */
  decode(bytes: Buffer, contentType: string | undefined, format: BodyFormat): unknown {
    if (bytes.length === 0) return undefined;
    let kind: Exclude<BodyFormat, 'auto'>;
    if (format !== 'auto') kind = format;
    else if (contentType !== undefined && contentType === this.#lastType) kind = this.#lastKind;
    else {
      kind = Formats.kindOf(contentType);
      this.#lastType = contentType;
      this.#lastKind = kind;
    }
    switch (kind) {
      case 'json':
        return this.json.decode(bytes);
      case 'xml':
        return this.xml.decode(bytes);
      case 'text':
        return bytes.toString('utf8');
      default:
        return bytes;
    }
  }

  /**
   * A body -> bytes and a content type. Strings and Buffers go as they are (text/plain,
   * octet-stream) unless a format is forced; objects are JSON unless XML is asked for.
   */
  encode(body: unknown, format: BodyFormat, contentType?: string): { data: Buffer | string; contentType: string } | undefined {
    if (body === undefined) return undefined;
    if (format === 'raw' || format === 'text' || (format === 'auto' && (typeof body === 'string' || Buffer.isBuffer(body)))) {
      if (Buffer.isBuffer(body)) return { data: body, contentType: contentType ?? 'application/octet-stream' };
      if (typeof body === 'string') return { data: body, contentType: contentType ?? 'text/plain; charset=utf-8' };
      if (format === 'raw' || format === 'text') {
        throw new BusbarError('ENCODE', `http: format ${format} needs a string or Buffer body, got ${Array.isArray(body) ? 'an array' : typeof body}`, { details: { format } });
      }
    }
    if (format === 'xml') return { data: encodeXml(body, this.xml), contentType: contentType ?? 'application/xml; charset=utf-8' };
    if (typeof body === 'string') return { data: body, contentType: contentType ?? 'application/json; charset=utf-8' };
    return { data: this.json.encode(body) as string, contentType: contentType ?? 'application/json; charset=utf-8' };
  }
}

const defaultXml = createXmlCodec({ declaration: true });

/**
 * Data -> XML. A value that already is one element (`{ order: {...} }`) is written as it
 * is; anything else is wrapped in `<response>` (arrays as repeated `<item>`).
 */
export function encodeXml(value: unknown, codec: Codec = defaultXml): string {
  let doc: Record<string, unknown>;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).filter((k) => !k.startsWith('@') && !k.startsWith('?')).length === 1) {
    doc = value as Record<string, unknown>;
  } else if (Array.isArray(value)) doc = { [XML_ROOT]: { item: value } };
  else doc = { [XML_ROOT]: value as Record<string, unknown> };
  const out = codec.encode(doc);
  return typeof out === 'string' ? out : out.toString('utf8');
}
