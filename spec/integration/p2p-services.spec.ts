import { expect } from 'chai';
import { createP2pAdapter, p2pPeer } from '../../adapters/p2p/index.js';
import { engineFromModule } from '../../lib/cli/main.js';
import { connect, defineRoutes, Engine, from, ServiceRegistry, type BusbarError } from '../../lib/index.js';
import { routes, type AcceptedOrder, type Channels } from '../../examples/topologies/routes.js';
import { testLogger, waitFor } from '../helpers.js';

const SECRET = 'p2p-services-spec-secret-0123';

describe('p2p in routes files and connect(\'p2p://...\')', function () {
  this.timeout(60_000);
  let hub: Engine;
  let seed: string;
  before(async () => {
    // the topologies example's routes, as a routes file would give them: the p2p adapter configured by data
    const mod = defineRoutes({ routes, adapters: { p2p: { secret: SECRET, name: 'hub', probeIntervalMs: 100 } }, channels: { transport: 'p2p' } });
    const built = engineFromModule(mod, testLogger());
    expect(built.problems).to.deep.equal([]);
    hub = built.engine;
    hub.addRoutes(...routes);
    await hub.start();
    seed = p2pPeer(hub)!.address;
  });
  after(() => hub?.stop({ timeoutMs: 2000 }));

  it('a routes file\'s p2p settings are schema-checked, each problem with its path', () => {
    const { problems } = engineFromModule(defineRoutes({ routes: [], adapters: { p2p: { name: 'x', seed: ['127.0.0.1:1'] } } }), testLogger());
    const paths = problems.map((p) => p.path);
    expect(paths).to.include('/adapters/p2p/seed');
    expect(problems.find((p) => p.path === '/adapters/p2p/seed')?.suggestion).to.match(/seeds/);
    expect(problems.some((p) => /secret/.test(p.message) || /secret/.test(p.path))).to.equal(true);
    // a routes file without p2p settings: no problem until a p2p: endpoint is used, then a coded one
    const plain = engineFromModule(defineRoutes({ routes: [] }), testLogger());
    expect(plain.problems).to.deep.equal([]);
    expect(() => plain.engine.addRoutes(from('p2p:direct:x').to('log:x'))).to.throw(/not configured/);
  });

  it('a thin client calls, sends and subscribes on the hub\'s channels over the p2p bus', async () => {
    const bus = await connect<Channels>(`p2p://${seed}`, { config: { secret: SECRET, name: 'spoke' } });
    try {
      const got: AcceptedOrder[] = [];
      const sub = await bus.subscribe('topic:orders.accepted', (o) => {
        got.push(o);
      });
      // the hub learns about the subscription through the membership gossip
      await waitFor(() => p2pPeer(hub)!.members().some((m) => m.name === 'spoke' && m.subs.includes('orders.accepted')), 10_000, 'the hub to see the subscription');
      const quote = await bus.request('direct:quote', { sku: 'apple', qty: 4 });
      expect(quote.total).to.equal(2);
      for (let i = 0; i < 5; i++) await bus.send('queue:orders', { id: `o-${i}`, sku: 'pear', qty: 2 });
      await waitFor(() => got.length === 5, 10_000, 'five accepted orders');
      expect(got.map((o) => o.id).sort()).to.deep.equal(['o-0', 'o-1', 'o-2', 'o-3', 'o-4']);
      expect(got[0]!.total).to.equal(1.5);
      await sub.close();
    } finally {
      await bus.close();
    }
  });

  it('a client with the wrong secret cannot join: its calls fail with a coded error, never hang', async () => {
    const bus = await connect<Channels>(`p2p://${seed}`, { config: { secret: 'not-the-cluster-secret-000', name: 'intruder', joinTimeoutMs: 800 } });
    try {
      const err = (await bus.request('direct:quote', { sku: 'apple', qty: 1 }).catch((e: unknown) => e)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_P2P_NO_PROVIDER');
      expect(p2pPeer(hub)!.members().some((m) => m.name === 'intruder')).to.equal(false);
    } finally {
      await bus.close();
    }
  });
});

describe('service registry over the p2p bus (three peers)', function () {
  this.timeout(60_000);
  const engines: Engine[] = [];
  const registries: ServiceRegistry[] = [];
  const ids: string[] = [];
  before(async () => {
    for (let i = 0; i < 3; i++) {
      const seeds = i === 0 ? [] : [p2pPeer(engines[0]!)!.address];
      const e = new Engine({ name: `peer${i}`, logger: testLogger(), adapters: [createP2pAdapter({ secret: SECRET, name: `svc-peer-${i}`, seeds, probeIntervalMs: 100 })] });
      const r = new ServiceRegistry(e, { transport: 'p2p', heartbeatMs: 100, ttlMs: 1500, drainGraceMs: 200 });
      if (i > 0) ids.push(r.register('inventory', { reserve: (q: { sku: string }) => ({ ...q, by: `peer${i}` }) }, { version: '1.0.0', contract: { methods: { reserve: { idempotent: true } } } }));
      await e.start();
      engines.push(e);
      registries.push(r);
    }
  });
  after(async () => {
    for (const e of engines.reverse()) await e.stop({ timeoutMs: 2000 });
  });

  it('a call an instance never got (its provider not in the caller\'s view) does not open that instance\'s circuit', async () => {
    const view = registries[0]!;
    await waitFor(() => view.instances('inventory').filter((i) => i.passing).length === 2, 15_000, 'both instances in the view of peer 0');
    const servedAt = (address: string): boolean => p2pPeer(engines[0]!)!.members().some((m) => m.services.some((s) => s.includes(address)));
    const [one, two] = ids.map((id) => view.instances('inventory').find((i) => i.id === id)!);
    const served = (): boolean => servedAt(one!.address);
    // the registry's view (heartbeats) can be ahead of the bus's (who serves what): both providers must be reachable first
    await waitFor(() => served() && servedAt(two!.address), 15_000, "both providers in peer 0's view");
    // peer 1 stops serving but keeps announcing: its instance stays passing, calls to it are unsent
    const routeId = Object.keys(engines[1]!.stats().routes).find((id) => id.endsWith(ids[0]!))!;
    await engines[1]!.stopRoute(routeId);
    await waitFor(() => !served() && servedAt(two!.address), 15_000, "peer 1's provider gone from peer 0's view, peer 2's still there");
    const inv = view.proxy<{ reserve(q: { sku: string }): { sku: string; by: string } }>('inventory', { breaker: { windowSize: 4, minimumCalls: 2, openMs: 60_000 } });
    for (let i = 0; i < 20; i++) expect((await inv.reserve({ sku: `u${i}` })).by).to.equal('peer2');
    expect(view.instances('inventory').find((i) => i.id === ids[0])!.circuit).to.equal('closed');
    // serving again: it gets calls again at once (an open circuit would keep it out for a minute)
    await engines[1]!.startRoute(routeId);
    await waitFor(served, 15_000, "peer 1's provider back in peer 0's view");
    const by = new Set<string>();
    for (let i = 0; i < 30; i++) by.add((await inv.reserve({ sku: `v${i}` })).by);
    expect([...by].sort()).to.deep.equal(['peer1', 'peer2']);
  });

  it('every peer\'s view has both instances; calls by name spread over them; a graceful stop drains, then deregisters', async () => {
    const view = registries[0]!;
    await waitFor(() => view.instances('inventory').filter((i) => i.passing).length === 2, 15_000, 'both instances in the view of peer 0');
    await waitFor(() => registries[2]!.instances('inventory').filter((i) => i.passing).length === 2, 15_000, 'both instances in the view of peer 2');
    const inv = view.proxy<{ reserve(q: { sku: string }): { sku: string; by: string } }>('inventory');
    const by = new Set<string>();
    for (let i = 0; i < 30; i++) by.add((await inv.reserve({ sku: `s${i}` })).by);
    expect([...by].sort()).to.deep.equal(['peer1', 'peer2']);
    const seen: string[] = [];
    view.onChange((i, c) => {
      if (i.id === ids[1]) seen.push(`${c}:${i.status}`);
    });
    await registries[2]!.stop();
    await waitFor(() => seen.includes('gone:down'), 10_000, 'the deregistration');
    expect(seen).to.deep.equal(['changed:draining', 'gone:down']);
    for (let i = 0; i < 10; i++) expect((await inv.reserve({ sku: 'x' })).by).to.equal('peer1');
  });
});

describe('p2p super-peers: two peers that cannot dial each other talk through a relay', function () {
  this.timeout(60_000);
  const engines: Engine[] = [];
  const got: unknown[] = [];
  const start = async (name: string, opts: { relay?: boolean; advertise?: boolean; seeds?: string[] }, routes: Array<ReturnType<typeof from>> = []): Promise<Engine> => {
    const e = new Engine({ name, logger: testLogger(), adapters: [createP2pAdapter({ secret: SECRET, name, probeIntervalMs: 100, ...opts })] });
    if (routes.length) e.addRoutes(...routes);
    else e.addRoutes(from(`p2p:direct:noop.${name}`).to('log:noop?level=debug'));
    await e.start();
    engines.push(e);
    return e;
  };
  after(async () => {
    for (const e of engines.reverse()) await e.stop({ timeoutMs: 2000 });
  });

  it('requests and publishes between two unadvertised peers go through the super-peer; membership sees both alive', async () => {
    const relay = await start('relay-1', { relay: true });
    const seeds = [p2pPeer(relay)!.address];
    // neither announces an address: they only know (and can only dial) the relay
    const a = await start('hidden-a', { advertise: false, seeds });
    const b = await start('hidden-b', { advertise: false, seeds }, [
      from('p2p:direct:echo').transform((b) => ({ echoed: b, by: 'hidden-b' })),
      from('p2p:topic:news.*').process((m) => (got.push(m.body), m)),
    ]);
    const pa = p2pPeer(a)!;
    await waitFor(() => pa.members().some((m) => m.name === 'hidden-b' && m.state === 'alive' && m.services.includes('direct:echo')), 15_000, 'a to see b');
    const reply = await a.request<{ echoed: unknown; by: string }>('p2p:direct:echo', { n: 1 });
    expect(reply).to.deep.equal({ echoed: { n: 1 }, by: 'hidden-b' });
    await a.send('p2p:topic:news.today', { headline: 'relayed' });
    await waitFor(() => got.length === 1, 5000, 'the publication at b');
    expect(p2pPeer(relay)!.stats().relayed).to.be.greaterThan(0);
    // whichever hidden peer opened the link first made it through the relay (the other took it over from the relay's frames)
    expect(pa.stats().viaRelay + p2pPeer(b)!.stats().viaRelay).to.be.greaterThan(0);
    // probes go through the relay too: b stays alive in a's view (no false death) for a few rounds
    await new Promise((r) => setTimeout(r, 1500));
    expect(pa.members().find((m) => m.name === 'hidden-b')?.state).to.equal('alive');
    expect(pa.stats().deaths).to.equal(0);
  });
});
