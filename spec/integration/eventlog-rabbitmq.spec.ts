import { existsSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { expect } from 'chai';
import { createEventlogAdapter, GroupCoordinator } from '../../adapters/eventlog/index.js';
import { Engine, from, type Message } from '../../lib/index.js';
import { openDatabase } from '../../adapters/db/index.js';
import { sqliteWriteProbe } from './fixtures/sqlite-write-probe.js';
import { AMQP_URL, codeOf, tempDir, testLogger, waitFor } from '../helpers.js';
import { startWorker, type WorkerProcess } from '../process-worker.js';

/** A TCP relay on 127.0.0.1 in front of the broker whose connections the test can cut (a lost network). */
async function relay(): Promise<{ url: string; cut: () => void; close: () => Promise<void>; accepted: () => number }> {
  const target = new URL(AMQP_URL);
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((client) => {
    accepted++;
    const upstream = connect(Number(target.port || 5672), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const url = new URL(AMQP_URL);
  url.port = String(port);
  return {
    url: url.toString(),
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise((r) => server.close(() => r())),
    accepted: () => accepted,
  };
}

interface Got {
  p: number;
  o: number;
  body: unknown;
  member: string;
}

describe('eventlog on RabbitMQ streams', function () {
  this.timeout(60_000);
  const prefix = `evl${Date.now()}.`;
  let tmp: ReturnType<typeof tempDir>;
  const engines: Engine[] = [];
  const engine = (url = AMQP_URL): Engine => {
    const e = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: tmp.path, rabbitmq: { url, prefix } })] });
    engines.push(e);
    return e;
  };
  const collector = (got: Got[], member: string) => (m: Message): Message => {
    got.push({ p: m.headers['eventlog.partition'] as number, o: m.headers['eventlog.offset'] as number, body: m.body, member });
    return m;
  };

  beforeEach(() => (tmp = tempDir('busbar-evl-rmq-')));
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.stop();
    tmp.cleanup();
  });
  after(async () => {
    const amqp = await import('amqplib');
    const c = await amqp.connect(AMQP_URL);
    const ch = await c.createChannel();
    for (const t of ['replay', 'group', 'recon', 'procs']) for (let p = 0; p < 6; p++) await ch.deleteQueue(`${prefix}${t}.${p}`).catch(() => undefined);
    await c.close();
  });

  it('appends to a stream queue per partition; replays from an offset and from a timestamp exactly', async () => {
    const prod = engine();
    await prod.start();
    for (let i = 0; i < 30; i++) await prod.send('eventlog:replay?key={body.k}', { i, k: `k${i % 3}` }, { n: i });
    await new Promise((r) => setTimeout(r, 15));
    const t = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    await prod.send('eventlog:replay?key={body.k}', { i: 30, k: 'k0' });
    for (let i = 31; i < 60; i++) await prod.send('eventlog:replay?key={body.k}', { i, k: `k${i % 3}` });

    // from an offset: the stream attaches at the chunk holding 10 (from 0 here); 0..9 are dropped
    const fromOffset: Got[] = [];
    const c1 = engine();
    c1.addRoutes(from('eventlog:replay?start=10&pollMs=10').process(collector(fromOffset, 'a')));
    await c1.start();
    await waitFor(() => fromOffset.length >= 50, 10_000, '50 records from offset 10');
    // from a time: x-stream-offset is the time's second; records before the time are dropped
    const fromTime: Got[] = [];
    const c2 = engine();
    c2.addRoutes(from(`eventlog:replay?group=since&start=${new Date(t).toISOString()}&pollMs=10`).process(collector(fromTime, 'b')));
    await c2.start();
    await waitFor(() => fromTime.length >= 30, 10_000, '30 records from the time');
    await new Promise((r) => setTimeout(r, 200));
    expect(fromOffset.map((g) => g.o)).to.deep.equal(Array.from({ length: 50 }, (_, i) => 10 + i));
    expect(fromOffset.map((g) => (g.body as { i: number }).i)).to.deep.equal(Array.from({ length: 50 }, (_, i) => 10 + i));
    expect(fromTime.map((g) => (g.body as { i: number }).i)).to.deep.equal(Array.from({ length: 30 }, (_, i) => 30 + i));
    // and the record headers came through
    const c3: Array<{ n: unknown; key: unknown }> = [];
    const e3 = engine();
    e3.addRoutes(from('eventlog:replay?start=5').process((m) => {
      c3.push({ n: m.headers.n, key: m.headers['eventlog.key'] });
      return m;
    }));
    await e3.start();
    await waitFor(() => c3.length >= 1, 10_000, 'a record');
    expect(c3[0]).to.deep.equal({ n: 5, key: 'k2' });
  });

  it('a group shares the partitions (one stream each) between members; a member leaving hands them over; a fenced owner cannot commit', async () => {
    const prod = engine();
    await prod.start();
    const got: Got[] = [];
    const uri = 'eventlog:group?partitions=4&group=g&pollMs=10&heartbeatMs=50&sessionTimeoutMs=600&commitIntervalMs=50';
    const a = engine();
    a.addRoutes(from(uri).process(collector(got, 'a')));
    const b = engine();
    b.addRoutes(from(uri).process(collector(got, 'b')));
    await a.start();
    await b.start();
    const owned = (e: Engine): string[] => Object.keys((Object.values(e.stats().routes)[0]!.source.details as { partitions: Record<string, unknown> }).partitions);
    await waitFor(() => owned(a).length === 2 && owned(b).length === 2, 10_000, 'two partitions each');
    expect([...owned(a), ...owned(b)].sort()).to.deep.equal(['0', '1', '2', '3']);
    await Promise.all(Array.from({ length: 200 }, (_, i) => prod.send('eventlog:group?partitions=4&key={body.k}', { i, k: `c${i % 16}` })));
    await waitFor(() => got.length >= 200, 15_000, '200 records consumed');
    const ids = got.map((g) => (g.body as { i: number }).i);
    expect(new Set(ids).size, 'each record once').to.equal(200);
    expect(got.length).to.equal(200);
    for (const m of ['a', 'b']) {
      const parts = new Set(got.filter((g) => g.member === m).map((g) => String(g.p)));
      expect([...parts].sort()).to.deep.equal((m === 'a' ? owned(a) : owned(b)).sort());
    }

    // b leaves: a owns all four and reads on from b's committed offsets (nothing again)
    await b.stop();
    await waitFor(() => owned(a).length === 4, 10_000, 'a takes over');
    await Promise.all(Array.from({ length: 100 }, (_, i) => prod.send('eventlog:group?partitions=4&key={body.k}', { i: 200 + i, k: `c${i % 16}` })));
    await waitFor(() => got.length >= 300, 15_000, '100 more');
    const later = got.slice(200);
    expect(later.every((g) => g.member === 'a')).to.equal(true);
    expect(new Set(got.map((g) => (g.body as { i: number }).i)).size).to.equal(300);

    // a zombie: joins (a hands it two partitions in a new epoch), then falls silent; a's heartbeat expels it
    // after the session timeout and takes its partitions back in a newer epoch; the zombie's commit is refused
    const zombie = new GroupCoordinator(join(tmp.path, 'group'), 'g', 4, { sessionTimeoutMs: 600, memberId: 'zombie' });
    expect(zombie.heartbeat().owned.size, 'two are handed over by a, not taken').to.equal(0);
    await waitFor(() => owned(a).length === 2, 10_000, 'a gives two partitions to the zombie');
    const zm = zombie.heartbeat();
    expect(zm.owned.size).to.equal(2);
    await waitFor(() => owned(a).length === 4, 10_000, 'a takes them back after the session timeout');
    const [zp, zepoch] = [...zm.owned.entries()][0]!;
    expect(zombie.commit([[zp, zepoch, 999_999]])).to.deep.equal([zp]);
    await Promise.all(Array.from({ length: 40 }, (_, i) => prod.send('eventlog:group?partitions=4&key={body.k}', { i: 300 + i, k: `c${i % 16}` })));
    await waitFor(() => new Set(got.map((g) => (g.body as { i: number }).i)).size === 340, 15_000, 'all 340');
    await new Promise((r) => setTimeout(r, 150));
    const state = zombie.read()!;
    expect(Object.values(state.offsets)).not.to.include(999_999);
    const total = Object.values(state.offsets).reduce((n, o) => n + o, 0);
    expect(total, 'committed offsets add up to every record').to.equal(340);
    expect(codeOf(() => engine().addRoutes(from('eventlog:group?compact=true').to('mock:x')))).to.equal('BUSBAR_ERR_EVENTLOG_CONFIG');
  });

  it('3 consumer processes in one group on 6 partitions: kill -9 one, its partitions move to the others in a newer epoch, the others keep theirs and keep flowing; a SIGSTOPped owner loses its partitions and, SIGCONTed, its commit is fenced; committed offsets never move back; 0 lost', async function () {
    this.timeout(120_000);
    const db = join(tmp.path, 'out.db');
    const sql = openDatabase({ engine: 'sqlite', file: db });
    await sql.open();
    await sql.query('CREATE TABLE out (part INTEGER, off INTEGER, worker TEXT)');
    const prod = engine();
    await prod.start();
    const group = new GroupCoordinator(join(tmp.path, 'procs'), 'g', 6, { sessionTimeoutMs: 1000, memberId: 'observer' });
    const env = (w: string): Record<string, string> => ({
      EVL_DIR: tmp.path,
      EVL_DB: db,
      EVL_WORKER: w,
      EVL_MODE: 'at-least-once',
      EVL_SESSION_MS: '2500',
      EVL_RABBIT_URL: AMQP_URL,
      EVL_RABBIT_PREFIX: prefix,
      EVL_TOPIC: 'procs',
      EVL_PARTITIONS: '6',
      // w1 becomes the zombie: its commit timer (200 ms) falls due well before its next heartbeat
      // (600 ms) when it is paused just after one, so on waking it commits before it learns it
      // was expelled
      ...(w === 'w1' ? { EVL_HEARTBEAT_MS: '600', EVL_COMMIT_MS: '200' } : {}),
    });
    const workers: WorkerProcess[] = [];
    let appended = 0;
    let writing = true;
    const deadline = Date.now() + 60_000;
    // keyless records take turns over the 6 streams; bounded in count and time
    const producer = (async () => {
      while (writing && appended < 20_000 && Date.now() < deadline) {
        await Promise.all(Array.from({ length: 30 }, (_, j) => prod.send('eventlog:procs?partitions=6', { i: appended + j })));
        appended += 30;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    let backwards: string | undefined;
    const last: Record<string, number> = {};
    const sampler = setInterval(() => {
      for (const [p, o] of Object.entries(group.read()?.offsets ?? {})) {
        if (o < (last[p] ?? 0)) backwards ??= `partition ${p}: ${last[p]} -> ${o}`;
        last[p] = o;
      }
    }, 5);
    const count = async (q: string): Promise<number> => Number(Object.values((await sql.query(q)).rows[0]!)[0]);
    const ownedBy = (pid: number): number[] => {
      const s = group.read();
      return [0, 1, 2, 3, 4, 5].filter((p) => {
        const m = s?.assignment[p]?.member;
        return m !== undefined && s!.members[m]?.pid === pid;
      });
    };
    try {
      for (let i = 0; i < 3; i++) workers.push(startWorker('spec/adapters/eventlog/worker.ts', env(`w${i}`)));
      await Promise.all(workers.map((w) => w.ready));
      const pids = workers.map((w) => w.child.pid!);
      await waitFor(() => pids.every((pid) => ownedBy(pid).length === 2), 30_000, 'two partitions for each of the 3 members');
      await waitFor(async () => (await count('SELECT COUNT(DISTINCT worker) FROM out')) === 3, 30_000, 'rows from all three');
      const before = group.read()!;
      const [victim, y, z] = workers as [WorkerProcess, WorkerProcess, WorkerProcess];
      const moved = ownedBy(victim.child.pid!);
      const kept = [...ownedBy(y.child.pid!), ...ownedBy(z.child.pid!)];
      victim.child.kill('SIGKILL');
      await victim.exited;
      await waitFor(() => ownedBy(y.child.pid!).length === 3 && ownedBy(z.child.pid!).length === 3, 15_000, "the dead member's partitions taken over");
      const after = group.read()!;
      for (const p of moved) expect(after.assignment[p]!.epoch, `partition ${p} moved in a newer epoch`).to.be.greaterThan(before.assignment[p]!.epoch);
      for (const p of kept) expect(after.assignment[p]!.epoch, `partition ${p} stays with its owner`).to.equal(before.assignment[p]!.epoch);
      const rowsOf = (w: string): Promise<number> => count(`SELECT COUNT(*) FROM out WHERE worker = '${w}'`);
      const [ry, rz] = [await rowsOf('w1'), await rowsOf('w2')];
      await waitFor(async () => (await rowsOf('w1')) > ry && (await rowsOf('w2')) > rz, 15_000, 'both survivors keep flowing');
      await waitFor(async () => (await count(`SELECT COUNT(DISTINCT part) FROM out WHERE worker IN ('w1','w2') AND part IN (${moved.join(',')})`)) === moved.length, 15_000, 'the moved partitions read by their new owners');

      // the zombie: y is SIGSTOPped just after a heartbeat, outside the group lock, holding
      // finished records it has not committed yet (its rows are in, its offsets are not)
      const yId = Object.entries(group.read()!.members).find(([, m]) => m.pid === y.child.pid)![0];
      const lockFile = join(tmp.path, 'procs', 'groups', 'g.lock');
      const holds = (): boolean => existsSync(lockFile);
      const unsaved = async (): Promise<boolean> => {
        const s = group.read()!;
        for (const p of ownedBy(y.child.pid!)) if ((await count(`SELECT COUNT(*) FROM out WHERE worker = 'w1' AND part = ${p} AND off >= ${s.offsets[p] ?? 0}`)) > 0) return true;
        return false;
      };
      // nor inside a write to the sink (see sqliteWriteProbe)
      const probe = sqliteWriteProbe(db);
      const sinkFree = (): Promise<boolean> => probe.free();
      let paused = false;
      let yParts: number[] = [];
      for (let attempt = 0; attempt < 20 && !paused; attempt++) {
        yParts = ownedBy(y.child.pid!);
        const seen = group.read()!.members[yId]!.seen;
        await waitFor(() => group.read()!.members[yId]!.seen !== seen, 5000, "y's next heartbeat");
        y.child.kill('SIGSTOP');
        await new Promise((r) => setTimeout(r, 10));
        paused = !holds() && (await sinkFree()) && (await unsaved());
        if (!paused) y.child.kill('SIGCONT');
      }
      await probe.close();
      expect(paused, 'y paused outside the lock with uncommitted records').to.equal(true);
      await waitFor(() => ownedBy(z.child.pid!).length === 6, 15_000, 'z owns all six while y is paused');
      // z works on from y's last commit and commits past everything y finished; then y wakes up
      // (an unfenced commit of y's would move those offsets back)
      const yDone: Record<number, number> = {};
      for (const p of yParts) yDone[p] = await count(`SELECT COALESCE(MAX(off), -1) + 1 FROM out WHERE worker = 'w1' AND part = ${p}`);
      await waitFor(() => yParts.every((p) => (group.read()!.offsets[p] ?? 0) > yDone[p]!), 15_000, "z commits past y's progress");
      y.child.kill('SIGCONT');
      await waitFor(() => ownedBy(y.child.pid!).length === 3, 15_000, 'y rejoins with a share');

      writing = false;
      await producer;
      await waitFor(async () => (await count("SELECT COUNT(DISTINCT part || '-' || off) FROM out")) === appended, 30_000, 'every record processed');
      const outputs = [y, z].map((w) => new Promise<string>((r) => w.child.stdout!.on('data', (d) => String(d).includes('fenced=') && r(String(d)))));
      for (const w of [y, z]) w.child.stdin!.write('stop\n');
      const [fencedY] = (await Promise.all(outputs)).map((o) => Number(/fenced=(\d+)/.exec(o)![1]));
      await Promise.all([y, z].map((w) => w.exited));
      expect(backwards, 'a committed offset moved back').to.equal(undefined);
      expect(fencedY, "the woken zombie's commit was refused").to.be.greaterThan(0);
      expect(await count("SELECT COUNT(DISTINCT part || '-' || off) FROM out")).to.equal(appended);
      expect(Object.values(group.read()!.offsets).reduce((a, b) => a + b, 0), 'committed offsets add up to every record').to.equal(appended);
    } finally {
      writing = false;
      clearInterval(sampler);
      await producer;
      for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
      await sql.close();
    }
  });

  it('after the connection is lost the consumer reconnects, resumes from the committed offset and drops what the stream redelivers below it', async () => {
    const prod = engine();
    await prod.start();
    // one burst: the records share chunks, so attaching at an offset inside one redelivers its start
    await Promise.all(Array.from({ length: 100 }, (_, i) => prod.send('eventlog:recon', { i })));
    let blocked = true;
    const ok = new Map<number, number>();
    const net = await relay();
    const c = engine(net.url);
    c.addRoutes(
      from('eventlog:recon?group=r&pollMs=10&heartbeatMs=50&commitIntervalMs=20&errorDelay=20').process((m) => {
        const o = m.headers['eventlog.offset'] as number;
        if (blocked && o >= 50) throw new Error('not yet');
        ok.set(o, (ok.get(o) ?? 0) + 1);
        return m;
      }),
    );
    await c.start();
    const group = new GroupCoordinator(join(tmp.path, 'recon'), 'r', 1, { sessionTimeoutMs: 3000, memberId: 'reader' });
    await waitFor(() => group.read()?.offsets[0] === 50, 10_000, 'offset 50 committed');
    const before = net.accepted();
    net.cut();
    blocked = false;
    try {
      await waitFor(() => ok.size === 100, 20_000, 'the rest after reconnecting');
    } finally {
      await c.stop();
      await net.close();
    }
    expect(net.accepted(), 'a new connection after the cut').to.be.greaterThan(before);
    await new Promise((r) => setTimeout(r, 100));
    expect([...ok.keys()].sort((x, y) => x - y)).to.deep.equal(Array.from({ length: 100 }, (_, i) => i));
    expect([...ok.values()].every((n) => n === 1), 'no record below the committed offset delivered again').to.equal(true);
    await waitFor(() => group.read()?.offsets[0] === 100, 5000, 'offset 100 committed');
  });
});
