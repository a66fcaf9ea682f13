import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { Engine, type EngineOptions } from '../../../lib/index.js';
import { createFileAdapter } from '../../../adapters/file/index.js';
import { tempDir, testLogger } from '../../helpers.js';

/** A temp dir with an engine whose `file:` paths are relative to it. */
export function fileWorld(opts: EngineOptions = {}): { dir: string; engine: Engine; cleanup: () => Promise<void> } {
  const t = tempDir('busbar-file-');
  const engine = new Engine({ logger: testLogger(), adapters: [createFileAdapter({ baseDir: t.path })], ...opts });
  return {
    dir: t.path,
    engine,
    cleanup: async () => {
      await engine.stop();
      t.cleanup();
    },
  };
}

export function put(dir: string, rel: string, content: string | Buffer): string {
  const p = join(dir, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content);
  return p;
}

/** Relative paths of all files under `dir` (hidden folders included), sorted. */
export function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

export function read(dir: string, rel: string): string {
  return readFileSync(join(dir, rel), 'utf8');
}

export function exists(dir: string, rel: string): boolean {
  return existsSync(join(dir, rel));
}

export function size(dir: string, rel: string): number {
  return statSync(join(dir, rel)).size;
}
