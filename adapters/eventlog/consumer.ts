import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { shouldAck, type Consumer, type ConsumerContext, type Processor } from '../../lib/adapter.js';
import { BusbarError } from '../../lib/errors.js';
import { createMessage, type HeaderValue, type Message } from '../../lib/message.js';
import { isPromise, type MaybePromise } from '../../lib/step.js';
import { GroupCoordinator, type Membership } from './group.js';
import type { LogBackend, PartitionSource } from './backend.js';
import { EVENTLOG_HEADERS as H, type EventlogOptions } from './options.js';
import type { LogRecord } from './record.js';
import { decodeValue } from './codec.js';

export interface ConsumerSettings {
  topic: string;
  /** Where the group files live (the topic's directory; for RabbitMQ, `<dir>/<topic>` too). */
  topicDir: string;
  partitions: number;
  backend: LogBackend;
  o: EventlogOptions;
}

/** Finished offsets of one partition, in delivery order: `done` is the next offset after all finished ones. */
class Progress {
  #offsets: number[] = [];
  #head = 0;
  readonly #finished = new Set<number>();
  done: number;

  constructor(next: number) {
    this.done = next;
  }

  delivered(offset: number): void {
    this.#offsets.push(offset);
  }

  finished(offset: number): void {
    this.#finished.add(offset);
    const o = this.#offsets;
    let h = this.#head;
    while (h < o.length && this.#finished.has(o[h]!)) {
      this.#finished.delete(o[h]!);
      this.done = o[h]! + 1;
      h++;
    }
    if (h > 1024 && h * 2 > o.length) {
      this.#offsets = o.slice(h);
      h = 0;
    }
    this.#head = h;
  }
}

interface Work {
  p: number;
  epoch: number;
  stopped: boolean;
  /** To be handed over to another member: no more records are read; then `release`. */
  handingOver: boolean;
  reader: PartitionSource | undefined;
  progress: Progress;
  committed: number;
  inflight: number;
  failedAt: number | undefined;
  failures: number;
  wake: (() => void) | undefined;
  idle: Array<() => void>;
  /** effectively-once: the committed offset in the sink's table the next record must find. */
  expected: number;
  verified: boolean;
}

const sleep = (ms: number, w?: Work): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      if (w) w.wake = undefined;
      resolve();
    }
    if (w) w.wake = done;
  });

/**
 * Reads a topic of the embedded log. With a group, partitions are shared with the group's
 * other members (any route or process) through the group file, each owned by one member and
 * fenced by its epoch; without, every partition is read from `start`. Records of a partition
 * are handed to the route in order (up to the route's in-flight bound; one at a time for
 * effectively-once); what is committed and when depends on `delivery`.
 */
export class EventlogConsumer implements Consumer {
  readonly #s: ConsumerSettings;
  readonly #ctx: ConsumerContext;
  /** The route's entry points, read per record (see ConsumerContext.processor). */
  readonly #route: Processor;
  readonly #o: EventlogOptions;
  readonly #work = new Map<number, Work>();
  readonly #memberId = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  #coordinator: GroupCoordinator | undefined;
  #timers: NodeJS.Timeout[] = [];
  #stopping = true;
  #generation = 0;
  #unwake: (() => void) | undefined;
  #fenced = 0;
  #soloEpoch = Date.now();

  constructor(s: ConsumerSettings, ctx: ConsumerContext) {
    this.#s = s;
    this.#ctx = ctx;
    this.#route = ctx.processor;
    this.#o = s.o;
    if (this.#o.delivery === 'effectively-once' && !this.#o.offsetsIn) {
      throw new BusbarError('INVALID_OPTION', `route "${ctx.routeId}": delivery=effectively-once needs offsetsIn=<db endpoint> (the database the route writes to, whose db destination has eventlogOffsets=${this.#o.offsetsTable})`, { details: { option: 'offsetsIn', routeId: ctx.routeId } });
    }
  }

