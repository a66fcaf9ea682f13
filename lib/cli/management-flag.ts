import { BusbarError } from '../errors.js';
import type { ManagementOptions } from '../management/types.js';
import { DEFAULT_MANAGEMENT_PORT } from '../management/server.js';

/** `127.0.0.1:9464`, `9464`, `[::1]:9464` or `0.0.0.0:9464` -> host and port. */
export function parseHostPort(v: string, where = '--management'): { host: string; port: number } {
  const s = v.trim();
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d{1,5})$/.exec(s) ?? /^(\[[^\]]+\]|[^:]+)$/.exec(s);
  if (!m) throw new BusbarError('MANAGEMENT_CONFIG', `${where} "${v}" is not host:port (example: 127.0.0.1:9464)`, { details: { value: v } });
  if (m.length === 2) return { host: m[1]!.replace(/^\[|\]$/g, ''), port: DEFAULT_MANAGEMENT_PORT };
  const port = Number(m[2]);
  if (port > 65535) throw new BusbarError('MANAGEMENT_CONFIG', `${where} "${v}": port ${port} is out of range`, { details: { value: v } });
  return { host: (m[1] ?? '127.0.0.1').replace(/^\[|\]$/g, ''), port };
}

const KEYS = ['host', 'port', 'token', 'eventsIntervalMs'];

/** The management settings of `busbar run`: the command line over the routes file's `management` key; the token also from BUSBAR_MANAGEMENT_TOKEN. */
export function managementSettings(flag: string | undefined, token: string | undefined, fromFile: unknown): ManagementOptions | undefined {
  let o: ManagementOptions | undefined;
  if (fromFile !== undefined) {
    if (typeof fromFile === 'string') o = parseHostPort(fromFile, 'routes file "management"');
    else if (typeof fromFile === 'object' && fromFile !== null && !Array.isArray(fromFile)) {
      const f = fromFile as Record<string, unknown>;
      for (const k of Object.keys(f)) {
        if (!KEYS.includes(k)) throw new BusbarError('MANAGEMENT_CONFIG', `routes file /management/${k}: unknown key (valid: ${KEYS.join(', ')})`, { details: { key: k } });
      }
      if (f.host !== undefined && typeof f.host !== 'string') throw new BusbarError('MANAGEMENT_CONFIG', 'routes file /management/host must be a string', { details: { key: 'host' } });
      if (f.port !== undefined && typeof f.port !== 'number') throw new BusbarError('MANAGEMENT_CONFIG', 'routes file /management/port must be a number', { details: { key: 'port' } });
      if (f.token !== undefined && typeof f.token !== 'string') throw new BusbarError('MANAGEMENT_CONFIG', 'routes file /management/token must be a string', { details: { key: 'token' } });
      if (f.eventsIntervalMs !== undefined && typeof f.eventsIntervalMs !== 'number') throw new BusbarError('MANAGEMENT_CONFIG', 'routes file /management/eventsIntervalMs must be a number', { details: { key: 'eventsIntervalMs' } });
      o = { ...(f as ManagementOptions) };
    } else {
      throw new BusbarError('MANAGEMENT_CONFIG', 'routes file "management" must be "host:port" or { "host", "port", "token" }', { details: {} });
    }
  }
  if (flag !== undefined) o = { ...o, ...parseHostPort(flag) };
  const t = token ?? process.env.BUSBAR_MANAGEMENT_TOKEN;
  if (o && t !== undefined && t !== '') o.token = t;
  return o;
}
