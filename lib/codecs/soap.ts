/**
 * SOAP 1.1 and 1.2 envelopes: unwrap a request (body, headers, operation, a plain
 * `payload`), wrap a reply, and map Faults to busbar errors and back. These functions are
 * the public building blocks the HTTP/SOAP endpoints use; the `soap` codecs wrap them.
 */
import { BusbarError, isBusbarError } from '../errors.js';
import { isPlainObject, type Codec } from './base.js';
import { localName, prefixOf, XmlMapper, xmlOptionsSchema, type XmlOptions } from './xml.js';

export type SoapVersion = '1.1' | '1.2';

export const SOAP_NAMESPACES: Readonly<Record<SoapVersion, string>> = {
  '1.1': 'http://schemas.xmlsoap.org/soap/envelope/',
  '1.2': 'http://www.w3.org/2003/05/soap-envelope',
};

/** The content type each version is sent with (1.1 also needs a `SOAPAction` HTTP header). */
export const SOAP_CONTENT_TYPES: Readonly<Record<SoapVersion, string>> = {
  '1.1': 'text/xml',
  '1.2': 'application/soap+xml',
};

/** Namespace of the `<busbar:error>` element busbar puts in the detail of the faults it builds. */
export const BUSBAR_FAULT_NAMESPACE = 'urn:busbar:error';

const XSI = 'http://www.w3.org/2001/XMLSchema-instance';

/** A SOAP Fault, the same shape for both versions. */
export interface SoapFault {
  version: SoapVersion;
  /**
   * Local name of the fault code: `Client`, `Server`, `VersionMismatch`, `MustUnderstand`
   * (1.1); `Sender`, `Receiver`, `VersionMismatch`, `MustUnderstand`, `DataEncodingUnknown` (1.2).
   */
  code: string;
  /** 1.2 `Subcode` values, or the dotted parts of a 1.1 code (`Client.Authentication`). */
  subcodes: string[];
  /** `faultstring` (1.1) or the first `Reason/Text` (1.2). */
  reason: string;
  /** `faultactor` (1.1) or `Role` (1.2). */
  actor?: string;
  /** `Node` (1.2). */
  node?: string;
  /** The detail, simplified like `payload` (prefixes dropped, text-only elements as strings). */
  detail?: unknown;
}

/** A parsed envelope. */
export interface SoapEnvelope {
  version: SoapVersion;
  /** The Header element's content as parsed (prefixes, attributes kept), if there is a Header. */
  header?: Record<string, unknown>;
  /** Header blocks simplified by local name (`{ Security: {...}, MessageID: '...' }`). */
  headers: Record<string, unknown>;
  /** The Body element's content as parsed (round-trip safe). */
  body: Record<string, unknown>;
  /** Local name of the first element in the Body (the operation, or `Fault`). */
  operation?: string;
  /** Namespace URI of that element. */
  namespace?: string;
  /**
   * The first Body element's content, simplified for mapping: prefixes dropped, `xmlns`
   * and `xsi:type` attributes dropped, `xsi:nil` as null, text-only elements as strings.
   */
  payload: unknown;
  /** Present when the Body holds a Fault. */
  fault?: SoapFault;
  /**
   * Header blocks marked `mustUnderstand` that are addressed to this node as the ultimate
   * receiver (no actor/role, `next`, or 1.2 `ultimateReceiver`): a receiver that does not
   * process one of them must answer with a MustUnderstand fault (`mustUnderstandFault`).
   */
  mustUnderstand: SoapHeaderName[];
}

/** A header block's name: local name and namespace URI. */
export interface SoapHeaderName {
  name: string;
  namespace?: string;
}

const TARGETED: Record<SoapVersion, ReadonlySet<string>> = {
  '1.1': new Set(['http://schemas.xmlsoap.org/soap/actor/next']),
  '1.2': new Set(['http://www.w3.org/2003/05/soap-envelope/role/next', 'http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver']),
};

/**
 * Header blocks without the envelope's processing attributes (mustUnderstand, actor/role,
 * relay, encodingStyle): they tell the SOAP node what to do with a block, they are not its content.
 */
