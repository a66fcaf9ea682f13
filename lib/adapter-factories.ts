import type { Adapter } from './adapter.js';

/**
 * Adapters configured from data (`"adapters": { "<scheme>": { ...config } }` in a routes
 * file). Each factory builds a fresh adapter; drivers load only when an endpoint starts,
 * so listing them here costs nothing for routes that do not use them.
 */
export type AdapterFactory = (config?: unknown) => Adapter;

export function adapterFactories(): Record<string, AdapterFactory> {
  return {};
}
