import { createHash, timingSafeEqual } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import type { FnAdapter } from './index.js';
import { FUNCTION_NAME, type FunctionInput } from './options.js';

/** What the management server offers modules that mount handlers on it (lib/management's contract). */
export interface ManagementMount {
  addRoute(method: string, path: string, handler: (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => void | Promise<void>): void;
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function refuse(res: ServerResponse, status: number, err: BusbarError): void {
  answer(res, status, { error: { code: err.code, message: err.message, ...(Array.isArray(err.details.problems) ? { problems: err.details.problems } : {}) } });
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        rej(new BusbarError('INPUT_TOO_LARGE', `module source over ${max} bytes (deploy.maxModuleBytes)`, { details: { maxBytes: max } }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => res(Buffer.concat(chunks)));
    req.on('error', rej);
  });
}

const EXTENSIONS = new Set(['js', 'mjs', 'ts', 'mts']);
/** Function settings a deploy request may give along with the source (everything but `module`). */
const SETTINGS = new Set(['export', 'minWorkers', 'maxWorkers', 'idleTimeoutMs', 'timeoutMs', 'maxQueue', 'maxInvocationsPerWorker', 'maxHeapMb', 'maxOldGenerationMb', 'isolation', 'meterCpu']);

/**
 * Mounts function deployment on the management API (`engine.onManagement((m) =>
 * mountFunctionDeploy(m, fns, engine))`). Off unless the adapter has `deploy` settings, and
 * every request needs `X-Deploy-Token: <deploy.token>` on top of the management server's
 * own rules (its bearer token), because a deploy runs code on the hub.
 *
 * - `POST /api/v1/functions/:name` — body `{ "source": "<module text>", "lang": "js"|"ts"|"mjs"|"mts", ...settings }`:
 *   writes the module under `deploy.dir` and registers it (replacing a function of that name:
 *   its running calls finish on the old workers). 201 `{ name, version, module }`.
 * - `GET /api/v1/functions` — the functions, their settings and usage.
 * - `DELETE /api/v1/functions/:name` — unregister.
 */
export function mountFunctionDeploy(m: ManagementMount, fns: FnAdapter, engine: { stats(): { adapters?: Record<string, Record<string, unknown>> } }): void {
  const deploy = fns.deploy;
  if (!deploy) {
    throw new BusbarError('INVALID_OPTION', 'fn adapter: deploying functions is off; give the adapter `deploy: { dir, token }` to turn it on', { details: { option: 'deploy' } });
  }
  const dir = resolve(deploy.dir);
  // compared as digests: equal lengths for timingSafeEqual, and no length leaked
  const expected = createHash('sha256').update(deploy.token).digest();
  const authorized = (req: IncomingMessage): boolean => {
    const got = req.headers['x-deploy-token'];
    return typeof got === 'string' && timingSafeEqual(createHash('sha256').update(got).digest(), expected);
  };
  const guard =
    (fn: (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => Promise<void>) =>
    async (req: IncomingMessage, res: ServerResponse, params: Record<string, string>): Promise<void> => {
      if (!authorized(req)) {
        req.resume();
        refuse(res, 401, new BusbarError('UNAUTHORIZED', 'function deploy needs the X-Deploy-Token header with the fn adapter\'s deploy.token', { details: {} }));
        return;
      }
      try {
        await fn(req, res, params);
      } catch (e) {
        const err = isBusbarError(e) ? e : new BusbarError('INVALID_OPTION', (e as Error).message, { cause: e });
        refuse(res, err.code === 'BUSBAR_ERR_FN_NOT_FOUND' ? 404 : err.code === 'BUSBAR_ERR_INPUT_TOO_LARGE' ? 413 : 400, err);
      }
    };
  let seq = 0;

  m.addRoute('POST', '/api/v1/functions/:name', guard(async (req, res, params) => {
    const name = params.name ?? '';
    if (!new RegExp(FUNCTION_NAME).test(name)) throw new BusbarError('INVALID_OPTION', `"${name}" is not a function name (lower-case letters, digits, ".", "_", "-")`, { details: { fn: name } });
    const raw = await readBody(req, deploy.maxModuleBytes + 65536);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new BusbarError('PARSE', `deploy request body is not JSON: ${(e as Error).message}`, { cause: e });
    }
    if (typeof body !== 'object' || body === null || typeof body.source !== 'string') throw new BusbarError('INVALID_OPTION', 'deploy request body needs "source": the module text', { details: { option: 'source' } });
    if (Buffer.byteLength(body.source) > deploy.maxModuleBytes) throw new BusbarError('INPUT_TOO_LARGE', `module source over ${deploy.maxModuleBytes} bytes (deploy.maxModuleBytes)`, { details: { maxBytes: deploy.maxModuleBytes } });
    const lang = body.lang === undefined ? 'mjs' : String(body.lang);
    if (!EXTENSIONS.has(lang)) throw new BusbarError('INVALID_OPTION', `"lang" must be one of ${[...EXTENSIONS].join(', ')}; got "${lang}"`, { details: { option: 'lang' } });
    const settings: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(body)) {
      if (k === 'source' || k === 'lang') continue;
      if (!SETTINGS.has(k)) throw new BusbarError('INVALID_OPTION', `unknown function setting "${k}"; settings: ${[...SETTINGS].join(', ')}`, { details: { option: k } });
      settings[k] = v;
    }
    mkdirSync(dir, { recursive: true });
    // a new file per deployment: a module URL loads once per thread, and in-process once per process
    const file = join(dir, `${name}.${Date.now().toString(36)}-${++seq}.${lang}`);
    writeFileSync(file, body.source);
    const def = fns.register(name, { ...(settings as Partial<FunctionInput>), module: file });
    const version = (engine.stats().adapters?.fn?.functions as Record<string, { version: number }> | undefined)?.[name]?.version;
    answer(res, 201, { name, module: file, settings: def, ...(version !== undefined ? { previousVersion: version } : {}) });
  }));

  m.addRoute('GET', '/api/v1/functions', guard(async (_req, res) => {
    const usage = (engine.stats().adapters?.fn?.functions ?? {}) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [name, def] of fns.functions()) out[name] = { settings: def, usage: usage[name] ?? null };
    answer(res, 200, { functions: out });
  }));

  m.addRoute('DELETE', '/api/v1/functions/:name', guard(async (_req, res, params) => {
    const name = params.name ?? '';
    if (!fns.unregister(name)) throw new BusbarError('FN_NOT_FOUND', `no function "${name}" is registered`, { details: { fn: name } });
    answer(res, 200, { name, removed: true });
  }));
}
