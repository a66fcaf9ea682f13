import { randomBytes } from 'node:crypto';
import { close as closeCb, fstat as fstatCb, open as openCb, read as readCb, rename as renameCb, writeFile as writeFileCb, type Stats } from 'node:fs';
import type { Dirent } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BusbarError } from '../../lib/errors.js';

export function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/** A coded I/O error naming the operation and the path (retryable: disks come back, locks go away). */
export function ioError(op: string, path: string, e: unknown): BusbarError {
  if (e instanceof BusbarError) return e;
  const errno = errnoOf(e);
  return new BusbarError('FILE_IO', `file: ${op} ${path} failed: ${errno ?? (e as Error)?.message ?? String(e)}`, { cause: e, details: { op, path, errno } });
}

/** A directory's entries; none when it (or a parent) is gone, which a poll treats as empty. */
export async function readdirIfThere(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return [];
    throw ioError('readdir', dir, e);
  }
}

/** mkdir -p with a cache of directories already made (a hot producer must not mkdir per file). */
export class DirCache {
  readonly #made = new Set<string>();
  async ensure(dir: string): Promise<void> {
    if (this.#made.has(dir)) return;
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      throw ioError('mkdir', dir, e);
    }
    if (this.#made.size > 10_000) this.#made.clear();
    this.#made.add(dir);
  }
  forget(dir: string): void {
    this.#made.delete(dir);
  }
}

/**
 * Move by rename (atomic on one file system), creating the target's folder. Across file
 * systems: copy to a temp name next to the target, fsync, rename, then unlink the source,
 * so the target is never half there.
 */
export async function moveFile(src: string, dst: string, dirs: DirCache): Promise<void> {
  await dirs.ensure(dirname(dst));
  try {
    await renameFd(src, dst);
    return;
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') {
      // the folder may have been removed behind the cache's back: make it again once
      dirs.forget(dirname(dst));
      await dirs.ensure(dirname(dst));
      try {
        await renameFd(src, dst);
        return;
      } catch (e2) {
        throw ioError('rename', src, e2);
      }
    }
    if (errnoOf(e) !== 'EXDEV') throw ioError('rename', src, e);
  }
  const tmp = `${dirname(dst)}/.busbar-${randomBytes(6).toString('hex')}.tmp`;
  try {
    await copyFile(src, tmp);
    const fh = await open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, dst);
    await unlink(src);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw ioError('move', src, e);
  }
}

/**
 * Put `src` at `dst` without replacing a file that is already there (a new file with the
 * same name may have arrived): hard link then unlink, which fails atomically on EEXIST.
 * Returns where the file ended up.
 */
export async function moveNoClobber(src: string, dst: string, dirs: DirCache): Promise<string> {
  await dirs.ensure(dirname(dst));
  for (let i = 0; i < 100; i++) {
    const target = i === 0 ? dst : `${dst}.${i}`;
    try {
      await link(src, target);
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'EEXIST') continue;
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EXDEV') {
        // no hard links here: best effort
        await moveFile(src, target, dirs);
        return target;
      }
      throw ioError('link', src, e);
    }
    await unlink(src).catch((e: unknown) => {
      if (errnoOf(e) !== 'ENOENT') throw ioError('unlink', src, e);
    });
    return target;
  }
  throw new BusbarError('FILE_EXISTS', `file: cannot restore ${src}: ${dst} and 99 alternatives exist`, { details: { path: dst } });
}

/*
 * Plain-descriptor promises over the callback API: for the many small files of a transfer,
 * FileHandle objects and the promise API cost more main-thread time than the I/O itself.
 */
export function openFd(path: string, flags: string): Promise<number> {
  return new Promise((resolve, reject) => openCb(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function fstatFd(fd: number): Promise<Stats> {
  return new Promise((resolve, reject) => fstatCb(fd, (err, st) => (err ? reject(err) : resolve(st))));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => closeCb(fd, (err) => (err ? reject(err) : resolve())));
}

function readInto(fd: number, buf: Buffer, offset: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => readCb(fd, buf, offset, buf.length - offset, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Read `size` bytes (as fstat reported) from the start of `fd`, or up to EOF if it is shorter. */
export async function readFd(fd: number, size: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let len = 0;
  while (len < size) {
    const n = await readInto(fd, buf, len, len);
    if (n === 0) break;
    len += n;
  }
  return len === size ? buf : buf.subarray(0, len);
}

export function writeFileFd(path: string, data: Buffer | string, flag: string): Promise<void> {
  return new Promise((resolve, reject) => writeFileCb(path, data, { flag }, (err) => (err ? reject(err) : resolve())));
}

export function renameFd(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => renameCb(from, to, (err) => (err ? reject(err) : resolve())));
}
