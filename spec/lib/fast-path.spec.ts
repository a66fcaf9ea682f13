import { createHook } from 'node:async_hooks';
import { expect } from 'chai';
import { createMessage, Engine, ERROR_HEADERS, from, mapStep, withBody, type Adapter, type Message } from '../../lib/index.js';
import type { BusbarError } from '../../lib/errors.js';
import { testLogger } from '../helpers.js';
import { TestSource } from './source-adapter.js';

/**
 * The step-execution fast path (issue #18): a step that returns a value goes on in the same
 * turn, a producer that is done when `send` returns may skip the promise, and errors are
 * labelled once, by the step they come from, whichever way they travel.
 */
function syncSink(received: Message[], fail?: (m: Message) => boolean): Adapter {
  return {
    scheme: 'sink',
    description: 'a producer that completes synchronously',
    optionsSchema: { type: 'object', properties: {}, additionalProperties: false },
    createProducer() {
      return {
        send(msg) {
          if (fail?.(msg)) throw new Error(`sink refused ${String(msg.body)}`);
          received.push(msg);
          return undefined;
        },
      };
    },
  };
}

function asyncSink(received: Message[], fail?: (m: Message) => boolean): Adapter {
  return {
    scheme: 'later',
    description: 'a producer that completes on a later turn',
    optionsSchema: { type: 'object', properties: {}, additionalProperties: false },
    createProducer() {
      return {
        // one to start: a producer made for a URI computed at message time starts with its first message
        async start() {
          await new Promise((r) => setImmediate(r));
        },
        async send(msg) {
          await new Promise((r) => setImmediate(r));
          if (fail?.(msg)) throw new Error(`later refused ${String(msg.body)}`);
          received.push(msg);
          return undefined;
        },
      };
    },
  };
}

