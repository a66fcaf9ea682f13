import { randomBytes } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { TextDecoder } from 'node:util';
import picomatch from 'picomatch';
import { shouldAck, type Consumer, type ConsumerContext, type Endpoint } from '../../lib/adapter.js';
import { sleep } from '../../lib/clock.js';
import { BusbarError, isBusbarError } from '../../lib/errors.js';
import { createMessage, merged, type Headers, type Message } from '../../lib/message.js';
import type { IdempotentRepository } from '../../lib/stores.js';
import { renderTemplate } from '../../lib/template.js';
import { closeFd, DirCache, errnoOf, fstatFd, ioError, moveFile, moveNoClobber, openFd, readdirIfThere, readFd, renameFd } from './fs-util.js';
import type { FileOptions } from './options.js';
import { sidecarOf } from './trace-sidecar.js';
import { parseSidecar } from '../../lib/tracing/context.js';
import { FILE_HEADERS, claimName, fileExtras, localHost, ownerIsDead, parseClaim, renderName, safeJoin, type Owner } from './paths.js';

/** Files claimed and read concurrently per poll: enough to keep the libuv pool busy, few enough to stay polite. */
const READERS = 8;
const RECOVERY_EVERY_MS = 60_000;
const LOCK_SUFFIX = '.lock';
/** Candidates kept from one listing for the following polls. */
const MAX_BACKLOG = 100_000;
/** `readLock=changed`: how many files past a poll's batch get their stability window started in that poll. */
const OBSERVE_AHEAD = 10_000;

interface Candidate {
  rel: string;
  abs: string;
  doneAbs?: string;
  st?: Stats;
}

/** One file's transaction: from claim to move/delete/record. */
interface Tx {
  c: Candidate;
  /** Where the file is read from (its in-progress name when claimed by rename). */
  work: string;
  marker?: string;
  key?: string;
  stream?: Readable;
  /** The trace-context sidecar that came with the file (tracing on), removed when the file is settled. */
  sidecar?: string;
}

type Outcome = 'ok' | 'failed' | 'dead-lettered';
/** `processing`: handed to the route (its slot is used); `settled`: failed before the route; false: not taken. */
type TakeResult = 'processing' | 'settled' | false;

export interface FileConsumerDeps {
  root: string;
  endpoint: Endpoint<FileOptions>;
  ctx: ConsumerContext;
  repo: IdempotentRepository | undefined;
}

/**
 * Polling consumer with a per-file transaction: claim (rename to a hidden claim name or an
 * exclusive `.lock` marker), read, hand to the route, and only when the route finished move,
 * delete or record the file. A crash at any point leaves the file in the inbox or in
 * under the dead owner's claim name, from where the next start puts it back.
 */
export class FileConsumer implements Consumer {
  readonly #root: string;
  readonly #o: FileOptions;
  readonly #uri: string;
  readonly #ctx: ConsumerContext;
  readonly #repo: IdempotentRepository | undefined;
  readonly #claim: 'rename' | 'marker' | 'none';
  readonly #include: ((p: string) => boolean) | undefined;
  readonly #exclude: ((p: string) => boolean) | undefined;
  readonly #decode: ((b: Buffer) => string) | undefined;
  readonly #dirs = new DirCache();
  readonly #pending = new Set<Promise<void>>();
  /** Files this consumer holds right now (a marker-claimed file is still listed). */
  readonly #held = new Set<string>();
  /** Size/mtime last seen per file, for `readLock=changed`. */
  readonly #seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
  /** Files left in place after a failure: not retaken before this time. */
  readonly #retryAt = new Map<string, number>();
  /** Files that could not even be moved aside: skipped until restart, so a poll never spins on them. */
  readonly #broken = new Set<string>();
  readonly #doneKeys = new Set<string>();
  #owner: Owner = { host: localHost(), pid: process.pid, token: '0' };
  #running = false;
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #lastRecovery = 0;
  #backlog: Candidate[] = [];
  #reserved = 0;
  #slotWaiters: Array<() => void> = [];
  #routeWait: Promise<void> | undefined;

