import { hostname } from 'node:os';
import { basename, dirname, extname, isAbsolute, resolve, sep } from 'node:path';
import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';
import { renderTemplate } from '../../lib/template.js';

/** Headers a consumed file carries (a producer uses them for its default file name). */
export const FILE_HEADERS = {
  name: 'busbar.file.name',
  relativePath: 'busbar.file.relativePath',
  absolutePath: 'busbar.file.absolutePath',
  size: 'busbar.file.size',
  mtime: 'busbar.file.mtime',
  written: 'busbar.file.written',
} as const;

/** Where `noop` consumers remember files, inside the inbox; hidden, so never listed as input. */
export const IDEMPOTENT_DIR = '.idempotent';

/** `{name}`, `{base}`, `{ext}`, `{relative}`, `{parent}` of a relative path (POSIX separators). */
export function fileExtras(relative: string): Record<string, string> {
  const name = basename(relative);
  const ext = extname(name);
  const parent = dirname(relative);
  return { name, base: ext ? name.slice(0, -ext.length) : name, ext: ext.slice(1), relative, parent: parent === '.' ? '' : parent };
}

const PLACEHOLDER = /\{([A-Za-z_][\w.-]*)\}/g;

/**
 * Render a file-name template. A placeholder that resolves to nothing (a missing header)
 * is an error rather than a literal `{header.x}` in a file name.
 */
export function renderName(template: string, msg: Message, extra: Record<string, unknown>, where: string): string {
  const out = renderTemplate(template, msg, extra);
  for (const m of template.matchAll(PLACEHOLDER)) {
    if (renderTemplate(m[0], msg, extra) === m[0]) {
      throw new BusbarError('FILE_NAME', `${where}: file name template "${template}" has no value for {${m[1]}}`, { details: { template, placeholder: m[1] } });
    }
  }
  return out;
}

/**
 * `base/name`, refusing anything that would leave `base`: `..` segments, absolute names,
 * NUL bytes. Names often come from headers, i.e. from outside: this is the one gate.
 */
export function safeJoin(base: string, name: string, where: string): string {
  if (name.length === 0 || name.includes('\0')) {
    throw new BusbarError('FILE_NAME', `${where}: invalid file name ${JSON.stringify(name)}`, { details: { name } });
  }
  if (isAbsolute(name)) {
    throw new BusbarError('PATH_TRAVERSAL', `${where}: file name ${JSON.stringify(name)} is absolute; names must stay inside the endpoint's directory`, { details: { name } });
  }
  const target = resolve(base, name);
  if (target === base) {
    throw new BusbarError('FILE_NAME', `${where}: file name ${JSON.stringify(name)} names the directory itself`, { details: { name } });
  }
  if (!target.startsWith(base.endsWith(sep) ? base : base + sep)) {
    throw new BusbarError('PATH_TRAVERSAL', `${where}: file name ${JSON.stringify(name)} would leave the endpoint's directory`, { details: { name } });
  }
  return target;
}

/** Who holds a claim: host, pid and a per-consumer token, so a restart can tell dead owners from live ones. */
export interface Owner {
  host: string;
  pid: number;
  token: string;
}

export function localHost(): string {
  return hostname().replace(/[^\w.-]/g, '_') || 'host';
}

/**
 * The name a file is claimed under: hidden, in its own directory (a same-directory rename
 * is atomic and, unlike a cross-directory one, does not take the file system's rename lock),
 * carrying its owner so a restart can tell a crashed owner's claims from live ones.
 */
export function claimName(name: string, o: Owner): string {
  return `.${name}~${o.host}~${o.pid}~${o.token}.claim`;
}

const CLAIM = /^\.(.+)~([\w.-]+)~(\d+)~([0-9a-f]+)\.claim$/;

export function parseClaim(name: string): { original: string; owner: Owner } | undefined {
  const m = CLAIM.exec(name);
  if (!m) return undefined;
  return { original: m[1]!, owner: { host: m[2]!, pid: Number(m[3]), token: m[4]! } };
}

/**
 * Whether a claim's owner is gone. Same host: the pid no longer exists. Same process: alive
 * (another engine in this process may hold it). Another host: only after `staleMs`
 * (0 = never), since its pids cannot be checked from here.
 */
export function ownerIsDead(o: Owner, ageMs: number, staleMs: number): boolean {
  if (o.host !== localHost()) return staleMs > 0 && ageMs > staleMs;
  if (o.pid === process.pid) return false;
  try {
    process.kill(o.pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