describe('step fast path', () => {
  let engine: Engine;
  afterEach(async () => {
    await engine.stop();
  });

  it('finishes a route whose steps and producers are synchronous within the send call, outputs included', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received)] });
    engine.addRoutes(
      from<number>('direct:in')
        .routeId('sync')
        .transform((n) => n * 2)
        .to('sink:a')
        .choice((c) => c.when((n) => n > 4, (b) => b.to('sink:big')).otherwise((b) => b.to('sink:small')))
        .to('log:done?level=debug'),
    );
    await engine.start();
    const sent = engine.send('direct:in', 3);
    // nothing has been awaited yet: the route already ran to its end, every output has it
    expect(received.map((m) => m.body)).to.deep.equal([6, 6]);
    expect(engine.stats().routes.sync!.completed).to.equal(1);
    expect(engine.stats().routes.sync!.inflight).to.equal(0);
    await sent;
  });

  it('turns a synchronous producer throw into the failure of that message, labelled with its step, the original to the dead letter', async () => {
    const received: Message[] = [];
    const dead: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received, (m) => m.body === 'bad'), { ...asyncSink(dead), scheme: 'dlq' }] });
    engine.addRoutes(from<string>('direct:in').routeId('r').deadLetter('dlq:dead').transform((s) => s.toUpperCase().toLowerCase()).to('sink:out'));
    await engine.start();
    await engine.send('direct:in', 'good');
    let err: BusbarError | undefined;
    await engine.send('direct:in', 'bad').catch((e: BusbarError) => (err = e));
    expect(err?.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(err?.details.step).to.equal('/steps/1 (to)');
    expect(err?.details.deadLettered).to.equal(true);
    expect(received.map((m) => m.body)).to.deep.equal(['good']);
    expect(dead).to.have.length(1);
    expect(dead[0]!.body).to.equal('bad');
    expect(dead[0]!.headers['busbar.error.step']).to.equal('/steps/1 (to)');
  });

  it('labels an asynchronous failure with the step it came from, not with the steps that passed its promise on', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [asyncSink(received, (m) => m.body === 'x-bad'), syncSink([])] });
    engine.addRoutes(
      from<string>('direct:in')
        .routeId('a')
        .transform((s) => `x-${s}`)
        .setHeader('seen', true)
        .to('sink:first')
        .to('later:out')
        .transform(async (s) => {
          if (s === 'x-late') throw new Error('late step failed');
          return s;
        }),
    );
    await engine.start();
    const codes: Array<[unknown, unknown]> = [];
    for (const body of ['ok', 'bad', 'late']) {
      await engine.send('direct:in', body).then(
        () => codes.push(['ok', undefined]),
        (e: BusbarError) => codes.push([e.code, e.details.step]),
      );
    }
    expect(codes).to.deep.equal([
      ['ok', undefined],
      ['BUSBAR_ERR_STEP_FAILED', '/steps/3 (to)'],
      ['BUSBAR_ERR_STEP_FAILED', '/steps/4 (transform)'],
    ]);
    expect(received.map((m) => m.headers.seen)).to.deep.equal([true, true]);
  });

  it('keeps every branch of a multicast apart when the copies are made on the synchronous path', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received)] });
    engine.addRoutes(
      from<{ n: number; tags: string[] }>('direct:in')
        .routeId('m')
        .multicast([
          (b) => b.process((m) => {
            (m.body as { tags: string[] }).tags.push('a');
            return m;
          }).to('sink:a'),
          (b) => b.to('sink:b'),
        ]),
    );
    await engine.start();
    const body = { n: 1, tags: [] as string[] };
    await engine.send('direct:in', body);
    expect(received.map((m) => (m.body as { tags: string[] }).tags)).to.deep.equal([['a'], []]);
    expect(body.tags).to.deep.equal([]);
  });

  it('sends a recipient list to synchronous producers within the send call, in order, a failing recipient labelled and the rest not sent', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received, (m) => m.body === 'bad' && received.length === 2)] });
    engine.addRoutes(
      from<string>('direct:in')
        .routeId('rl')
        .choice((c) =>
          c
            .when((s) => s.startsWith('x'), (b) => b.recipientList((s) => [`sink:${s}`, 'sink:audit']))
            .otherwise((b) => b.recipientList(['sink:a', 'sink:b', 'sink:c'])),
        ),
    );
    await engine.start();
    const sent = engine.send('direct:in', 'x1');
    // done before anything was awaited: every recipient has it
    expect(received.map((m) => m.body)).to.deep.equal(['x1', 'x1']);
    expect(engine.stats().routes.rl!.completed).to.equal(1);
    await sent;
    received.length = 0;
    received.push(createMessage('pad'));
    let err: BusbarError | undefined;
    await engine.send('direct:in', 'bad').catch((e: BusbarError) => (err = e));
    // sink:a took it, sink:b refused it, sink:c never saw it
    expect(received.slice(1).map((m) => m.body)).to.deep.equal(['bad']);
    expect(err?.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(err?.details.step).to.equal('/steps/0/otherwise/0 (recipientList)');
    expect(err?.details.branch).to.equal(1);
  });

  it('labels the asynchronous failure of a step in a choice branch with that step, not with the choice or the steps before', async () => {
    engine = new Engine({ logger: testLogger(), adapters: [asyncSink([], (m) => m.body === 'no'), syncSink([])] });
    engine.addRoutes(
      from<string>('direct:in')
        .routeId('cb')
        .unmarshal<string>('text')
        .choice((c) => c.when((s) => s.length > 2, (b) => b.to('sink:long')).otherwise((b) => b.transform((s) => s).to('later:short'))),
    );
    await engine.start();
    let err: BusbarError | undefined;
    await engine.send('direct:in', 'no').catch((e: BusbarError) => (err = e));
    expect(err?.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(err?.details.step).to.equal('/steps/1/otherwise/1 (to)');
    await engine.send('direct:in', 'ok');
    await engine.send('direct:in', 'long enough');
  });

  it('shares the headers a marshal step writes between messages without letting one message change another\'s', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received)] });
    engine.addRoutes(
      from<{ n: number }>('direct:in')
        .routeId('mh')
        .marshal('json')
        .choice((c) => c.when((s) => s.includes('2'), (b) => b.setHeader('big', true)).otherwise((b) => b))
        .to('sink:out'),
      from<{ n: number }>('direct:mutate')
        .routeId('mut')
        .marshal('json')
        .process((m) => {
          (m.headers as Record<string, unknown>)['content-type'] = 'text/evil';
          return m;
        })
        .to('sink:out'),
    );
    await engine.start();
    await engine.send('direct:in', { n: 1 });
    await engine.send('direct:in', { n: 2 });
    await engine.send('direct:in', { n: 3 });
    expect(received.map((m) => [m.body, m.headers['content-type'], m.headers.big])).to.deep.equal([
      ['{"n":1}', 'application/json', undefined],
      ['{"n":2}', 'application/json', true],
      ['{"n":3}', 'application/json', undefined],
    ]);
    // changing headers in place (not allowed: messages are immutable) fails that message only
    let err: BusbarError | undefined;
    await engine.send('direct:mutate', { n: 4 }).catch((e: BusbarError) => (err = e));
    expect(err?.details.step).to.equal('/steps/1 (process)');
    await engine.send('direct:in', { n: 5 });
    expect(received.slice(3).map((m) => m.headers['content-type'])).to.deep.equal(['application/json']);
  });
  it("gives a source the reply itself when the route finished synchronously (ConsumerContext.processNow, and processor.processNow), a promise otherwise, failures through the error policy", async () => {
    const src = new TestSource();
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [src.adapter(), syncSink(received), asyncSink(received)] });
    engine.addRoutes(
      from<number>('src:in')
        .routeId('now')
        .choice((c) => c.when((n) => n < 0, (b) => b.process(() => { throw new Error('negative'); })).when((n) => n > 100, (b) => b.to('later:x')).otherwise((b) => b.to('sink:x')))
        .transform((n) => n + 1),
    );
    await engine.start();
    const ctx = src.ctx!;
    const sync = ctx.processNow(createMessage(1));
    expect(sync).not.to.be.instanceOf(Promise);
    expect((sync as Message).body).to.equal(2);
    expect(received.map((m) => m.body)).to.deep.equal([1]);
    const later = ctx.processNow(createMessage(101));
    expect(later).to.be.instanceOf(Promise);
    expect((await later).body).to.equal(102);
    const failed = ctx.processNow(createMessage(-1));
    expect(failed).to.be.instanceOf(Promise);
    const err = (await (failed as Promise<Message>).catch((e: unknown) => e)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    // the same entry points as methods of one object (what direct: and queue: keep): same contract, same counts
    const p = ctx.processor;
    const viaProcessor = p.processNow(createMessage(2));
    expect(viaProcessor).not.to.be.instanceOf(Promise);
    expect((viaProcessor as Message).body).to.equal(3);
    const pending = p.processNow(createMessage(102));
    expect(pending).to.be.instanceOf(Promise);
    expect([p.available(), ctx.available()]).to.deep.equal([engine.stats().routes.now!.maxInflight - 1, engine.stats().routes.now!.maxInflight - 1]);
    expect((await pending).body).to.equal(103);
    expect(p.available()).to.equal(engine.stats().routes.now!.maxInflight);
    const st = engine.stats().routes.now!;
    expect([st.received, st.completed, st.failed, st.inflight]).to.deep.equal([5, 4, 1, 0]);
  });
});

