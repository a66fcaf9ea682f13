import { isAbsolute, join, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { Adapter } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import type { IdempotentRepository } from '../../lib/stores.js';
import { FileConsumer } from './consumer.js';
import { FileIdempotentRepository } from './idempotent-store.js';
import { fileOptions, type FileOptions } from './options.js';
import { IDEMPOTENT_DIR } from './paths.js';
import { FileProducer } from './producer.js';

export { fileOptions, type FileOptions } from './options.js';
export { FILE_HEADERS, IDEMPOTENT_DIR, claimName } from './paths.js';
export { FileIdempotentRepository } from './idempotent-store.js';
export { FileConsumer } from './consumer.js';
export { FileProducer } from './producer.js';

/** Adapter-level configuration of `file:` (a routes file's `"adapters": { "file": { ... } }`). */
export const fileConfigSchema = Type.Object(
  {
    baseDir: Type.Optional(Type.String({ minLength: 1, description: 'Directory that relative endpoint paths (`file:inbox`) are resolved against. Default: the working directory.' })),
    idempotentDir: Type.Optional(Type.String({ minLength: 1, description: 'Where `noop` consumers remember the files they processed. Default: `.idempotent/` inside each inbox.' })),
  },
  { additionalProperties: false },
);
export type FileConfig = Static<typeof fileConfigSchema> & {
  /** Use another idempotent repository for `noop` (e.g. the db adapter's) instead of marker files. */
  idempotentRepository?: IdempotentRepository;
};

/**
 * `file:dir?options`: a polling consumer with read locks, claims and a per-file transaction,
 * and an atomic producer. See docs/file.md.
 */
export function createFileAdapter(config: FileConfig = {}): Adapter<FileOptions> {
  const base = (): string => resolve(config.baseDir ?? process.cwd());
  const rootOf = (path: string, uri: string): string => {
    if (!path) throw new BusbarError('INVALID_URI', `endpoint "${uri}": a file endpoint needs a directory (file:inbox, file:/var/data/in)`, { details: { uri } });
    return isAbsolute(path) ? resolve(path) : resolve(base(), path);
  };
  return {
    scheme: 'file',
    description: 'Directories as endpoints: a polling consumer (read locks, exactly-once claims across processes, move/delete/noop after the route, `.error/` with a reason) and an atomic producer (temp + rename, name templates, on-exists strategies, done files).',
    optionsSchema: fileOptions,
    createConsumer(endpoint, ctx) {
      const root = rootOf(endpoint.path, endpoint.uri);
      let repo: IdempotentRepository | undefined;
      if (endpoint.options.noop) {
        repo = config.idempotentRepository ?? new FileIdempotentRepository(config.idempotentDir ? resolve(base(), config.idempotentDir) : join(root, IDEMPOTENT_DIR));
      }
      return new FileConsumer({ root, endpoint, ctx, repo });
    },
    createProducer(endpoint, ctx) {
      return new FileProducer(rootOf(endpoint.path, endpoint.uri), endpoint, ctx);
    },
  };
}

/** The default instance: paths relative to the working directory. */
export const fileAdapter: Adapter<FileOptions> = createFileAdapter();

export default fileAdapter;