  constructor(deps: FileConsumerDeps) {
    this.#root = deps.root;
    this.#o = deps.endpoint.options;
    this.#uri = deps.endpoint.uri;
    this.#ctx = deps.ctx;
    this.#repo = deps.repo;
    const o = this.#o;
    if (o.noop && o.delete) {
      throw new BusbarError('INVALID_OPTION', `endpoint "${this.#uri}": options noop and delete exclude each other`, { details: { uri: this.#uri, option: 'delete' } });
    }
    checkSettleTemplate(this.#uri, 'move', o.move);
    checkSettleTemplate(this.#uri, 'moveFailed', o.moveFailed);
    this.#claim = o.readLock === 'none' ? 'none' : o.readLock === 'marker' || o.noop ? 'marker' : 'rename';
    this.#include = o.include ? picomatch(o.include, { dot: false }) : undefined;
    this.#exclude = o.exclude ? picomatch(o.exclude, { dot: false }) : undefined;
    if (o.bodyType === 'string') this.#decode = decoderFor(o.charset, this.#uri);
  }

  // ---------------------------------------------------------------- lifecycle
  async start(): Promise<void> {
    if (this.#running) return;
    this.#owner = { host: localHost(), pid: process.pid, token: randomBytes(6).toString('hex') };
    try {
      await mkdir(this.#root, { recursive: true });
    } catch (e) {
      throw ioError('mkdir', this.#root, e);
    }
    await this.#recover();
    this.#running = true;
    this.#abort = new AbortController();
    this.#loop = this.#run(this.#abort.signal);
    this.#ctx.setStatus('connected');
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#abort?.abort();
    this.#wakeAll();
    this.#backlog = [];
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((res) => {
      timer = setTimeout(() => res('timeout'), this.#o.shutdownTimeout);
      timer.unref();
    });
    await Promise.race([this.#loop, deadline]);
    const r = await Promise.race([Promise.allSettled([...this.#pending]), deadline]);
    clearTimeout(timer);
    if (r === 'timeout' && this.#pending.size) {
      this.#ctx.logger.warn({ uri: this.#uri, files: [...this.#held] }, 'stop: files still in flight stay claimed; they are recovered at the next start');
    }
    this.#ctx.setStatus('idle');
  }

  async #run(signal: AbortSignal): Promise<void> {
    try {
      if (this.#o.initialDelay > 0) await sleep(this.#ctx.clock, this.#o.initialDelay, signal);
    } catch {
      return;
    }
    while (this.#running) {
      let more = false;
      try {
        more = await this.#poll();
        this.#ctx.setStatus('connected');
      } catch (err) {
        this.#ctx.logger.error({ err, uri: this.#uri }, 'file poll failed; retrying after the poll delay');
        this.#ctx.setStatus('backing-off', err);
      }
      if (!this.#running) break;
      if (!more) {
        try {
          await sleep(this.#ctx.clock, this.#o.delay, signal);
        } catch {
          break;
        }
      }
    }
  }

  /** One poll; true when it stopped at `maxMessagesPerPoll` and there is more to take at once. */
  async #poll(): Promise<boolean> {
    const ctx = this.#ctx;
    if (ctx.clock.now() - this.#lastRecovery >= RECOVERY_EVERY_MS) await this.#recover();
    // list only when something can be taken: a listing made while the route is full is stale by the time it is used
    while (this.#running && this.#free() <= 0) await this.#waitSlot();
    if (!this.#running) return false;
    const { list, truncated } = this.#backlog.length ? this.#fromBacklog() : await this.#list();
    let next = 0;
    let handed = 0;
    const reader = async (): Promise<void> => {
      while (this.#running && next < list.length) {
        if (!(await this.#acquire())) return;
        if (next >= list.length) {
          this.#unreserve();
          return;
        }
        const c = list[next++]!;
        let result: TakeResult = false;
        try {
          result = await this.#take(c);
        } catch (err) {
          ctx.logger.error({ err, uri: this.#uri, file: c.rel }, 'could not take file; it stays where it is');
        }
        if (result === 'processing') handed++;
        else this.#unreserve();
      }
    };
    // a sorted poll hands files over in order, so it reads them one by one
    const readers = this.#o.sortBy === 'none' ? READERS : 1;
    await Promise.all(Array.from({ length: Math.min(readers, list.length) }, reader));
    return truncated && handed > 0;
  }

  // ---------------------------------------------------------------- slots
  /*
   * Readers reserve a route slot before claiming a file and hand it to `process` only with a
   * slot free, so `process` never queues. One shared `whenAvailable()` wait at a time: the
   * route wakes one waiter per freed slot, and a woken waiter that then takes no file would
   * otherwise swallow the wake-up of a message queued behind it.
   */
  #free(): number {
    return this.#ctx.available() - this.#reserved;
  }

  #waitSlot(): Promise<void> {
    return new Promise((resolve) => {
      this.#slotWaiters.push(resolve);
      if (this.#ctx.available() === 0 && !this.#routeWait) {
        this.#routeWait = this.#ctx.whenAvailable().then(() => {
          this.#routeWait = undefined;
          this.#wakeAll();
        });
      }
    });
  }

  #wakeAll(): void {
    for (const w of this.#slotWaiters.splice(0)) w();
  }

  async #acquire(): Promise<boolean> {
    while (this.#running) {
      if (this.#free() > 0) {
        this.#reserved++;
        return true;
      }
      await this.#waitSlot();
    }
    return false;
  }

  #unreserve(): void {
    this.#reserved--;
    this.#wakeAll();
  }

  // ---------------------------------------------------------------- listing
  /**
   * Consumer lag: files waiting in the folder (matching include/exclude, not held by this
   * consumer, not claimed by another), read on a metrics scrape with a listing of its own.
   */
  async backlog(): Promise<number | undefined> {
    if (!this.#running) return undefined;
    let n = 0;
    await this.#walk(false, () => {
      n++;
    });
    return n;
  }

  /**
   * Every file of the folder (and of its subfolders when recursive) this consumer could take:
   * not hidden, not held by it or broken, not claimed by another (marker), matching
   * include/exclude. `visit` gets each with its folder, its path relative to the root and,
   * when `withNames` (or the marker claim needs them), the names in its folder.
   */
  async #walk(withNames: boolean, visit: (name: string, dir: string, rel: string, relPath: string, names: Set<string> | undefined) => void): Promise<void> {
    const o = this.#o;
    const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
      const entries = await readdirIfThere(dir);
      const names = withNames || this.#claim === 'marker' ? new Set(entries.map((e) => e.name)) : undefined;
      for (const e of entries) {
        const name = e.name;
        if (name.startsWith('.')) continue;
        const relPath = rel ? `${rel}/${name}` : name;
        if (e.isDirectory()) {
          if (o.recursive && depth < o.maxDepth) await walk(join(dir, name), relPath, depth + 1);
          continue;
        }
        if (!e.isFile() || this.#held.has(relPath) || this.#broken.has(relPath)) continue;
        if (this.#claim === 'marker' && (name.endsWith(LOCK_SUFFIX) || names!.has(name + LOCK_SUFFIX))) continue;
        if (this.#include && !this.#include(relPath)) continue;
        if (this.#exclude && this.#exclude(relPath)) continue;
        visit(name, dir, rel, relPath, names);
      }
    };
    await walk(this.#root, '', 0);
  }

  async #list(): Promise<{ list: Candidate[]; truncated: boolean }> {
    const o = this.#o;
    const now = this.#ctx.clock.now();
    const out: Candidate[] = [];
    const doneNames = new Set<string>();
    const probe = createMessage(null, { timestamp: now });
    await this.#walk(Boolean(o.doneFileName), (name, dir, rel, relPath, names) => {
      const retry = this.#retryAt.get(relPath);
      if (retry !== undefined) {
        if (retry > now) return;
        this.#retryAt.delete(relPath);
      }
      const c: Candidate = { rel: relPath, abs: join(dir, name) };
      if (o.doneFileName) {
        const done = renderTemplate(o.doneFileName, probe, fileExtras(relPath));
        doneNames.add(rel ? `${rel}/${done}` : done);
        if (!names!.has(done)) return;
        c.doneAbs = join(dir, done);
      }
      out.push(c);
    });
    let list = doneNames.size ? out.filter((c) => !doneNames.has(c.rel)) : out;
    if (this.#seen.size) {
      const listed = new Set(list.map((c) => c.rel));
      for (const k of this.#seen.keys()) if (!listed.has(k)) this.#seen.delete(k);
    }
    if (o.sortBy !== 'none') {
      if (o.sortBy !== 'name') await this.#statAll(list);
      const dir = o.sortOrder === 'desc' ? -1 : 1;
      const by = o.sortBy;
      list.sort((a, b) => {
        const x = by === 'name' ? a.rel : by === 'size' ? (a.st?.size ?? 0) : (a.st?.mtimeMs ?? 0);
        const y = by === 'name' ? b.rel : by === 'size' ? (b.st?.size ?? 0) : (b.st?.mtimeMs ?? 0);
        return x < y ? -dir : x > y ? dir : 0;
      });
    } else if (list.length > 1 && this.#claim !== 'none' && o.readLock !== 'changed') {
      // competing consumers all list the same directory: start each poll at a random place so
      // they mostly claim different files instead of racing for the same first ones (not with
      // `changed`: a file must be seen in two polls running to be found stable)
      const at = Math.floor(Math.random() * list.length);
      list = [...list.slice(at), ...list.slice(0, at)];
    }
    const truncated = o.maxMessagesPerPoll > 0 && list.length > o.maxMessagesPerPoll;
    if (truncated) {
      // the rest of this listing feeds the next polls: a big inbox is listed once, not once per poll
      // (`changed` lists every time: a file must be seen in successive listings)
      if (o.readLock !== 'changed') this.#backlog = list.slice(o.maxMessagesPerPoll, o.maxMessagesPerPoll + MAX_BACKLOG);
      // the files of later polls start their stability window now too: otherwise each poll's
      // `maxMessagesPerPoll` files would wait `readLockCheckInterval` in turn (a backlog of
      // 1,000 files, 5 per poll and the default 2.5 s: over 8 minutes instead of 2.5 s)
      // (bounded: a huge inbox is not stat'ed whole on every poll)
      else await this.#observe(list.slice(o.maxMessagesPerPoll, o.maxMessagesPerPoll + OBSERVE_AHEAD));
      list = list.slice(0, o.maxMessagesPerPoll);
    }
    return { list, truncated };
  }

  /** The next poll's worth of a listing already made (entries another consumer took since are skipped when claimed). */
  #fromBacklog(): { list: Candidate[]; truncated: true } {
    const limit = this.#o.maxMessagesPerPoll > 0 ? this.#o.maxMessagesPerPoll : this.#backlog.length;
    const list = this.#backlog.splice(0, limit);
    return { list, truncated: true };
  }

  /** `readLock=changed`: note size and mtime of files not taken in this poll (a change restarts a file's window, as in `#take`). */
  async #observe(rest: Candidate[]): Promise<void> {
    await this.#statAll(rest);
    const now = this.#ctx.clock.now();
    for (const c of rest) {
      if (!c.st) continue;
      const prev = this.#seen.get(c.rel);
      if (!prev || prev.size !== c.st.size || prev.mtimeMs !== c.st.mtimeMs) this.#seen.set(c.rel, { size: c.st.size, mtimeMs: c.st.mtimeMs, since: now });
    }
  }

  async #statAll(list: Candidate[]): Promise<void> {
    let i = 0;
    const worker = async (): Promise<void> => {
      while (i < list.length) {
        const c = list[i++]!;
        c.st = await stat(c.abs).catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READERS, list.length) }, worker));
  }

  // ---------------------------------------------------------------- one file
  /** Check, claim, read and hand one file to the route; false when it was not taken (not ready, taken by someone else). */
  async #take(c: Candidate): Promise<TakeResult> {
    const o = this.#o;
    const now = this.#ctx.clock.now();
    if (o.readLock === 'changed' || o.readLockMinAge > 0 || o.noop) {
      let st = c.st;
      if (!st) {
        try {
          st = await stat(c.abs);
        } catch (e) {
          if (errnoOf(e) === 'ENOENT') return false;
          throw ioError('stat', c.abs, e);
        }
      }
      if (o.readLock === 'changed') {
        const prev = this.#seen.get(c.rel);
        if (!prev || prev.size !== st.size || prev.mtimeMs !== st.mtimeMs) {
          this.#seen.set(c.rel, { size: st.size, mtimeMs: st.mtimeMs, since: now });
          return false;
        }
        if (now - prev.since < o.readLockCheckInterval) return false;
        this.#seen.delete(c.rel);
      }
      if (o.readLockMinAge > 0 && now - st.mtimeMs < o.readLockMinAge) return false;
      if (o.noop && (await this.#alreadyDone(keyOf(c.rel, st)))) return false;
    }
    const tx: Tx = { c, work: c.abs };
    if (this.#claim === 'rename') {
      tx.work = join(dirname(c.abs), claimName(basename(c.abs), this.#owner));
      try {
        await renameFd(c.abs, tx.work);
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') return false; // another consumer took it first
        throw ioError('claim (rename)', c.abs, e);
      }
    } else if (this.#claim === 'marker') {
      const marker = c.abs + LOCK_SUFFIX;
      try {
        await writeFile(marker, JSON.stringify({ ...this.#owner, at: now }), { flag: 'wx' });
      } catch (e) {
        if (errnoOf(e) === 'EEXIST') return false;
        throw ioError('claim (marker)', marker, e);
      }
      tx.marker = marker;
    }
    this.#held.add(c.rel);
    let msg: Message;
    try {
      const read = await this.#read(tx);
      if (read === undefined) {
        await this.#release(tx);
        return false;
      }
      msg = read;
    } catch (e) {
      // a file that cannot be read never becomes a message: it fails here, with its reason
      this.#track(tx, undefined, 'failed', ioError('read', c.abs, e));
      return 'settled';
    }
    // the reserved slot becomes the route's in-flight slot in the same tick
    this.#reserved--;
    const processing = this.#ctx.process(msg);
    this.#wakeAll();
    const settled = processing.then(
      () => this.#settle(tx, msg, 'ok'),
      (err: unknown) => this.#settle(tx, msg, shouldAck(err) ? 'dead-lettered' : 'failed', err),
    );
    this.#pending.add(settled);
    void settled.finally(() => this.#pending.delete(settled));
    return 'processing';
  }

  #track(tx: Tx, msg: Message | undefined, outcome: Outcome, err: unknown): void {
    const p = this.#settle(tx, msg, outcome, err);
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  async #alreadyDone(key: string): Promise<boolean> {
    if (this.#doneKeys.has(key)) return true;
    if (await this.#repo!.contains(this.#root, key)) {
      this.#remember(key);
      return true;
    }
    return false;
  }

  #remember(key: string): void {
    if (this.#doneKeys.size >= 100_000) this.#doneKeys.clear();
    this.#doneKeys.add(key);
  }

  /** The message for a claimed file, or undefined when the file vanished (another consumer finished it). */
  async #read(tx: Tx): Promise<Message | undefined> {
    let fd: number;
    try {
      fd = await openFd(tx.work, 'r');
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' && this.#claim !== 'rename') return undefined;
      throw e;
    }
    let body: unknown;
    let st: Stats;
    try {
      st = await fstatFd(fd);
      if (this.#o.noop) {
        tx.key = keyOf(tx.c.rel, st);
        if (await this.#alreadyDone(tx.key)) {
          await closeFd(fd);
          return undefined;
        }
      }
      if (this.#o.bodyType === 'stream') {
        const stream = createReadStream('', { fd, autoClose: true });
        tx.stream = stream;
        body = stream;
      } else {
        const buf = await readFd(fd, st.size);
        await closeFd(fd);
        body = this.#decode ? this.#decode(buf) : buf;
      }
    } catch (e) {
      await closeFd(fd).catch(() => undefined);
      throw e;
    }
    let headers: Headers = {
      [FILE_HEADERS.name]: tx.c.rel.slice(tx.c.rel.lastIndexOf('/') + 1),
      [FILE_HEADERS.relativePath]: tx.c.rel,
      [FILE_HEADERS.absolutePath]: tx.c.abs,
      [FILE_HEADERS.size]: st.size,
      [FILE_HEADERS.mtime]: Math.floor(st.mtimeMs),
    };
    if (this.#ctx.tracing) {
      // a file keeps only its body: the producer's trace context is in a hidden sidecar beside it (docs/tracing.md)
      const side = sidecarOf(tx.c.abs);
      const text = await readFile(side, 'utf8').catch(() => undefined);
      const trace = text === undefined ? undefined : parseSidecar(text);
      if (text !== undefined) tx.sidecar = side;
      if (trace) headers = merged(headers, trace);
    }
    return createMessage(body, { headers, timestamp: this.#ctx.clock.now() });
  }

  // ---------------------------------------------------------------- settling
  async #settle(tx: Tx, msg: Message | undefined, outcome: Outcome, err?: unknown): Promise<void> {
    const o = this.#o;
    const rel = tx.c.rel;
    try {
      if (tx.stream && !tx.stream.destroyed) tx.stream.destroy();
      const m = msg ?? createMessage(null, { timestamp: this.#ctx.clock.now() });
      if (outcome === 'ok' || (outcome === 'dead-lettered' && o.onFailure === 'leave')) {
        await this.#succeed(tx, m);
      } else if (o.onFailure === 'move') {
        const where = await this.#fail(tx, m, err, outcome === 'dead-lettered');
        if (outcome === 'failed') this.#ctx.logger.error({ err, uri: this.#uri, file: rel, movedTo: where }, 'file failed and has no dead-letter endpoint; moved aside with its reason');
      } else {
        tx.sidecar = undefined; // the file is taken again later, with its context
        await this.#release(tx);
        this.#retryAt.set(rel, this.#ctx.clock.now() + o.delay);
        this.#ctx.logger.warn({ err, uri: this.#uri, file: rel }, 'file failed; left in the inbox to be taken again');
      }
    } catch (e) {
      // never leave the file claimed (every restart would process it again): aside to the
      // default error place, with the reason why it could not be settled
      try {
        const where = await this.#failAside(tx, msg, e, err, outcome);
        this.#ctx.logger.error({ err: e, original: err, uri: this.#uri, file: rel, movedTo: where }, 'could not settle file as configured; moved aside to .error with the reason');
      } catch (e2) {
        this.#ctx.logger.error({ err: e2, settleError: e, original: err, uri: this.#uri, file: rel }, 'could not settle file: it stays claimed until the next start recovers it');
        if (this.#claim !== 'rename') this.#broken.add(rel);
      }
    } finally {
      this.#held.delete(rel);
      if (tx.sidecar !== undefined) await unlinkQuiet(tx.sidecar);
    }
  }

  #target(template: string, msg: Message, rel: string): string {
    return resolve(this.#root, renderName(template, msg, fileExtras(rel), `endpoint "${this.#uri}"`));
  }

  async #succeed(tx: Tx, msg: Message): Promise<void> {
    const o = this.#o;
    if (o.noop) {
      if (tx.key) {
        await this.#repo!.add(this.#root, tx.key);
        this.#remember(tx.key);
      }
      if (this.#claim === 'rename') await moveNoClobber(tx.work, tx.c.abs, this.#dirs);
    } else if (o.delete) {
      await unlink(tx.work).catch((e: unknown) => {
        if (errnoOf(e) !== 'ENOENT') throw ioError('delete', tx.work, e);
      });
    } else {
      await moveFile(tx.work, this.#target(o.move, msg, tx.c.rel), this.#dirs);
    }
    if (tx.c.doneAbs) await unlinkQuiet(tx.c.doneAbs);
    if (tx.marker) await unlinkQuiet(tx.marker);
  }

  async #fail(tx: Tx, msg: Message, err: unknown, deadLettered: boolean): Promise<string> {
    const target = this.#target(this.#o.moveFailed, msg, tx.c.rel);
    await moveFile(tx.work, target, this.#dirs);
    const e = isBusbarError(err) ? err : undefined;
    const reason = {
      file: tx.c.rel,
      messageId: msg.id,
      code: e?.code ?? (err as { code?: unknown } | undefined)?.code ?? 'UNKNOWN',
      message: err instanceof Error ? err.message : String(err),
      routeId: this.#ctx.routeId,
      step: e?.details.step,
      attempts: e?.details.attempts,
      deadLettered,
      failedAt: new Date(this.#ctx.clock.now()).toISOString(),
    };
    // written aside and renamed, so whoever watches `.error/` never parses half a reason
    const tmp = join(dirname(target), `.${basename(target)}.error.json.tmp`);
    await writeFile(tmp, JSON.stringify(reason, null, 2) + '\n')
      .then(() => rename(tmp, `${target}.error.json`))
      .catch((we: unknown) => {
        this.#ctx.logger.error({ err: we, file: tx.c.rel, reason }, 'could not write the reason file');
      });
    if (tx.c.doneAbs) await unlinkQuiet(tx.c.doneAbs);
    if (tx.marker) await unlinkQuiet(tx.marker);
    return target;
  }

  /** The last resort of a settle that failed: `.error/<relative>` and a reason naming both failures. */
  async #failAside(tx: Tx, msg: Message | undefined, settleError: unknown, original: unknown, outcome: Outcome): Promise<string> {
    const target = safeJoin(this.#root, join('.error', tx.c.rel), `endpoint "${this.#uri}"`);
    await moveFile(tx.work, target, this.#dirs);
    const se = isBusbarError(settleError) ? settleError : undefined;
    const oe = isBusbarError(original) ? original : undefined;
    const reason = {
      file: tx.c.rel,
      messageId: msg?.id,
      code: se?.code ?? (settleError as { code?: unknown } | undefined)?.code ?? 'UNKNOWN',
      message: `the file could not be settled (${outcome === 'ok' ? 'after the route succeeded' : `after the route ${outcome}`}): ${settleError instanceof Error ? settleError.message : String(settleError)}`,
      routeId: this.#ctx.routeId,
      outcome,
      ...(original !== undefined ? { original: { code: oe?.code ?? (original as { code?: unknown }).code, message: original instanceof Error ? original.message : String(original), step: oe?.details.step } } : {}),
      failedAt: new Date(this.#ctx.clock.now()).toISOString(),
    };
    await writeReason(target, reason);
    if (tx.c.doneAbs) await unlinkQuiet(tx.c.doneAbs);
    if (tx.marker) await unlinkQuiet(tx.marker);
    return target;
  }

  /** Give the file back untouched (it failed and is to be retried, or it was not ours to take). */
  async #release(tx: Tx): Promise<void> {
    if (this.#claim === 'rename') await moveNoClobber(tx.work, tx.c.abs, this.#dirs);
    if (tx.marker) await unlinkQuiet(tx.marker);
    this.#held.delete(tx.c.rel);
  }

  // ---------------------------------------------------------------- recovery
  /** Put back what crashed owners left claimed: hidden `.claim` files and `.lock` markers. */
  async #recover(): Promise<void> {
    const now = this.#ctx.clock.now();
    this.#lastRecovery = now;
    const staleMs = this.#o.readLockStaleMs;
    let recovered = 0;
    /** `hidden`: 'files' visits hidden files (claims) but never enters hidden directories. */
    const walk = async (dir: string, rel: string, depth: number, maxDepth: number, visit: (abs: string, rel: string, name: string) => Promise<void>, hidden: 'files' | 'none'): Promise<void> => {
      const entries = await readdirIfThere(dir);
      for (const e of entries) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.name.startsWith('.') && (hidden === 'none' || e.isDirectory())) continue;
        if (e.isDirectory()) {
          if (depth < maxDepth) await walk(join(dir, e.name), r, depth + 1, maxDepth, visit, hidden);
        } else if (e.isFile()) await visit(join(dir, e.name), r, e.name);
      }
    };
    // claim names are hidden files next to where the file was; look at every level a consumer could have claimed in
    await walk(this.#root, '', 0, this.#o.recursive ? this.#o.maxDepth : 0, async (abs, _rel, name) => {
      if (!name.startsWith('.') || !name.endsWith('.claim')) return;
      const claim = parseClaim(name);
      if (!claim) return;
      const st = await stat(abs).catch(() => undefined);
      if (!st || !ownerIsDead(claim.owner, now - st.ctimeMs, staleMs)) return;
      const where = await moveNoClobber(abs, join(dirname(abs), claim.original), this.#dirs);
      recovered++;
      this.#ctx.logger.warn({ uri: this.#uri, file: where, owner: claim.owner }, 'recovered a file claimed by a process that is gone');
    }, 'files');
    if (this.#claim === 'marker') {
      await walk(this.#root, '', 0, this.#o.recursive ? this.#o.maxDepth : 0, async (abs, _rel, name) => {
        if (!name.endsWith(LOCK_SUFFIX)) return;
        let owner: (Owner & { at?: number }) | undefined;
        try {
          owner = JSON.parse(await readFile(abs, 'utf8')) as Owner & { at?: number };
        } catch {
          owner = undefined;
        }
        const st = await stat(abs).catch(() => undefined);
        if (!st) return;
        const age = now - (owner?.at ?? st.mtimeMs);
        // an unreadable marker is a crash in the middle of writing one: stale once it is old
        const dead = owner && typeof owner.pid === 'number' ? ownerIsDead(owner, age, staleMs) : age > 60_000;
        if (!dead) return;
        await unlinkQuiet(abs);
        recovered++;
        this.#ctx.logger.warn({ uri: this.#uri, marker: abs }, 'removed a stale lock marker of a process that is gone');
      }, 'none');
    }
    if (recovered) this.#ctx.logger.info({ uri: this.#uri, recovered }, 'file recovery done');
  }
}

function keyOf(rel: string, st: Stats): string {
  return `${rel}|${st.size}|${Math.floor(st.mtimeMs)}`;
}

async function unlinkQuiet(path: string): Promise<void> {
  await unlink(path).catch((e: unknown) => {
    if (errnoOf(e) !== 'ENOENT') throw ioError('unlink', path, e);
  });
}

/** A decoder for a charset label, checked when the route is created. */
export function decoderFor(charset: string, uri: string): (b: Buffer) => string {
  const label = charset.toLowerCase();
  if (label === 'utf-8' || label === 'utf8') return (b) => b.toString('utf8');
  if (label === 'latin1' || label === 'iso-8859-1' || label === 'binary') return (b) => b.toString('latin1');
  let dec: TextDecoder;
  try {
    dec = new TextDecoder(label);
  } catch {
    throw new BusbarError('INVALID_OPTION', `endpoint "${uri}": option charset: unknown charset "${charset}"`, { details: { uri, option: 'charset' } });
  }
  return (b) => dec.decode(b);
}

/** `{name}` and friends of a settle template: what the consumed file's message has. */
const SETTLE_VALUES = new Set(['name', 'base', 'ext', 'relative', 'parent', 'id', 'correlationId', 'timestamp', 'date', 'time']);
const FILE_HEADER_NAMES = new Set<string>(Object.values(FILE_HEADERS));

/**
 * `move` and `moveFailed` are rendered against the message as the consumer made it (the
 * file's own headers and id), not against what later steps computed: a route may have
 * replaced, split or aggregated the message by the time the file is settled. So a template
 * may only use what that message has; anything else is refused when the route is created.
 */
function checkSettleTemplate(uri: string, option: 'move' | 'moveFailed', template: string): void {
  for (const m of template.matchAll(/\{([A-Za-z_][\w.-]*)\}/g)) {
    const key = m[1]!;
    if (SETTLE_VALUES.has(key)) continue;
    const header = /^headers?\.(.+)$/.exec(key)?.[1];
    if (header !== undefined && FILE_HEADER_NAMES.has(header)) continue;
    const why = header !== undefined
      ? `header "${header}" is not on the consumed file's message (a ${option} template sees only the file's own headers: ${[...FILE_HEADER_NAMES].join(', ')}); to place a file by what the route computes, write it with a file: producer (to('file:done?fileName={header.${header}}/{header.busbar.file.name}'))`
      : key.startsWith('body') ? `the body is the file's content, not data: {${key}} has no value` : `unknown placeholder; use ${[...SETTLE_VALUES].map((v) => `{${v}}`).join(', ')} or {header.busbar.file.*}`;
    throw new BusbarError('INVALID_OPTION', `endpoint "${uri}": option ${option}: template "${template}" uses {${key}}: ${why}`, { details: { uri, option, placeholder: key } });
  }
}

/** A reason file beside a file moved aside, written aside and renamed (whoever watches never parses half a reason). */
async function writeReason(target: string, reason: unknown): Promise<void> {
  const tmp = join(dirname(target), `.${basename(target)}.error.json.tmp`);
  await writeFile(tmp, JSON.stringify(reason, null, 2) + '\n');
  await rename(tmp, `${target}.error.json`);
}