function withoutEnvelopeAttributes(header: Record<string, unknown>, scope: Scope, envNs: string, attr: string, textKey: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(header)) {
    if (!elementKeys({ [key]: value }, attr, textKey).length) {
      out[key] = value;
      continue;
    }
    const clean = (block: unknown): unknown => {
      if (!isPlainObject(block)) return block;
      const blockScope = scopeOf(block, scope, attr);
      const copy: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(block)) {
        const name = k.startsWith(attr) ? k.slice(attr.length) : undefined;
        if (name !== undefined && name.includes(':') && !name.startsWith('xmlns:') && blockScope.get(prefixOf(name)) === envNs) continue;
        copy[k] = v;
      }
      return copy;
    };
    out[key] = Array.isArray(value) ? value.map(clean) : clean(value);
  }
  return out;
}

/** The mustUnderstand header blocks addressed to the ultimate receiver. */
function mustUnderstandBlocks(header: Record<string, unknown>, scope: Scope, version: SoapVersion, attr: string, textKey: string): SoapHeaderName[] {
  const envNs = SOAP_NAMESPACES[version];
  const out: SoapHeaderName[] = [];
  for (const key of elementKeys(header, attr, textKey)) {
    for (const block of ([] as unknown[]).concat(header[key])) {
      if (!isPlainObject(block)) continue;
      const blockScope = scopeOf(block, scope, attr);
      // the envelope's own attributes, by namespace (any prefix)
      const envAttr = (local: string): string | undefined => {
        for (const [k, v] of Object.entries(block)) {
          if (!k.startsWith(attr)) continue;
          const name = k.slice(attr.length);
          if (localName(name) === local && name.includes(':') && blockScope.get(prefixOf(name)) === envNs) return String(v).trim();
        }
        return undefined;
      };
      const mu = envAttr('mustUnderstand');
      if (mu !== '1' && mu !== 'true') continue;
      const target = envAttr(version === '1.1' ? 'actor' : 'role');
      if (target !== undefined && target !== '' && !TARGETED[version].has(target)) continue;
      const ns = blockScope.get(prefixOf(key));
      out.push(ns === undefined ? { name: localName(key) } : { name: localName(key), namespace: ns });
    }
  }
  return out;
}

/**
 * The blocks of `mustUnderstand` not in `understood` (`{namespace}Name`, or `Name` for any
 * namespace), and the MustUnderstand fault that answers them: 1.1 `soap:MustUnderstand`,
 * 1.2 `env:MustUnderstand` with a `NotUnderstood` header block per block. Undefined when every
 * block is understood.
 */
export function mustUnderstandFault(env: Pick<SoapEnvelope, 'version' | 'mustUnderstand'>, understood: readonly string[]): { xml: string; notUnderstood: SoapHeaderName[] } | undefined {
  const known = new Set(understood.map((u) => u.trim()).filter(Boolean));
  const missing = env.mustUnderstand.filter((h) => !known.has(h.name) && !known.has(`{${h.namespace ?? ''}}${h.name}`));
  if (!missing.length) return undefined;
  const names = missing.map((h) => (h.namespace ? `{${h.namespace}}${h.name}` : h.name));
  const reason = `header block${missing.length > 1 ? 's' : ''} ${names.join(', ')} marked mustUnderstand ${missing.length > 1 ? 'are' : 'is'} not understood here`;
  const fault: SoapFault = { version: env.version, code: 'MustUnderstand', subcodes: [], reason };
  let header: Record<string, unknown> | undefined;
  if (env.version === '1.2') {
    const attr = mapperFor(undefined).attributePrefix;
    header = {
      'soap:NotUnderstood': missing.map((h, i) => (h.namespace ? { [`${attr}qname`]: `nu${i}:${h.name}`, [`${attr}xmlns:nu${i}`]: h.namespace } : { [`${attr}qname`]: h.name })),
    };
  }
  return { xml: buildSoapFault(fault, { version: env.version, ...(header ? { header } : {}) }), notUnderstood: missing };
}

export interface SoapOptions extends XmlOptions {
  /** Version written by `encode` (decoding detects the version). Default `1.1`. */
  version?: SoapVersion;
  /** Prefix of the envelope elements written (default `soap`). */
  prefix?: string;
  /** `decode` of a Fault: `throw` a `BUSBAR_ERR_SOAP_FAULT` (default), or `return` the envelope with `fault` set. */
  faults?: 'throw' | 'return';
}

