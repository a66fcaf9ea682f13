/**
 * Set-up shared by the p2p bench cases: engines with the p2p adapter on 127.0.0.1, the first
 * one the seed of the others, started one after the other, and a wait until a peer's view
 * satisfies what the case needs (a subscriber or a provider seen) before timing starts.
 */
import { pino } from 'pino';
import { createP2pAdapter, p2pPeer, type MemberView } from '../dist/adapters/p2p/index.js';
import { Engine, type RouteInput } from '../dist/lib/index.js';

const SECRET = 'bench-p2p-secret-0123456789abcdef';

export interface Peers {
  engines: Engine[];
  stop(): Promise<void>;
}

/** One engine per entry (name, its routes); the first is the seed of the others. */
export async function startPeers(specs: Array<{ name: string; routes: RouteInput[] }>): Promise<Peers> {
  const logger = pino({ level: 'silent' });
  const engines: Engine[] = [];
  for (const s of specs) {
    const seeds = engines.length ? [p2pPeer(engines[0]!)!.address] : [];
    const e = new Engine({ name: s.name, logger, adapters: [createP2pAdapter({ secret: SECRET, name: `bench-${s.name}`, seeds })] });
    e.addRoutes(...s.routes);
    await e.start();
    engines.push(e);
  }
  return {
    engines,
    async stop() {
      for (const e of [...engines].reverse()) await e.stop();
    },
  };
}

/** Wait (up to 10 s) until `engine`'s peer sees members satisfying `ok`. */
export async function untilView(engine: Engine, ok: (members: MemberView[]) => boolean): Promise<void> {
  const peer = p2pPeer(engine)!;
  for (let i = 0; i < 500 && !ok(peer.members()); i++) await new Promise((r) => setTimeout(r, 20));
}
