import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, extname, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import type { Endpoint, Producer, ProducerContext } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import { withHeaders, type Message } from '../../lib/message.js';
import { DirCache, errnoOf, ioError, renameFd, writeFileFd } from './fs-util.js';
import type { FileOptions } from './options.js';
import { removeSidecar, sidecarOf, writeSidecar } from './trace-sidecar.js';
import { outgoingTrace } from '../../lib/tracing/context.js';
import { FILE_HEADERS, fileExtras, renderName, safeJoin } from './paths.js';

const MAX_UNIQUE = 10_000;

/**
 * Atomic file producer: the body goes to a hidden temp file in the target's folder, which is
 * then renamed (override) or hard-linked (fail / ignore / unique: atomic "create if absent")
 * to its name, so a reader never sees a partial file.
 */
export class FileProducer implements Producer {
  readonly #root: string;
  readonly #o: FileOptions;
  readonly #uri: string;
  readonly #ctx: ProducerContext;
  readonly #dirs = new DirCache();
  readonly #token = randomBytes(4).toString('hex');
  readonly #encoding: BufferEncoding;
  #seq = 0;

  constructor(root: string, endpoint: Endpoint<FileOptions>, ctx: ProducerContext) {
    this.#root = root;
    this.#o = endpoint.options;
    this.#uri = endpoint.uri;
    this.#ctx = ctx;
    this.#encoding = nodeEncoding(this.#o.charset, this.#uri);
  }

  /** The folder this producer writes to (the management API reads dead letters from it). */
  get root(): string {
    return this.#root;
  }

