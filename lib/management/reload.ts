import type { Logger } from 'pino';
import type { Engine, ReloadReport, RouteInput } from '../engine.js';
import { BusbarError, isBusbarError } from '../errors.js';
import { loadRoutesFile, type RoutesModule } from '../routes-file.js';

/** What reloading a routes file did: the engine's report, the file, and settings a reload cannot apply. */
export interface FileReloadReport extends ReloadReport {
  file: string;
  /** Top-level keys of the file that changed but only take effect on a restart (adapters, engine, channels, topology, management). */
  restartNeeded: string[];
}

const RESTART_KEYS = ['adapters', 'engine', 'channels', 'topology', 'management'] as const;

/** JSON of a setting, or a marker when it holds objects (adapter instances) that cannot be compared. */
function settingText(v: unknown): string {
  try {
    return JSON.stringify(v) ?? '';
  } catch {
    return '\u0000opaque';
  }
}

/**
 * A reload of `file` into `engine` (what `busbar run --watch`, `POST /api/v1/reload` and
 * `busbar reload` run): the file's current version is loaded fresh, validated, and only its
 * changed routes redeployed. A failure leaves the running routes as they were and rejects
 * with RELOAD_FAILED (logged here too).
 */
export function routesFileReloader(engine: Engine, file: string, opts: { first?: RoutesModule; timeoutMs?: number; logger?: Logger } = {}): () => Promise<FileReloadReport> {
  const logger = opts.logger ?? engine.logger.child({ component: 'reload' });
  let current = opts.first;
  return async () => {
    let mod: RoutesModule;
    try {
      try {
        mod = await loadRoutesFile(file, { fresh: true });
      } catch (e) {
        throw new BusbarError('RELOAD_FAILED', `reload refused, the running routes stay: ${(e as Error).message}`, { cause: e, details: { phase: 'load', file } });
      }
      const restartNeeded = current === undefined ? [] : RESTART_KEYS.filter((k) => settingText(current![k]) !== settingText(mod[k]));
      const inputs = (Array.isArray(mod.routes) ? mod.routes : [mod.routes]) as RouteInput[];
      const report = await engine.reload(inputs, { ...(mod.functions ? { functions: mod.functions } : {}), ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
      current = mod;
      if (restartNeeded.length) logger.warn({ file, restartNeeded }, `reload: ${restartNeeded.join(', ')} changed; that takes a restart (the routes were reloaded)`);
      logger.info({ file, ...report }, `reloaded ${file}: ${report.changed.length} changed, ${report.added.length} added, ${report.removed.length} removed, ${report.unchanged.length} unchanged`);
      return { file, ...report, restartNeeded };
    } catch (e) {
      const err = isBusbarError(e) && e.code === 'BUSBAR_ERR_RELOAD_FAILED' ? e : new BusbarError('RELOAD_FAILED', `reload refused, the running routes stay: ${(e as Error).message}`, { cause: e, details: { phase: 'start', file } });
      err.details.file ??= file;
      logger.error({ file, code: err.code, details: err.details }, err.message);
      throw err;
    }
  };
}
