import { BusbarError } from './errors.js';

/** An endpoint URI, parsed once: `scheme:path?option=value&...`. */
export interface ParsedUri {
  /** The URI as written. */
  readonly uri: string;
  readonly scheme: string;
  /** Everything between `scheme:` and `?` (may itself contain `:` and `/`). */
  readonly path: string;
  /** Raw option strings; the adapter's schema coerces and validates them. */
  readonly params: Readonly<Record<string, string>>;
}

const SCHEME = /^[a-z][a-z0-9+.-]*$/;

export function parseUri(uri: string): ParsedUri {
  if (typeof uri !== 'string' || uri.length === 0) {
    throw new BusbarError('INVALID_URI', `endpoint URI must be a non-empty string, got ${JSON.stringify(uri)}`, { details: { uri } });
  }
  const colon = uri.indexOf(':');
  if (colon <= 0) {
    throw new BusbarError('INVALID_URI', `endpoint URI "${uri}" has no scheme (expected scheme:path?option=value)`, { details: { uri } });
  }
  const scheme = uri.slice(0, colon);
  if (!SCHEME.test(scheme)) {
    throw new BusbarError('INVALID_URI', `endpoint URI "${uri}": scheme "${scheme}" must be lower-case letters, digits, + . -`, { details: { uri, scheme } });
  }
  const rest = uri.slice(colon + 1);
  const q = rest.indexOf('?');
  const path = decodeURIComponent(q < 0 ? rest : rest.slice(0, q));
  const params: Record<string, string> = {};
  if (q >= 0) {
    for (const [k, v] of new URLSearchParams(rest.slice(q + 1))) {
      if (k in params) {
        throw new BusbarError('INVALID_URI', `endpoint URI "${uri}": option "${k}" is given twice`, { details: { uri, option: k } });
      }
      params[k] = v;
    }
  }
  return { uri, scheme, path, params };
}
