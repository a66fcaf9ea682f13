import { Type, type Static } from '@sinclair/typebox';

/**
 * Options of `file:` endpoints. One schema for both roles: consumer options (`from`) and
 * producer options (`to`) say which role they apply to.
 */
export const fileOptions = Type.Object(
  {
    // ---- consumer: polling
    delay: Type.Integer({ minimum: 1, default: 500, description: 'Consumer: milliseconds between polls of a directory that had nothing (more) to take.' }),
    initialDelay: Type.Integer({ minimum: 0, default: 0, description: 'Consumer: milliseconds before the first poll.' }),
    recursive: Type.Boolean({ default: false, description: 'Consumer: also take files from sub-directories (hidden ones are never entered).' }),
    maxDepth: Type.Integer({ minimum: 1, maximum: 64, default: 16, description: 'Consumer: with `recursive`, how many directory levels below the inbox to descend.' }),
    include: Type.Optional(Type.String({ minLength: 1, description: 'Consumer: glob (picomatch) a file\'s path relative to the inbox must match, e.g. `*.csv` or `**/*.{json,xml}`.' })),
    exclude: Type.Optional(Type.String({ minLength: 1, description: 'Consumer: glob (picomatch) of relative paths to skip.' })),
    sortBy: Type.Union([Type.Literal('none'), Type.Literal('name'), Type.Literal('mtime'), Type.Literal('size')], { default: 'none', description: 'Consumer: order in which a poll hands files over (`none` is fastest: directory order).' }),
    sortOrder: Type.Union([Type.Literal('asc'), Type.Literal('desc')], { default: 'asc', description: 'Consumer: ascending or descending `sortBy` order.' }),
    maxMessagesPerPoll: Type.Integer({ minimum: 0, default: 1000, description: 'Consumer: at most this many files per poll (0: no limit). Files are handed over only as fast as the route has free in-flight slots.' }),
    // ---- consumer: read lock and claim
    readLock: Type.Union([Type.Literal('changed'), Type.Literal('rename'), Type.Literal('marker'), Type.Literal('none')], {
      default: 'changed',
      description:
        'Consumer: when a file may be read and how it is claimed. `changed`: size and mtime must be stable for `readLockCheckInterval`, then the file is claimed by an atomic rename to a hidden claim name (`.<name>~<host>~<pid>~<token>.claim`). `rename`: claim by atomic rename at once (for writers that write elsewhere and rename in). `marker`: claim with an exclusive `<file>.lock` next to it. `none`: no check, no claim (a single consumer only). All but `none` are safe with several processes on one inbox.',
    }),
    readLockCheckInterval: Type.Integer({ minimum: 1, default: 2500, description: 'Consumer: with `readLock=changed`, how long (ms) size and mtime must stay the same before the file is read (every file a poll lists starts its window then, also those `maxMessagesPerPoll` leaves for later polls). The default is safe for writers that pause up to about 2 s between writes; a writer that pauses longer needs a longer interval, or should write elsewhere and rename in (`readLock=rename`, no wait).' }),
    readLockMinAge: Type.Integer({ minimum: 0, default: 0, description: 'Consumer: a file must be at least this old (ms, by mtime) to be read.' }),
    readLockStaleMs: Type.Integer({ minimum: 0, default: 0, description: 'Consumer: claims (hidden `.claim` files, `.lock` markers) of processes on OTHER hosts older than this are taken back (0: never). Claims of dead processes on this host are always taken back at start and every minute.' }),
    doneFileName: Type.Optional(Type.String({ minLength: 1, description: 'Consumer: only take a file once its done file exists (e.g. `{name}.done`), then remove the done file. Producer: write this (empty) done file after the data file.' })),
    // ---- consumer: what happens to the file afterwards
    noop: Type.Boolean({ default: false, description: 'Consumer: leave a processed file where it is; it is remembered (path + size + mtime, in `.idempotent/`, across restarts) and not taken again unless it changes.' }),
    delete: Type.Boolean({ default: false, description: 'Consumer: delete a processed file.' }),
    move: Type.String({ minLength: 1, default: '.done/{relative}', description: 'Consumer: where a processed file goes, relative to the inbox; a template with `{name}`, `{base}`, `{ext}`, `{relative}`, `{parent}`, `{date}`, `{time}`, `{id}`, `{header.x}`.' }),
    onFailure: Type.Union([Type.Literal('move'), Type.Literal('leave')], { default: 'move', description: 'Consumer: after a failure the error policy did not settle, `move` the file to `moveFailed` with a `.error.json` reason file, or `leave` it in the inbox to be taken again.' }),
    moveFailed: Type.String({ minLength: 1, default: '.error/{relative}', description: 'Consumer: where a failed file goes, relative to the inbox (same template values as `move`).' }),
    // ---- body
    bodyType: Type.Union([Type.Literal('buffer'), Type.Literal('string'), Type.Literal('stream')], { default: 'buffer', description: 'Consumer: the body as a Buffer, a string decoded with `charset`, or a Readable stream (large files: never loaded in memory).' }),
    charset: Type.String({ minLength: 1, default: 'utf-8', description: 'Consumer: charset of string bodies (any WHATWG encoding label: utf-8, latin1, windows-1252, utf-16le...). Producer: charset for string bodies written.' }),
    shutdownTimeout: Type.Integer({ minimum: 0, default: 10000, description: 'Consumer: on stop, how long (ms) to wait for files in flight to finish and be moved, before leaving them claimed (they are recovered at the next start).' }),
    // ---- producer
    fileName: Type.Optional(Type.String({ minLength: 1, description: 'Producer: name of the file written, relative to the directory; a template (`{header.x}`, `{id}`, `{date}`, `{time}`, `{body.a}`, `{name}`...). Default: the `busbar.file.relativePath` header (a consumed file keeps its name), else the message id.' })),
    fileExist: Type.Union([Type.Literal('override'), Type.Literal('append'), Type.Literal('fail'), Type.Literal('ignore'), Type.Literal('unique')], {
      default: 'override',
      description: 'Producer: when the target exists: `override` it (atomically), `append` to it (not atomic), `fail` (BUSBAR_ERR_FILE_EXISTS), `ignore` the message, or write a `unique` name (`name-1.ext`, ...).',
    }),
    fsync: Type.Boolean({ default: false, description: 'Producer: fsync the file and its directory before reporting it written (survives a power cut; slower).' }),
    autoCreate: Type.Boolean({ default: true, description: 'Producer: create missing directories.' }),
    reasonFile: Type.Boolean({ default: true, description: 'Producer: beside a dead letter (a message carrying `busbar.error.*` headers) write `<name>.error.json` with the code, message, route, step, attempts and time, as the consumer\'s own `.error` files have.' }),
  },
  { additionalProperties: false },
);
export type FileOptions = Static<typeof fileOptions>;
