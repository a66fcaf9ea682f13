import { createRequire } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
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
  const groups = new Map<string, { ts: Ts; configPath: string | undefined; files: string[] }>();
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
    const configPath = ts.findConfigFile(dirname(abs), (f) => ts.sys.fileExists(f), 'tsconfig.json');
    const key = `${tsPath}\0${configPath ?? `(none)${dirname(abs)}`}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ts, configPath, files: [] }));
    g.files.push(file);
  }
  for (const { ts, configPath, files: group } of groups.values()) {
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

/**
 * The project's tsconfig.json options; without one, what a routes file run by tsx on Node
 * needs: strict, ES2022 and, when the project has Node's types (@types/node, which busbar's
 * declarations need anyway), those instead of the browser's DOM library (a routes file has no
 * `document`; and the DOM library is the largest file a program would parse).
 */
function compilerOptions(ts: Ts, configPath: string | undefined, root: string): import('typescript').CompilerOptions {
  if (configPath) {
    const parsed = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined });
    return parsed?.options ?? {};
  }
  const options: import('typescript').CompilerOptions = {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler ?? ts.ModuleResolutionKind.NodeJs,
    esModuleInterop: true,
    skipLibCheck: true,
    allowImportingTsExtensions: true,
  };
  try {
    const nodeTypes = createRequire(pathToFileURL(root)).resolve('@types/node/package.json');
    options.lib = ['lib.es2022.d.ts'];
    options.types = ['node'];
    options.typeRoots = [dirname(dirname(nodeTypes))];
  } catch {
    // no Node types in the project: the default libraries (DOM included) at least declare console, timers, URL
  }
  return options;
}
