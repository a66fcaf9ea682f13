import { expect } from 'chai';
import { from, withBody } from '../../../lib/index.js';
import { FakeClock, settle, testEngine } from '../../../lib/testing.js';
import { patternState } from '../../../lib/steps/patterns/common.js';
import { CLAIM_CHECK_HEADER, DUPLICATE_HEADER } from '../../../lib/steps/patterns/content.js';
import { RESEQUENCE_LATE_HEADER } from '../../../lib/steps/patterns/aggregate.js';
import { MemoryClaimCheckStore, MemoryIdempotentRepository } from '../../../lib/stores-memory.js';

function failure(p: Promise<unknown>): Promise<{ code?: string; details?: Record<string, unknown> }> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as { code?: string; details?: Record<string, unknown> },
  );
}

describe('patterns: content enricher', () => {
  it('merges the reply into the body (objects), into a field, or with a function', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<{ id: number }>('direct:merge').enrich<{ id: number; name: string }>('direct:customer').to('mock:out'),
      from<{ id: number }>('direct:into').enrich('direct:customer', { into: 'customer' }).to('mock:out'),
      from<{ id: number }>('direct:fn').enrich<string>('direct:customer', { merge: (o, r) => `${o.id}:${(r as { name: string }).name}` }).to('mock:out'),
      from<{ id: number }>('direct:customer').transform((b) => ({ name: `c${b.id}` })),
    );
    await engine.start();
    await engine.send('direct:merge', { id: 1 });
    await engine.send('direct:into', { id: 2 });
    await engine.send('direct:fn', { id: 3 });
    expect(engine.mock('mock:out').bodies).to.deep.equal([{ id: 1, name: 'c1' }, { id: 2, customer: { name: 'c2' } }, '3:c3']);
    await engine.stop();
  });

  it('a failing enrichment endpoint fails the message (dead letter gets the original)', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').deadLetter('mock:dlq').enrich('mock:lookup').to('mock:out'));
    await engine.start();
    engine.mock('mock:lookup').whenReceived(() => {
      throw new Error('lookup down');
    });
    await failure(engine.send('direct:in', { id: 1 }));
    expect(engine.mock('mock:dlq').bodies).to.deep.equal([{ id: 1 }]);
    expect(engine.mock('mock:out').received).to.have.length(0);
    await engine.stop();
  });

  it('config form: into a field', async () => {
    const { engine } = testEngine();
    engine.addRoutes({ routes: [{ from: 'direct:in', steps: [{ enrich: { uri: 'mock:lookup', into: 'extra' } }, { to: 'mock:out' }] }] });
    await engine.start();
    engine.mock('mock:lookup').whenReceived((m) => withBody(m, 42));
    await engine.send('direct:in', { a: 1 });
    expect(engine.mock('mock:out').bodies).to.deep.equal([{ a: 1, extra: 42 }]);
    await engine.stop();
  });
});

describe('patterns: claim check', () => {
  it('parks the body, carries the key, restores it in another route and forgets it', async () => {
    const { engine } = testEngine();
    const store = new MemoryClaimCheckStore();
    engine.addRoutes(
      from<{ big: string }>('direct:in').claimCheckIn({ store }).to('mock:light').to('direct:later'),
      from<null>('direct:later').claimCheckOut<{ big: string }>({ store }).to('mock:restored'),
    );
    await engine.start();
    await engine.send('direct:in', { big: 'x'.repeat(1000) });
    const light = engine.mock('mock:light').received[0]!;
    expect(light.body).to.equal(null);
    expect(light.headers[CLAIM_CHECK_HEADER]).to.be.a('string');
    const restored = engine.mock('mock:restored').received[0]!;
    expect((restored.body as { big: string }).big).to.have.length(1000);
    expect(restored.headers[CLAIM_CHECK_HEADER]).to.equal(undefined);
    expect(store.size).to.equal(0);
    await engine.stop();
  });

  it('checkout of an unknown key fails with CLAIM_NOT_FOUND; config routes share the engine\'s memory store', async () => {
    const { engine } = testEngine();
    engine.addRoutes({
      routes: [
        { id: 'in', from: 'direct:in', steps: [{ claimCheck: 'checkIn' }, { to: 'direct:out' }] },
        { id: 'out', from: 'direct:out', steps: [{ claimCheck: 'checkOut' }, { to: 'mock:out' }] },
      ],
    });
    await engine.start();
    await engine.send('direct:in', 'parked');
    expect(engine.mock('mock:out').bodies).to.deep.equal(['parked']);
    const err = await failure(engine.send('direct:out', null, { [CLAIM_CHECK_HEADER]: 'nope' }));
    expect(err.code).to.equal('BUSBAR_ERR_CLAIM_NOT_FOUND');
    await engine.stop();
  });

  it('an unknown named store is a config problem', () => {
    const { engine } = testEngine();
    expect(() => engine.addRoutes({ routes: [{ from: 'direct:in', steps: [{ claimCheck: { operation: 'checkIn', store: 's3' } }] }] })).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_ROUTE');
  });
});

