/**
 * Codecs: bytes/strings <-> values, selected by name or content type. The implementations
 * live in `lib/codecs/*`; this is the entry everything imports.
 */
import { BusbarError } from './errors.js';
import { didYouMean } from './schema.js';
import { bytesCodec, textCodec, type Codec } from './codecs/base.js';
import { csvCodec } from './codecs/csv.js';
import { jsonCodec } from './codecs/json.js';
import { soap12Codec, soapCodec } from './codecs/soap.js';
import { xmlCodec } from './codecs/xml.js';

export { asText, bytesCodec, checkSize, textCodec, DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, type Codec, type CodecLimits, type Encoded } from './codecs/base.js';
export { createJsonCodec, jsonCodec, type JsonOptions } from './codecs/json.js';
export { buildXml, checkProlog, createXmlCodec, localName, parseXml, xmlCodec, XmlMapper, xmlOptionsSchema, type XmlOptions } from './codecs/xml.js';
export { createCsvCodec, csvCodec, csvOptionsSchema, type CsvOptions } from './codecs/csv.js';
export {
  BUSBAR_FAULT_NAMESPACE,
  buildSoapEnvelope,
  buildSoapFault,
  createSoapCodec,
  errorToSoapFault,
  mustUnderstandFault,
  parseSoapEnvelope,
  simplifyXml,
  soap12Codec,
  soapBody,
  soapCodec,
  soapFaultToError,
  SOAP_CONTENT_TYPES,
  SOAP_NAMESPACES,
  type BuildEnvelopeOptions,
  type SoapEnvelope,
  type SoapFault,
  type SoapHeaderName,
  type SoapOptions,
  type SoapReply,
  type SoapVersion,
} from './codecs/soap.js';

/**
 * The codecs every engine starts with. `xml` comes after the SOAP codecs so the shared
 * `text/xml` content type means plain XML; `application/soap+xml` means SOAP 1.2.
 */
export function defaultCodecs(): Codec[] {
  return [jsonCodec, textCodec, bytesCodec, soapCodec, soap12Codec, csvCodec, xmlCodec];
}

/** Codecs by name and content type; an instance per engine. */
export class CodecRegistry {
  readonly #byName = new Map<string, Codec>();
  readonly #byType = new Map<string, Codec>();
  constructor(codecs: Iterable<Codec> = defaultCodecs()) {
    for (const c of codecs) this.register(c);
  }
  register(codec: Codec): this {
    this.#byName.set(codec.name, codec);
    for (const t of codec.contentTypes) this.#byType.set(t, codec);
    return this;
  }
  names(): string[] {
    return [...this.#byName.keys()];
  }
  /** By name (`json`) or content type (`application/json; charset=utf-8`). */
  get(nameOrType: string): Codec | undefined {
    return this.#byName.get(nameOrType) ?? this.#byType.get(nameOrType.split(';')[0]!.trim().toLowerCase());
  }
  /** By content type only (`+json` and `+xml` suffix types fall back to json and xml). */
  forContentType(type: string): Codec | undefined {
    const t = type.split(';')[0]!.trim().toLowerCase();
    const exact = this.#byType.get(t);
    if (exact) return exact;
    if (t.endsWith('+json')) return this.#byName.get('json');
    if (t.endsWith('+xml')) return this.#byName.get('xml');
    return undefined;
  }
  require(nameOrType: string): Codec {
    const c = this.get(nameOrType);
    if (!c) {
      const hint = didYouMean(nameOrType, this.names());
      throw new BusbarError('INVALID_ROUTE', `unknown format "${nameOrType}" (known: ${this.names().join(', ')})${hint ? `; ${hint}` : ''}`, { details: { format: nameOrType, ...(hint ? { suggestion: hint } : {}) } });
    }
    return c;
  }
  clone(): CodecRegistry {
    return new CodecRegistry(this.#byName.values());
  }
}
