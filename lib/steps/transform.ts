/**
 * Transformation, codec and contract steps: unmarshal/marshal with codec options and
 * automatic content-type selection, convert(from, to), validate(schema), header and body
 * operations, and a SOAP fault reply for failures (protocol conversion).
 */
import type { Codec } from '../codecs.js';
import { buildSoapFault, SOAP_CONTENT_TYPES, type SoapVersion } from '../codecs/soap.js';
import { compileContract, type Contract, type ContractOptions } from '../contracts.js';
import { BusbarError } from '../errors.js';
import { EMPTY_HEADERS, merged, withBody, withBodyAndHeaders, withHeaders, type Headers, type HeaderValue, type Message } from '../message.js';
import { createAjv, type JsonSchema } from '../schema.js';
import { isPromise, mapStep, type CompileContext, type ConfigContext, type MaybePromise, type StepKind } from '../step.js';
import { renderTemplate, valueAt } from '../template.js';
import { computedFromConfig, evaluator, type Computed } from './core.js';

// ---------------------------------------------------------------- codecs
export interface FormatArgs {
  /** Codec name or content type; `auto` picks the codec from the message's content type. */
  format: string;
  /** Options of that codec (`{ arrays: ['Invoice.InvoiceLine'] }` for xml). */
  options?: Record<string, unknown> | undefined;
}

const formatSchema = {
  oneOf: [
    { type: 'string', minLength: 1, description: 'codec name (json, xml, soap, soap12, csv, text, bytes), a content type, or "auto"' },
    {
      type: 'object',
      additionalProperties: false,
      required: ['format'],
      properties: { format: { type: 'string', minLength: 1 }, options: { type: 'object', description: 'codec options (see docs/transformation.md)' } },
    },
  ],
} as const;

const formatFromConfig = (value: unknown): FormatArgs => (typeof value === 'string' ? { format: value } : (value as FormatArgs));

function isEncoded(v: unknown): v is string | Uint8Array {
  return typeof v === 'string' || v instanceof Uint8Array;
}

