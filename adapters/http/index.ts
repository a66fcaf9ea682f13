import type { Adapter, ConsumerContext } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import { createAjv, toProblems, formatProblem } from '../../lib/schema.js';
import { createClientProducer, restClient } from './client.js';
import { createServerConsumer, hubOf, restServer } from './consumer.js';
import { jsonRpcClient, jsonRpcServer } from './jsonrpc.js';
import { httpConfigSchema, httpOptions, type HttpConfig, type HttpConfigInput, type HttpOptions } from './options.js';
import { createSoapConsumer, soapClient } from './soap.js';

export { httpOptions, httpConfigSchema, IDEMPOTENT, type HttpOptions, type HttpConfig, type HttpConfigInput } from './options.js';
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
  const cfg = structuredClone(config) as HttpConfig;
  if (!validateConfig(cfg)) {
    const problems = toProblems(validateConfig.errors, httpConfigSchema, '', 'option');
    throw new BusbarError('INVALID_OPTION', `http adapter configuration: ${problems.map((p) => formatProblem(p)).join('; ')}`, { details: { problems } });
  }
  return {
    scheme: 'http',
    description: 'REST, JSON-RPC 2.0 and SOAP 1.1/1.2 over HTTP: a server on 127.0.0.1 (routes share a port, path parameters, content negotiation, limits, 503 backpressure) and a keep-alive client (URL templates, timeouts, safe retries).',
    optionsSchema: httpOptions,
    createConsumer(endpoint, ctx) {
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
export default httpAdapter;

/**
 * The port a server of this engine actually listens on (useful with `port=0`), or
 * undefined when none runs there: `boundPort(engine, 0)`.
 */
export function boundPort(engine: { adapterState<T>(scheme: string, key: string, init: () => T): T }, port: number, host = '127.0.0.1'): number | undefined {
  return hubOf({ state: <T>(key: string, init: () => T) => engine.adapterState<T>('http', key, init) } as unknown as ConsumerContext).find(host, port)?.boundPort;
}
