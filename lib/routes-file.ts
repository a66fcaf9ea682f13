import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Adapter } from './adapter.js';
import type { ChannelBindings } from './bindings.js';
import { isRouteBuilder } from './builder.js';
import type { EngineOptions, RouteInput } from './engine.js';
import { BusbarError } from './errors.js';
import type { NamedFunction } from './step.js';
import type { ManagementOptions } from './management/types.js';

/**
 * What a routes file provides. A `.ts`/`.js` file default-exports it (see `defineRoutes`)
 * or exports `routes`; a `.json` file is this object as data.
 */
export interface RoutesModule {
  routes: RouteInput | RouteInput[];
  /** Functions config-form steps may call by name. */
  functions?: Record<string, NamedFunction>;
  /** Adapter instances (from a `.ts` file), or per-scheme adapter config (JSON: `{ "amqp": { "url": ... } }`). */
  adapters?: Adapter[] | Record<string, unknown>;
  /** Engine settings. */
  engine?: Pick<EngineOptions, 'maxInflight' | 'errorPolicy' | 'stopTimeoutMs' | 'name'>;
  /** Broker topology (read by adapters that declare it, e.g. amqp). */
  topology?: unknown;
  /** Carry the routes' in-memory channels over a transport (`{ "transport": "amqp" }`): docs/topologies.md. */
  channels?: ChannelBindings | ChannelBindings[];
  /** The management API of `busbar run` (see docs/management.md): `{ host, port, token }` or `"127.0.0.1:9464"`. */
  management?: ManagementOptions | string;
}

/** Identity helper that gives a `.ts` routes file its types. */
export function defineRoutes(m: RoutesModule): RoutesModule {
  return m;
}

let tsxRegistered = false;

/** Load a routes file (.ts, .mts, .js, .mjs, .json). TypeScript needs no build step. */
export async function loadRoutesFile(file: string): Promise<RoutesModule> {
  const abs = resolve(file);
  const ext = extname(abs);
  let raw: unknown;
  if (ext === '.json') {
    let text: string;
    try {
      text = await readFile(abs, 'utf8');
    } catch (e) {
      throw new BusbarError('ROUTES_FILE', `cannot read routes file ${file}: ${(e as Error).message}`, { cause: e, details: { file } });
    }
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new BusbarError('ROUTES_FILE', `${file} is not valid JSON: ${(e as Error).message}`, { cause: e, details: { file } });
    }
  } else if (['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'].includes(ext)) {
    if (/\.[mc]?ts$/.test(ext) && !tsxRegistered) {
      // tsx compiles TypeScript on import, so a routes file runs without a build step
      const { register } = await import('tsx/esm/api');
      register();
      tsxRegistered = true;
    }
    try {
      await readFile(abs);
    } catch (e) {
      throw new BusbarError('ROUTES_FILE', `cannot read routes file ${file}: ${(e as Error).message}`, { cause: e, details: { file } });
    }
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
    } catch (e) {
      throw new BusbarError('ROUTES_FILE', `cannot load routes file ${file}: ${(e as Error).message}`, { cause: e, details: { file } });
    }
    raw = mod.default ?? (mod.routes !== undefined ? { ...mod } : undefined);
    if (typeof raw === 'function') raw = await (raw as () => unknown)();
  } else {
    throw new BusbarError('ROUTES_FILE', `routes file ${file}: unsupported extension "${ext}" (use .ts, .js, .mjs or .json)`, { details: { file } });
  }
  return normalize(raw, file);
}

function normalize(raw: unknown, file: string): RoutesModule {
  if (raw === undefined || raw === null) {
    throw new BusbarError('ROUTES_FILE', `routes file ${file} exports no routes (default-export defineRoutes({ routes: [...] }), or export const routes)`, { details: { file } });
  }
  if (Array.isArray(raw) || isRouteBuilder(raw) || (typeof raw === 'object' && 'from' in raw)) {
    return { routes: raw as RouteInput };
  }
  if (typeof raw === 'object' && 'routes' in raw) {
    return raw as RoutesModule;
  }
  throw new BusbarError('ROUTES_FILE', `routes file ${file}: expected { routes: [...] }, an array of routes, or a route`, { details: { file } });
}
