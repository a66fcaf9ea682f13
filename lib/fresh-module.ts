import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileFunction } from 'node:vm';

/**
 * Load a .ts/.js module so that it can be garbage-collected once nothing uses it: for hot
 * reload. Node's ESM loader keeps every module it ever imported (a query-string URL per
 * reload leaked ~11 KB per reload of a small routes file, measured), so the file is compiled
 * to CommonJS with esbuild and run as a function. Its imports are ordinary (cached) ESM
 * imports: only the routes file itself is fresh, the modules it imports are loaded once.
 *
 * Resolves undefined when the file cannot be loaded this way (top-level await, `import.meta`
 * other than `url`): the caller falls back to an ordinary import.
 */
/** Namespaces of the (cached, never reloaded) modules routes files import, by URL: skips a loader round trip per reload. */
const namespaces = new Map<string, Record<string, unknown>>();

export async function importFresh(abs: string): Promise<Record<string, unknown> | undefined> {
  const src = await readFile(abs, 'utf8');
  const esbuild = await import('esbuild');
  const url = pathToFileURL(abs).href;
  let code: string;
  try {
    const ts = /\.[mc]?ts$/.test(abs);
    code = (await esbuild.transform(src, {
      loader: ts ? 'ts' : 'js',
      format: 'cjs',
      target: 'node20',
      sourcefile: abs,
      sourcemap: 'inline',
      define: { 'import.meta.url': JSON.stringify(url), 'import.meta.filename': JSON.stringify(abs), 'import.meta.dirname': JSON.stringify(dirname(abs)) },
      logLevel: 'silent',
    })).code;
  } catch {
    return undefined;
  }
  if (/\bimport_meta\b/.test(code)) return undefined;
  // esbuild writes every import as require("specifier"): import them first (ESM, cached)
  const specifiers = [...new Set([...code.matchAll(/\brequire\("((?:[^"\\]|\\.)*)"\)/g)].map((m) => JSON.parse(`"${m[1]}"`) as string))];
  const cjs = createRequire(abs);
  const mods = new Map<string, unknown>();
  for (const spec of specifiers) {
    let target: string;
    if (spec.startsWith('node:')) target = spec;
    else if (spec.startsWith('.') || spec.startsWith('/')) target = new URL(spec, url).href;
    else {
      try {
        target = pathToFileURL(cjs.resolve(spec)).href;
      } catch {
        target = spec;
      }
    }
    let ns = namespaces.get(target);
    if (!ns) {
      // a namespace marked as an ES module, so esbuild's interop takes `default` as the default import
      ns = { __esModule: true, ...((await import(target)) as Record<string, unknown>) };
      namespaces.set(target, ns);
    }
    mods.set(spec, ns);
  }
  const fn = compileFunction(code, ['exports', 'require', 'module', '__filename', '__dirname'], { filename: abs });
  const module = { exports: {} as Record<string, unknown> };
  const require = (spec: string): unknown => {
    if (mods.has(spec)) return mods.get(spec);
    throw new Error(`${abs}: cannot require "${spec}" (a computed import); import it statically`);
  };
  fn.call(module.exports, module.exports, require, module, abs, dirname(abs));
  return module.exports;
}
