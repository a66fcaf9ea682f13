import { pino } from 'pino';
import { createP2pAdapter, p2pPeer } from '../../dist/adapters/p2p/index.js';
import { createMessage, Engine, from } from '../../dist/lib/index.js';
import type { BenchCase } from '../harness.js';
import { closedLoop, tcpClient, tcpServer } from '../p2p-tcp.js';

const SECRET = 'bench-p2p-secret-0123456789abcdef';
const CONCURRENCY = 16;

/**
 * One publisher, three subscribers (four peers), each publish resolved when every subscriber
 * ran it through its route (the p2p adapter's acknowledgement), against a hand-written TCP
 * fan-out: the frame written to three length-prefixed connections, done when all three acked.
 */
const bench: BenchCase = {
  name: 'p2p-publish',
  description: 'p2p publish to 3 subscribers (acked) vs hand-written TCP fan-out with acks (16 publishers in flight)',
  async run({ quick }) {
    const total = quick ? 1000 : 10_000;
    let got = 0;
    const servers = await Promise.all([0, 1, 2].map(() => tcpServer(() => (got++, true))));
    const clients = await Promise.all(servers.map((s) => tcpClient(s.port)));
    const fanout = (i: number) => Promise.all(clients.map((c) => c.call({ i, topic: 'bench.orders.created' })));
    await closedLoop(300, CONCURRENCY, fanout);
    const base = await closedLoop(total, CONCURRENCY, fanout);
    for (const c of clients) c.close();
    for (const s of servers) await s.close();

    const logger = pino({ level: 'silent' });
    const pub = new Engine({ name: 'pub', logger, adapters: [createP2pAdapter({ secret: SECRET, name: 'bench-pub' })] });
    pub.addRoutes(from('p2p:direct:unused.pub').to('log:x?level=trace'));
    await pub.start();
    const seed = p2pPeer(pub)!.address;
    let received = 0;
    const subs: Engine[] = [];
    for (let i = 0; i < 3; i++) {
      const e = new Engine({ name: `sub${i}`, logger, adapters: [createP2pAdapter({ secret: SECRET, name: `bench-sub-${i}`, seeds: [seed] })] });
      e.addRoutes(from('p2p:topic:bench.orders.*').process((m) => (received++, m)));
      await e.start();
      subs.push(e);
    }
    const pp = p2pPeer(pub)!;
    for (let i = 0; i < 500 && pp.members().filter((m) => m.subs.includes('bench.orders.*')).length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    const publish = (i: number) => pub.sendMessage('p2p:topic:bench.orders.created', createMessage({ i }));
    await closedLoop(300, CONCURRENCY, publish);
    received = 0;
    const bus = await closedLoop(total, CONCURRENCY, publish);
    const delivered = received;
    for (const e of subs) await e.stop();
    await pub.stop();
    return { busbar_per_s: bus.perS, baseline_per_s: base.perS, ratio: Math.round((bus.perS / base.perS) * 1000) / 1000, busbar_p50_ms: bus.p50, busbar_p99_ms: bus.p99, baseline_p50_ms: base.p50, baseline_p99_ms: base.p99, publishes: total, deliveries: delivered, subscribers: 3 };
  },
};
export default bench;