describe('step fast path: steps that go asynchronous part of the time', () => {
  let engine: Engine;
  afterEach(async () => {
    await engine.stop();
  });
  const tick = <V>(v: V): Promise<V> => new Promise((r) => setImmediate(() => r(v)));

  it('continues every step whose function, predicate or producer answers later with the right message (choice, filter, transform, setHeader, recipientList, to), mixed with ones that answer at once', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received), asyncSink(received)] });
    engine.addRoutes(
      from<number>('direct:in')
        .routeId('mixed')
        // odd numbers answer later, even ones at once, in every step
        .filter((n) => (n % 2 ? tick(n !== 5) : n !== 4))
        .transform((n) => (n % 2 ? tick(n * 10) : n * 10))
        .setHeader('parity', (n) => (n % 20 ? tick('odd') : 'even'))
        .choice((c) =>
          c
            .when((n) => (n % 20 ? tick(n > 50) : n > 50), (b) => b.to('later:big'))
            .when((n) => (n % 20 ? tick(n > 20) : n > 20), (b) => b.recipientList((n) => (n % 20 ? tick([`later:mid-${n}`, 'sink:mid']) : [`sink:mid-${n}`, 'later:mid'])))
            .otherwise((b) => b.to('sink:small')),
        ),
    );
    await engine.start();
    for (const n of [1, 2, 3, 4, 5, 6, 7]) await engine.send('direct:in', n);
    const seen = received.map((m) => `${m.headers.parity as string} ${String(m.body)}`);
    // 4 and 5 filtered out; 10/20 small, 30 to both recipients (a new dynamic producer first), 60/70 big
    expect(seen).to.deep.equal(['odd 10', 'even 20', 'odd 30', 'odd 30', 'even 60', 'odd 70']);
    const st = engine.stats().routes.mixed!;
    expect([st.received, st.completed, st.failed, st.inflight]).to.deep.equal([7, 7, 0, 0]);
  });

  it('labels a failure that comes later from a transform, a predicate or a recipient with its step; the dead letter gets the original', async () => {
    const dead: Message[] = [];
    const out: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(dead), asyncSink(out, (m) => m.body === 3)] });
    engine.addRoutes(
      from<number>('direct:in')
        .routeId('late-fail')
        .errorPolicy({ deadLetter: 'sink:dead' })
        .transform((n) => (n === 1 ? tick(0).then(() => Promise.reject(new Error('transform broke'))) : tick(n)))
        .choice((c) => c.when((n) => (n === 2 ? tick(0).then(() => Promise.reject(new Error('predicate broke'))) : tick(true)), (b) => b.recipientList(() => tick(['later:x']))))
        .to('later:out'),
    );
    await engine.start();
    // a dead-lettered message still fails its send (direct: hands the caller the outcome)
    for (const n of [1, 2, 3, 4]) await engine.send('direct:in', n).catch(() => undefined);
    expect(dead.map((m) => `${String(m.body)} ${String(m.headers[ERROR_HEADERS.step])}: ${String(m.headers[ERROR_HEADERS.message])}`)).to.deep.equal([
      '1 /steps/0 (transform): route "late-fail", step /steps/0 (transform): transform broke',
      '2 /steps/1 (choice): route "late-fail", step /steps/1 (choice): predicate broke',
      '3 /steps/1/when/0/steps/0 (recipientList): route "late-fail", step /steps/1/when/0/steps/0 (recipientList): later refused 3',
    ]);
    expect(out.map((m) => m.body)).to.deep.equal([4, 4]);
  });
});

