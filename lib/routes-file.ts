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
  engine?: Pick<EngineOptions, 'maxInflight' | 'errorPolicy' | 'stopTimeoutMs' | 'name' | 'tracing'>;
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
let reloadSeq = 0;

/**
 * Load a routes file (.ts, .mts, .js, .mjs, .json). TypeScript needs no build step.
 * `fresh` (hot reload): read the file's current version as a module that can be collected
 * again (see lib/fresh-module.ts), not the one Node's module cache holds.
 */
export async function loadRoutesFile(file: string, opts: { fresh?: boolean } = {}): Promise<RoutesModule> {
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
      const at = jsonPosition(text, (e as Error).message);
      throw new BusbarError('ROUTES_FILE', `${file}${at ? `:${at.line}:${at.column}` : ''}: not valid JSON${at ? ` (line ${at.line}, column ${at.column})` : ''}: ${(e as Error).message}`, { cause: e, details: { file, ...(at ?? {}) } });
    }
    raw = substituteVariables(raw, file);
  } else if (['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'].includes(ext)) {
    if (/\.[mc]?ts$/.test(ext) && !tsxRegistered) {
      // tsx compiles TypeScript on import, so a routes file runs without a build step
      const { register } = await import('tsx/esm/api');
      register();
      // in a "type": "commonjs" project (npm init's default) tsx compiles a .ts file to CommonJS
      // and require()s it; without its CJS hook Node fails with "Cannot require() ES Module ... in a cycle"
      const cjs = await import('tsx/cjs/api');
      cjs.register();
      tsxRegistered = true;
    }
    try {
      await readFile(abs);
    } catch (e) {
      throw new BusbarError('ROUTES_FILE', `cannot read routes file ${file}: ${(e as Error).message}`, { cause: e, details: { file } });
    }
    let mod: Record<string, unknown>;
    try {
      const fresh = opts.fresh ? await (await import('./fresh-module.js')).importFresh(abs) : undefined;
      // without `fresh` (or when the file needs real ESM: top-level await), an import; reloaded with a new URL
      mod = fresh ?? ((await import(opts.fresh ? `${pathToFileURL(abs).href}?reload=${Date.now()}-${++reloadSeq}` : pathToFileURL(abs).href)) as Record<string, unknown>);
    } catch (e) {
      throw new BusbarError('ROUTES_FILE', `cannot load routes file ${file}: ${(e as Error).message}`, { cause: e, details: { file } });
    }
    raw = mod.default ?? (mod.routes !== undefined ? { ...mod } : undefined);
    // a .ts file compiled to CommonJS arrives as its module.exports: { default, routes, ... }
    if (raw && typeof raw === 'object' && !('routes' in raw) && !('from' in raw) && !Array.isArray(raw) && !isRouteBuilder(raw)) {
      const exportsObj = raw as Record<string, unknown>;
      if (exportsObj.default !== undefined) raw = exportsObj.default;
    }
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

/** Line and column of a JSON.parse failure, from the position Node puts in its message (or the end). */
function jsonPosition(text: string, message: string): { line: number; column: number } | undefined {
  const m = /at position (\d+)/.exec(message);
  const pos = m ? Number(m[1]) : /Unexpected end of JSON input/.test(message) ? text.length : undefined;
  if (pos === undefined) return undefined;
  const before = text.slice(0, pos);
  return { line: before.split('\n').length, column: pos - before.lastIndexOf('\n') };
}

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * `${VAR}` and `${VAR:-default}` in the strings of a JSON routes file, from the environment, at
 * load. Done on parsed strings (a value cannot inject JSON); the values are never logged or put
 * in an error (they may be secrets): a missing variable without a default is an error naming
 * the variable and where it is used.
 */
export function substituteVariables(doc: unknown, file: string, env: NodeJS.ProcessEnv = process.env): unknown {
  const missing: string[] = [];
  const walk = (v: unknown, path: string): unknown => {
    if (typeof v === 'string') {
      if (!v.includes('${')) return v;
      return v.replace(VARIABLE, (_whole, name: string, fallback: string | undefined) => {
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        missing.push(`\${${name}} at ${path || '/'}`);
        return '';
      });
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}/${i}`));
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, `${path}/${k}`);
      return out;
    }
    return v;
  };
  const out = walk(doc, '');
  if (missing.length) {
    throw new BusbarError('ROUTES_FILE', `${file}: environment variable${missing.length > 1 ? 's' : ''} not set and without a default (write \${NAME:-default} for one): ${missing.join(', ')}`, { details: { file, missing } });
  }
  return out;
}
