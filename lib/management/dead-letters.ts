import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { shouldAck } from '../adapter.js';
import type { Engine } from '../engine.js';
import { BusbarError } from '../errors.js';
import { createMessage, type Headers, type HeaderValue, type Message } from '../message.js';
import { ATTEMPT_HEADER, ERROR_HEADERS } from '../route.js';

/** Where the reasons of file dead letters are kept, inside the dead-letter folder (a dot folder: file consumers skip it). */
export const FILE_REASONS_DIR = '.busbar-errors';
const FILE_WRITTEN_HEADER = 'busbar.file.written';
export const REPLAYED_HEADER = 'busbar.replayed';

export interface DeadLetter {
  /** Id within its endpoint (a message id, a file name). */
  id: string;
  routeId: string;
  endpoint: string;
  messageId: string;
  code?: string;
  message?: string;
  step?: string;
  attempts?: number;
  failedAt?: string;
  headers: Record<string, HeaderValue>;
  /** The body, or its first 4 KiB as text. */
  body: unknown;
}

interface Stored {
  id: string;
  msg: Message;
}

/** A readable dead-letter endpoint: list what is there, set one aside while it is replayed, then drop or restore it. */
interface DeadLetterStore {
  list(): Promise<Stored[]>;
  /** Take it out of the store (so a copy dead-lettered again cannot be confused with it); false: another replay holds it (skipped). */
  hold(s: Stored): Promise<void | boolean>;
  /** Replay settled: forget the held original. */
  drop(s: Stored): Promise<void>;
  /** Replay failed: put the original back. */
  restore(s: Stored): Promise<void>;
  /** Done with the store: what was listed and not dropped stays (an amqp queue gets it back). */
  close?(): Promise<void>;
}

function mockStore(engine: Engine, uri: string): DeadLetterStore {
  const mock = engine.mock(uri);
  return {
    async list() {
      return mock.received.map((msg, i) => ({ id: `${i}:${msg.id}`, msg }));
    },
    async hold(s) {
      const i = mock.received.indexOf(s.msg);
      if (i >= 0) mock.received.splice(i, 1);
    },
    async drop() {},
    async restore(s) {
      mock.received.push(s.msg);
    },
  };
}

function fileStore(root: string): DeadLetterStore {
  const held = join(root, FILE_REASONS_DIR, '.replaying');
  const reasonOf = (id: string): string => join(root, FILE_REASONS_DIR, `${id}.json`);
  const walk = async (dir: string): Promise<string[]> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: string[] = [];
    for (const e of entries) {
      // dot files, and the reason files the file producer writes beside dead letters (<name>.error.json)
      if (e.name.startsWith('.') || e.name.endsWith('.error.json')) continue;
      const abs = join(dir, e.name);
      if (e.isDirectory()) out.push(...(await walk(abs)));
      else if (e.isFile()) out.push(relative(root, abs).split(sep).join('/'));
    }
    return out;
  };
  return {
    async list() {
      const out: Stored[] = [];
      for (const id of (await walk(root)).sort()) {
        const body = await readFile(join(root, id));
        let headers: Headers = {};
        let messageId: string | undefined;
        try {
          const r = JSON.parse(await readFile(reasonOf(id), 'utf8')) as { headers?: Headers; id?: string };
          headers = r.headers ?? {};
          messageId = r.id;
        } catch {
          // written before the management API ran: no reason recorded
        }
        out.push({ id, msg: createMessage(body.toString('utf8'), { headers, ...(messageId ? { id: messageId } : {}) }) });
      }
      return out;
    },
    async hold(s) {
      const to = join(held, s.id);
      await mkdir(dirname(to), { recursive: true });
      await rename(join(root, s.id), to);
    },
    async drop(s) {
      await rm(join(held, s.id), { force: true });
      await rm(reasonOf(s.id), { force: true });
      await rm(join(root, `${s.id}.error.json`), { force: true });
    },
    async restore(s) {
      await rename(join(held, s.id), join(root, s.id));
    },
  };
}

