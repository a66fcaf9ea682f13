import { createRequire } from 'node:module';

const requireHere = createRequire(import.meta.url);

/**
 * A dependency loaded on first use rather than with the engine. Only for libraries that a
 * route may never touch (JSONata, rxjs for `events$`, CSV, ajv-formats): each costs resident
 * memory in every process that imports busbar, and a streaming route or a small spoke does
 * not need them. The type comes from a type-only import, so call sites stay fully typed.
 */
export function lazy<T>(specifier: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= requireHere(specifier) as T);
}
