import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { Broker, uniqueName } from '../adapters/amqp/amqp-helpers.js';
import { AMQP_URL, waitFor } from '../helpers.js';

const NODE = fileURLToPath(new URL('../adapters/amqp/fixtures/amqp-node.ts', import.meta.url));

interface Child {
  proc: ChildProcess;
  lines: Array<Record<string, unknown>>;
  send(cmd: unknown): void;
}

function start(args: string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', NODE, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  return { proc, lines, send: (cmd) => proc.stdin!.write(`${JSON.stringify(cmd)}\n`) };
}

function got(c: Child): unknown[] {
  return c.lines.filter((l) => 'got' in l).map((l) => l.got);
}

async function stopAll(children: Child[]): Promise<void> {
  for (const c of children) {
    if (c.proc.exitCode === null) c.send({ stop: true });
  }
  await Promise.all(children.map((c) => (c.proc.exitCode !== null ? undefined : new Promise<void>((r) => {
    const t = setTimeout(() => {
      c.proc.kill('SIGKILL');
      r();
    }, 15_000);
    c.proc.once('exit', () => {
      clearTimeout(t);
      r();
    });
  }))));
}

describe('amqp across processes', function () {
  this.timeout(90_000);
  let broker: Broker;
  let children: Child[] = [];

  before(async () => {
    broker = await Broker.open(); // fails, never skips, when RabbitMQ is unreachable
  });
  afterEach(async () => {
    await stopAll(children);
    children = [];
  });
  after(async () => {
    await broker?.cleanup();
  });

  it('is a pub/sub bus: 3 engine processes exchange events over a topic exchange, each seeing what its wildcard binding matches', async () => {
    const bus = broker.track('exchange', uniqueName('bus'));
    const names = ['alpha', 'beta', 'gamma'];
    children = names.map((n) => start(['bus', AMQP_URL, bus, n, 'events.*.created']));
    await waitFor(() => children.every((c) => c.lines.some((l) => l.ready)), 60_000, 'three processes ready');
    const n = 20;
    for (const c of children) c.send({ publish: n });
    await waitFor(() => children.every((c) => c.lines.some((l) => l.published === n)), 30_000, 'every process published');
    await waitFor(() => children.every((c) => got(c).length === 3 * n), 30_000, 'every process got every created event');
    for (const c of children) {
      const events = got(c) as Array<{ from: string; i: number; kind: string }>;
      // only what `events.*.created` matches: the deleted events were published but not routed here
      expect(events.every((e) => e.kind === 'created')).to.equal(true);
      expect(new Set(events.map((e) => e.from))).to.deep.equal(new Set(names));
      expect(new Set(events.map((e) => `${e.from}/${e.i}`)).size).to.equal(3 * n);
    }
  });

  it('scales out: 3 processes competing on one queue share the load and process each message once', async () => {
    const q = broker.track('queue', uniqueName('work'));
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true });
    children = ['w1', 'w2', 'w3'].map((n) => start(['worker', AMQP_URL, q, n]));
    await waitFor(() => children.every((c) => c.lines.some((l) => l.ready)), 60_000, 'three workers ready');
    const n = 600;
    for (let i = 0; i < n; i++) ch.sendToQueue(q, Buffer.from(JSON.stringify({ i })), { contentType: 'application/json', persistent: true });
    await waitFor(() => children.reduce((s, c) => s + got(c).length, 0) >= n, 60_000, 'all messages processed');
    await waitFor(async () => (await broker.queueCount(q)).messageCount === 0, 10_000, 'queue empty');
    await stopAll(children);
    const all = children.flatMap((c) => got(c) as number[]);
    expect(all).to.have.length(n);
    expect(new Set(all).size).to.equal(n);
    // every process took a share
    for (const c of children) expect(got(c).length).to.be.greaterThan(0);
  });
});
