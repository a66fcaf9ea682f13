import { expect } from 'chai';
import { BoundedQueue, BusbarError, createMessage, Engine, from, TopicHub, topicAdapter, topicMatches, type Message } from '../../../lib/index.js';
import { capturedLogger, testLogger, waitFor } from '../../helpers.js';

describe('in-memory channels', () => {
  let engine: Engine;
  afterEach(async () => {
    await engine?.stop({ timeoutMs: 2000 });
  });

  describe('direct:', () => {
    it('hands off synchronously and returns the route\'s reply', async () => {
      engine = new Engine({ logger: testLogger() });
      engine.addRoutes(from<string>('direct:upper').transform((s) => s.toUpperCase()));
      await engine.start();
      expect(await engine.request('direct:upper', 'abc')).to.equal('ABC');
    });

    it('fails with NO_CONSUMER when no route consumes it', async () => {
      engine = new Engine({ logger: testLogger() });
      await engine.start();
      const err = (await engine.send('direct:nobody', 1).catch((e: unknown) => e)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_NO_CONSUMER');
    });

    it('a sender finds a consumer that came after it, loses it while its route is stopped and finds it again after a start or a reload', async () => {
      engine = new Engine({ logger: testLogger() });
      engine.addRoutes(from<number>('direct:other').routeId('other').transform((n) => n + 1));
      await engine.start();
      // no consumer yet: the producer of direct:late is made before any slot of that name exists
      expect(((await engine.request('direct:late', 1).catch((e: unknown) => e)) as BusbarError).code).to.equal('BUSBAR_ERR_NO_CONSUMER');
      await engine.reload([from<number>('direct:other').routeId('other').transform((n) => n + 1), from<number>('direct:late').routeId('late').transform((n) => n * 10)]);
      expect(await engine.request('direct:late', 2)).to.equal(20);
      // a producer made once the slot existed, through a stop and a start of its consumer
      expect(await engine.request('direct:other', 1)).to.equal(2);
      await engine.stopRoute('other');
      const err = (await engine.request('direct:other', 1).catch((e: unknown) => e)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_NO_CONSUMER');
      expect(err.message).to.contain('direct:other');
      await engine.startRoute('other');
      expect(await engine.request('direct:other', 5)).to.equal(6);
      // a redeployed consumer is the one a sender reaches
      await engine.reload([from<number>('direct:other').routeId('other').transform((n) => n - 1), from<number>('direct:late').routeId('late').transform((n) => n * 100)]);
      expect(await engine.request('direct:other', 5)).to.equal(4);
      expect(await engine.request('direct:late', 2)).to.equal(200);
    });

    it('refuses a second consumer of the same name', async () => {
      engine = new Engine({ logger: testLogger() });
      engine.addRoutes(from('direct:x').to('mock:a'), from('direct:x').to('mock:b'));
      const err = (await engine.start().catch((e: unknown) => e)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_ROUTE_START_FAILED');
      expect((err.cause as BusbarError).code).to.equal('BUSBAR_ERR_INVALID_ROUTE');
    });
  });

  describe('queue:', () => {
    it('a message the route fails (no dead letter) is logged with its id and body; the ones around it, done at once, are delivered', async () => {
      const { logger, lines } = capturedLogger('error');
      engine = new Engine({ logger });
      engine.addRoutes(
        from<number>('queue:work')
          .routeId('work')
          .process((m) => (m.body === 2 ? Promise.reject(new Error('two refused')) : m.body === 3 ? (() => { throw new Error('three refused'); })() : m))
          .to('mock:done'),
      );
      await engine.start();
      for (const n of [1, 2, 3, 4]) await engine.send('queue:work', n);
      await engine.mock('mock:done').expectBodies([1, 4]).satisfied({ timeoutMs: 2000 });
      await waitFor(() => lines.filter((l) => l.msg === 'message failed and has no dead-letter endpoint').length === 2, 2000, 'both failures logged');
      expect(lines.filter((l) => l.msg === 'message failed and has no dead-letter endpoint').map((l) => l.body)).to.deep.equal([2, 3]);
    });

    it('shares messages between competing consumers, each message once', async () => {
      engine = new Engine({ logger: testLogger() });
      const slow = (m: import('../../../lib/index.js').Message) => new Promise<typeof m>((r) => setTimeout(() => r(m), 2));
      engine.addRoutes(
        from<number>('queue:work').maxInflight(2).process(slow).to('mock:a'),
        from<number>('queue:work').maxInflight(2).process(slow).to('mock:b'),
      );
      await engine.start();
      for (let i = 0; i < 100; i++) await engine.send('queue:work', i);
      await waitFor(() => engine.mock('mock:a').received.length + engine.mock('mock:b').received.length === 100, 5000, '100 deliveries');
      const all = [...engine.mock('mock:a').bodies, ...engine.mock('mock:b').bodies] as number[];
      expect(new Set(all).size).to.equal(100);
      expect(engine.mock('mock:a').received.length).to.be.greaterThan(0);
      expect(engine.mock('mock:b').received.length).to.be.greaterThan(0);
    });

    it('makes the sender wait while the buffer is full', async () => {
      engine = new Engine({ logger: testLogger() });
      await engine.start(); // no consumer: nothing drains the queue
      await engine.send('queue:tiny?size=2', 1);
      await engine.send('queue:tiny?size=2', 2);
      let third = false;
      void engine.send('queue:tiny?size=2', 3).then(() => (third = true));
      await new Promise((r) => setTimeout(r, 50));
      expect(third).to.equal(false);
    });

    it('a backlog is handed to the route in order, in bursts: timers and I/O run between bursts; a stopped route takes nothing and its queue keeps the rest', async () => {
      engine = new Engine({ logger: testLogger() });
      const seen: number[] = [];
      engine.addRoutes(from<number>('queue:backlog?size=5000').routeId('backlog').maxInflight(8).process((m) => (seen.push(m.body), m)));
      await engine.start();
      let atTimer = -1;
      const sends: Array<Promise<void>> = [];
      for (let i = 0; i < 5000; i++) sends.push(engine.send('queue:backlog?size=5000', i));
      setImmediate(() => (atTimer = seen.length));
      await Promise.all(sends);
      await waitFor(() => seen.length === 5000, 5000, 'the backlog drained');
      expect(seen.every((v, i) => v === i), 'in order').to.equal(true);
      expect(atTimer, 'an immediate queued behind the backlog ran before all of it was handled').to.be.within(1, 4999);
      await engine.stopRoute('backlog');
      for (let i = 0; i < 3; i++) await engine.send('queue:backlog?size=5000', 5000 + i);
      await new Promise((r) => setTimeout(r, 20));
      expect(seen.length, 'a stopped route takes nothing').to.equal(5000);
      await engine.startRoute('backlog');
      await waitFor(() => seen.length === 5003, 2000, 'the rest after the restart');
      expect(seen.slice(5000)).to.deep.equal([5000, 5001, 5002]);
    });

    it('a send to a queue or topic with room completes in the sender\'s turn; the subscriber gets it in a later one, in order', async () => {
      engine = new Engine({ logger: testLogger() });
      const got: string[] = [];
      engine.addRoutes(from<number>('topic:burst.*').process((m) => (got.push(`t${m.body}`), m)), from<number>('queue:burst').process((m) => (got.push(`q${m.body}`), m)));
      await engine.start();
      let settled = 0;
      for (let i = 0; i < 3; i++) {
        void engine.send('topic:burst.a', i).then(() => settled++);
        void engine.send('queue:burst', i).then(() => settled++);
      }
      expect(got, 'nothing handled inside the sends').to.deep.equal([]);
      await Promise.resolve();
      expect(settled, 'every send done by the next microtask').to.equal(6);
      await waitFor(() => got.length === 6, 2000, 'six deliveries');
      expect(got.filter((g) => g.startsWith('t'))).to.deep.equal(['t0', 't1', 't2']);
      expect(got.filter((g) => g.startsWith('q'))).to.deep.equal(['q0', 'q1', 'q2']);
    });
  });

  describe('topic:', () => {
    it('matches AMQP-style wildcards', () => {
      expect(topicMatches('orders.*', 'orders.created')).to.equal(true);
      expect(topicMatches('orders.*', 'orders.created.eu')).to.equal(false);
      expect(topicMatches('orders.#', 'orders.created.eu')).to.equal(true);
      expect(topicMatches('orders.#', 'orders')).to.equal(true);
      expect(topicMatches('*.created', 'invoices.created')).to.equal(true);
      expect(topicMatches('orders.created', 'orders.deleted')).to.equal(false);
    });

    it('gives every matching subscriber its own copy', async () => {
      engine = new Engine({ logger: testLogger() });
      engine.addRoutes(
        from<{ n: number }>('topic:orders.*').transform((o) => ({ ...o, seenBy: 'all' })).to('mock:all'),
        from<{ n: number }>('topic:orders.big').to('mock:big'),
        from('topic:invoices.#').to('mock:invoices'),
      );
      await engine.start();
      await engine.send('topic:orders.big', { n: 1 });
      await engine.send('topic:orders.small', { n: 2 });
      await engine.mock('mock:all').expectCount(2).satisfied({ timeoutMs: 1000 });
      await engine.mock('mock:big').expectBodies([{ n: 1 }]).satisfied({ timeoutMs: 1000 });
      expect(engine.mock('mock:invoices').received).to.have.length(0);
      expect(engine.mock('mock:big').received[0]!.headers['busbar.topic']).to.equal('orders.big');
    });

    it('a subscriber that comes or goes while a topic is in use gets exactly what is published from then on; a full one is waited for', async () => {
      const hub = new TopicHub();
      const a = new BoundedQueue<Message>(2);
      const b = new BoundedQueue<Message>(10);
      const subA = { pattern: 'orders.*', queue: a };
      hub.subscribe(subA);
      expect(await hub.publish('orders.new', createMessage(1))).to.equal(1);
      // the topic's subscriber list was worked out for the first message: a new matching subscriber must still be in the next
      hub.subscribe({ pattern: 'orders.#', queue: b });
      expect(await hub.publish('orders.new', createMessage(2))).to.equal(2);
      hub.unsubscribe(subA);
      expect(await hub.publish('orders.new', createMessage(3))).to.equal(1);
      expect([a.poll()?.body, a.poll()?.body, a.poll()]).to.deep.equal([1, 2, undefined]);
      expect([b.poll()?.body, b.poll()?.body]).to.deep.equal([2, 3]);
      // a full queue: the publish waits until it has room
      hub.subscribe(subA);
      await hub.publish('orders.new', createMessage(4));
      await hub.publish('orders.new', createMessage(5));
      let done = false;
      const sixth = hub.publish('orders.new', createMessage(6)).then(() => (done = true));
      await new Promise((r) => setImmediate(r));
      expect(done, 'waiting for the full queue').to.equal(false);
      expect(a.poll()?.body).to.equal(4);
      await sixth;
      expect([a.poll()?.body, a.poll()?.body]).to.deep.equal([5, 6]);
    });

    it('connects several engines through one shared hub (an in-process bus)', async () => {
      const hub = new TopicHub();
      const a = new Engine({ name: 'a', logger: testLogger(), adapters: [topicAdapter(hub)] });
      const b = new Engine({ name: 'b', logger: testLogger(), adapters: [topicAdapter(hub)] });
      b.addRoutes(from('topic:events.#').to('mock:b'));
      await b.start();
      await a.start();
      await a.send('topic:events.user.created', { id: 7 });
      await b.mock('mock:b').expectBodies([{ id: 7 }]).satisfied({ timeoutMs: 1000 });
      await a.stop();
      await b.stop();
    });
  });

  describe('mock:', () => {
    it('fails satisfied() with MOCK_ASSERTION naming what differed', async () => {
      engine = new Engine({ logger: testLogger() });
      engine.addRoutes(from('direct:in').to('mock:m'));
      await engine.start();
      await engine.send('direct:in', 'a');
      const m = engine.mock('mock:m').expectBodies(['b', 'c']);
      const err = (await m.satisfied({ timeoutMs: 50 }).catch((e: unknown) => e)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_MOCK_ASSERTION');
      expect(err.details.problems).to.deep.equal(['expected 2 messages, received 1', 'message 0: expected body "b", got "a"']);
    });
  });

  describe('timer:', () => {
    it('ticks repeatCount times with a count', async () => {
      engine = new Engine({ logger: testLogger() });
      engine.addRoutes(from('timer:t?period=5&repeatCount=3').to('mock:ticks'));
      await engine.start();
      await engine.mock('mock:ticks').expectCount(3).satisfied({ timeoutMs: 2000 });
      expect(engine.mock('mock:ticks').bodies.map((b) => (b as { count: number }).count)).to.deep.equal([1, 2, 3]);
      await new Promise((r) => setTimeout(r, 30));
      expect(engine.mock('mock:ticks').received).to.have.length(3);
      expect(engine.stats().routes['route-1']!.source.status).to.equal('ended');
    });
  });

  describe('log:', () => {
    it('writes messages through the engine logger at the chosen level', async () => {
      const lines: Array<Record<string, unknown>> = [];
      const { pino } = await import('pino');
      const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
      engine = new Engine({ logger });
      engine.addRoutes(from('direct:in').to('log:audit?level=warn&showHeaders=true'));
      await engine.start();
      await engine.send('direct:in', { a: 1 }, { h: 'x' });
      const line = lines.find((l) => l.log === 'audit');
      expect(line).to.include({ level: 40, msg: 'audit' });
      expect(line!.body).to.deep.equal({ a: 1 });
      expect(line!.headers).to.deep.equal({ h: 'x' });
    });
  });
});