  async send(msg: Message): Promise<Message | undefined> {
    const where = `endpoint "${this.#uri}"`;
    const name = this.#name(msg, where);
    const target = safeJoin(this.#root, name, where);
    const dir = dirname(target);
    if (this.#o.autoCreate) await this.#dirs.ensure(dir);
    let written: string | undefined;
    // the trace context (tracing on) goes first into a hidden sidecar, so it is there when the file appears
    const trace = this.#ctx.tracing ? outgoingTrace(msg) : undefined;
    const side = trace === undefined ? undefined : await writeSidecar(target, trace);
    if (this.#o.fileExist === 'append') {
      await this.#write(target, msg.body, 'a');
      written = target;
    } else {
      const tmp = `${dir}${sep}.${basename(target)}.${this.#token}-${++this.#seq}.tmp`;
      try {
        await this.#write(tmp, msg.body, 'wx');
        written = await this.#publish(tmp, target, where);
      } catch (e) {
        await unlink(tmp).catch(() => undefined);
        if (side !== undefined) await removeSidecar(side);
        throw e;
      }
    }
    if (side !== undefined && written !== target) {
      if (written === undefined) await removeSidecar(side);
      else await rename(side, sidecarOf(written)).catch(() => undefined);
    }
    if (written === undefined) {
      this.#ctx.logger.debug({ file: name }, 'target exists; message ignored (fileExist=ignore)');
      return undefined;
    }
    if (this.#o.reasonFile && msg.headers['busbar.error.code'] !== undefined) await this.#writeReason(written, msg);
    if (this.#o.fsync) await fsyncDir(dirname(written));
    if (this.#o.doneFileName) {
      const rel = relative(this.#root, written).split(sep).join('/');
      const doneName = renderName(this.#o.doneFileName, msg, fileExtras(rel), where);
      const done = safeJoin(dirname(written), doneName, where);
      await this.#write(done, '', 'w');
    }
    return withHeaders(msg, { [FILE_HEADERS.written]: relative(this.#root, written).split(sep).join('/') });
  }

  /**
   * A dead letter (a message carrying `busbar.error.*`) gets its reason beside it, as the file
   * consumer's own `.error` files do: a file keeps only the body, and the reason would
   * otherwise be only in the log.
   */
  async #writeReason(written: string, msg: Message): Promise<void> {
    const h = msg.headers;
    const reason = {
      file: relative(this.#root, written).split(sep).join('/'),
      messageId: msg.id,
      correlationId: msg.correlationId,
      code: h['busbar.error.code'],
      message: h['busbar.error.message'],
      routeId: h['busbar.error.routeId'],
      step: h['busbar.error.step'],
      attempts: h['busbar.error.attempts'],
      failedAt: h['busbar.error.failedAt'],
    };
    const target = `${written}.error.json`;
    const tmp = `${dirname(target)}${sep}.${basename(target)}.${this.#token}-${++this.#seq}.tmp`;
    try {
      await this.#write(tmp, JSON.stringify(reason, null, 2) + '\n', 'wx');
      await renameFd(tmp, target);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw ioError('write', target, e);
    }
  }

  #name(msg: Message, where: string): string {
    const h = msg.headers;
    const from = (h[FILE_HEADERS.relativePath] ?? h[FILE_HEADERS.name]) as string | undefined;
    const extras = typeof from === 'string' && from ? fileExtras(from) : {};
    if (this.#o.fileName) return renderName(this.#o.fileName, msg, extras, where);
    return typeof from === 'string' && from ? from : msg.id;
  }

  /** Put the finished temp file at its name; undefined when `ignore` found the name taken. */
  async #publish(tmp: string, target: string, where: string): Promise<string | undefined> {
    const mode = this.#o.fileExist;
    if (mode === 'override') {
      try {
        await renameFd(tmp, target);
      } catch (e) {
        throw ioError('rename', target, e);
      }
      return target;
    }
    const ext = extname(target);
    const stem = ext ? target.slice(0, -ext.length) : target;
    for (let i = 0; i < MAX_UNIQUE; i++) {
      const candidate = i === 0 ? target : `${stem}-${i}${ext}`;
      try {
        await link(tmp, candidate);
      } catch (e) {
        const code = errnoOf(e);
        if (code === 'EEXIST') {
          if (mode === 'fail') {
            throw new BusbarError('FILE_EXISTS', `${where}: file ${relative(this.#root, target)} already exists (fileExist=fail)`, { details: { uri: this.#uri, file: relative(this.#root, target) } });
          }
          if (mode === 'ignore') {
            await unlink(tmp).catch(() => undefined);
            return undefined;
          }
          continue;
        }
        throw ioError('link', candidate, e);
      }
      await unlink(tmp).catch(() => undefined);
      return candidate;
    }
    throw new BusbarError('FILE_EXISTS', `${where}: no free unique name for ${relative(this.#root, target)} after ${MAX_UNIQUE} tries`, { details: { uri: this.#uri, file: relative(this.#root, target) } });
  }

  async #write(path: string, body: unknown, flag: 'wx' | 'a' | 'w'): Promise<void> {
    if (!this.#o.fsync && !isStream(body)) {
      // the common case, small and not synced: one native call (open, write, close)
      try {
        await writeFileFd(path, this.#bytes(body), flag);
      } catch (e) {
        throw ioError('write', path, e);
      }
      return;
    }
    let fh;
    try {
      fh = await open(path, flag);
    } catch (e) {
      throw ioError('open', path, e);
    }
    try {
      if (isStream(body)) {
        // chunk by chunk: only one chunk of a large body is in memory at a time
        for await (const chunk of body) {
          const b = this.#bytes(chunk);
          if (typeof b === 'string') await fh.write(b, null, 'utf8');
          else await fh.write(b);
        }
      } else {
        await fh.writeFile(this.#bytes(body));
      }
      if (this.#o.fsync) await fh.sync();
    } catch (e) {
      throw ioError('write', path, e);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  #bytes(body: unknown): Buffer | string {
    if (Buffer.isBuffer(body)) return body;
    if (typeof body === 'string') return this.#encoding === 'utf8' ? body : Buffer.from(body, this.#encoding);
    if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    if (body === null || body === undefined) return '';
    if (typeof body === 'object') return JSON.stringify(body);
    return String(body);
  }
}

function isStream(b: unknown): b is AsyncIterable<unknown> {
  return b instanceof Readable || (typeof b === 'object' && b !== null && !Buffer.isBuffer(b) && typeof (b as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function');
}

async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (e) {
    // some file systems refuse fsync on directories; the file itself was synced
    if (errnoOf(e) !== 'EINVAL' && errnoOf(e) !== 'EISDIR') throw ioError('fsync', dir, e);
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Node can encode a few charsets itself; others (windows-1252...) have no encoder in the platform. */
function nodeEncoding(charset: string, uri: string): BufferEncoding {
  const c = charset.toLowerCase().replace(/^utf-?8$/, 'utf8');
  const map: Record<string, BufferEncoding> = { utf8: 'utf8', latin1: 'latin1', 'iso-8859-1': 'latin1', ascii: 'ascii', 'us-ascii': 'ascii', 'utf-16le': 'utf16le', utf16le: 'utf16le', ucs2: 'utf16le' };
  const enc = map[c];
  if (!enc) {
    throw new BusbarError('INVALID_OPTION', `endpoint "${uri}": option charset: cannot write charset "${charset}" (supported for writing: utf-8, latin1, ascii, utf-16le)`, { details: { uri, option: 'charset' } });
  }
  return enc;
}
