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