/**
 * Parsers by their options. Callers often pass a fresh options object per request
 * (`{ maxBytes }`), so the key is the options' content; a mapper is immutable, and the cache
 * is bounded so varied options cannot grow it without end.
 */
const mappers = new Map<string, XmlMapper>();
const MAX_MAPPERS = 64;

function mapperFor(options: XmlOptions | undefined): XmlMapper {
  const key = options === undefined ? '' : JSON.stringify(options);
  let m = mappers.get(key);
  if (!m) {
    if (mappers.size >= MAX_MAPPERS) mappers.clear();
    mappers.set(key, (m = new XmlMapper(options)));
  }
  return m;
}

type Scope = ReadonlyMap<string, string>;

/** Namespace declarations of an element added to its parent's scope. */
function scopeOf(el: unknown, parent: Scope, attr: string): Scope {
  if (!isPlainObject(el)) return parent;
  let scope: Map<string, string> | undefined;
  for (const [k, v] of Object.entries(el)) {
    if (!k.startsWith(attr)) continue;
    const name = k.slice(attr.length);
    if (name === 'xmlns' || name.startsWith('xmlns:')) {
      scope ??= new Map(parent);
      scope.set(name === 'xmlns' ? '' : name.slice(6), String(v));
    }
  }
  return scope ?? parent;
}

function elementKeys(obj: Record<string, unknown>, attr: string, textKey: string): string[] {
  return Object.keys(obj).filter((k) => !k.startsWith(attr) && k !== textKey && k !== '#cdata');
}

function soapError(reason: string, message: string, extra: Record<string, unknown> = {}): BusbarError {
  return new BusbarError('SOAP_ENVELOPE', `soap: ${message}`, { details: { codec: 'soap', reason, ...extra } });
}

function textOf(v: unknown, textKey: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return textOf(v[0], textKey);
  const o = v as Record<string, unknown>;
  const t = o[textKey] ?? o['#cdata'];
  return t === undefined ? '' : typeof t === 'object' ? textOf(t, textKey) : String(t);
}

/**
 * The mapping-friendly view of parsed XML: local names, no namespace declarations or
 * `xsi:type`, `xsi:nil="true"` as null, CDATA merged, text-only elements as strings.
 */
export function simplifyXml(value: unknown, attr = '@', textKey = '#text'): unknown {
  if (Array.isArray(value)) return value.map((v) => simplifyXml(v, attr, textKey));
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  let text: string | undefined;
  for (const [k, v] of Object.entries(value)) {
    if (k.startsWith(attr)) {
      const name = k.slice(attr.length);
      if (name === 'xmlns' || name.startsWith('xmlns:')) continue;
      const local = localName(name);
      const pre = prefixOf(name);
      if ((local === 'type' || local === 'nil') && (pre === 'xsi' || (pre !== '' && value[`${attr}xmlns:${pre}`] === XSI))) {
        if (local === 'nil' && String(v) === 'true') return null;
        continue;
      }
      out[attr + local] = v;
    } else if (k === textKey || k === '#cdata') {
      const t = Array.isArray(v) ? v.join('') : String(v);
      text = text === undefined ? t : text + t;
    } else {
      const local = localName(k);
      const sv = simplifyXml(v, attr, textKey);
      if (local in out) {
        const prev = out[local];
        out[local] = Array.isArray(prev) ? [...prev, ...(Array.isArray(sv) ? sv : [sv])] : [prev, ...(Array.isArray(sv) ? sv : [sv])];
      } else out[local] = sv;
    }
  }
  const keys = Object.keys(out);
  if (keys.length === 0) return text ?? '';
  if (text !== undefined) out[textKey] = text;
  return out;
}

/**
 * Unwrap a SOAP 1.1 or 1.2 envelope (text or bytes). The version is detected from the
 * envelope's namespace. A Fault is returned in `fault` (this function does not throw for
 * one); a body that is not an envelope throws `BUSBAR_ERR_SOAP_ENVELOPE`.
 */
