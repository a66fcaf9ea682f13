/**
 * Message header names the http adapter reads and writes. Server side: `http.*` describe
 * the request received, `http.reply.*` shape the response. Client side: `http.request.*`
 * shape the call, `http.response.*` describe what came back.
 */
export const HTTP_HEADERS = {
  method: 'http.method',
  path: 'http.path',
  url: 'http.url',
  /** Prefix: `http.param.id` for `/orders/:id`. */
  param: 'http.param.',
  /** Prefix: `http.query.limit`; repeated parameters are a list. */
  query: 'http.query.',
  /** Prefix: request headers, lower-case names (`http.header.content-type`). */
  header: 'http.header.',
  remoteAddress: 'http.remoteAddress',
  /** https servers: whether the client's certificate verified against `tls.ca` (mutual TLS). */
  tlsAuthorized: 'http.tls.authorized',
  /** https servers: subject (CN) of the client's certificate, when it sent one. */
  tlsClientSubject: 'http.tls.clientSubject',
  /** Status of the response a server route sends (default 200, or 204 without a body). */
  replyStatus: 'http.reply.status',
  /** Prefix: response headers a server route sends (`http.reply.header.location`). */
  replyHeader: 'http.reply.header.',
  /** Method of a client call (overrides the `method` option). */
  requestMethod: 'http.request.method',
  /** Prefix: headers a client call sends (`http.request.header.authorization`). */
  requestHeader: 'http.request.header.',
  /** Status a client call got. */
  responseStatus: 'http.response.status',
  /** Prefix: headers a client call got, lower-case names. */
  responseHeader: 'http.response.header.',
  /** Per-message time limit of a call (ms), e.g. set by a client stub per method. */
  timeoutMs: 'busbar.timeoutMs',
} as const;

export const SOAP_HEADERS = {
  /** SOAPAction of the request (1.1 header or 1.2 `action` parameter), without quotes. */
  action: 'soap.action',
  /** Local name of the first Body element. */
  operation: 'soap.operation',
  /** Namespace of that element. */
  namespace: 'soap.namespace',
  version: 'soap.version',
  /** Prefix of the request's SOAP header blocks: `soap.header.Security` (text, or JSON for structured blocks). */
  headerBlock: 'soap.header.',
} as const;

/** Headers never copied from a message onto the wire: the connection's own business. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host']);
