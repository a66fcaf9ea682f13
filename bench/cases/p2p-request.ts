import { pino } from 'pino';
import { createP2pAdapter, p2pPeer } from '../../dist/adapters/p2p/index.js';
import { createMessage, Engine, from } from '../../dist/lib/index.js';
import type { BenchCase } from '../harness.js';
import { closedLoop, tcpClient, tcpServer } from '../p2p-tcp.js';

const SECRET = 'bench-p2p-secret-0123456789abcdef';
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

    const logger = pino({ level: 'silent' });
    const b = new Engine({ name: 'b', logger, adapters: [createP2pAdapter({ secret: SECRET, name: 'bench-b' })] });
    b.addRoutes(from('p2p:direct:echo').transform(reply));
    await b.start();
    const a = new Engine({ name: 'a', logger, adapters: [createP2pAdapter({ secret: SECRET, name: 'bench-a', seeds: [p2pPeer(b)!.address] })] });
    a.addRoutes(from('p2p:direct:unused.a').to('log:x?level=trace'));
    await a.start();
    const pa = p2pPeer(a)!;
    for (let i = 0; i < 500 && !pa.members().some((m) => m.name === 'bench-b' && m.services.includes('direct:echo')); i++) await new Promise((r) => setTimeout(r, 20));
    const call = (i: number) => a.requestMessage('p2p:direct:echo', createMessage({ i }));
    await closedLoop(500, CONCURRENCY, call);
    const bus = await closedLoop(total, CONCURRENCY, call);
    await a.stop();
    await b.stop();
    return { busbar_per_s: bus.perS, baseline_per_s: base.perS, ratio: Math.round((bus.perS / base.perS) * 1000) / 1000, busbar_p50_ms: bus.p50, busbar_p99_ms: bus.p99, baseline_p50_ms: base.p50, baseline_p99_ms: base.p99, calls: total, concurrency: CONCURRENCY };
  },
};
export default bench;
