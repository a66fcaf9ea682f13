import { createMessage, from } from '../../dist/lib/index.js';
import type { BenchCase } from '../harness.js';
import { startPeers, untilView } from '../p2p-peers.js';
import { closedLoop, tcpClient, tcpServer } from '../p2p-tcp.js';

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

    let received = 0;
    const peers = await startPeers([
      { name: 'pub', routes: [from('p2p:direct:unused.pub').to('log:x?level=trace')] },
      ...[0, 1, 2].map((i) => ({ name: `sub-${i}`, routes: [from('p2p:topic:bench.orders.*').process((m) => (received++, m))] })),
    ]);
    const pub = peers.engines[0]!;
    await untilView(pub, (ms) => ms.filter((m) => m.subs.includes('bench.orders.*')).length >= 3);
    const publish = (i: number) => pub.sendMessage('p2p:topic:bench.orders.created', createMessage({ i }));
    await closedLoop(300, CONCURRENCY, publish);
    received = 0;
    const bus = await closedLoop(total, CONCURRENCY, publish);
    const delivered = received;
    await peers.stop();
    return { busbar_per_s: bus.perS, baseline_per_s: base.perS, ratio: Math.round((bus.perS / base.perS) * 1000) / 1000, busbar_p50_ms: bus.p50, busbar_p99_ms: bus.p99, baseline_p50_ms: base.p50, baseline_p99_ms: base.p99, publishes: total, deliveries: delivered, subscribers: 3 };
  },
};
export default bench;