/** The codec for a format, configured with its options once, when the route is built. */
export function resolveCodec(ctx: CompileContext, format: string, options?: Record<string, unknown>): Codec {
  const base = ctx.codecs.require(format);
  if (!options || Object.keys(options).length === 0) return base;
  if (!base.configure) throw new BusbarError('INVALID_ROUTE', `format "${base.name}" takes no options`, { details: { format } });
  if (base.optionsSchema) {
    const validate = createAjv().compile(base.optionsSchema as object);
    if (!validate(structuredClone(options))) {
      const problems = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}${e.keyword === 'additionalProperties' ? ` ("${(e.params as { additionalProperty: string }).additionalProperty}")` : ''}`);
      throw new BusbarError('INVALID_ROUTE', `invalid options for format "${base.name}": ${problems.join('; ')}`, { details: { format, problems } });
    }
  }
  return base.configure(options);
}

function contentTypeOf(msg: Message): string | undefined {
  const v = msg.headers['content-type'] ?? msg.headers['Content-Type'];
  return typeof v === 'string' && v ? v : undefined;
}

/** `auto`: the codec named by the content type header; a missing or unknown type is a coded error. */
function autoDecoder(ctx: CompileContext): (msg: Message) => unknown {
  return (msg) => {
    if (!isEncoded(msg.body)) return msg.body;
    const type = contentTypeOf(msg);
    const codec = type === undefined ? undefined : ctx.codecs.forContentType(type);
    if (!codec) {
      throw new BusbarError('UNSUPPORTED_FORMAT', type === undefined ? 'cannot decode automatically: the message has no content-type header' : `no codec for content type "${type}" (known: ${ctx.codecs.names().join(', ')})`, {
        details: { contentType: type ?? null },
      });
    }
    return codec.decode(msg.body);
  };
}

export const unmarshalStep: StepKind<FormatArgs> = mapStep({
  name: 'unmarshal',
  description: 'Decode the body (text or bytes) with a codec, optionally with codec options; `auto` picks the codec from the content-type header.',
  configSchema: formatSchema,
  fromConfig: formatFromConfig,
  map({ format, options }, ctx) {
    if (format === 'auto') {
      const decode = autoDecoder(ctx);
      return (msg) => withBody(msg, decode(msg));
    }
    const codec = resolveCodec(ctx, format, options);
    return (msg) => withBody(msg, codec.decode(msg.body));
  },
});

function withContentType(msg: Message, type: string): Message {
  return msg.headers['content-type'] === type ? msg : withHeaders(msg, { 'content-type': type });
}

/**
 * The encoded message with its content type: one copy of the message, and for a message that
 * had no headers a headers object shared by every message this step encodes (headers are
 * never changed in place, so sharing is safe: copy on write).
 */
function encodedAs(type: string): (msg: Message, body: unknown) => Message {
  const alone: Headers = Object.freeze({ 'content-type': type });
  return (msg, body) => {
    const h = msg.headers;
    if (h === EMPTY_HEADERS) return withBodyAndHeaders(msg, body, alone);
    return withBodyAndHeaders(msg, body, h['content-type'] === type ? h : merged(h, { 'content-type': type }));
  };
}

export const marshalStep: StepKind<FormatArgs> = mapStep({
  name: 'marshal',
  description: 'Encode the body with a codec (optionally with options) and set the content-type header; `auto` encodes for the `accept` header, else the content type, else JSON.',
  configSchema: formatSchema,
  fromConfig: formatFromConfig,
  map({ format, options }, ctx) {
    if (format === 'auto') {
      const json = ctx.codecs.require('json');
      return (msg) => {
        const wanted = [msg.headers.accept, contentTypeOf(msg)].filter((v): v is string => typeof v === 'string');
        let codec: Codec | undefined;
        for (const w of wanted) {
          for (const t of w.split(',')) if ((codec = ctx.codecs.forContentType(t))) break;
          if (codec) break;
        }
        codec ??= json;
        return withContentType(withBody(msg, codec.encode(msg.body)), codec.contentTypes[0] ?? codec.name);
      };
    }
    const codec = resolveCodec(ctx, format, options);
    const type = codec.contentTypes[0] ?? format;
    const typeFor = codec.contentTypeFor?.bind(codec);
    if (typeFor) return (msg) => withContentType(withBody(msg, codec.encode(msg.body)), typeFor(msg.body) ?? type);
    const encoded = encodedAs(type);
    return (msg) => encoded(msg, codec.encode(msg.body));
  },
});

// ---------------------------------------------------------------- convert
export interface ConvertArgs {
  from: string;
  to: string;
  options?: { from?: Record<string, unknown>; to?: Record<string, unknown> } | undefined;
}

/** Targets that mean "decoded data" rather than text. */
const DATA_TARGETS = new Set(['json', 'data', 'object']);

export const convertStep: StepKind<ConvertArgs> = mapStep({
  name: 'convert',
  description:
    'Convert the body from one format to another: text/bytes in `from` are decoded (data passes as it is), then encoded in `to`. `to: "json"` means JSON data (objects) for validate/transform; add marshal("json") for JSON text.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['from', 'to'],
    properties: {
      from: { type: 'string', minLength: 1, description: 'format of the body now (codec name or "auto")' },
      to: { type: 'string', minLength: 1, description: 'format wanted ("json" = data)' },
      options: {
        type: 'object',
        additionalProperties: false,
        properties: { from: { type: 'object' }, to: { type: 'object' } },
      },
    },
  },
  fromConfig: (value) => value as ConvertArgs,
  map({ from, to, options }, ctx) {
    const decode: (msg: Message) => unknown =
      from === 'auto'
        ? autoDecoder(ctx)
        : DATA_TARGETS.has(from) && from !== 'json'
          ? (msg) => msg.body
          : ((codec: Codec) => (msg: Message) => (isEncoded(msg.body) ? codec.decode(msg.body) : msg.body))(resolveCodec(ctx, from, options?.from));
    if (DATA_TARGETS.has(to)) return (msg) => withBody(msg, decode(msg));
    const codec = resolveCodec(ctx, to, options?.to);
    const type = codec.contentTypes[0] ?? to;
    return (msg) => withContentType(withBody(msg, codec.encode(decode(msg))), type);
  },
});

// ---------------------------------------------------------------- validate
export interface ValidateArgs extends ContractOptions {
  schema: JsonSchema;
  /** Compiled when a config route is read (to report a bad schema with its path); reused at build. */
  compiled?: Contract | undefined;
}

export const validateStep: StepKind<ValidateArgs> = mapStep({
  name: 'validate',
  description: 'Check the body against a JSON Schema (ajv, compiled once). A violation is BUSBAR_ERR_VALIDATION_FAILED listing every problem with its JSON pointer, handled by the error policy.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['schema'],
    properties: {
      schema: { type: 'object', description: 'JSON Schema of the body' },
      name: { type: 'string', description: 'contract name shown in errors' },
      coerce: { type: 'boolean', description: 'coerce scalar types ("42" -> 42), for XML and CSV data' },
      defaults: { type: 'boolean', description: 'fill in schema defaults' },
      maxProblems: { type: 'integer', minimum: 1 },
    },
  },
  fromConfig(value, ctx: ConfigContext) {
    const v = value as ValidateArgs;
    try {
      return { ...v, compiled: compileContract(v.schema, { ...v, name: v.name ?? 'contract' }) };
    } catch (e) {
      ctx.problem({ path: `${ctx.path}/schema`, message: (e as Error).message });
      return v;
    }
  },
  map(args, ctx) {
    const contract = args.compiled ?? compileContract(args.schema, { ...args, name: args.name ?? 'contract', details: { routeId: ctx.routeId } });
    const where = `step ${ctx.path}`;
    return (msg) => {
      const body = contract(msg.body, where);
      return body === msg.body ? msg : withBody(msg, body);
    };
  },
});

// ---------------------------------------------------------------- headers and body
/** How one header gets its value. */
export type HeaderSpec =
  | { value: HeaderValue }
  | { template: string }
  | { fromBody: string }
  | { fromHeader: string }
  | { computed: Computed };

export interface SetHeadersArgs {
  headers: Record<string, HeaderSpec>;
}

/** `/a/b` (JSON pointer) or `a.b` (dotted path) into a value. */
export function bodyPath(path: string): (body: unknown) => unknown {
  const keys = path.startsWith('/')
    ? path.slice(1).split('/').map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'))
    : path.split('.').filter(Boolean);
  return (body) => valueAt(body, keys);
}

function asHeader(v: unknown): HeaderValue {
  if (v === undefined || v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

const headerSpecSchema = {
  oneOf: [
    { type: ['string', 'number', 'boolean', 'null'], description: 'a constant' },
    {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
      properties: {
        value: { type: ['string', 'number', 'boolean', 'null'] },
        template: { type: 'string', description: '{body.x} / {header.y} template' },
        fromBody: { type: 'string', description: 'JSON pointer (/a/b) or dotted path (a.b) into the body' },
        fromHeader: { type: 'string', description: 'copy another header' },
        expr: { type: 'string', description: 'JSONata expression' },
        fn: { type: 'string', description: 'registered function' },
      },
    },
  ],
} as const;

export const setHeadersStep: StepKind<SetHeadersArgs> = mapStep({
  name: 'setHeaders',
  description: 'Set several headers: constants, `{templates}`, values copied from the body (`fromBody`: JSON pointer or dotted path) or another header, JSONata or a function.',
  configSchema: { type: 'object', minProperties: 1, additionalProperties: headerSpecSchema },
  fromConfig(value, ctx) {
    const headers: Record<string, HeaderSpec> = {};
    for (const [name, spec] of Object.entries(value as Record<string, unknown>)) {
      if (spec === null || typeof spec !== 'object') headers[name] = { value: spec as HeaderValue };
      else {
        const s = spec as Record<string, string>;
        if ('expr' in s || 'fn' in s) headers[name] = { computed: computedFromConfig(s, ctx, `${ctx.path}/${name}`) };
        else headers[name] = spec as HeaderSpec;
      }
    }
    return { headers };
  },
  map({ headers }) {
    const setters = Object.entries(headers).map(([name, spec]): [string, (msg: Message) => MaybePromise<unknown>] => {
      if ('value' in spec) return [name, () => spec.value];
      if ('template' in spec) return [name, (m) => renderTemplate(spec.template, m)];
      if ('fromBody' in spec) {
        const get = bodyPath(spec.fromBody);
        return [name, (m) => get(m.body)];
      }
      if ('fromHeader' in spec) return [name, (m) => m.headers[spec.fromHeader]];
      return [name, evaluator(spec.computed)];
    });
    return (msg) => {
      const out: Record<string, HeaderValue> = {};
      let pending: Array<Promise<void>> | undefined;
      for (const [name, get] of setters) {
        let v: unknown;
        try {
          v = get(msg);
        } catch (e) {
          // a header function threw: the ones already running must not reject unobserved
          for (const p of pending ?? []) p.catch(() => undefined);
          throw e;
        }
        if (isPromise(v)) (pending ??= []).push(v.then((x) => void (out[name] = asHeader(x))));
        else out[name] = asHeader(v);
      }
      if (pending) return Promise.all(pending).then(() => withHeaders(msg, out));
      return withHeaders(msg, out);
    };
  },
});

export interface SetBodyArgs {
  value?: unknown;
  template?: string;
  fromHeader?: string;
}

export const setBodyStep: StepKind<SetBodyArgs> = mapStep({
  name: 'setBody',
  description: 'Replace the body with a constant, a `{template}` string, or a header\'s value.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    maxProperties: 1,
    properties: { value: {}, template: { type: 'string' }, fromHeader: { type: 'string' } },
  },
  fromConfig: (value) => value as SetBodyArgs,
  map(args) {
    if (args.template !== undefined) {
      const t = args.template;
      return (msg) => withBody(msg, renderTemplate(t, msg));
    }
    if (args.fromHeader !== undefined) {
      const h = args.fromHeader;
      return (msg) => withBody(msg, msg.headers[h]);
    }
    const v = args.value;
    return (msg) => withBody(msg, v);
  },
});

// ---------------------------------------------------------------- SOAP fault replies
export interface SoapFaultOnErrorArgs {
  /** `auto`: the version of the request (its envelope namespace), 1.1 when it cannot tell. */
  version: SoapVersion | 'auto';
  /** The fault reason sent instead of the error's text (which never names route ids or steps). */
  reason?: string | undefined;
}

const SOAP12_NS = 'http://www.w3.org/2003/05/soap-envelope';

function requestVersion(body: unknown): SoapVersion {
  const text = typeof body === 'string' ? body : body instanceof Uint8Array ? Buffer.from(body.buffer, body.byteOffset, Math.min(body.byteLength, 4096)).toString('utf8') : '';
  return text.includes(SOAP12_NS) ? '1.2' : '1.1';
}

/** Header set on a reply that is a SOAP Fault (the HTTP endpoint answers it with status 500). */
export const SOAP_FAULT_HEADER = 'busbar.soap.fault';

export const soapFaultOnErrorStep: StepKind<SoapFaultOnErrorArgs> = {
  name: 'soapFaultOnError',
  description:
    'A failure in the rest of the route becomes a SOAP Fault reply (Client/Sender for bad requests, Server/Receiver otherwise, the busbar code in the detail) instead of failing the exchange: the request-reply side of a SOAP endpoint.',
  configSchema: {
    oneOf: [
      { enum: ['1.1', '1.2', 'auto'] },
      {
        type: 'object',
        additionalProperties: false,
        properties: {
          version: { enum: ['1.1', '1.2', 'auto'], default: 'auto' },
          reason: { type: 'string', minLength: 1, description: 'fault reason sent instead of the error\'s text (which never names route ids or steps)' },
        },
      },
    ],
  },
  fromConfig: (value) =>
    typeof value === 'string' ? { version: value as SoapVersion } : { version: (value as { version?: SoapVersion }).version ?? 'auto', reason: (value as { reason?: string }).reason },
  compile({ version: fixed, reason }, next, ctx) {
    const reply = (msg: Message, err: unknown): Message => {
      const version = fixed === 'auto' ? requestVersion(msg.body) : fixed;
      ctx.logger.warn({ messageId: msg.id, code: (err as BusbarError).code, err }, 'replying with a SOAP fault');
      return withHeaders(withBody(msg, buildSoapFault(err, { version, reason })), { 'content-type': SOAP_CONTENT_TYPES[version], [SOAP_FAULT_HEADER]: true });
    };
    return (msg) => {
      try {
        const r = next(msg);
        return isPromise(r) ? r.catch((e: unknown) => reply(msg, e)) : r;
      } catch (e) {
        return reply(msg, e);
      }
    };
  },
};

export const transformSteps: StepKind<never>[] = [
  unmarshalStep,
  marshalStep,
  convertStep,
  validateStep,
  setHeadersStep,
  setBodyStep,
  soapFaultOnErrorStep,
] as unknown as StepKind<never>[];