/** The store behind a dead-letter endpoint, or undefined when busbar cannot read it (yet). */
function storeFor(engine: Engine, uri: string): DeadLetterStore | undefined {
  const scheme = uri.slice(0, uri.indexOf(':'));
  if (scheme === 'mock') return mockStore(engine, uri);
  if (scheme === 'file') {
    const root = (engine.producerOf(uri) as { root?: unknown } | undefined)?.root;
    if (typeof root === 'string') return fileStore(root);
  }
  // an adapter whose producer can read its destination back (amqp queues)
  const p = engine.producerOf(uri) as { deadLetterStore?: () => DeadLetterStore | undefined } | undefined;
  if (typeof p?.deadLetterStore === 'function') return p.deadLetterStore();
  return undefined;
}

/** Record where and why a message was dead-lettered, for endpoints that keep only the body (files). */
export async function recordReason(engine: Engine, uri: string, msg: Message, reply: Message | undefined): Promise<void> {
  if (!uri.startsWith('file:')) return;
  const written = reply?.headers[FILE_WRITTEN_HEADER];
  const root = (engine.producerOf(uri) as { root?: unknown } | undefined)?.root;
  if (typeof written !== 'string' || typeof root !== 'string') return;
  const p = join(root, FILE_REASONS_DIR, `${written}.json`);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, JSON.stringify({ id: msg.id, headers: msg.headers }));
}

function preview(body: unknown): unknown {
  if (Buffer.isBuffer(body)) body = body.toString('utf8');
  if (typeof body === 'string' && body.length > 4096) return `${body.slice(0, 4096)}…`;
  return body;
}

function toDeadLetter(routeId: string, endpoint: string, s: Stored): DeadLetter {
  const h = s.msg.headers;
  const d: DeadLetter = { id: s.id, routeId, endpoint, messageId: s.msg.id, headers: { ...h }, body: preview(s.msg.body) };
  if (typeof h[ERROR_HEADERS.code] === 'string') d.code = h[ERROR_HEADERS.code] as string;
  if (typeof h[ERROR_HEADERS.message] === 'string') d.message = h[ERROR_HEADERS.message] as string;
  if (typeof h[ERROR_HEADERS.step] === 'string') d.step = h[ERROR_HEADERS.step] as string;
  if (h[ERROR_HEADERS.attempts] !== undefined) d.attempts = Number(h[ERROR_HEADERS.attempts]);
  if (typeof h[ERROR_HEADERS.failedAt] === 'string') d.failedAt = h[ERROR_HEADERS.failedAt] as string;
  return d;
}

/** Dead letters of one route (or all), from every readable dead-letter endpoint of its error policy. */
export async function listDeadLetters(engine: Engine, routeId?: string, limit = 1000): Promise<{ deadLetters: DeadLetter[]; unreadable: Array<{ routeId: string; endpoint: string }> }> {
  const ids = routeId === undefined ? engine.routeIds() : [routeId];
  const deadLetters: DeadLetter[] = [];
  const unreadable: Array<{ routeId: string; endpoint: string }> = [];
  for (const id of ids) {
    for (const uri of engine.describeRoute(id).deadLetters) {
      const store = storeFor(engine, uri);
      if (!store) {
        unreadable.push({ routeId: id, endpoint: uri });
        continue;
      }
      // an endpoint shared by several routes holds their dead letters together: keep each route's own
      try {
        for (const s of await store.list()) {
          const owner = s.msg.headers[ERROR_HEADERS.handledBy] ?? s.msg.headers[ERROR_HEADERS.routeId];
          if (owner !== undefined && owner !== id) continue;
          if (deadLetters.length < limit) deadLetters.push(toDeadLetter(id, uri, s));
        }
      } finally {
        await store.close?.();
      }
    }
  }
  return { deadLetters, unreadable };
}

export interface ReplayResult {
  total: number;
  /** Went through the route (or to `to`) without failing. */
  replayed: number;
  /** Failed again and were dead-lettered again (a new dead letter with the new reason). */
  deadLetteredAgain: number;
  /** Failed without being dead-lettered: the original stays where it was. */
  failed: number;
  /** Held by another replay running at the same time (a db row claimed by it): left to that one. */
  skipped: number;
  remaining: number;
  errors: Array<{ id: string; code: string; message: string }>;
}

