import { BusbarError } from './errors.js';

export type Encoded = string | Buffer;

/** Decodes bytes/strings into values and back. Selected by name or content type. */
export interface Codec {
  readonly name: string;
  /** Content types this codec handles; the first is what it writes. */
  readonly contentTypes: readonly string[];
  decode(input: unknown): unknown;
  encode(value: unknown): Encoded;
}

export function asText(input: unknown, codec: string): string {
  if (typeof input === 'string') return input;
  if (Buffer.isBuffer(input) || input instanceof Uint8Array) return Buffer.from(input).toString('utf8');
  throw new BusbarError('PARSE', `${codec}: expected a string or bytes to decode, got ${input === null ? 'null' : typeof input}`, { details: { codec } });
}

export const jsonCodec: Codec = {
  name: 'json',
  contentTypes: ['application/json', 'text/json'],
  decode(input) {
    const text = asText(input, 'json');
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new BusbarError('PARSE', `json: ${(e as Error).message}`, { cause: e, details: { codec: 'json' } });
    }
  },
  encode(value) {
    return JSON.stringify(value);
  },
};

export const textCodec: Codec = {
  name: 'text',
  contentTypes: ['text/plain'],
  decode: (input) => asText(input, 'text'),
  encode: (value) => (typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : String(value)),
};

export const bytesCodec: Codec = {
  name: 'bytes',
  contentTypes: ['application/octet-stream'],
  decode: (input) => (Buffer.isBuffer(input) ? input : typeof input === 'string' ? Buffer.from(input, 'utf8') : input instanceof Uint8Array ? Buffer.from(input) : asText(input, 'bytes')),
  encode: (value) => (Buffer.isBuffer(value) ? value : Buffer.from(textCodec.encode(value) as string, 'utf8')),
};

/** Codecs by name and content type; an instance per engine. */
export class CodecRegistry {
  readonly #byName = new Map<string, Codec>();
  readonly #byType = new Map<string, Codec>();
  constructor(codecs: Iterable<Codec> = [jsonCodec, textCodec, bytesCodec]) {
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
  require(nameOrType: string): Codec {
    const c = this.get(nameOrType);
    if (!c) throw new BusbarError('INVALID_ROUTE', `unknown format "${nameOrType}" (known: ${this.names().join(', ')})`, { details: { format: nameOrType } });
    return c;
  }
  clone(): CodecRegistry {
    return new CodecRegistry(this.#byName.values());
  }
}
