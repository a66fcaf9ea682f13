import { appendFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { expect } from 'chai';
import { BusbarError, Engine, from, type Message } from '../../../lib/index.js';
import { FakeClock } from '../../../lib/testing.js';
import { createFileAdapter, FILE_HEADERS } from '../../../adapters/file/index.js';
import { testLogger, waitFor } from '../../helpers.js';
import { exists, files, fileWorld, put, read } from './setup.js';

/** A pid that is not running (checked), for claims of a "crashed" process. */
function deadPid(): number {
  for (let pid = 4_000_000; pid > 3_000_000; pid -= 7919) {
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return pid;
    }
  }
  throw new Error('no free pid found');
}

async function streamText(s: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

describe('file: consumer', () => {
  let w: ReturnType<typeof fileWorld>;
  beforeEach(() => {
    w = fileWorld();
  });
  afterEach(async () => {
    await w.cleanup();
  });

  it('reads a file as a Buffer with its headers, then moves it to .done/', async () => {
    put(w.dir, 'inbox/a.json', '{"n":1}');
    w.engine.addRoutes(from('file:inbox?readLock=rename&delay=20').to('mock:out'));
    await w.engine.start();
    const mock = w.engine.mock('mock:out').expectCount(1);
    await mock.satisfied();
    const m = mock.received[0]!;
    expect(Buffer.isBuffer(m.body)).to.equal(true);
    expect((m.body as Buffer).toString()).to.equal('{"n":1}');
    expect(m.headers[FILE_HEADERS.name]).to.equal('a.json');
    expect(m.headers[FILE_HEADERS.relativePath]).to.equal('a.json');
    expect(m.headers[FILE_HEADERS.size]).to.equal(7);
    expect(m.headers[FILE_HEADERS.mtime]).to.be.a('number');
    await waitFor(() => exists(w.dir, 'inbox/.done/a.json'), 3000, 'file moved to .done');
    expect(files(join(w.dir, 'inbox'))).to.deep.equal(['.done/a.json']);
  });

  it('decodes string bodies with the charset and streams big ones', async () => {
    put(w.dir, 'latin/a.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9])); // "café" in latin1
    put(w.dir, 'cp/b.txt', Buffer.from([0xb1, 0x20, 0x35])); // "ą 5" in iso-8859-2
    put(w.dir, 'big/c.txt', 'line\n'.repeat(1000));
    w.engine.addRoutes([
      from('file:latin?readLock=rename&delay=20&bodyType=string&charset=latin1').to('mock:latin'),
      from('file:cp?readLock=rename&delay=20&bodyType=string&charset=iso-8859-2').to('mock:cp'),
      from<Readable>('file:big?readLock=rename&delay=20&bodyType=stream').transform((s) => streamText(s)).to('mock:big'),
    ]);
    await w.engine.start();
    await w.engine.mock('mock:latin').expectBodies(['café']).satisfied();
    await w.engine.mock('mock:cp').expectBodies(['ą 5']).satisfied();
    await w.engine.mock('mock:big').expectBodies(['line\n'.repeat(1000)]).satisfied();
  });

  it('deletes, or moves to a templated name, after success', async () => {
    put(w.dir, 'del/a.txt', 'x');
    put(w.dir, 'mv/b.txt', 'y');
    w.engine.addRoutes([
      from('file:del?readLock=rename&delay=20&delete=true').to('mock:del'),
      from('file:mv?readLock=rename&delay=20&move=../archive/{date}/{base}-{header.busbar.file.size}.{ext}.bak').to('mock:mv'),
    ]);
    await w.engine.start();
    await w.engine.mock('mock:del').expectCount(1).satisfied();
    await w.engine.mock('mock:mv').expectCount(1).satisfied();
    const date = new Date().toISOString().slice(0, 10);
    await waitFor(() => exists(w.dir, `archive/${date}/b-1.txt.bak`), 3000, 'templated move');
    await waitFor(() => files(join(w.dir, 'del')).length === 0, 3000, 'delete');
    expect(files(join(w.dir, 'mv'))).to.deep.equal([]);
  });

  it('filters by glob, skips hidden files, recurses to maxDepth', async () => {
    for (const f of ['a.csv', 'b.txt', '.hidden.csv', 'sub/c.csv', 'sub/deep/d.csv', '.secret/e.csv']) put(w.dir, `in/${f}`, f);
    w.engine.addRoutes(from('file:in?readLock=rename&delay=20&recursive=true&maxDepth=1&include=**/*.csv&exclude=**/nothing*').to('mock:out'));
    await w.engine.start();
    const mock = w.engine.mock('mock:out').expectCount(2);
    await mock.satisfied();
    expect(mock.received.map((m) => m.headers[FILE_HEADERS.relativePath]).sort()).to.deep.equal(['a.csv', 'sub/c.csv']);
    await waitFor(() => exists(w.dir, 'in/.done/sub/c.csv'), 3000, 'sub-directory kept under .done');
    expect(exists(w.dir, 'in/b.txt') && exists(w.dir, 'in/.hidden.csv') && exists(w.dir, 'in/sub/deep/d.csv') && exists(w.dir, 'in/.secret/e.csv')).to.equal(true);
  });

  it('hands files over in sortBy order', async () => {
    for (const n of ['b', 'd', 'a', 'c', 'e']) put(w.dir, `in/${n}.txt`, n);
    w.engine.addRoutes(from('file:in?readLock=rename&delay=20&sortBy=name&sortOrder=desc&bodyType=string').maxInflight(1).to('mock:out'));
    await w.engine.start();
    await w.engine.mock('mock:out').expectBodies(['e', 'd', 'c', 'b', 'a']).satisfied();
  });

  it('moves a failed file to .error/ with a reason file', async () => {
    put(w.dir, 'in/bad.json', '{nope');
    w.engine.addRoutes(from('file:in?readLock=rename&delay=20').unmarshal('json').to('mock:out'));
    await w.engine.start();
    await waitFor(() => exists(w.dir, 'in/.error/bad.json.error.json'), 3000, 'reason file');
    expect(read(w.dir, 'in/.error/bad.json')).to.equal('{nope');
    const reason = JSON.parse(read(w.dir, 'in/.error/bad.json.error.json')) as Record<string, unknown>;
    expect(reason.code).to.equal('BUSBAR_ERR_PARSE');
    expect(reason.deadLettered).to.equal(false);
    expect(reason.file).to.equal('bad.json');
    expect(w.engine.mock('mock:out').received).to.have.length(0);
    expect(files(join(w.dir, 'in'))).to.deep.equal(['.error/bad.json', '.error/bad.json.error.json']);
  });

  it('dead-letters a failed file with the reason and still moves it to .error/', async () => {
    put(w.dir, 'in/bad.json', '{nope');
    w.engine.addRoutes(from('file:in?readLock=rename&delay=20').unmarshal('json').to('mock:out').deadLetter('mock:dlq'));
    await w.engine.start();
    const dlq = w.engine.mock('mock:dlq').expectCount(1);
    await dlq.satisfied();
    expect(dlq.received[0]!.headers['busbar.error.code']).to.equal('BUSBAR_ERR_PARSE');
    expect(dlq.received[0]!.headers[FILE_HEADERS.name]).to.equal('bad.json');
    await waitFor(() => exists(w.dir, 'in/.error/bad.json.error.json'), 3000, 'reason file');
    expect(JSON.parse(read(w.dir, 'in/.error/bad.json.error.json')).deadLettered).to.equal(true);
  });

  it('with onFailure=leave, leaves a failed file for a later poll', async () => {
    put(w.dir, 'in/a.txt', 'x');
    let calls = 0;
    w.engine.addRoutes(
      from('file:in?readLock=rename&delay=20&onFailure=leave')
        .process((m) => {
          if (++calls === 1) throw new Error('first attempt fails');
          return m;
        })
        .to('mock:out'),
    );
    await w.engine.start();
    await w.engine.mock('mock:out').expectCount(1).satisfied();
    await waitFor(() => exists(w.dir, 'in/.done/a.txt'), 3000, 'moved after the retry');
    expect(calls).to.equal(2);
    expect(exists(w.dir, 'in/.error')).to.equal(false);
  });

  it('takes a file only once its done file exists, then removes the done file', async () => {
    put(w.dir, 'in/a.csv', 'a');
    put(w.dir, 'in/b.csv', 'b');
    put(w.dir, 'in/b.csv.done', '');
    w.engine.addRoutes(from('file:in?readLock=rename&delay=20&doneFileName={name}.done&bodyType=string').to('mock:out'));
    await w.engine.start();
    const mock = w.engine.mock('mock:out').expectBodies(['b']);
    await mock.satisfied();
    await waitFor(() => !exists(w.dir, 'in/b.csv.done'), 3000, 'done file removed');
    // several polls later a.csv (no done file) is still there, untouched
    const polls = w.engine.stats();
    expect(polls.routes['route-1']?.received).to.equal(1);
    await new Promise((r) => setTimeout(r, 150));
    expect(exists(w.dir, 'in/a.csv')).to.equal(true);
    expect(mock.received).to.have.length(1);
    put(w.dir, 'in/a.csv.done', '');
    mock.expectBodies(['b', 'a']);
    await mock.satisfied();
    await waitFor(() => !exists(w.dir, 'in/a.csv.done') && exists(w.dir, 'in/.done/a.csv'), 3000, 'a done');
  });

  it('noop leaves files in place and remembers them across restarts until they change', async () => {
    put(w.dir, 'in/a.txt', 'one');
    const route = (): ReturnType<typeof from> => from('file:in?readLock=marker&delay=20&noop=true&bodyType=string').routeId('noop').to('mock:out');
    w.engine.addRoutes(route());
    await w.engine.start();
    const mock = w.engine.mock('mock:out').expectBodies(['one']);
    await mock.satisfied();
    await new Promise((r) => setTimeout(r, 150)); // several polls
    expect(mock.received).to.have.length(1);
    expect(files(join(w.dir, 'in')).filter((f) => !f.startsWith('.idempotent/'))).to.deep.equal(['a.txt']);
    await w.engine.stop();

    const again = new Engine({ logger: testLogger(), adapters: [createFileAdapter({ baseDir: w.dir })] });
    again.addRoutes(route());
    await again.start();
    try {
      put(w.dir, 'in/b.txt', 'two');
      const m2 = again.mock('mock:out').expectBodies(['two']);
      await m2.satisfied();
      await new Promise((r) => setTimeout(r, 100));
      expect(m2.received).to.have.length(1); // a.txt was remembered
      writeFileSync(join(w.dir, 'in/a.txt'), 'one, changed');
      m2.expectBodies(['two', 'one, changed']);
      await m2.satisfied();
    } finally {
      await again.stop();
    }
  });

  it('readLock=changed does not read a file a slow writer is still writing', async () => {
    const path = put(w.dir, 'in/slow.txt', '');
    w.engine.addRoutes(from('file:in?delay=30&readLockCheckInterval=300&bodyType=string').to('mock:out'));
    await w.engine.start();
    let expected = '';
    for (let i = 0; i < 40; i++) {
      const chunk = `chunk ${i};`;
      appendFileSync(path, chunk);
      expected += chunk;
      await new Promise((r) => setTimeout(r, 15));
    }
    const mock = w.engine.mock('mock:out').expectBodies([expected]);
    await mock.satisfied();
    await new Promise((r) => setTimeout(r, 100));
    expect(mock.received).to.have.length(1);
  });

  it('readLock=marker claims with a .lock file and cleans stale markers of dead processes at start', async () => {
    put(w.dir, 'in/a.txt', 'a');
    put(w.dir, 'in/a.txt.lock', JSON.stringify({ host: hostname().replace(/[^\w.-]/g, '_'), pid: deadPid(), token: 'dead', at: Date.now() }));
    put(w.dir, 'in/b.txt', 'b');
    // a live owner (this very process, another consumer)
    put(w.dir, 'in/b.txt.lock', JSON.stringify({ host: hostname().replace(/[^\w.-]/g, '_'), pid: process.pid, token: 'live', at: Date.now() }));
    w.engine.addRoutes(from('file:in?readLock=marker&delay=20&bodyType=string').to('mock:out'));
    await w.engine.start();
    const mock = w.engine.mock('mock:out').expectBodies(['a']);
    await mock.satisfied();
    await waitFor(() => exists(w.dir, 'in/.done/a.txt') && !exists(w.dir, 'in/a.txt.lock'), 3000, 'a done, marker gone');
    await new Promise((r) => setTimeout(r, 100));
    expect(mock.received).to.have.length(1);
    expect(exists(w.dir, 'in/b.txt')).to.equal(true);
    unlinkSync(join(w.dir, 'in/b.txt.lock')); // its owner lets go
    mock.expectBodies(['a', 'b']);
    await mock.satisfied();
  });

  it('recovers files a crashed process left claimed', async () => {
    const host = hostname().replace(/[^\w.-]/g, '_');
    put(w.dir, `in/.x.json~${host}~${deadPid()}~abc123.claim`, 'crashed');
    put(w.dir, `in/sub/.z.json~${host}~${deadPid()}~abc124.claim`, 'crashed in a sub-directory');
    put(w.dir, `in/.y.json~${host}~${process.pid}~def456.claim`, 'held by a live consumer');
    w.engine.addRoutes(from('file:in?readLock=rename&delay=20&bodyType=string&recursive=true').to('mock:out'));
    await w.engine.start();
    const mock = w.engine.mock('mock:out').expectCount(2);
    await mock.satisfied();
    expect(mock.bodies.sort()).to.deep.equal(['crashed', 'crashed in a sub-directory']);
    await waitFor(() => exists(w.dir, 'in/.done/x.json') && exists(w.dir, 'in/.done/sub/z.json'), 3000, 'recovered files done');
    expect(exists(w.dir, `in/.y.json~${host}~${process.pid}~def456.claim`)).to.equal(true);
  });

  it('keeps claims bounded by the route\'s in-flight limit (backpressure)', async () => {
    for (let i = 0; i < 60; i++) put(w.dir, `in/f${i}.txt`, String(i));
    let inflight = 0;
    let maxSeen = 0;
    let maxClaimed = 0;
    w.engine.addRoutes(
      from('file:in?readLock=rename&delay=20')
        .maxInflight(3)
        .process(async (m) => {
          inflight++;
          maxSeen = Math.max(maxSeen, inflight);
          maxClaimed = Math.max(maxClaimed, files(join(w.dir, 'in')).filter((f) => f.endsWith('.claim')).length);
          await new Promise((r) => setTimeout(r, 5));
          inflight--;
          return m;
        })
        .to('mock:out'),
    );
    await w.engine.start();
    await w.engine.mock('mock:out').expectCount(60).satisfied({ timeoutMs: 10000 });
    expect(maxSeen).to.be.at.most(3);
    // claimed = in flight + the few being read ahead (8 readers at most)
    expect(maxClaimed).to.be.at.most(3 + 8);
    await waitFor(() => files(join(w.dir, 'in/.done')).length === 60, 3000, 'all done');
  });

  it('two engines on one inbox process each file exactly once', async () => {
    const N = 300;
    for (let i = 0; i < N; i++) put(w.dir, `in/f${String(i).padStart(4, '0')}.txt`, String(i));
    const other = new Engine({ logger: testLogger(), adapters: [createFileAdapter({ baseDir: w.dir })] });
    for (const e of [w.engine, other]) e.addRoutes(from('file:in?readLock=rename&delay=10&maxMessagesPerPoll=50&bodyType=string').to('mock:out'));
    await Promise.all([w.engine.start(), other.start()]);
    try {
      const seen = (): Message[] => [...w.engine.mock('mock:out').received, ...other.mock('mock:out').received];
      await waitFor(() => seen().length >= N && files(join(w.dir, 'in/.done')).length === N, 10000, 'all files');
      await new Promise((r) => setTimeout(r, 100));
      const bodies = seen().map((m) => m.body as string);
      expect(bodies).to.have.length(N);
      expect(new Set(bodies).size).to.equal(N);
      expect(w.engine.mock('mock:out').received.length).to.be.greaterThan(0);
      expect(other.mock('mock:out').received.length).to.be.greaterThan(0);
    } finally {
      await other.stop();
    }
  });

  it('rejects bad endpoint options with coded errors naming the option', () => {
    const bad: Array<[string, string]> = [
      ['file:in?noop=true&delete=true', 'delete'],
      ['file:in?bodyType=string&charset=klingon', 'charset'],
      ['file:in?moov=.x', 'moov'],
      ['file:in?readLock=sometimes', 'readLock'],
    ];
    for (const [uri, option] of bad) {
      let err: unknown;
      try {
        w.engine.addRoutes(from(uri).to('mock:x'));
      } catch (e) {
        err = e;
      }
      expect(err, uri).to.be.instanceOf(BusbarError);
      expect((err as BusbarError).code, uri).to.equal('BUSBAR_ERR_INVALID_OPTION');
      expect((err as BusbarError).details.option, uri).to.equal(option);
    }
  });

  it('readLock=changed with maxMessagesPerPoll: every listed file starts its stability window at once, not one poll batch after another', async () => {
    const clock = new FakeClock(Date.UTC(2030, 0, 1));
    const engine = new Engine({ logger: testLogger(), clock, adapters: [createFileAdapter({ baseDir: w.dir })] });
    for (let i = 0; i < 20; i++) put(w.dir, `in/f${String(i).padStart(2, '0')}.txt`, `body ${i}`);
    engine.addRoutes(from('file:in?delay=100&readLockCheckInterval=1000&maxMessagesPerPoll=5&bodyType=string').to('mock:out'));
    await engine.start();
    try {
      // fake time up to just past one check interval, the real file work settling at each step
      for (let t = 0; t <= 1200; t += 100) {
        await clock.tickAsync(100);
        await new Promise((r) => setTimeout(r, 25));
      }
      // no more fake time: all 20 were stable after one window (in batches: 5 a poll, 15
      // waiting a window each, would take three more windows)
      await waitFor(() => engine.mock('mock:out').received.length === 20, 5000, 'all 20 files within one check interval');
      expect(engine.mock('mock:out').received.map((m) => m.body).sort()).to.deep.equal(Array.from({ length: 20 }, (_, i) => `body ${i}`).sort());
    } finally {
      await engine.stop();
    }
  });

  it('polls on the engine clock (a fake clock drives it)', async () => {
    const clock = new FakeClock(Date.UTC(2030, 0, 1));
    const engine = new Engine({ logger: testLogger(), clock, adapters: [createFileAdapter({ baseDir: w.dir })] });
    engine.addRoutes(from('file:in?readLock=rename&initialDelay=60000&delay=60000&bodyType=string&move=.done/{date}/{name}').to('mock:out'));
    await engine.start();
    try {
      put(w.dir, 'in/a.txt', 'a');
      await new Promise((r) => setTimeout(r, 100));
      expect(engine.mock('mock:out').received).to.have.length(0); // no poll is due on the fake clock
      await clock.tickAsync(60_000);
      await engine.mock('mock:out').expectBodies(['a']).satisfied();
      await waitFor(() => exists(w.dir, 'in/.done/2030-01-01/a.txt'), 3000, 'moved under the fake date');
    } finally {
      await engine.stop();
    }
  });
});
