import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Problem } from '../schema.js';

/** The part of the TypeScript compiler API used here (the user's own `typescript`, whatever its version). */
type Ts = typeof import('typescript');

export type TypeCheckResult = { checked: true; problems: Problem[]; tsconfig?: string; version: string } | { checked: false; reason: string };

/**
 * Type-check a TypeScript routes file with the project's own `typescript` (resolved from the
 * file's folder, so the user's compiler version and tsconfig decide), without emitting. tsx
 * runs a file with type errors as if they were not there; `busbar validate` should not.
 * Without a tsconfig.json: strict, ES2022, bundler-style resolution (the file runs through tsx,
 * which accepts both module systems), declaration files not checked.
 */
export function typeCheckRoutesFile(file: string): TypeCheckResult {
  return typeCheckRoutesFiles([file]).get(file)!;
}

/**
 * Type-check several routes files, with one compiler program per project (files that share
 * their `typescript` package and tsconfig.json): parsing and binding the declarations they
 * all import (busbar's, Node's) is most of the cost, so it is paid once. The errors reported are
 * the routes files' own (a wrong use of an imported module included), each under its file.
 */
export function typeCheckRoutesFiles(files: readonly string[]): Map<string, TypeCheckResult> {
  const out = new Map<string, TypeCheckResult>();
  // per project (its typescript package and tsconfig.json); `native` for a typescript without a compiler API
  const groups = new Map<string, { ts: Ts; native: NativeTsc | undefined; configPath: string | undefined; files: string[] }>();
  for (const file of files) {
    const abs = resolve(file);
    let ts: Ts;
    let tsPath: string;
    try {
      const req = createRequire(pathToFileURL(abs));
      tsPath = req.resolve('typescript');
      ts = req('typescript') as Ts;
    } catch {
      out.set(file, { checked: false, reason: 'not type-checked: this project has no "typescript" package (npm install -D typescript)' });
      continue;
    }
    // TypeScript 7 and later: a native compiler, its package a `tsc` program and no compiler API
    const native = typeof ts.createProgram === 'function' ? undefined : nativeTsc(tsPath);
    if (typeof native === 'string') {
      out.set(file, { checked: false, reason: `not type-checked: ${native}` });
      continue;
    }
    const configPath = findConfig(dirname(abs));
    const key = `${tsPath}\0${configPath ?? `(none)${dirname(abs)}`}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ts, native, configPath, files: [] }));
    g.files.push(file);
  }
  for (const { ts, native, configPath, files: group } of groups.values()) {
    if (native !== undefined) {
      for (const [f, r] of typeCheckNative(native, configPath, group)) out.set(f, r);
      continue;
    }
    const roots = group.map((f) => resolve(f));
    const program = ts.createProgram(roots, { ...compilerOptions(ts, configPath, roots[0]!), noEmit: true, incremental: false, composite: false });
    const problems = new Map<string, Problem[]>(group.map((f) => [f, []]));
    const owner = new Map(roots.map((r, i) => [r, group[i]!]));
    // the routes files' own diagnostics: the checker then checks of the modules they import
    // only what typing the routes files needs, not every body of every project file (inside
    // this repository, a routes file importing lib/ would otherwise type-check all of busbar)
    const diagnostics = [...program.getConfigFileParsingDiagnostics(), ...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
    for (const r of roots) {
      const sf = program.getSourceFile(r);
      if (sf) diagnostics.push(...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf));
    }
    for (const d of diagnostics) {
      if (d.category !== ts.DiagnosticCategory.Error) continue;
      // the project's own files; errors inside node_modules are not the routes file's
      if (d.file && /[\\/]node_modules[\\/]/.test(d.file.fileName)) continue;
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n    ');
      // global and options diagnostics (no file) go to the first routes file
      const own = (d.file && owner.get(resolve(d.file.fileName))) ?? group[0]!;
      let where = relative(process.cwd(), resolve(own)) || own;
      if (d.file && d.start !== undefined) {
        const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
        where = `${relative(process.cwd(), d.file.fileName) || d.file.fileName}:${line + 1}:${character + 1}`;
      }
      problems.get(own)!.push({ path: where, message: `TS${d.code}: ${text}` });
    }
    for (const f of group) out.set(f, { checked: true, problems: problems.get(f)!, version: ts.version, ...(configPath ? { tsconfig: configPath } : {}) });
  }
  return out;
}

/** The `tsc` program of a TypeScript without a compiler API (7 and later), or why it cannot be used. */
interface NativeTsc {
  bin: string;
  version: string;
}

function nativeTsc(tsPath: string): NativeTsc | string {
  // the package's root: the folder of the package.json above its entry point
  let dir = dirname(tsPath);
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string; bin?: string | Record<string, string> };
    const rel = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.tsc;
    if (rel === undefined) return `the project's typescript ${pkg.version ?? ''} has neither a compiler API nor a tsc program (npm install -D typescript@5)`;
    return { bin: join(dir, rel), version: pkg.version ?? 'unknown' };
  } catch (e) {
    return `the project's typescript package could not be read (${(e as Error).message})`;
  }
}

/** The nearest tsconfig.json from `dir` up (what `tsc` itself finds, as ts.findConfigFile does). */
function findConfig(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    const f = join(d, 'tsconfig.json');
    if (statSync(f, { throwIfNoEntry: false })?.isFile()) return f;
    if (dirname(d) === d) return undefined;
  }
}