export function parseSoapEnvelope(input: unknown, options?: XmlOptions): SoapEnvelope {
  const mapper = mapperFor(options);
  const doc = mapper.parse(input, 'soap');
  const attr = mapper.attributePrefix;
  const textKey = mapper.textKey;
  const rootKey = elementKeys(doc, attr, textKey)[0]!;
  if (localName(rootKey) !== 'Envelope') {
    throw soapError('not-envelope', `expected a SOAP Envelope as the root element, got <${rootKey}>`, { root: rootKey });
  }
  const env = doc[rootKey];
  if (!isPlainObject(env)) throw soapError('no-body', 'the Envelope is empty (no Body)');
  const scope = scopeOf(env, new Map(), attr);
  const ns = scope.get(prefixOf(rootKey));
  const version = (Object.keys(SOAP_NAMESPACES) as SoapVersion[]).find((v) => SOAP_NAMESPACES[v] === ns);
  if (!version) {
    throw soapError('version', `unknown SOAP envelope namespace ${ns === undefined ? '(none declared)' : `"${ns}"`}; expected ${SOAP_NAMESPACES['1.1']} (1.1) or ${SOAP_NAMESPACES['1.2']} (1.2)`, {
      namespace: ns,
    });
  }
  const keys = elementKeys(env, attr, textKey);
  const headerKey = keys.find((k) => localName(k) === 'Header');
  const bodyKey = keys.find((k) => localName(k) === 'Body');
  if (bodyKey === undefined) throw soapError('no-body', `the SOAP ${version} Envelope has no Body`);
  const rawBody = env[bodyKey];
  const body = isPlainObject(rawBody) ? rawBody : {};
  const bodyScope = scopeOf(body, scope, attr);
  const result: SoapEnvelope = { version, headers: {}, body, payload: undefined, mustUnderstand: [] };
  if (headerKey !== undefined) {
    const h = env[headerKey];
    result.header = isPlainObject(h) ? h : {};
    const headerScope = scopeOf(h, scope, attr);
    result.mustUnderstand = mustUnderstandBlocks(result.header, headerScope, version, attr, textKey);
    const simple = simplifyXml(withoutEnvelopeAttributes(result.header, headerScope, SOAP_NAMESPACES[version], attr, textKey), attr, textKey);
    result.headers = isPlainObject(simple) ? simple : {};
  }
  const first = elementKeys(body, attr, textKey)[0];
  if (first !== undefined) {
    const el = body[first];
    const elScope = scopeOf(Array.isArray(el) ? el[0] : el, bodyScope, attr);
    result.operation = localName(first);
    const opNs = elScope.get(prefixOf(first));
    if (opNs !== undefined) result.namespace = opNs;
    result.payload = simplifyXml(el, attr, textKey);
    if (result.operation === 'Fault' && opNs === SOAP_NAMESPACES[version]) result.fault = readFault(el, version, attr, textKey);
  }
  return result;
}

function readFault(raw: unknown, version: SoapVersion, attr: string, textKey: string): SoapFault {
  const f = (Array.isArray(raw) ? raw[0] : raw) as Record<string, unknown>;
  const child = (o: unknown, name: string): unknown => {
    if (!isPlainObject(o)) return undefined;
    const k = Object.keys(o).find((x) => !x.startsWith(attr) && localName(x) === name);
    return k === undefined ? undefined : o[k];
  };
  const fault: SoapFault = { version, code: '', subcodes: [], reason: '' };
  let detail: unknown;
  if (version === '1.1') {
    const parts = localName(textOf(child(f, 'faultcode'), textKey) ?? '').split('.');
    fault.code = parts[0] ?? '';
    fault.subcodes = parts.slice(1);
    fault.reason = textOf(child(f, 'faultstring'), textKey) ?? '';
    const actor = textOf(child(f, 'faultactor'), textKey);
    if (actor) fault.actor = actor;
    detail = child(f, 'detail');
  } else {
    const code = child(f, 'Code');
    fault.code = localName(textOf(child(code, 'Value'), textKey) ?? '');
    let sub = child(code, 'Subcode');
    for (let i = 0; sub !== undefined && i < 32; i++) {
      fault.subcodes.push(localName(textOf(child(sub, 'Value'), textKey) ?? ''));
      sub = child(sub, 'Subcode');
    }
    const texts = child(child(f, 'Reason'), 'Text');
    const list = Array.isArray(texts) ? texts : texts === undefined ? [] : [texts];
    const en = list.find((t) => isPlainObject(t) && String(t[`${attr}xml:lang`] ?? '').toLowerCase().startsWith('en')) ?? list[0];
    fault.reason = textOf(en, textKey) ?? '';
    const node = textOf(child(f, 'Node'), textKey);
    if (node) fault.node = node;
    const role = textOf(child(f, 'Role'), textKey);
    if (role) fault.actor = role;
    detail = child(f, 'Detail');
  }
  if (detail !== undefined && detail !== '') fault.detail = simplifyXml(detail, attr, textKey);
  return fault;
}