/** A message as it was before it failed: the error headers off, the replay counted. */
function forReplay(msg: Message): Message {
  const headers: Record<string, HeaderValue> = {};
  for (const [k, v] of Object.entries(msg.headers)) if (!k.startsWith('busbar.error.') && k !== ATTEMPT_HEADER) headers[k] = v;
  headers[REPLAYED_HEADER] = Number(msg.headers[REPLAYED_HEADER] ?? 0) + 1;
  return { ...msg, headers };
}

/**
 * Replay a route's dead letters (all, or those with `ids`) into the route, or to endpoint `to`.
 * Each original is set aside first and dropped only once its replay settled (done, or
 * dead-lettered again); a replay that fails otherwise puts it back. Never lost, counted.
 */
export async function replayDeadLetters(
  engine: Engine,
  opts: { route: string; ids?: readonly string[]; to?: string; endpoint?: string },
  progress: (done: number, total: number) => void = () => undefined,
): Promise<ReplayResult> {
  const d = engine.describeRoute(opts.route);
  const endpoints = opts.endpoint ? [opts.endpoint] : d.deadLetters;
  if (opts.endpoint && !d.deadLetters.includes(opts.endpoint)) {
    throw new BusbarError('MANAGEMENT_REQUEST', `"${opts.endpoint}" is not a dead-letter endpoint of route "${opts.route}" (its dead letters: ${d.deadLetters.join(', ') || 'none'})`, { details: { routeId: opts.route, endpoint: opts.endpoint } });
  }
  const work: Array<{ store: DeadLetterStore; s: Stored }> = [];
  const stores: DeadLetterStore[] = [];
  try {
    return await replayFrom(engine, opts, endpoints, work, stores, progress);
  } finally {
    for (const st of stores) await st.close?.();
  }
}

async function replayFrom(
  engine: Engine,
  opts: { route: string; ids?: readonly string[]; to?: string; endpoint?: string },
  endpoints: readonly string[],
  work: Array<{ store: DeadLetterStore; s: Stored }>,
  stores: DeadLetterStore[],
  progress: (done: number, total: number) => void,
): Promise<ReplayResult> {
  for (const uri of endpoints) {
    const store = storeFor(engine, uri);
    if (!store) throw new BusbarError('MANAGEMENT_REQUEST', `dead letters of "${uri}" cannot be read by busbar (readable: mock:, file:, amqp:queue:, db: with outbox=<table>)`, { details: { routeId: opts.route, endpoint: uri } });
    stores.push(store);
    for (const s of await store.list()) {
      const owner = s.msg.headers[ERROR_HEADERS.handledBy] ?? s.msg.headers[ERROR_HEADERS.routeId];
      if (owner !== undefined && owner !== opts.route) continue;
      if (opts.ids && !opts.ids.includes(s.id) && !opts.ids.includes(s.msg.id)) continue;
      work.push({ store, s });
    }
  }
  const r: ReplayResult = { total: work.length, replayed: 0, deadLetteredAgain: 0, failed: 0, skipped: 0, remaining: 0, errors: [] };
  let done = 0;
  progress(0, work.length);
  for (const { store, s } of work) {
    if ((await store.hold(s)) === false) {
      r.skipped++;
      progress(++done, work.length);
      continue;
    }
    const msg = forReplay(s.msg);
    try {
      if (opts.to) await engine.sendMessage(opts.to, msg);
      else await engine.inject(opts.route, msg);
      await store.drop(s);
      r.replayed++;
    } catch (e) {
      if (shouldAck(e)) {
        await store.drop(s);
        r.deadLetteredAgain++;
      } else {
        await store.restore(s);
        r.failed++;
      }
      const err = e as BusbarError;
      r.errors.push({ id: s.id, code: err.code ?? 'BUSBAR_ERR_STEP_FAILED', message: err.message });
    }
    progress(++done, work.length);
  }
  r.remaining = r.failed + r.deadLetteredAgain + r.skipped;
  return r;
}