describe('step fast path: direct: between routes', () => {
  let engine: Engine;
  afterEach(async () => {
    await engine.stop();
  });

  it('a route calling another through direct: goes on in the same turn when that one finished at once; an asynchronous or failing one still works', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received), asyncSink(received)] });
    engine.addRoutes(
      from<number>('direct:a').routeId('a').to('direct:b').to('sink:a'),
      // a send right after a one-step stretch (see sendStep): what follows gets the reply
      from<number>('direct:c').routeId('c').transform((n) => n + 1).to('direct:b').to('sink:c'),
      from<number>('direct:b').routeId('b').transform((n) => n * 10).choice((c) => c.when((n) => n === 20, (w) => w.to('later:b')).when((n) => n === 30, (w) => w.process(() => { throw new Error('no 3'); })).otherwise((w) => w.to('sink:b'))),
    );
    await engine.start();
    const sent = engine.send('direct:a', 1);
    // both routes ran, and a's step after the call too, before the send's promise was awaited
    expect(received.map((m) => m.body)).to.deep.equal([10, 10]);
    await sent;
    await engine.send('direct:a', 2);
    expect(received.map((m) => m.body)).to.deep.equal([10, 10, 20, 20]);
    const err = (await engine.send('direct:a', 3).then(() => undefined, (e: unknown) => e)) as BusbarError;
    expect(err.details.routeId).to.equal('b');
    expect(received).to.have.length(4);
    received.length = 0;
    const viaC = engine.send('direct:c', 0);
    expect(received.map((m) => m.body), 'b answered 10, in the same turn').to.deep.equal([10, 10]);
    await viaC;
    const failedViaC = (await engine.send('direct:c', 2).then(() => undefined, (e: unknown) => e)) as BusbarError;
    expect([failedViaC.details.routeId, received.length]).to.deep.equal(['b', 2]);
  });
});