describe('patterns: idempotent consumer', () => {
  it('skips duplicates by key and counts them', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<{ id: string }>('direct:in').routeId('idem').idempotent({ key: (b) => b.id }).to('mock:out'));
    await engine.start();
    for (const id of ['a', 'b', 'a', 'c', 'b']) await engine.send('direct:in', { id });
    expect(engine.mock('mock:out').bodies).to.deep.equal([{ id: 'a' }, { id: 'b' }, { id: 'c' }]);
    expect(patternState(engine).duplicates.get('idem/steps/0')).to.equal(2);
    await engine.stop();
  });

  it('routes duplicates elsewhere on request', async () => {
    const { engine } = testEngine();
    engine.addRoutes({ routes: [{ from: 'direct:in', steps: [{ idempotent: { expr: 'id', duplicateUri: 'mock:dups' } }, { to: 'mock:out' }] }] });
    await engine.start();
    for (const id of [1, 1, 2]) await engine.send('direct:in', { id });
    expect(engine.mock('mock:out').bodies).to.deep.equal([{ id: 1 }, { id: 2 }]);
    expect(engine.mock('mock:dups').received.map((m) => m.headers[DUPLICATE_HEADER])).to.deep.equal([true]);
    await engine.stop();
  });

  it('forgets the key of a failed message, so its redelivery is processed', async () => {
    const { engine } = testEngine();
    let fail = true;
    engine.addRoutes(from<string>('direct:in').idempotent({ key: (b) => b }).process((m) => {
      if (fail) throw new Error('transient');
      return m;
    }).to('mock:out'));
    await engine.start();
    await failure(engine.send('direct:in', 'k'));
    fail = false;
    await engine.send('direct:in', 'k');
    expect(engine.mock('mock:out').bodies).to.deep.equal(['k']);
    await engine.stop();
  });

  it('the in-memory repository is bounded (oldest keys forgotten)', async () => {
    const repo = new MemoryIdempotentRepository({ maxKeys: 3 });
    for (const k of ['a', 'b', 'c', 'd']) expect(await repo.add('s', k)).to.equal(true);
    expect(repo.size('s')).to.equal(3);
    expect(await repo.contains('s', 'a')).to.equal(false);
    expect(await repo.add('s', 'd')).to.equal(false);
    expect(() => new MemoryIdempotentRepository({ maxKeys: 0 })).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_ROUTE');
  });

  it('a message without a key fails with CORRELATION_KEY', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<{ id?: string }>('direct:in').idempotent({ key: (b) => b.id as string }));
    await engine.start();
    expect((await failure(engine.send('direct:in', {}))).code).to.equal('BUSBAR_ERR_CORRELATION_KEY');
    await engine.stop();
  });
});

describe('patterns: resequencer', () => {
  it('batch mode: sorts a batch by the key when full, and flushes the rest on timeout (fake time)', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes(from<{ seq: number }>('direct:in').resequence({ by: (b) => b.seq, batchSize: 3, timeoutMs: 1000 }).to('mock:out'));
    await engine.start();
    for (const seq of [3, 1, 2, 9, 8]) await engine.send('direct:in', { seq });
    await settle();
    const out = engine.mock('mock:out');
    expect(out.bodies.map((b) => (b as { seq: number }).seq)).to.deep.equal([1, 2, 3]);
    await clock.tickAsync(1000);
    await settle();
    expect(out.bodies.map((b) => (b as { seq: number }).seq)).to.deep.equal([1, 2, 3, 8, 9]);
    await engine.stop();
  });

  it('stream mode: emits as soon as the next number is there; skips a gap after the timeout; a late one is flagged, not dropped', async () => {
    const clock = new FakeClock();
    const { engine } = testEngine({ clock });
    engine.addRoutes({ routes: [{ from: 'direct:in', steps: [{ resequence: { mode: 'stream', by: 'seq', start: 1, timeoutMs: 500 } }, { to: 'mock:out' }] }] });
    await engine.start();
    const seqs = (): number[] => engine.mock('mock:out').bodies.map((b) => (b as { seq: number }).seq);
    for (const seq of [2, 1, 3, 5]) await engine.send('direct:in', { seq });
    await settle();
    expect(seqs()).to.deep.equal([1, 2, 3]);
    await clock.tickAsync(500); // 4 never came
    await settle();
    expect(seqs()).to.deep.equal([1, 2, 3, 5]);
    await engine.send('direct:in', { seq: 4 });
    await settle();
    expect(seqs()).to.deep.equal([1, 2, 3, 5, 4]);
    expect(engine.mock('mock:out').received[4]!.headers[RESEQUENCE_LATE_HEADER]).to.equal(true);
    await engine.stop();
  });

  it('stream mode needs integer sequence numbers', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from<{ seq: string }>('direct:in').resequence({ mode: 'stream', by: (b) => b.seq }));
    await engine.start();
    expect((await failure(engine.send('direct:in', { seq: 'x' }))).code).to.equal('BUSBAR_ERR_CORRELATION_KEY');
    await engine.stop();
  });
});

describe('patterns: message history', () => {
  it('off by default; when on, each message carries the steps it passed with times', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<number>('direct:plain').transform((n) => n + 1).to('mock:plain'),
      from<number>('direct:traced').history().transform((n) => n + 1).to('mock:traced'),
    );
    await engine.start();
    await engine.send('direct:plain', 1);
    await engine.send('direct:traced', 1);
    expect(engine.mock('mock:plain').received[0]!.headers['busbar.history']).to.equal(undefined);
    const h = engine.mock('mock:traced').received[0]!.headers['busbar.history'] as string[];
    expect(h).to.have.length(2);
    expect(h[0]).to.match(/^\/steps\/0 transform \d{4}-\d\d-\d\dT/);
    expect(h[1]).to.match(/^\/steps\/1 to /);
    await engine.stop();
  });
});
