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
  const abs = resolve(file);
  let ts: Ts;
  try {
    ts = createRequire(pathToFileURL(abs))('typescript') as Ts;
  } catch {
    return { checked: false, reason: 'not type-checked: this project has no "typescript" package (npm install -D typescript)' };
  }
  const configPath = ts.findConfigFile(dirname(abs), (f) => ts.sys.fileExists(f), 'tsconfig.json');
  let options: import('typescript').CompilerOptions;
  if (configPath) {
    const parsed = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined });
    options = parsed?.options ?? {};
  } else {
    options = {
      strict: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler ?? ts.ModuleResolutionKind.NodeJs,
      esModuleInterop: true,
      skipLibCheck: true,
      allowImportingTsExtensions: true,
    };
  }
  const program = ts.createProgram([abs], { ...options, noEmit: true, incremental: false, composite: false });
  const problems: Problem[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    if (d.category !== ts.DiagnosticCategory.Error) continue;
    // the project's own files; errors inside node_modules are not the routes file's
    if (d.file && /[\\/]node_modules[\\/]/.test(d.file.fileName)) continue;
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n    ');
    let where = relative(process.cwd(), abs) || abs;
    if (d.file && d.start !== undefined) {
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      where = `${relative(process.cwd(), d.file.fileName) || d.file.fileName}:${line + 1}:${character + 1}`;
    }
    problems.push({ path: where, message: `TS${d.code}: ${text}` });
  }
  return { checked: true, problems, version: ts.version, ...(configPath ? { tsconfig: configPath } : {}) };
}