describe('step fast path: stretches of map steps (fuse)', () => {
  let engine: Engine;
  afterEach(async () => {
    await engine.stop();
  });

  /** A step kind given by its map alone (mapStep): appends `tag` to a string body, or fails on `fail`. */
  const tagStep = mapStep<{ tag: string; async?: boolean }>({
    name: 'tag',
    description: 'append a tag',
    configSchema: { type: 'object' },
    fromConfig: (v) => v as { tag: string },
    map: ({ tag, async: later }) => (msg) => {
      if (msg.body === `fail-${tag}`) throw new Error(`tag ${tag} refused`);
      if (!later) return withBody(msg, `${String(msg.body)}${tag}`);
      return new Promise<Message>((resolve, reject) => setImmediate(() => (String(msg.body).includes(`!${tag}`) ? reject(new Error(`later ${tag} refused`)) : resolve(withBody(msg, `${String(msg.body)}${tag}`)))));
    },
  });

  it('runs consecutive map steps (built-in and custom, sync and async) in order, each failure labelled with its own step', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received)] });
    engine.steps.register(tagStep);
    engine.addRoutes(
      from<string>('direct:in')
        .routeId('stretch')
        .step('tag', { tag: 'a' })
        .transform((s: string) => {
          if (s === 'fail-ta') throw new Error('transform refused');
          return s === 'late-ta' ? Promise.reject(new Error('transform refused later')) : `${s}t`;
        })
        .step('tag', { tag: 'b', async: true })
        .step('tag', { tag: 'c' })
        .setHeader('h', 'v')
        .to('sink:out'),
    );
    await engine.start();
    await engine.send('direct:in', 'x');
    expect(received.map((m) => [m.body, m.headers.h])).to.deep.equal([['xatbc', 'v']]);
    const failures: Array<[string, string]> = [
      ['fail-a', '/steps/0 (tag)'],
      ['fail-t', '/steps/1 (transform)'],
      ['late-t', '/steps/1 (transform)'],
      // after the asynchronous step: the stretch goes on in a later turn, still labelled by step
      ['x!b', '/steps/2 (tag)'],
    ];
    for (const [body, step] of failures) {
      const err = (await engine.send('direct:in', body).then(() => undefined, (e: unknown) => e)) as BusbarError;
      expect(err?.details?.step, body).to.equal(step);
    }
    // a body only the step after the asynchronous one refuses
    const fromHandler = { steps: [] as string[] };
    engine.observe({ begin: () => undefined, step: (_r, _m, path) => void fromHandler.steps.push(path), end: () => undefined });
    const err = (await engine.send('direct:in', 'fail-c').then(() => undefined, (e: unknown) => e)) as BusbarError;
    // 'fail-c' is changed by the steps before c: it is not refused, and the observer saw every step
    expect(err).to.equal(undefined);
    expect(fromHandler.steps).to.deep.equal(['/steps/0', '/steps/1', '/steps/2', '/steps/3', '/steps/4', '/steps/5']);
  });

  it('continues an asynchronous step once (a transform alone or between map steps, a send, a filter\'s predicate): one `then` for the step and what follows', async () => {
    const received: Message[] = [];
    // a producer whose send answers with a promise of its own (one, settled)
    const settledSink: Adapter = {
      scheme: 'settled',
      description: 'a producer answering with a settled promise',
      optionsSchema: { type: 'object', properties: {}, additionalProperties: false },
      createProducer: () => ({
        send(msg) {
          if (msg.body === -1) return Promise.reject(new Error('refused'));
          received.push(msg);
          return Promise.resolve(undefined);
        },
      }),
    };
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received), settledSink] });
    engine.addRoutes(
      from<number>('direct:alone').routeId('alone').transform((n) => Promise.resolve(n + 1)).to('sink:out'),
      from<number>('direct:between')
        .routeId('between')
        .setHeader('before', 'b')
        .transform((n, msg) => Promise.resolve(`${n * 2}${String(msg.headers.before)}`))
        .setHeader('after', (s) => `saw ${s}`)
        .to('sink:out'),
      from<number>('direct:send').routeId('send').to('settled:first').setHeader('sent', 'yes').to('sink:out'),
      from<number>('direct:filter').routeId('filter').filter((n) => Promise.resolve(n > 0)).to('sink:out'),
      from<number>('direct:choice')
        .routeId('choice')
        .choice((c) => c.when((n) => Promise.resolve(n > 5), (b) => b.to('sink:big')).otherwise((b) => b.to('sink:out'))),
      from<number>('direct:balance').routeId('balance').loadBalance(['settled:a', 'settled:b']).to('sink:out'),
      // a send right after a one-step stretch: the stretch sends itself (sendStep)
      from<number>('direct:after').routeId('after').transform((n) => n + 1).to('settled:after').to('sink:out'),
      from<number>('direct:refused').routeId('refused').to('settled:x').process(() => Promise.reject(new Error('after the send'))).to('sink:out'),
      from<number>('direct:rejects').routeId('rejects').filter(() => Promise.reject(new Error('no verdict'))).to('sink:out'),
    );
    await engine.start();
    // promises made while one message goes through, the caller's continuation included (counted
    // from a callback that is no promise's, so the test's own awaits are not among them)
    const made = (uri: string, body: number): Promise<number> =>
      new Promise((resolve, reject) =>
        setImmediate(() => {
          let n = 0;
          const hook = createHook({
            init(_id, type) {
              if (type === 'PROMISE') n++;
            },
          }).enable();
          engine.send(uri, body).then(
            () => {
              hook.disable();
              resolve(n);
            },
            (e: unknown) => {
              hook.disable();
              reject(e as Error);
            },
          );
        }),
      );
    const uris = ['direct:alone', 'direct:between', 'direct:send', 'direct:filter', 'direct:choice', 'direct:balance', 'direct:after'];
    for (const uri of uris) await engine.send(uri, 0); // warm: the producers started
    received.length = 0;
    const counts: number[] = [];
    for (const uri of uris) counts.push(await made(uri, 2));
    const sent = createMessage(3);
    await engine.sendMessage('direct:between', sent);
    expect(received.map((m) => [m.body, m.headers.before ?? m.headers.sent, m.headers.after])).to.deep.equal([
      [3, undefined, undefined],
      ['4b', 'b', 'saw 4b'],
      [2, undefined, undefined], // settled:first
      [2, 'yes', undefined],
      [2, undefined, undefined], // through the filter
      [2, undefined, undefined], // the choice's otherwise
      [2, undefined, undefined], // settled:a
      [2, undefined, undefined], // after the load balancer
      [3, undefined, undefined], // settled:after
      [3, undefined, undefined], // after it
      ['6b', 'b', 'saw 6b'],
    ]);
    // the same message through the route: identity kept by the body's continuation
    expect([received[10]!.id, received[10]!.correlationId]).to.deep.equal([sent.id, sent.id]);
    // the step's own promise (1), its continuation (1), the route settling (1), the caller's
    // continuation (1). A transform continued by itself and then by the stretch made 5; so did
    // a send or a predicate continued by the step and then again by its guard, to label failures
    // (a load balancer's send, continued three times, 6)
    expect(counts).to.deep.equal([4, 4, 4, 4, 4, 4, 4]);
    // ...which labels the failures: a refused send by the send, one after it by its own step, a predicate's rejection by the filter
    const steps: string[] = [];
    for (const [uri, body] of [['direct:refused', -1], ['direct:refused', 1], ['direct:rejects', 1]] as const) {
      steps.push(((await engine.send(uri, body).then(() => undefined, (e: unknown) => e)) as BusbarError).details.step as string);
    }
    expect(steps).to.deep.equal(['/steps/0 (to)', '/steps/1 (process)', '/steps/0 (filter)']);
  });

  it('a map step fails in a later turn after an asynchronous one: labelled with its step; the route\'s history still works (no stretch then)', async () => {
    const received: Message[] = [];
    engine = new Engine({ logger: testLogger(), adapters: [syncSink(received)] });
    engine.steps.register(tagStep);
    engine.addRoutes(from<string>('direct:in').routeId('later').step('tag', { tag: 'b', async: true }).process((m) => (m.body === 'yb' ? Promise.reject(new Error('no y')) : m)).to('sink:out'));
    engine.addRoutes(from<string>('direct:h').routeId('history').history().step('tag', { tag: 'a' }).step('tag', { tag: 'b' }).to('sink:out'));
    await engine.start();
    const err = (await engine.send('direct:in', 'y').then(() => undefined, (e: unknown) => e)) as BusbarError;
    expect(err.details.step).to.equal('/steps/1 (process)');
    await engine.send('direct:h', 'z');
    expect(received.map((m) => m.body)).to.deep.equal(['zab']);
    expect((received[0]!.headers['busbar.history'] as string[]).map((h) => h.split(' ').slice(0, 2).join(' '))).to.deep.equal(['/steps/0 tag', '/steps/1 tag', '/steps/2 to']);
  });
});