  get #group(): string {
    return this.#o.group ?? `route-${this.#ctx.routeId}`;
  }

  async start(): Promise<void> {
    this.#stopping = false;
    this.#ctx.setStatus('connecting');
    this.#unwake = this.#s.backend.onAppend((p) => this.#work.get(p)?.wake?.());
    if (this.#o.delivery === 'effectively-once') await this.#ensureOffsetsTable();
    if (this.#o.group) {
      this.#coordinator = new GroupCoordinator(this.#s.topicDir, this.#o.group, this.#s.partitions, { sessionTimeoutMs: this.#o.sessionTimeoutMs, memberId: this.#memberId });
      this.#apply(await this.#firstHeartbeat(this.#coordinator));
      this.#every(this.#o.heartbeatMs, () => this.#heartbeat());
      if (this.#o.delivery === 'at-least-once') this.#every(this.#o.commitIntervalMs, () => this.#commit());
    } else {
      for (let p = 0; p < this.#s.partitions; p++) this.#startPartition(p, this.#soloEpoch, undefined);
    }
    this.#ctx.setStatus('connected');
  }

  /** Joining waits out a group lock held for a while by another member (each attempt waits up to 1 s). */
  async #firstHeartbeat(c: GroupCoordinator): Promise<Membership> {
    for (let attempt = 1; ; attempt++) {
      try {
        return c.heartbeat();
      } catch (err) {
        if (attempt >= 10 || !(err instanceof BusbarError) || err.code !== 'BUSBAR_ERR_EVENTLOG_IO') throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  #every(ms: number, fn: () => void): void {
    const t = setInterval(() => {
      try {
        fn();
      } catch (err) {
        this.#ctx.logger.warn({ err, topic: this.#s.topic }, 'event log consumer: group operation failed; retrying');
        this.#ctx.setStatus('backing-off', err);
      }
    }, ms);
    t.unref();
    this.#timers.push(t);
  }

  #heartbeat(): void {
    if (this.#stopping || !this.#coordinator) return;
    this.#apply(this.#coordinator.heartbeat());
    this.#ctx.setStatus('connected');
  }

  /** Stop what we no longer own (or own in a newer epoch), hand over what is to go to another, start what we newly own. */
  #apply(m: Membership): void {
    this.#generation = m.generation;
    for (const [p, w] of [...this.#work]) {
      if (m.owned.get(p) !== w.epoch) this.#stopPartition(w, 'revoked');
      else if (!w.handingOver) {
        if (m.handoff.has(p)) void this.#handOver(w);
      } else if (w.inflight === 0) this.#release(w); // a release that failed, again
    }
    for (const [p, epoch] of m.owned) {
      if (this.#work.has(p)) continue;
      // to go to another and not being read here (it failed): nothing of ours to commit
      const r = m.handoff.has(p) ? this.#coordinator!.release(p, epoch, undefined) : undefined;
      if (r === undefined || r.outcome === 'kept') this.#startPartition(p, epoch, r ? r.offset : m.offsets[p]);
    }
  }

  /**
   * Another member is to have this partition: read no further, let what is in the route finish
   * (up to the session timeout), commit it and hand the partition over.
   */
  async #handOver(w: Work): Promise<void> {
    w.handingOver = true;
    w.wake?.();
    if (w.inflight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => w.idle.push(r)), new Promise<void>((r) => (timer = setTimeout(r, this.#o.sessionTimeoutMs)))]);
      clearTimeout(timer);
    }
    this.#release(w);
  }

  #release(w: Work): void {
    if (w.stopped || this.#stopping || !this.#coordinator) return;
    // at-least-once: what it finished goes with it (the others commit elsewhere, or committed ahead)
    const next = this.#o.delivery === 'at-least-once' && w.reader ? w.progress.done : undefined;
    let r: ReturnType<GroupCoordinator['release']>;
    try {
      r = this.#coordinator.release(w.p, w.epoch, next);
    } catch (err) {
      this.#ctx.logger.warn({ err, topic: this.#s.topic, partition: w.p }, 'event log consumer: handing a partition over failed; retrying at the next heartbeat');
      return;
    }
    if (r.outcome === 'fenced') {
      this.#fenced++;
      this.#ctx.logger.warn({ topic: this.#s.topic, partition: w.p, epoch: w.epoch }, 'event log: hand-over refused (partition owned by another member now); letting it go');
      this.#stopPartition(w, 'fenced');
      return;
    }
    if (next !== undefined) w.committed = next;
    this.#stopPartition(w, r.outcome === 'moved' ? 'handed over' : 'kept');
    // no longer to be handed over: read on from what was committed
    if (r.outcome === 'kept' && !this.#work.has(w.p)) this.#startPartition(w.p, w.epoch, r.offset);
  }

  /** Whether this partition is still read here: not stopped, not being handed over, the consumer not stopping. */
  #reading(w: Work): boolean {
    return !w.stopped && !this.#stopping && !w.handingOver;
  }

  #stopPartition(w: Work, why: string): void {
    if (w.stopped) return;
    w.stopped = true;
    w.wake?.();
    if (this.#work.get(w.p) === w) this.#work.delete(w.p);
    this.#ctx.logger.debug({ topic: this.#s.topic, partition: w.p, epoch: w.epoch, why }, 'event log partition released');
  }

  #startPartition(p: number, epoch: number, committed: number | undefined): void {
    const w: Work = { p, epoch, stopped: false, handingOver: false, reader: undefined, progress: new Progress(0), committed: 0, inflight: 0, failedAt: undefined, failures: 0, wake: undefined, idle: [], expected: 0, verified: false };
    this.#work.set(p, w);
    void this.#run(w, committed);
  }

  #resolveStart(p: number): Promise<number> {
    return this.#s.backend.resolveStart(p, this.#o.start);
  }

  async #run(w: Work, committed: number | undefined): Promise<void> {
    try {
      let next: number | undefined;
      if (this.#o.delivery === 'effectively-once') next = await this.#claim(w);
      else next = committed ?? (await this.#resolveStart(w.p));
      if (next === undefined || w.stopped) return;
      w.reader = this.#s.backend.reader(w.p, next);
      w.progress = new Progress(next);
      w.committed = next;
      w.expected = next;
      const serial = this.#o.delivery === 'effectively-once';
      while (this.#reading(w)) {
        if (w.failedAt !== undefined) {
          await this.#recover(w);
          continue;
        }
        if (serial && w.inflight > 0) {
          await new Promise<void>((r) => w.idle.push(r));
          continue;
        }
        await this.#ctx.whenAvailable();
        if (!this.#reading(w)) break;
        const room = serial ? 1 : Math.max(1, Math.min(this.#o.batchSize, this.#ctx.available()));
        const records = await w.reader.read(room);
        if (w.reader.skipped) {
          this.#ctx.logger.warn({ topic: this.#s.topic, partition: w.p, from: w.reader.skipped[0], to: w.reader.skipped[1] }, 'event log: records removed by retention before this group read them were skipped');
          w.reader.skipped = undefined;
        }
        // released or handed over meanwhile: these are the next owner's to read
        if (!this.#reading(w)) break;
        if (records.length === 0) {
          await sleep(this.#o.pollMs, w);
          continue;
        }
        if (this.#o.delivery === 'at-most-once' && !this.#commitAhead(w, records[records.length - 1]!.offset + 1)) break;
        for (const r of records) this.#dispatch(w, r);
      }
    } catch (err) {
      this.#ctx.logger.error({ err, topic: this.#s.topic, partition: w.p }, 'event log partition reader failed; reading it again shortly');
      this.#ctx.setStatus('backing-off', err);
      this.#stopPartition(w, 'error');
      if (!this.#stopping) {
        await sleep(this.#o.errorDelay);
        // a group member gets it back on its next heartbeat; alone, start it again here
        if (!this.#coordinator && !this.#stopping && !this.#work.has(w.p)) this.#startPartition(w.p, w.epoch, w.progress.done);
      }
    } finally {
      w.reader?.close();
    }
  }

  /** at-most-once: the offset after the records read is committed before any of them runs. */
  #commitAhead(w: Work, next: number): boolean {
    if (this.#coordinator) {
      const fenced = this.#coordinator.commit([[w.p, w.epoch, next]]);
      if (fenced.length) {
        this.#fenced++;
        this.#ctx.logger.warn({ topic: this.#s.topic, partition: w.p, epoch: w.epoch }, 'event log: commit refused (partition owned by another member now); not processing');
        this.#stopPartition(w, 'fenced');
        return false;
      }
    }
    w.committed = next;
    return true;
  }

  #message(w: Work, r: LogRecord): Message {
    const stored = r.headers;
    const headers: Record<string, HeaderValue> = {};
    // (a busbar.trace.* record header is not the engine's: the context comes from `traceparent`)
    for (const k in stored) if (k !== 'busbar.id' && k !== 'busbar.correlationId' && !k.startsWith('busbar.trace.')) headers[k] = stored[k] as HeaderValue;
    headers[H.topic] = this.#s.topic;
    headers[H.partition] = w.p;
    headers[H.offset] = r.offset;
    headers[H.timestamp] = r.timestamp;
    if (r.key) headers[H.key] = r.key.toString('utf8');
    if (this.#o.group || this.#o.delivery === 'effectively-once') {
      headers[H.group] = this.#group;
      headers[H.epoch] = w.epoch;
    }
    if (this.#o.delivery === 'effectively-once') headers[H.expected] = w.expected;
    const id = typeof stored['busbar.id'] === 'string' ? stored['busbar.id'] : `${this.#s.topic}-${w.p}-${r.offset}`;
    return createMessage(decodeValue(r.value, r.kind, this.#o.bodyType), {
      id,
      correlationId: typeof stored['busbar.correlationId'] === 'string' ? stored['busbar.correlationId'] : id,
      headers,
      timestamp: r.timestamp,
    });
  }

  #dispatch(w: Work, r: LogRecord): void {
    w.inflight++;
    w.progress.delivered(r.offset);
    let msg: Message;
    try {
      msg = this.#message(w, r);
    } catch (err) {
      // an undecodable record goes through the error policy as a rejection
      const reason = new BusbarError('PARSE', `event log ${this.#s.topic}/${w.p} offset ${r.offset}: ${(err as Error).message}`, { cause: err, details: { topic: this.#s.topic, partition: w.p, offset: r.offset } });
      const raw = createMessage(r.value, { headers: { [H.topic]: this.#s.topic, [H.partition]: w.p, [H.offset]: r.offset } });
      this.#ctx.reject(raw, reason).then(
        () => this.#settled(w, r, true),
        () => this.#settled(w, r, false, reason),
      );
      return;
    }
    let p: MaybePromise<Message>;
    try {
      p = this.#route.processNow(msg);
    } catch (err) {
      p = Promise.reject(err);
    }
    // a route that finished at once settles the record at once: no promise, handlers or microtask per record
    if (isPromise(p)) this.#whenProcessed(p, w, r);
    else this.#settled(w, r, true, undefined, true);
  }

  // apart from #dispatch: a function that makes closures gives every call a context for them
  #whenProcessed(p: Promise<Message>, w: Work, r: LogRecord): void {
    p.then(
      () => this.#settled(w, r, true, undefined, true),
      (err: unknown) => this.#settled(w, r, shouldAck(err), err),
    );
  }

  #settled(w: Work, r: LogRecord, ok: boolean, err?: unknown, processed = false): void {
    const finish = (): void => {
      w.inflight--;
      if (w.inflight === 0) for (const i of w.idle.splice(0)) i();
    };
    if (!ok) {
      this.#ctx.logger.warn({ topic: this.#s.topic, partition: w.p, offset: r.offset, code: (err as BusbarError)?.code, err: (err as Error)?.message }, 'event log record failed; the partition is read again from it');
      if (w.failedAt === undefined || r.offset < w.failedAt) w.failedAt = r.offset;
      finish();
      return;
    }
    if (this.#o.delivery === 'effectively-once') {
      if (processed) {
        w.expected = r.offset + 1;
        w.progress.finished(r.offset);
        w.failures = 0;
        if (!w.verified) {
          void this.#verifyOffsetCommitted(w, r.offset + 1).finally(finish);
          return;
        }
        finish();
        return;
      }
      // dead-lettered or handled without reaching the sink: its offset is committed on its own
      void this.#commitDb(w, r.offset + 1).then(
        (okay) => {
          if (okay) {
            w.expected = r.offset + 1;
            w.progress.finished(r.offset);
          } else if (w.failedAt === undefined) w.failedAt = r.offset;
        },
        () => {
          if (w.failedAt === undefined) w.failedAt = r.offset;
        },
      ).finally(finish);
      return;
    }
    w.failures = 0;
    w.progress.finished(r.offset);
    finish();
  }

  /** After a failure: let the partition's in-flight records finish, wait, then read again from the failed one. */
  async #recover(w: Work): Promise<void> {
    if (w.inflight > 0) await new Promise<void>((r) => w.idle.push(r));
    if (w.stopped) return;
    w.failures++;
    await sleep(Math.min(30_000, this.#o.errorDelay * 2 ** Math.min(w.failures - 1, 10)), w);
    if (w.stopped) return;
    let at = w.failedAt!;
    w.failedAt = undefined;
    if (this.#o.delivery === 'effectively-once') {
      // the sink's table says where we are (and whether we still own the partition)
      const next = await this.#claim(w);
      if (next === undefined) {
        this.#stopPartition(w, 'fenced');
        return;
      }
      at = next;
      w.expected = next;
    }
    w.reader!.seek(at);
    w.progress = new Progress(at);
  }

  /** at-least-once: commit what every owned partition finished (fenced partitions are let go). */
  #commit(): void {
    if (!this.#coordinator) return;
    const entries: Array<[number, number, number]> = [];
    for (const w of this.#work.values()) if (!w.stopped && w.progress.done !== w.committed) entries.push([w.p, w.epoch, w.progress.done]);
    if (entries.length === 0) return;
    const fenced = new Set(this.#coordinator.commit(entries));
    for (const [p, , next] of entries) {
      const w = this.#work.get(p)!;
      if (fenced.has(p)) {
        this.#fenced++;
        this.#ctx.logger.warn({ topic: this.#s.topic, partition: p, epoch: w.epoch }, 'event log: commit refused (partition owned by another member now); letting it go');
        this.#stopPartition(w, 'fenced');
      } else w.committed = next;
    }
  }

  // ------------------------------------------------------------ effectively-once (offsets in the sink's database)
  #dbUri(kind: 'statement' | 'query', sql: string, extra = ''): string {
    return `${this.#o.offsetsIn}${this.#o.offsetsIn!.includes('?') ? '&' : '?'}${kind}=${encodeURIComponent(sql)}${extra}`;
  }

  async #ensureOffsetsTable(): Promise<void> {
    const t = this.#o.offsetsTable;
    try {
      await this.#ctx.send(this.#dbUri('statement', `CREATE TABLE IF NOT EXISTS ${t} (grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset BIGINT NOT NULL, gen BIGINT NOT NULL, PRIMARY KEY (grp, topic, part))`), createMessage(null));
    } catch (err) {
      // PostgreSQL: consumers starting together race on CREATE TABLE IF NOT EXISTS (a unique
      // violation on the catalog, 23505, or 42P07); the loser only needs the table to be there
      try {
        await this.#ctx.send(this.#dbUri('query', `SELECT next_offset FROM ${t} WHERE 1 = 0`), createMessage(null));
      } catch {
        throw err;
      }
    }
  }

  #key(w: Work): Record<string, unknown> {
    return { grp: this.#group, topic: this.#s.topic, part: w.p };
  }

  /**
   * Take the partition in the sink's table: raise its epoch to ours (fencing any older owner's
   * transactions) and read where it stands. Undefined when a newer owner holds it.
   */
  async #claim(w: Work): Promise<number | undefined> {
    const t = this.#o.offsetsTable;
    const body = { ...this.#key(w), start: await this.#resolveStart(w.p), gen: w.epoch };
    await this.#ctx.send(
      this.#dbUri('statement', `INSERT INTO ${t} (grp, topic, part, next_offset, gen) VALUES (:body.grp, :body.topic, :body.part, :body.start, :body.gen) ON CONFLICT (grp, topic, part) DO UPDATE SET gen = excluded.gen WHERE ${t}.gen < excluded.gen`),
      createMessage(body),
    );
    const row = await this.#offsetRow(w);
    if (!row || Number(row.gen) !== w.epoch) {
      this.#ctx.logger.warn({ topic: this.#s.topic, partition: w.p, epoch: w.epoch, held: row?.gen }, 'event log: partition held by a newer owner in the offsets table');
      return undefined;
    }
    return Number(row.next_offset);
  }

  async #offsetRow(w: Work): Promise<{ next_offset: unknown; gen: unknown } | undefined> {
    const t = this.#o.offsetsTable;
    const reply = await this.#ctx.send(this.#dbUri('query', `SELECT next_offset, gen FROM ${t} WHERE grp = :body.grp AND topic = :body.topic AND part = :body.part`, '&outputType=first'), createMessage(this.#key(w)));
    return (reply?.body ?? undefined) as { next_offset: unknown; gen: unknown } | undefined;
  }

  async #commitDb(w: Work, next: number): Promise<boolean> {
    const t = this.#o.offsetsTable;
    const reply = await this.#ctx.send(
      this.#dbUri('statement', `UPDATE ${t} SET next_offset = :body.next WHERE grp = :body.grp AND topic = :body.topic AND part = :body.part AND gen = :body.gen AND next_offset = :body.expected`),
      createMessage({ ...this.#key(w), next, gen: w.epoch, expected: w.expected }),
    );
    return Number(reply?.headers['busbar.db.rowCount']) === 1;
  }

  /** Once per claim: the route's db destination must have committed the offset, or effectively-once is not in effect. */
  async #verifyOffsetCommitted(w: Work, next: number): Promise<void> {
    try {
      const row = await this.#offsetRow(w);
      if (row && Number(row.next_offset) >= next) {
        w.verified = true;
        return;
      }
      const err = new BusbarError('EVENTLOG_CONFIG', `route "${this.#ctx.routeId}": delivery=effectively-once but the route's db destination did not commit offset ${next} of ${this.#s.topic}/${w.p} in ${this.#o.offsetsTable}; give it eventlogOffsets=${this.#o.offsetsTable}`, { details: { routeId: this.#ctx.routeId, topic: this.#s.topic, partition: w.p } });
      this.#ctx.logger.error({ err }, err.message);
      this.#ctx.setStatus('backing-off', err);
      this.#stopPartition(w, 'misconfigured');
    } catch (err) {
      this.#ctx.logger.warn({ err }, 'event log: could not read the offsets table');
    }
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    this.#unwake?.();
    const works = [...this.#work.values()];
    for (const w of works) w.wake?.();
    // what is in the route still finishes, then its offsets are committed
    const deadline = Date.now() + 30_000;
    while (works.some((w) => w.inflight > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    try {
      if (this.#o.delivery === 'at-least-once') this.#commit();
      this.#coordinator?.leave();
    } catch (err) {
      this.#ctx.logger.warn({ err }, 'event log consumer: final commit or leave failed');
    }
    for (const w of works) this.#stopPartition(w, 'stop');
    await this.#s.backend.close();
    this.#ctx.setStatus('idle');
  }

  /** Records behind the log's end over the partitions this consumer owns (the `busbar_endpoint_lag_messages` metric). */
  backlog(): Promise<number | undefined> {
    return Promise.resolve(this.stats().lag as number);
  }

  /** For `engine.stats()`: the group, and per owned partition the position, committed offset, log end and lag. */
  stats(): Record<string, unknown> {
    const partitions: Record<string, { position: number; committed: number; end: number; lag: number; epoch: number }> = {};
    for (const w of this.#work.values()) {
      const end = this.#s.backend.end(w.p);
      const committed = this.#o.delivery === 'effectively-once' ? w.expected : this.#o.delivery === 'at-most-once' ? w.committed : this.#coordinator ? w.committed : w.progress.done;
      partitions[w.p] = { position: w.reader?.position ?? committed, committed, end, lag: Math.max(0, end - committed), epoch: w.epoch };
    }
    const lag = Object.values(partitions).reduce((n, p) => n + p.lag, 0);
    return { topic: this.#s.topic, group: this.#o.group, member: this.#memberId, generation: this.#generation, delivery: this.#o.delivery, fencedCommits: this.#fenced, lag, partitions };
  }
}