export interface BuildEnvelopeOptions {
  version?: SoapVersion;
  /** Header blocks, as parsed XML data (`{ 'wsa:MessageID': { '@xmlns:wsa': '...', '#text': 'uuid:1' } }`). */
  header?: Record<string, unknown>;
  /** Prefix of the envelope elements (default `soap`). */
  prefix?: string;
  /** Write the `<?xml ...?>` declaration (default true). */
  declaration?: boolean;
  xml?: XmlOptions;
}

/**
 * Wrap Body content (parsed-XML data: `{ 'm:GetOrderResponse': { '@xmlns:m': 'urn:x', ... } }`)
 * in an envelope. `soapBody(operation, payload, namespace)` builds that content from plain data.
 */
export function buildSoapEnvelope(body: Record<string, unknown>, options: BuildEnvelopeOptions = {}): string {
  const version = options.version ?? '1.1';
  const p = options.prefix ?? 'soap';
  const mapper = mapperFor(options.xml);
  const attr = mapper.attributePrefix;
  const env: Record<string, unknown> = { [`${attr}xmlns:${p}`]: SOAP_NAMESPACES[version] };
  if (options.header && Object.keys(options.header).length) env[`${p}:Header`] = options.header;
  env[`${p}:Body`] = body;
  return mapper.build({ [`${p}:Envelope`]: env }, 'soap', options.declaration ?? true);
}

/** Body content for `buildSoapEnvelope` from an operation name, plain data and a namespace. */
export function soapBody(operation: string, payload: unknown, namespace?: string, attr = '@'): Record<string, unknown> {
  const content: Record<string, unknown> = isPlainObject(payload) ? { ...payload } : payload === undefined || payload === null ? {} : { '#text': String(payload) };
  if (namespace !== undefined) content[`${attr}xmlns`] = namespace;
  return { [operation]: content };
}

/**
 * A Fault from any error: busbar errors that are not retryable (a bad request: validation,
 * parse) become Client/Sender faults, the rest Server/Receiver; the busbar code, retryable
 * flag and validation problems go into the detail so `soapFaultToError` can restore them.
 * A received fault (`BUSBAR_ERR_SOAP_FAULT`) is passed on as it was.
 */
/**
 * An error's text as an external client may see it: without the route ids and step paths
 * busbar's messages name (`route "billing", step /steps/2 (transform): ...`), which say how the
 * integration is built and stay in the logs.
 */
export function publicErrorText(text: string): string {
  return text
    .replace(/route "[^"]*", step \S+(?: \([^)]*\))?: /g, '')
    .replace(/,? ?(?:at |in )?step \/steps\/[^\s:,)]*(?: \([^)]*\))?:?/g, '')
    .replace(/route "[^"]*"/g, 'the service')
    .trim();
}

/**
 * `reason` replaces the error's text as the fault reason; without it the reason is the
 * error's text with route ids and step paths removed (`publicErrorText`).
 */
export function errorToSoapFault(err: unknown, version: SoapVersion = '1.1', opts: { reason?: string | undefined } = {}): SoapFault {
  if (isBusbarError(err, 'SOAP_FAULT') && isPlainObject(err.details.fault)) {
    return { ...(err.details.fault as unknown as SoapFault), version };
  }
  const busbar = isBusbarError(err) ? err : undefined;
  const clientSide = busbar ? !busbar.retryable : false;
  let code = version === '1.1' ? (clientSide ? 'Client' : 'Server') : clientSide ? 'Sender' : 'Receiver';
  if (busbar?.code === 'BUSBAR_ERR_SOAP_ENVELOPE' && busbar.details.reason === 'version') code = 'VersionMismatch';
  const reason = opts.reason ?? publicErrorText(err instanceof Error ? err.message : String(err));
  const detail: Record<string, unknown> = { code: busbar?.code ?? 'BUSBAR_ERR_STEP_FAILED', retryable: String(busbar?.retryable ?? true) };
  const problems = busbar?.details.problems;
  if (Array.isArray(problems) && problems.length) detail.problems = problems;
  return { version, code, subcodes: [], reason, detail: { error: detail } };
}

