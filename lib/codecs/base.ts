import { BusbarError } from '../errors.js';
import type { JsonSchema } from '../schema.js';

export type Encoded = string | Buffer;

/** Decodes bytes/strings into values and back. Selected by name or content type. */
export interface Codec {
  readonly name: string;
  /** Content types this codec handles; the first is what it writes. */
  readonly contentTypes: readonly string[];
  decode(input: unknown): unknown;
  encode(value: unknown): Encoded;
  /**
   * A copy of this codec with other options (arrays per path, limits, SOAP version...).
   * Steps call it once when a route is built, never per message.
   */
  configure?(options: Record<string, unknown>): Codec;
  /** JSON Schema of the options `configure` accepts (config routes are checked against it). */
  readonly optionsSchema?: JsonSchema;
  /** The content type `encode(value)` writes, when it depends on the value (a SOAP reply in the request's version). */
  contentTypeFor?(value: unknown): string | undefined;
}

/** Limits applied to untrusted documents before and while they are parsed. */
export interface CodecLimits {
  /** Largest accepted document, in bytes (UTF-8). */
  maxBytes?: number;
  /** Deepest accepted nesting of elements / objects and arrays. */
  maxDepth?: number;
}

export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_DEPTH = 100;

export const limitsSchema = {
  maxBytes: { type: 'integer', minimum: 1, description: `largest accepted document in bytes (default ${DEFAULT_MAX_BYTES})` },
  maxDepth: { type: 'integer', minimum: 1, description: `deepest accepted nesting (default ${DEFAULT_MAX_DEPTH})` },
} as const;

export function asText(input: unknown, codec: string): string {
  if (typeof input === 'string') return input;
  // a Buffer reads itself; only another Uint8Array needs a Buffer view over its bytes
  if (Buffer.isBuffer(input)) return input.toString('utf8');
  if (input instanceof Uint8Array) return Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  throw new BusbarError('PARSE', `${codec}: expected a string or bytes to decode, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}`, { details: { codec } });
}

/**
 * Refuse a document over `maxBytes` before any parsing work. Strings are measured cheaply:
 * UTF-8 is at most 3 bytes per UTF-16 unit, so the exact count is only needed near the limit.
 */
export function checkSize(input: string | Buffer | Uint8Array, maxBytes: number, codec: string): void {
  let size: number;
  if (typeof input === 'string') {
    if (input.length * 3 <= maxBytes) return;
    size = input.length > maxBytes ? input.length : Buffer.byteLength(input, 'utf8');
  } else size = input.byteLength;
  if (size > maxBytes) {
    throw new BusbarError('INPUT_TOO_LARGE', `${codec}: document of ${size} bytes exceeds the limit of ${maxBytes} bytes (maxBytes)`, {
      details: { codec, size, maxBytes },
    });
  }
}

export function tooDeep(codec: string, maxDepth: number, where?: string): BusbarError {
  return new BusbarError('INPUT_TOO_DEEP', `${codec}: document nests deeper than ${maxDepth} levels${where ? ` at ${where}` : ''} (maxDepth)`, {
    details: { codec, maxDepth, ...(where ? { at: where } : {}) },
  });
}

/** Decode text or bytes: both are accepted everywhere a codec reads. */
export function decodeInput(input: unknown, codec: string, maxBytes: number): string {
  if (typeof input === 'string' || Buffer.isBuffer(input) || input instanceof Uint8Array) checkSize(input, maxBytes, codec);
  return asText(input, codec);
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof Date) && !(v instanceof Uint8Array);
}

export const textCodec: Codec = {
  name: 'text',
  contentTypes: ['text/plain'],
  decode: (input) => asText(input, 'text'),
  encode: (value) => (typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)),
};

export const bytesCodec: Codec = {
  name: 'bytes',
  contentTypes: ['application/octet-stream'],
  decode: (input) => (Buffer.isBuffer(input) ? input : typeof input === 'string' ? Buffer.from(input, 'utf8') : input instanceof Uint8Array ? Buffer.from(input) : asText(input, 'bytes')),
  encode: (value) => (Buffer.isBuffer(value) ? value : value instanceof Uint8Array ? Buffer.from(value) : Buffer.from(textCodec.encode(value) as string, 'utf8')),
};
