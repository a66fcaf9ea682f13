import type { Adapter, ConsumerContext } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import { createAjv, toProblems, formatProblem } from '../../lib/schema.js';
import { createClientProducer, restClient } from './client.js';
import { createServerConsumer, hubOf, restServer } from './consumer.js';
import { jsonRpcClient, jsonRpcServer } from './jsonrpc.js';
import { readFileSync } from 'node:fs';
import { httpConfigSchema, httpOptions, type HttpConfig, type HttpConfigInput, type HttpOptions, type HttpRuntime } from './options.js';
import { createSoapConsumer, soapClient } from './soap.js';

export { httpOptions, httpConfigSchema, IDEMPOTENT, type HttpOptions, type HttpConfig, type HttpConfigInput, type HttpRuntime, type TlsMaterial } from './options.js';
export { HTTP_HEADERS, SOAP_HEADERS } from './headers.js';
export { JSONRPC_CODES, toRpcError, fromRpcError } from './jsonrpc.js';
export { statusOf } from './status.js';
export { redact } from './client.js';
export { actionOf } from './soap.js';

const validateConfig = createAjv().compile(httpConfigSchema);

/**
 * `http:` — REST, JSON-RPC 2.0 and SOAP over HTTP, server and client. One adapter with
 * three protocols (the `protocol` option) because they share what matters: the listening
 * servers (one port can serve REST resources, a JSON-RPC endpoint and SOAP operations),
 * their limits, and the client's keep-alive pool.
 *
 * - server: `from('http:/orders/:id?port=8080&method=GET')`
 * - client: `to('http://127.0.0.1:8080/orders/{body.id}?method=GET')`
 */
export function createHttpAdapter(config: HttpConfigInput = {}): Adapter<HttpOptions> {
  return create('http', config);
}

/**
 * `https:` — the same over TLS. Server routes need `tls.cert` and `tls.key` (PEM files);
 * clients verify servers against Node's built-in authorities, or `tls.ca`.
 *
 * - server: `from('https:/orders/:id?port=8443')` with `createHttpsAdapter({ tls: { cert, key } })`
 * - client: `to('https://api.example.com/orders/{body.id}?method=GET')`
 */
export function createHttpsAdapter(config: HttpConfigInput = {}): Adapter<HttpOptions> {
  return create('https', config);
}

function readPem(what: string, file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (e) {
    throw new BusbarError('INVALID_OPTION', `https adapter configuration: cannot read tls.${what} "${file}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { details: { option: `tls.${what}`, file } });
  }
}

function create(scheme: 'http' | 'https', config: HttpConfigInput): Adapter<HttpOptions> {
  const checked = structuredClone(config) as HttpConfig;
  if (!validateConfig(checked)) {
    const problems = toProblems(validateConfig.errors, httpConfigSchema, '', 'option');
    throw new BusbarError('INVALID_OPTION', `${scheme} adapter configuration: ${problems.map((p) => formatProblem(p)).join('; ')}`, { details: { problems } });
  }
  const cfg: HttpRuntime = { ...checked, scheme };
  if (scheme === 'https') {
    const t = checked.tls;
    cfg.secure = { rejectUnauthorized: t?.rejectUnauthorized ?? true, clientAuth: t?.clientAuth ?? 'none' };
    const [cert, key, ca] = [readPem('cert', t?.cert), readPem('key', t?.key), readPem('ca', t?.ca)];
    if (cert) cfg.secure.cert = cert;
    if (key) cfg.secure.key = key;
    if (ca) cfg.secure.ca = ca;
    if (t?.passphrase !== undefined) cfg.secure.passphrase = t.passphrase;
  } else if (checked.tls) {
    throw new BusbarError('INVALID_OPTION', 'http adapter configuration: `tls` belongs to the https adapter (createHttpsAdapter)', { details: { option: 'tls' } });
  }
  return {
    scheme,
    description:
      scheme === 'http'
        ? 'REST, JSON-RPC 2.0 and SOAP 1.1/1.2 over HTTP: a server on 127.0.0.1 (routes share a port, path parameters, content negotiation, limits, 503 backpressure) and a keep-alive client (URL templates, timeouts, safe retries).'
        : 'The http adapter over TLS: https servers (certificate and key from the adapter configuration) and https clients (certificates verified, a private CA with tls.ca).',
    optionsSchema: httpOptions,
    createConsumer(endpoint, ctx) {
      if (scheme === 'https' && cfg.secure?.clientAuth !== 'none' && !cfg.secure?.ca) {
        throw new BusbarError('INVALID_OPTION', `route "${ctx.routeId}": endpoint "${endpoint.uri}": tls.clientAuth "${cfg.secure?.clientAuth}" needs tls.ca, the authorities client certificates are verified against`, { details: { uri: endpoint.uri, routeId: ctx.routeId, option: 'tls.ca' } });
      }
      if (scheme === 'https' && !(cfg.secure?.cert && cfg.secure.key)) {
        throw new BusbarError('INVALID_OPTION', `route "${ctx.routeId}": endpoint "${endpoint.uri}": an https server route needs tls.cert and tls.key in the https adapter configuration`, { details: { uri: endpoint.uri, routeId: ctx.routeId, option: 'tls' } });
      }
      const p = endpoint.options.protocol;
      if (p === 'soap') return createSoapConsumer(endpoint, ctx, cfg);
      return createServerConsumer(endpoint, ctx, cfg, p === 'jsonrpc' ? jsonRpcServer : restServer);
    },
    createProducer(endpoint, ctx) {
      const p = endpoint.options.protocol;
      return createClientProducer(endpoint, ctx, cfg, p === 'jsonrpc' ? jsonRpcClient : p === 'soap' ? soapClient : restClient);
    },
  };
}

/** The adapter with the default configuration. */
export const httpAdapter: Adapter<HttpOptions> = createHttpAdapter();
/** The https adapter with the default configuration: a client verifying servers against Node's authorities. */
export const httpsAdapter: Adapter<HttpOptions> = createHttpsAdapter();
export default httpAdapter;

/**
 * The port a server of this engine actually listens on (useful with `port=0`), or
 * undefined when none runs there: `boundPort(engine, 0)`.
 */
export function boundPort(engine: { adapterState<T>(scheme: string, key: string, init: () => T): T }, port: number, host = '127.0.0.1', scheme: string = 'http'): number | undefined {
  return hubOf({ state: <T>(key: string, init: () => T) => engine.adapterState<T>(scheme, key, init) } as unknown as ConsumerContext).find(host, port)?.boundPort;
}