function faultDetailXml(detail: unknown, attr: string): Record<string, unknown> | undefined {
  if (detail === undefined || detail === null) return undefined;
  const d = isPlainObject(detail) ? detail : { value: detail };
  const err = d.error;
  if (isPlainObject(err) && typeof err.code === 'string') {
    const el: Record<string, unknown> = { [`${attr}xmlns:busbar`]: BUSBAR_FAULT_NAMESPACE, 'busbar:code': err.code, 'busbar:retryable': String(err.retryable ?? '') };
    if (Array.isArray(err.problems)) {
      el['busbar:problem'] = (err.problems as Array<Record<string, unknown>>).map((p) => ({ [`${attr}pointer`]: String(p.pointer ?? p.path ?? ''), '#text': String(p.message ?? '') }));
    }
    return { 'busbar:error': el };
  }
  return d;
}

/** A Fault envelope from a `SoapFault` or from any error (see `errorToSoapFault`). */
export function buildSoapFault(faultOrError: SoapFault | unknown, options: Omit<BuildEnvelopeOptions, 'header'> & { header?: Record<string, unknown>; reason?: string | undefined } = {}): string {
  const asFault = isPlainObject(faultOrError) && typeof faultOrError.code === 'string' && typeof faultOrError.reason === 'string' && !(faultOrError instanceof Error);
  const version = options.version ?? (asFault ? ((faultOrError as unknown as SoapFault).version ?? '1.1') : '1.1');
  const fault: SoapFault = asFault ? { ...(faultOrError as unknown as SoapFault), version } : errorToSoapFault(faultOrError, version, { reason: options.reason });
  const p = options.prefix ?? 'soap';
  const attr = mapperFor(options.xml).attributePrefix;
  const detail = faultDetailXml(fault.detail, attr);
  const code = fault.code || (version === '1.1' ? 'Server' : 'Receiver');
  const standard = ['Client', 'Server', 'VersionMismatch', 'MustUnderstand', 'Sender', 'Receiver', 'DataEncodingUnknown'];
  const qcode = standard.includes(code) ? `${p}:${code}` : code;
  let el: Record<string, unknown>;
  if (version === '1.1') {
    el = { faultcode: [qcode, ...fault.subcodes].join('.'), faultstring: fault.reason };
    if (fault.actor) el.faultactor = fault.actor;
    if (detail) el.detail = detail;
  } else {
    const codeEl: Record<string, unknown> = { [`${p}:Value`]: qcode };
    let cur = codeEl;
    for (const s of fault.subcodes) {
      const sub: Record<string, unknown> = { [`${p}:Value`]: s.includes(':') ? s : `busbar:${s}` };
      if (!s.includes(':')) sub[`${attr}xmlns:busbar`] = BUSBAR_FAULT_NAMESPACE;
      cur[`${p}:Subcode`] = sub;
      cur = sub;
    }
    el = { [`${p}:Code`]: codeEl, [`${p}:Reason`]: { [`${p}:Text`]: { [`${attr}xml:lang`]: 'en', '#text': fault.reason } } };
    if (fault.node) el[`${p}:Node`] = fault.node;
    if (fault.actor) el[`${p}:Role`] = fault.actor;
    if (detail) el[`${p}:Detail`] = detail;
  }
  return buildSoapEnvelope({ [`${p}:Fault`]: el }, { ...options, version, prefix: p });
}

/**
 * A received Fault as a `BUSBAR_ERR_SOAP_FAULT`: retryable for Server/Receiver faults,
 * `details.fault` the fault, `details.remoteCode` and `details.problems` when the other
 * side is busbar (read from the `busbar:error` detail).
 */
