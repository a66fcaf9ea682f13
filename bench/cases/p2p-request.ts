import { createMessage, from } from '../../dist/lib/index.js';
import type { BenchCase } from '../harness.js';
import { startPeers, untilView } from '../p2p-peers.js';
import { closedLoop, tcpClient, tcpServer } from '../p2p-tcp.js';

const CONCURRENCY = 16;

/**
 * Request-reply between two peers (two engines with the p2p adapter, libp2p TCP + pnet +
 * Noise + Yamux, on 127.0.0.1), 16 callers in closed loops, against a hand-written TCP
 * length-prefixed JSON request-reply with the same callers, in the same process and run.
 */
const bench: BenchCase = {
  name: 'p2p-request',
  description: 'p2p request-reply between two peers vs hand-written TCP length-prefixed JSON (16 callers)',
  async run({ quick }) {
    const total = quick ? 2000 : 20_000;
    const reply = (b: unknown) => ({ ok: true, echo: b });

    const server = await tcpServer(reply);
    const client = await tcpClient(server.port);
    await closedLoop(500, CONCURRENCY, (i) => client.call({ i }));
    const base = await closedLoop(total, CONCURRENCY, (i) => client.call({ i }));
    client.close();
    await server.close();

    const peers = await startPeers([
      { name: 'b', routes: [from('p2p:direct:echo').transform(reply)] },
      { name: 'a', routes: [from('p2p:direct:unused.a').to('log:x?level=trace')] },
    ]);
    const a = peers.engines[1]!;
    await untilView(a, (ms) => ms.some((m) => m.name === 'bench-b' && m.services.includes('direct:echo')));
    const call = (i: number) => a.requestMessage('p2p:direct:echo', createMessage({ i }));
    await closedLoop(500, CONCURRENCY, call);
    const bus = await closedLoop(total, CONCURRENCY, call);
    await peers.stop();
    return { busbar_per_s: bus.perS, baseline_per_s: base.perS, ratio: Math.round((bus.perS / base.perS) * 1000) / 1000, busbar_p50_ms: bus.p50, busbar_p99_ms: bus.p99, baseline_p50_ms: base.p50, baseline_p99_ms: base.p99, calls: total, concurrency: CONCURRENCY };
  },
};
export default bench;
