/**
 * Header propagation policy (Camel's HeaderFilterStrategy is the model): headers stay on
 * their side of a transport.
 *
 * - Transport headers (`http.*`, `soap.*`, `amqp.*`, `grpc.*`, `busbar.file.*`, `busbar.db.*`, and
 *   `file.*` / `db.*`) describe how a message arrived or how a call went. A producer of a
 *   transport does not write them onto its wire, and a consumer does not take another
 *   transport's headers off its wire, unless they are allow-listed.
 * - Credentials (`authorization`, `cookie`, `proxy-authorization`, `set-cookie`, under any
 *   prefix) are never written out unless named exactly in the allow-list: a pattern such as
 *   `http.header.*` does not let them through.
 *
 * - The trace context (`busbar.trace.*`, lib/tracing) is the tracer's: each transport writes
 *   it in its own W3C place (`traceparent`), never as a plain header, and takes none off a wire.
 *
 * The allow-list is the endpoint option `headers`: comma-separated names, a trailing `*`
 * for a prefix (`headers=http.header.x-tenant,http.header.x-trace-*`).
 */
export const TRANSPORT_HEADER_PREFIXES = ['http.', 'soap.', 'amqp.', 'file.', 'db.', 'grpc.', 'busbar.file.', 'busbar.db.', 'busbar.trace.'] as const;

/** Header names (the last dotted segment, any case) that carry credentials. */
export const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization', 'set-cookie'] as const;

const CREDENTIALS = new Set<string>(CREDENTIAL_HEADERS);

export function isCredentialHeader(name: string): boolean {
  return CREDENTIALS.has(name.slice(name.lastIndexOf('.') + 1).toLowerCase());
}

export function isTransportHeader(name: string): boolean {
  for (const p of TRANSPORT_HEADER_PREFIXES) if (name.startsWith(p)) return true;
  return false;
}

export interface HeaderPolicy {
  /** Whether a producer writes this message header onto its wire. */
  outbound(name: string): boolean;
  /** Whether a consumer takes this wire header onto the message. */
  inbound(name: string): boolean;
  /** Whether `name` is allow-listed exactly or by a pattern (credentials: exactly only). */
  allowed(name: string): boolean;
}

/** The policy of an endpoint with this allow-list (the `headers` option). */
export function headerPolicy(allow?: string | readonly string[]): HeaderPolicy {
  const entries = (typeof allow === 'string' ? allow.split(',') : [...(allow ?? [])]).map((s) => s.trim()).filter(Boolean);
  const exact = new Set(entries.filter((e) => !e.endsWith('*')));
  const prefixes = entries.filter((e) => e.endsWith('*')).map((e) => e.slice(0, -1));
  const allowed = (name: string): boolean => exact.has(name) || (!isCredentialHeader(name) && prefixes.some((p) => name.startsWith(p)));
  // the same few names come by on every message: decide once per name (bounded)
  const memo = (f: (name: string) => boolean): ((name: string) => boolean) => {
    const seen = new Map<string, boolean>();
    return (name) => {
      let r = seen.get(name);
      if (r === undefined) {
        r = f(name);
        if (seen.size >= 4096) seen.clear();
        seen.set(name, r);
      }
      return r;
    };
  };
  return {
    allowed,
    outbound: memo((name) => allowed(name) || (!isCredentialHeader(name) && !isTransportHeader(name))),
    inbound: memo((name) => allowed(name) || !isTransportHeader(name)),
  };
}