export function soapFaultToError(fault: SoapFault): BusbarError {
  const serverSide = fault.code === 'Server' || fault.code === 'Receiver';
  const details: Record<string, unknown> = { codec: 'soap', fault };
  const remote = isPlainObject(fault.detail) && isPlainObject(fault.detail.error) ? fault.detail.error : undefined;
  if (remote && typeof remote.code === 'string') details.remoteCode = remote.code;
  if (remote?.problem !== undefined) {
    const list = Array.isArray(remote.problem) ? remote.problem : [remote.problem];
    details.problems = list.map((p) => (isPlainObject(p) ? { pointer: String(p['@pointer'] ?? ''), message: String(p['#text'] ?? '') } : { pointer: '', message: String(p) }));
  }
  const sub = fault.subcodes.length ? `.${fault.subcodes.join('.')}` : '';
  return new BusbarError('SOAP_FAULT', `SOAP ${fault.version} fault ${fault.code}${sub}: ${fault.reason}`, {
    retryable: remote && typeof remote.retryable === 'string' ? remote.retryable === 'true' : serverSide,
    details,
  });
}

/** A value `encode` treats as a reply to wrap: `{ operation, payload, namespace?, header? }`. */
export interface SoapReply {
  operation: string;
  /** Answer in this version (the request's `version`), whatever the codec writes by default. */
  version?: SoapVersion;
  payload?: unknown;
  namespace?: string;
  header?: Record<string, unknown>;
}

export function createSoapCodec(options: SoapOptions = {}): Codec {
  const version = options.version ?? '1.1';
  const { version: _v, prefix, faults = 'throw', ...xml } = options;
  const xmlOptions = Object.keys(xml).length ? xml : undefined;
  const mapper = mapperFor(xmlOptions);
  const attr = mapper.attributePrefix;
  const build = (body: Record<string, unknown>, header?: Record<string, unknown>): string =>
    buildSoapEnvelope(body, { version, ...(prefix ? { prefix } : {}), ...(header ? { header } : {}), ...(xmlOptions ? { xml: xmlOptions } : {}) });
  return {
    name: version === '1.1' ? 'soap' : 'soap12',
    contentTypes: [SOAP_CONTENT_TYPES[version]],
    optionsSchema: {
      type: 'object',
      additionalProperties: false,
      properties: {
        ...xmlOptionsSchema.properties,
        version: { enum: ['1.1', '1.2'], description: 'version written by encode (decode detects it); default 1.1' },
        prefix: { type: 'string', minLength: 1, description: 'prefix of the envelope elements written (default "soap")' },
        faults: { enum: ['throw', 'return'], description: 'decode of a Fault: throw BUSBAR_ERR_SOAP_FAULT (default) or return it in `fault`' },
      },
    },
    configure: (o) => createSoapCodec({ ...options, ...(o as SoapOptions) }),
    contentTypeFor: (value) => {
      const v = isPlainObject(value) ? value.version : undefined;
      return v === '1.1' || v === '1.2' ? SOAP_CONTENT_TYPES[v] : undefined;
    },
    decode(input) {
      const env = parseSoapEnvelope(input, xmlOptions);
      if (env.fault && faults === 'throw') throw soapFaultToError(env.fault);
      return env;
    },
    encode(value) {
      if (value instanceof Error) return buildSoapFault(value, { version, ...(prefix ? { prefix } : {}), ...(xmlOptions ? { xml: xmlOptions } : {}) });
      if (!isPlainObject(value)) {
        throw new BusbarError('ENCODE', `soap: expected Body content, a { operation, payload } reply or an Error, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`, { details: { codec: 'soap' } });
      }
      const header = isPlainObject(value.header) ? value.header : undefined;
      if (isPlainObject(value.body) && (value.version === '1.1' || value.version === '1.2')) return build(value.body, header);
      if (typeof value.operation === 'string' && 'payload' in value) {
        const r = value as unknown as SoapReply;
        const body = soapBody(r.operation, r.payload, r.namespace, attr);
        if (r.version !== undefined && r.version !== version) {
          return buildSoapEnvelope(body, { version: r.version, ...(prefix ? { prefix } : {}), ...(header ? { header } : {}), ...(xmlOptions ? { xml: xmlOptions } : {}) });
        }
        return build(body, header);
      }
      return build(value);
    },
  };
}

export const soapCodec: Codec = createSoapCodec({ version: '1.1' });
export const soap12Codec: Codec = createSoapCodec({ version: '1.2' });