// `tsc --pretty false` lines: `file(line,col): error TS2322: message`, or `error TS5023: message`
// for the options; a message's further lines are indented under it
const TSC_ERROR = /^(?:(.+)\((\d+),(\d+)\): )?error (TS\d+): (.*)$/;

/**
 * Type-check with a native `tsc`: one run per project, over a tsconfig made for it that names
 * the routes files alone (and extends the project's tsconfig.json when there is one; its
 * `include` does not apply), without emitting. Errors are reported as the compiler API path
 * reports them: each under its routes file, none from inside node_modules.
 */
function typeCheckNative(tsc: NativeTsc, configPath: string | undefined, group: readonly string[]): Map<string, TypeCheckResult> {
  const out = new Map<string, TypeCheckResult>();
  const roots = group.map((f) => resolve(f));
  // next to the project's tsconfig.json (or the first routes file): what tsc resolves relative to
  // the config (type roots, paths) resolves as it does for the project's own
  const tsconfig = join(dirname(configPath ?? roots[0]!), `tsconfig.busbar-validate-${process.pid}-${randomBytes(4).toString('hex')}.json`);
  const config: Record<string, unknown> = { files: roots, include: [], compilerOptions: { noEmit: true, incremental: false, composite: false, ...(configPath ? {} : defaultOptionsJson(roots[0]!)) } };
  if (configPath) config.extends = configPath;
  try {
    writeFileSync(tsconfig, JSON.stringify(config), { flag: 'wx' });
  } catch (e) {
    for (const f of group) out.set(f, { checked: false, reason: `not type-checked: TypeScript ${tsc.version}'s tsc needs a tsconfig next to ${configPath ?? f}, which could not be written (${(e as Error).message})` });
    return out;
  }
  try {
    // tsc writes a file's path relative to its working directory: this one's
    const cwd = process.cwd();
    const r = spawnSync(process.execPath, [tsc.bin, '-p', tsconfig, '--pretty', 'false'], { cwd, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
    const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    const problems = new Map<string, Problem[]>(group.map((f) => [f, []]));
    const owner = new Map(roots.map((x, i) => [x, group[i]!]));
    let last: Problem | undefined;
    let errors = 0;
    for (const line of text.split(/\r?\n/)) {
      const m = TSC_ERROR.exec(line);
      if (!m) {
        // a message's further lines
        if (last && /^\s+\S/.test(line)) last.message += `\n    ${line.trim()}`;
        else last = undefined;
        continue;
      }
      errors++;
      const [, file, ln, col, code, message] = m;
      last = undefined;
      const abs = file === undefined ? undefined : resolve(cwd, file);
      if (abs !== undefined && /[\\/]node_modules[\\/]/.test(abs)) continue;
      const own = (abs !== undefined && owner.get(abs)) || group[0]!;
      const where = abs === undefined ? relative(cwd, resolve(own)) || own : `${relative(cwd, abs) || abs}:${ln}:${col}`;
      last = { path: where, message: `${code}: ${message}` };
      problems.get(own)!.push(last);
    }
    if (r.error !== undefined || (r.status !== 0 && errors === 0)) {
      const why = r.error?.message ?? (text.trim().split('\n').slice(0, 3).join(' ') || `exit code ${r.status}`);
      for (const f of group) out.set(f, { checked: false, reason: `not type-checked: TypeScript ${tsc.version}'s tsc failed: ${why}` });
      return out;
    }
    for (const f of group) out.set(f, { checked: true, problems: problems.get(f)!, version: tsc.version, ...(configPath ? { tsconfig: configPath } : {}) });
    return out;
  } finally {
    rmSync(tsconfig, { force: true });
  }
}

/**
 * The options without a tsconfig.json, as one would write them: what a routes file run by tsx
 * on Node needs: strict, ES2022 and, when the project has Node's types (@types/node, which
 * busbar's declarations need anyway), those instead of the browser's DOM library (a routes file
 * has no `document`; and the DOM library is the largest file a program would parse). Without
 * them, the default libraries (DOM included) at least declare console, timers, URL.
 */
function defaultOptionsJson(root: string): Record<string, unknown> {
  const options: Record<string, unknown> = { strict: true, target: 'ES2022', module: 'ESNext', moduleResolution: 'bundler', esModuleInterop: true, skipLibCheck: true, allowImportingTsExtensions: true };
  const typeRoot = nodeTypesRoot(root);
  if (typeRoot !== undefined) Object.assign(options, { lib: ['ES2022'], types: ['node'], typeRoots: [typeRoot] });
  return options;
}

/** The folder holding the project's @types/node, if it has Node's types. */
function nodeTypesRoot(root: string): string | undefined {
  try {
    return dirname(dirname(createRequire(pathToFileURL(root)).resolve('@types/node/package.json')));
  } catch {
    return undefined;
  }
}

/** The project's tsconfig.json options; without one, defaultOptionsJson's, converted by the compiler as a tsconfig's are. */
function compilerOptions(ts: Ts, configPath: string | undefined, root: string): import('typescript').CompilerOptions {
  if (configPath) {
    const parsed = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined });
    return parsed?.options ?? {};
  }
  const { options } = ts.convertCompilerOptionsFromJson(defaultOptionsJson(root), dirname(root));
  // a TypeScript before 5 has no "bundler" resolution (the conversion leaves it out)
  options.moduleResolution ??= ts.ModuleResolutionKind.NodeJs;
  return options;
}
