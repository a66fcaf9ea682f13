import { request, type IncomingHttpHeaders } from 'node:http';
import type { Engine } from '../../../lib/engine.js';
import { boundPort } from '../../../adapters/http/index.js';

/** The port the engine's `port=0` server got. */
export function portOf(engine: Engine): number {
  const p = boundPort(engine, 0);
  if (p === undefined) throw new Error('no http server listening on port 0 in this engine');
  return p;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: () => unknown;
}

/** A plain node:http call (no busbar in between), bounded by `timeoutMs`. */
export function call(port: number, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers }, agent: false, timeout: timeoutMs });
    req.on('timeout', () => req.destroy(new Error(`no response within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown });
      });
      res.on('error', reject);
    });
    req.end(body);
  });
}
