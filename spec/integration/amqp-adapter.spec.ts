import { expect } from 'chai';
import { createAmqpAdapter, formatPlan, planTopology, type AmqpConfig } from '../../adapters/amqp/index.js';
import { BusbarError, createMessage, Engine, from, type Adapter } from '../../lib/index.js';
import { Broker, uniqueName } from '../adapters/amqp/amqp-helpers.js';
import { AMQP_URL, latch, rejection, testLogger, waitFor } from '../helpers.js';

function codeOf(err: unknown): string | undefined {
  return (err as BusbarError | undefined)?.code;
}

describe('amqp adapter against RabbitMQ', function () {
  this.timeout(30_000);
  let broker: Broker;
  const engines: Engine[] = [];

  function engine(adapter: Adapter = createAmqpAdapter({ url: AMQP_URL }), opts: { maxInflight?: number } = {}): Engine {
    const e = new Engine({ logger: testLogger(), adapters: [adapter], stopTimeoutMs: 5000, ...opts });
    engines.push(e);
    return e;
  }

  before(async () => {
    broker = await Broker.open(); // fails, never skips, when RabbitMQ is unreachable
  });
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.stop();
    await broker.cleanup();
    broker = await Broker.open();
  });
  after(async () => {
    await broker?.cleanup();
  });

  it('maps body, headers, content type, message id, correlation id and timestamp both ways', async () => {
    const q = broker.track('queue', uniqueName('map'));
    const e = engine();
    e.addRoutes(from(`amqp:queue:${q}`).to('mock:out'));
    await e.start();
    const sent = [
      createMessage({ a: 1 }, { headers: { x: 'one', n: 2, flag: true }, correlationId: 'corr-1' }),
      createMessage('plain text', { headers: { list: ['a', 'b'] } }),
      createMessage(Buffer.from([0, 1, 2, 255])),
      createMessage('{"b":2}', { headers: { 'content-type': 'application/json' }, correlationId: 'corr-2' }),
    ];
    for (const m of sent) await e.sendMessage(`amqp:queue:${q}`, m);
    const mock = e.mock('mock:out');
    mock.expectCount(4);
    await mock.satisfied({ timeoutMs: 5000 });
    const byId = new Map(mock.received.map((m) => [m.id, m]));
    const [obj, text, bin, json] = sent.map((m) => byId.get(m.id)!);
    expect(obj!.body).to.equal('{"a":1}');
    expect(obj!.headers).to.include({ x: 'one', n: 2, flag: true, 'content-type': 'application/json', 'amqp.routingKey': q, 'amqp.exchange': '', 'amqp.redelivered': false, 'amqp.deliveries': 1 });
    expect(obj!.correlationId).to.equal('corr-1');
    expect(obj!.timestamp).to.equal(Math.floor(sent[0]!.timestamp / 1000) * 1000); // AMQP timestamps are whole seconds
    expect(text!.body).to.equal('plain text');
    expect(text!.headers['content-type']).to.equal('text/plain');
    expect(text!.headers.list).to.deep.equal(['a', 'b']);
    expect(text!.correlationId).to.equal(sent[1]!.id);
    expect(Buffer.isBuffer(bin!.body)).to.equal(true);
    expect([...(bin!.body as Buffer)]).to.deep.equal([0, 1, 2, 255]);
    expect(bin!.headers['content-type']).to.equal('application/octet-stream');
    expect(json!.body).to.equal('{"b":2}');
    expect(json!.headers['content-type']).to.equal('application/json');
    expect(json!.correlationId).to.equal('corr-2');
    // persistent by default
    const raw = await broker.channel();
    await raw.sendToQueue(q, Buffer.from('{"c":3}'), { contentType: 'application/json', messageId: 'raw-1', correlationId: 'c-raw', headers: { h: 'v' }, type: 't1', appId: 'app', priority: 3 });
    await waitFor(() => mock.received.length === 5, 5000, 'the raw message');
    const r = mock.received[4]!;
    expect(r.id).to.equal('raw-1');
    expect(r.correlationId).to.equal('c-raw');
    expect(r.headers).to.include({ h: 'v', 'amqp.type': 't1', 'amqp.appId': 'app', 'amqp.priority': 3 });
  });

  it('publishes persistent messages with confirms, pipelined through a bounded window, all of them arriving', async () => {
    const q = broker.track('queue', uniqueName('window'));
    const e = engine();
    await e.start();
    const uri = `amqp:queue:${q}?confirmWindow=200`;
    const n = 3000;
    await Promise.all(Array.from({ length: n }, (_, i) => e.send(uri, { i })));
    expect((await broker.queueCount(q)).messageCount).to.equal(n);
    const got = await broker.drain(q);
    expect(got).to.have.length(n);
    expect(got.every((m) => m.properties.deliveryMode === 2)).to.equal(true);
    expect(new Set(got.map((m) => (JSON.parse(m.content.toString()) as { i: number }).i)).size).to.equal(n);
  });

  it('parses JSON bodies with bodyType=json and dead-letters one that is not JSON with PARSE', async () => {
    const q = broker.track('queue', uniqueName('json'));
    const e = engine();
    e.addRoutes(from(`amqp:queue:${q}?bodyType=json&deadLetter=mock:poison`).to('mock:out'));
    await e.start();
    const ch = await broker.channel();
    ch.sendToQueue(q, Buffer.from('{"ok":true}'), { contentType: 'application/json', messageId: 'good' });
    ch.sendToQueue(q, Buffer.from('not json {'), { contentType: 'application/json', messageId: 'bad' });
    const poison = e.mock('mock:poison');
    await waitFor(() => poison.received.length === 1 && e.mock('mock:out').received.length === 1, 5000, 'both messages');
    expect(e.mock('mock:out').received[0]!.body).to.deep.equal({ ok: true });
    expect(poison.received[0]!.id).to.equal('bad');
    expect(poison.received[0]!.headers['busbar.error.code']).to.equal('BUSBAR_ERR_PARSE');
    expect((poison.received[0]!.body as Buffer).toString()).to.equal('not json {');
    await waitFor(async () => (await broker.queueCount(q)).messageCount === 0, 5000, 'queue empty');
  });

  it('declares the topology at start: every exchange type, classic/quorum/stream queues, bindings, dead-letter exchange and TTL', async () => {
    const x = (k: string): string => broker.track('exchange', uniqueName(`ex-${k}`));
    const qn = (k: string): string => broker.track('queue', uniqueName(`q-${k}`));
    const [direct, topic, fanout, headers, dlx] = [x('direct'), x('topic'), x('fanout'), x('headers'), x('dlx')];
    const [classic, quorum, stream, ttl, dlq] = [qn('classic'), qn('quorum'), qn('stream'), qn('ttl'), qn('dlq')];
    const config: AmqpConfig = {
      url: AMQP_URL,
      topology: {
        exchanges: [
          { name: direct, type: 'direct' },
          { name: topic, type: 'topic' },
          { name: fanout, type: 'fanout' },
          { name: headers, type: 'headers' },
          { name: dlx, type: 'fanout' },
        ],
        queues: [
          { name: classic, type: 'classic', maxLength: 1000 },
          { name: quorum, type: 'quorum', deliveryLimit: 5 },
          { name: stream, type: 'stream', maxAge: '1D' },
          { name: ttl, messageTtlMs: 20, deadLetterExchange: dlx },
          { name: dlq },
        ],
        bindings: [
          { exchange: topic, queue: classic, routingKey: 'orders.*' },
          { exchange: fanout, queue: quorum },
          { exchange: dlx, queue: dlq },
          { exchange: headers, queue: classic, arguments: { 'x-match': 'all', kind: 'h' } },
          { exchange: direct, toExchange: fanout, routingKey: 'k' },
        ],
      },
    };
    const e = engine(createAmqpAdapter(config));
    e.addRoutes(from(`amqp:queue:${classic}`).to('mock:classic'), from(`amqp:queue:${quorum}`).to('mock:quorum'));
    await e.start();
    const ch = await broker.channel();
    for (const name of [direct, topic, fanout, headers, dlx]) await ch.checkExchange(name);
    for (const name of [classic, quorum, stream, ttl, dlq]) await ch.checkQueue(name);
    await e.send(`amqp:exchange:${topic}?routingKey=orders.nl`, 'via topic');
    await e.send(`amqp:exchange:${headers}`, 'via headers', { kind: 'h' });
    await e.send(`amqp:exchange:${direct}?routingKey=k`, 'via direct and exchange binding');
    await e.send(`amqp:queue:${ttl}`, 'expires');
    await e.mock('mock:classic').expectBodies(['via topic', 'via headers']).satisfied({ timeoutMs: 5000 });
    await e.mock('mock:quorum').expectBodies(['via direct and exchange binding']).satisfied({ timeoutMs: 5000 });
    await waitFor(async () => (await broker.queueCount(dlq)).messageCount === 1, 5000, 'the expired message in the dead-letter queue');
    const [dead] = await broker.drain(dlq);
    expect(dead!.content.toString()).to.equal('expires');
  });

  it('reports a declaration conflict as AMQP_TOPOLOGY_CONFLICT: the plan shows it without changing the broker, the start fails with it', async () => {
    const q = broker.track('queue', uniqueName('conflict'));
    const fresh = uniqueName('fresh');
    const freshEx = uniqueName('fresh-ex');
    const same = broker.track('queue', uniqueName('same'));
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.assertQueue(same, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    const config: AmqpConfig = {
      url: AMQP_URL,
      topology: {
        exchanges: [{ name: freshEx, type: 'topic' }],
        queues: [{ name: q, type: 'classic' }, { name: fresh }, { name: same, type: 'quorum' }],
        bindings: [{ exchange: freshEx, queue: fresh, routingKey: 'a.#' }],
      },
    };
    const plan = await planTopology(config, AMQP_URL);
    const item = (name: string) => plan.items.find((i) => i.name === name);
    expect(plan.ok).to.equal(false);
    expect(item(q)!.action).to.equal('conflict');
    expect(item(q)!.error!.code).to.equal('BUSBAR_ERR_AMQP_TOPOLOGY_CONFLICT');
    expect(item(fresh)!.action).to.equal('create');
    expect(item(freshEx)!.action).to.equal('create');
    expect(item(same)!.action).to.equal('unchanged');
    expect(plan.items.find((i) => i.kind === 'binding')!.action).to.equal('create');
    expect(plan.counts).to.deep.include({ conflict: 1, create: 3, unchanged: 1 });
    expect(formatPlan(plan)).to.include('BUSBAR_ERR_AMQP_TOPOLOGY_CONFLICT');
    expect(plan.url).to.not.include('guest:guest');
    // the plan created nothing
    expect(await broker.queueExists(fresh)).to.equal(false);
    const e = engine(createAmqpAdapter(config));
    e.addRoutes(from(`amqp:queue:${q}`).to('mock:out'));
    const err = await rejection(e.start());
    expect(err.code).to.equal('BUSBAR_ERR_ROUTE_START_FAILED');
    const cause = err.cause as BusbarError;
    expect(cause.code).to.equal('BUSBAR_ERR_AMQP_TOPOLOGY_CONFLICT');
    expect(cause.details).to.include({ kind: 'queue', name: q });
    // nothing was redeclared: still a quorum queue (a classic declare now fails)
    const probe = await broker.connection.createChannel();
    probe.on('error', () => undefined);
    const redeclare = await rejection(probe.assertQueue(q, { durable: true }));
    expect((redeclare as unknown as { code: number }).code).to.equal(406);
  });

  it('fails a mandatory publish that no queue receives with AMQP_UNROUTABLE', async () => {
    const ex = broker.track('exchange', uniqueName('unroutable'));
    const e = engine(createAmqpAdapter({ url: AMQP_URL, topology: { exchanges: [{ name: ex, type: 'direct' }] } }));
    await e.start();
    const err = await rejection(e.send(`amqp:exchange:${ex}?routingKey=nowhere&mandatory=true`, 'lost?'));
    expect(err.code).to.equal('BUSBAR_ERR_AMQP_UNROUTABLE');
    // pub/sub default: nobody listening is fine
    await e.send(`amqp:exchange:${ex}?routingKey=nowhere`, 'fine');
  });

  it('acks only after the route finished, with prefetch = the route in-flight bound', async () => {
    const q = broker.track('queue', uniqueName('prefetch'));
    const e = engine();
    const { wait: gate, open: open } = latch();
    e.addRoutes(from(`amqp:queue:${q}`).routeId('slow').maxInflight(3).process(async (m) => {
      await gate;
      return m;
    }).to('mock:out'));
    await e.start();
    const ch = await broker.channel();
    for (let i = 0; i < 10; i++) ch.sendToQueue(q, Buffer.from(String(i)));
    await waitFor(() => e.stats().routes.slow!.inflight === 3, 5000, 'three messages in the route');
    await waitFor(async () => (await broker.queueCount(q)).messageCount === 7, 5000, 'seven still ready on the broker');
    expect(e.mock('mock:out').received).to.have.length(0);
    open();
    await e.mock('mock:out').expectCount(10).satisfied({ timeoutMs: 5000 });
    // acked: stopping and reconnecting finds nothing left
    await e.stop();
    expect((await broker.queueCount(q)).messageCount).to.equal(0);
  });

  it('puts a failing message back with its delivery count and dead-letters it after maxDeliveries with the reason', async () => {
    const q = broker.track('queue', uniqueName('poison'));
    const e = engine();
    e.addRoutes(from(`amqp:queue:${q}?maxDeliveries=3&deadLetter=mock:poison`).routeId('failing').process(() => {
      throw new Error('always fails');
    }));
    await e.start();
    (await broker.channel()).sendToQueue(q, Buffer.from('bad'), { messageId: 'm-1' });
    const poison = e.mock('mock:poison');
    await poison.expectCount(1).satisfied({ timeoutMs: 10_000 });
    const dead = poison.received[0]!;
    expect(dead.id).to.equal('m-1');
    expect(dead.headers['busbar.error.code']).to.equal('BUSBAR_ERR_AMQP_POISON');
    expect(dead.headers['busbar.error.attempts']).to.equal(4);
    expect(dead.headers['busbar.error.routeId']).to.equal('failing');
    expect(e.stats().routes.failing!.failed).to.equal(3);
    await waitFor(async () => (await broker.queueCount(q)).messageCount === 0, 5000, 'queue empty');
  });

  it('acks a failure the route dead-lettered (no redelivery)', async () => {
    const q = broker.track('queue', uniqueName('dlq'));
    const e = engine();
    e.addRoutes(from(`amqp:queue:${q}`).routeId('r').deadLetter('mock:dlq').process(() => {
      throw new Error('nope');
    }));
    await e.start();
    (await broker.channel()).sendToQueue(q, Buffer.from('x'));
    await e.mock('mock:dlq').expectCount(1).satisfied({ timeoutMs: 5000 });
    await e.stop();
    expect((await broker.queueCount(q)).messageCount).to.equal(0);
    expect(e.stats().routes.r!.received).to.equal(1);
  });

  it('counts quorum-queue redeliveries from x-delivery-count', async () => {
    const q = broker.track('queue', uniqueName('quorum-count'));
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    ch.sendToQueue(q, Buffer.from('crashy'), { messageId: 'crashy' });
    for (let i = 0; i < 3; i++) {
      let m: false | import('amqplib').GetMessage = false;
      await waitFor(async () => (m = await ch.get(q, { noAck: false })) !== false, 5000, 'the message');
      ch.nack(m as unknown as import('amqplib').Message, false, true);
    }
    const e = engine();
    e.addRoutes(from(`amqp:queue:${q}?maxDeliveries=3&deadLetter=mock:poison`).routeId('quorum').to('mock:out'));
    await e.start();
    await e.mock('mock:poison').expectCount(1).satisfied({ timeoutMs: 5000 });
    expect(e.mock('mock:poison').received[0]!.headers['amqp.deliveries']).to.equal(4);
    expect(e.stats().routes.quorum!.received).to.equal(0);
  });

  it('without a deadLetter option, poison and undecodable messages go through the route\'s error policy', async () => {
    const q = broker.track('queue', uniqueName('policy-poison'));
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    // a message the broker has delivered three times already (a consumer crashed on it)
    ch.sendToQueue(q, Buffer.from('{"crashy":true}'), { messageId: 'crashy', contentType: 'application/json' });
    for (let i = 0; i < 3; i++) {
      let m: false | import('amqplib').GetMessage = false;
      await waitFor(async () => (m = await ch.get(q, { noAck: false })) !== false, 5000, 'the message');
      ch.nack(m as unknown as import('amqplib').Message, false, true);
    }
    ch.sendToQueue(q, Buffer.from('not json {'), { messageId: 'garbled', contentType: 'application/json' });
    ch.sendToQueue(q, Buffer.from('{"fine":1}'), { messageId: 'fine', contentType: 'application/json' });
    const e = engine();
    e.addRoutes(
      from(`amqp:queue:${q}?bodyType=json&maxDeliveries=3`)
        .routeId('guarded')
        .errorPolicy({ deadLetter: 'mock:dlq', on: [{ codes: ['BUSBAR_ERR_AMQP_POISON'], deadLetter: 'mock:poison' }] })
        .to('mock:out'),
    );
    await e.start();
    await waitFor(() => e.mock('mock:out').received.length === 1 && e.mock('mock:dlq').received.length === 1 && e.mock('mock:poison').received.length === 1, 5000, 'all three messages');
    const poison = e.mock('mock:poison').received[0]!;
    expect(poison.id).to.equal('crashy');
    expect(poison.headers['busbar.error.code']).to.equal('BUSBAR_ERR_AMQP_POISON');
    expect(poison.headers['busbar.error.attempts']).to.equal(4);
    expect(poison.headers['busbar.error.routeId']).to.equal('guarded');
    expect(poison.headers['busbar.error.step']).to.equal('amqp consumer');
    const garbled = e.mock('mock:dlq').received[0]!;
    expect(garbled.id).to.equal('garbled');
    expect(garbled.headers['busbar.error.code']).to.equal('BUSBAR_ERR_PARSE');
    expect(e.mock('mock:out').received[0]!.body).to.deep.equal({ fine: 1 });
    const stats = e.stats().routes.guarded!;
    expect(stats).to.include({ received: 3, completed: 1, failed: 2, deadLettered: 2 });
    // all acknowledged: nothing left on the broker
    await waitFor(async () => (await broker.queueCount(q)).messageCount === 0, 5000, 'queue empty');
  });

  it('without a deadLetter option or a route dead-letter endpoint, a poison message goes to the queue\'s dead-letter exchange', async () => {
    const q = broker.track('queue', uniqueName('dlx-poison'));
    const dlq = broker.track('queue', uniqueName('dlx-poison-dead'));
    const ch = await broker.channel();
    await ch.assertQueue(dlq, { durable: true });
    await ch.assertQueue(q, { durable: true, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dlq } });
    const e = engine();
    e.addRoutes(from(`amqp:queue:${q}?bodyType=json`).routeId('unguarded').to('mock:out'));
    await e.start();
    ch.sendToQueue(q, Buffer.from('not json {'), { messageId: 'garbled', contentType: 'application/json' });
    await waitFor(async () => (await broker.queueCount(dlq)).messageCount === 1, 5000, 'the message in the dead-letter queue');
    expect((await broker.queueCount(q)).messageCount).to.equal(0);
    expect(e.stats().routes.unguarded!).to.include({ received: 1, failed: 1, deadLettered: 0 });
  });

  it('reads a stream queue from an offset; a failed message is skipped, never appended again; a restart resumes after the last finished offset', async () => {
    const s = uniqueName('stream');
    const adapter = createAmqpAdapter({ url: AMQP_URL, topology: { queues: [{ name: s, type: 'stream' }] } });
    broker.track('queue', s);
    const publish = async (from: number, to: number): Promise<void> => {
      const ch = await broker.connection.createConfirmChannel();
      for (let i = from; i < to; i++) ch.sendToQueue(s, Buffer.from(JSON.stringify({ seq: i })), { contentType: 'application/json', messageId: `s-${i}` });
      await ch.waitForConfirms();
      await ch.close();
    };
    const seqs = (uri: string): number[] => engineOf(uri).mock(uri).received.map((m) => (m.body as { seq: number }).seq);
    const byUri = new Map<string, Engine>();
    const engineOf = (uri: string): Engine => byUri.get(uri)!;

    // the reader declares the stream (topology), then 5 messages arrive; the one with seq 1 fails
    const reader = engine(adapter);
    reader.addRoutes(
      from(`amqp:queue:${s}?streamOffset=first&bodyType=json`)
        .routeId('reader')
        .process((m) => {
          if ((m.body as { seq: number }).seq === 1) throw new Error('cannot take seq 1');
          return m;
        })
        .to('mock:read'),
    );
    byUri.set('mock:read', reader);
    await reader.start();
    await publish(0, 5);
    await reader.mock('mock:read').expectCount(4).satisfied({ timeoutMs: 5000 });
    expect(seqs('mock:read')).to.deep.equal([0, 2, 3, 4]);
    expect(reader.stats().routes.reader).to.include({ failed: 1 });
    expect(reader.mock('mock:read').received[0]!.headers['x-stream-offset']).to.equal(0);

    // stopped and started again: only what came meanwhile, not the stream from the start
    await reader.stop();
    await publish(5, 7);
    await reader.start();
    await reader.mock('mock:read').expectCount(6).satisfied({ timeoutMs: 5000 });
    expect(seqs('mock:read')).to.deep.equal([0, 2, 3, 4, 5, 6]);

    // another reader from offset 2 sees the stream as published: the failure appended no copy
    const late = engine(adapter);
    late.addRoutes(from(`amqp:queue:${s}?streamOffset=2&bodyType=json`).routeId('late').to('mock:late'));
    byUri.set('mock:late', late);
    await late.start();
    await late.mock('mock:late').expectCount(5).satisfied({ timeoutMs: 5000 });
    await publish(7, 8); // a sentinel: a copy of seq 1 appended earlier would have come before it
    await late.mock('mock:late').expectCount(6).satisfied({ timeoutMs: 5000 });
    expect(seqs('mock:late')).to.deep.equal([2, 3, 4, 5, 6, 7]);
  });

  it('reads a stream from a point in time (a timestamp offset)', async () => {
    const s = broker.track('queue', uniqueName('stream-time'));
    const ch = await broker.connection.createConfirmChannel();
    await ch.assertQueue(s, { durable: true, arguments: { 'x-queue-type': 'stream' } });
    for (let i = 0; i < 3; i++) ch.sendToQueue(s, Buffer.from(String(i)), { messageId: `t-${i}` });
    await ch.waitForConfirms();
    await ch.close();
    const since = new Date(Date.now() - 3_600_000).toISOString(); // an hour ago: everything
    const e = engine();
    e.addRoutes(from(`amqp:queue:${s}?streamOffset=${encodeURIComponent(since)}&bodyType=string`).routeId('since').to('mock:since'));
    await e.start();
    await e.mock('mock:since').expectCount(3).satisfied({ timeoutMs: 5000 });
    expect(e.mock('mock:since').received.map((m) => m.body)).to.deep.equal(['0', '1', '2']);
  });

  it('refuses a streamOffset that is not first, last, next, an offset or a time', () => {
    const e = engine();
    expect(() => e.addRoutes(from(`amqp:queue:${uniqueName('s')}?streamOffset=yesterday`).to('mock:x'))).to.throw(BusbarError).with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
    expect(() => e.addRoutes(from(`amqp:queue:${uniqueName('s')}?streamOffset=2026-13-45T99:99:99Z`).to('mock:x'))).to.throw(BusbarError).with.property('code', 'BUSBAR_ERR_INVALID_OPTION');
  });

  it('request-reply over direct reply-to, with concurrent calls and remote failures', async () => {
    const q = broker.track('queue', uniqueName('rpc'));
    const server = engine();
    server.addRoutes(
      from<string>(`amqp:queue:${q}`).routeId('rpc').deadLetter('mock:rpc-failed').process((m) => {
        if (m.body === 'fail') throw new Error('cannot');
        return { ...m, body: m.body.toUpperCase(), headers: { ...m.headers, served: 'yes' } };
      }),
    );
    await server.start();
    const client = engine();
    await client.start();
    expect(await client.request(`amqp:queue:${q}`, 'hello')).to.equal('HELLO');
    const bodies = Array.from({ length: 20 }, (_, i) => `m${i}`);
    const replies = await Promise.all(bodies.map((b) => client.request(`amqp:queue:${q}`, b)));
    expect(replies).to.deep.equal(bodies.map((b) => b.toUpperCase()));
    const reply = await client.requestMessage(`amqp:queue:${q}`, createMessage('x', { correlationId: 'conv-7' }));
    expect(reply.headers.served).to.equal('yes');
    expect(reply.correlationId).to.equal('conv-7');
    const err = await rejection(client.request(`amqp:queue:${q}`, 'fail'));
    expect(err.code).to.equal('BUSBAR_ERR_AMQP_REMOTE_ERROR');
    expect(err.details.remoteCode).to.equal('BUSBAR_ERR_STEP_FAILED');
  });

  it('pub/sub over a topic exchange with wildcard subscriptions, and competing consumers on a shared queue', async () => {
    const bus = broker.track('exchange', uniqueName('bus'));
    const shared = broker.track('queue', uniqueName('shared'));
    const config: AmqpConfig = { url: AMQP_URL, topology: { exchanges: [{ name: bus, type: 'topic' }] } };
    const a = engine(createAmqpAdapter(config));
    const b = engine(createAmqpAdapter(config));
    a.addRoutes(from(`amqp:exchange:${bus}?bindingKey=orders.*`).to('mock:orders'), from(`amqp:exchange:${bus}?bindingKey=orders.created&queue=${shared}`).to('mock:work'));
    b.addRoutes(from(`amqp:exchange:${bus}?bindingKey=#`).to('mock:all'), from(`amqp:exchange:${bus}?bindingKey=orders.created&queue=${shared}`).to('mock:work'));
    await a.start();
    await b.start();
    for (const kind of ['created', 'created', 'paid', 'created']) await a.send(`amqp:exchange:${bus}?routingKey=orders.{header.kind}`, kind, { kind });
    await a.send(`amqp:exchange:${bus}?routingKey=invoices.sent`, 'invoice');
    await a.mock('mock:orders').expectCount(4).satisfied({ timeoutMs: 5000 });
    await b.mock('mock:all').expectCount(5).satisfied({ timeoutMs: 5000 });
    await waitFor(() => a.mock('mock:work').received.length + b.mock('mock:work').received.length === 3, 5000, 'the shared queue drained');
    const work = [...a.mock('mock:work').received, ...b.mock('mock:work').received].map((m) => m.id);
    expect(new Set(work).size).to.equal(3);
  });

  it('subscribes again when the broker cancels the consumer (queue deleted)', async () => {
    const q = broker.track('queue', uniqueName('cancel'));
    const e = engine();
    e.addRoutes(from(`amqp:queue:${q}`).routeId('c').to('mock:out'));
    await e.start();
    await e.send(`amqp:queue:${q}`, 'before');
    await e.mock('mock:out').expectCount(1).satisfied({ timeoutMs: 5000 });
    await (await broker.channel()).deleteQueue(q);
    // the consumer re-creates the queue (declare=true) and consumes again
    await waitFor(async () => (await broker.queueExists(q)) && (await broker.queueCount(q)).consumerCount === 1, 10_000, 'the consumer back on its queue');
    expect(e.stats().routes.c!.source.status).to.equal('connected');
    await e.send(`amqp:queue:${q}`, 'after');
    await e.mock('mock:out').expectCount(2).satisfied({ timeoutMs: 5000 });
  });

  it('fails to start with AMQP_CONNECTION when the broker is unreachable, without showing the password', async () => {
    const e = engine(createAmqpAdapter({ url: 'amqp://user:sekret-pw@127.0.0.1:1', reconnect: { startAttempts: 2, initialDelayMs: 10 } }));
    e.addRoutes(from('amqp:queue:never').routeId('down').to('mock:out'));
    const err = await rejection(e.start());
    expect(err.code).to.equal('BUSBAR_ERR_ROUTE_START_FAILED');
    expect(codeOf(err.cause)).to.equal('BUSBAR_ERR_AMQP_CONNECTION');
    expect(JSON.stringify({ m: err.message, c: (err.cause as Error).message, d: (err.cause as BusbarError).details })).to.not.include('sekret-pw');
    expect(e.stats().routes.down!.source.status).to.equal('disconnected');
  });
});
