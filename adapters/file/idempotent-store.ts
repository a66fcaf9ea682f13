import { createHash } from 'node:crypto';
import { access, mkdir, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { IdempotentRepository } from '../../lib/stores.js';
import { errnoOf, ioError } from './fs-util.js';

/**
 * An idempotent repository kept as one empty file per key (named by the key's hash).
 * Creating a file with O_EXCL is atomic, so it is safe with several processes on one
 * folder, and it survives restarts with no database.
 */
export class FileIdempotentRepository implements IdempotentRepository {
  readonly #dir: string;
  readonly #made = new Set<string>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  #path(scope: string, key: string): { dir: string; file: string } {
    const dir = join(this.#dir, hash(scope).slice(0, 16));
    return { dir, file: join(dir, hash(key)) };
  }

  async add(scope: string, key: string): Promise<boolean> {
    const { dir, file } = this.#path(scope, key);
    if (!this.#made.has(dir)) {
      await mkdir(dir, { recursive: true }).catch((e: unknown) => {
        throw ioError('mkdir', dir, e);
      });
      this.#made.add(dir);
    }
    try {
      const fh = await open(file, 'wx');
      await fh.close();
      return true;
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') return false;
      throw ioError('create', file, e);
    }
  }

  async contains(scope: string, key: string): Promise<boolean> {
    try {
      await access(this.#path(scope, key).file);
      return true;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return false;
      throw ioError('access', this.#path(scope, key).file, e);
    }
  }

  async remove(scope: string, key: string): Promise<void> {
    await unlink(this.#path(scope, key).file).catch((e: unknown) => {
      if (errnoOf(e) !== 'ENOENT') throw ioError('unlink', this.#path(scope, key).file, e);
    });
  }
}

function hash(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
