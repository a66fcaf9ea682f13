import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import { createP2pAdapter, p2pPeer, type P2pNode } from '../../adapters/p2p/index.js';
import { Engine, from } from '../../lib/index.js';
import { testLogger, waitFor } from '../helpers.js';

const SECRET = 'spec-cluster-secret-0123456789';

interface PeerProc {
  name: string;
  proc: ChildProcess;
  out: () => string;
}

function startPeer(name: string, seeds: string[], env: Record<string, string> = {}): Promise<PeerProc> {
  let out = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', 'spec/fixtures/p2p/peer.ts'], {
    env: { ...process.env, P2P_NAME: name, P2P_SEEDS: seeds.join(','), P2P_SECRET: SECRET, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`peer ${name} did not start: ${out}`)), 100_000);
    proc.stdout!.on('data', () => {
      if (out.includes('ready ')) {
        clearTimeout(t);
        resolve({ name, proc, out: () => out });
      }
    });
    proc.once('exit', (code) => reject(new Error(`peer ${name} exited with ${code}: ${out}`)));
  });
}

interface PeerStats {
  name: string;
  received: number;
  unique: number;
  members: Array<{ name: string; state: string }>;
  stats: { deaths: number; suspicions: number; refutations: number };
}

describe('p2p bus: peers as processes on 127.0.0.1', function () {
  this.timeout(180_000);
  const procs: PeerProc[] = [];
  let local: Engine;
  let node: P2pNode;
  const seen = new Map<string, number>();

  const stats = (name: string): Promise<PeerStats> => local.request<PeerStats>(`p2p:direct:stats.${name}`, {});
  const aliveNames = (): string[] => node.members().filter((m) => m.state === 'alive').map((m) => m.name).sort();

  before(async () => {
    local = new Engine({ name: 'local', logger: testLogger(), adapters: [createP2pAdapter({ secret: SECRET, name: 'local' })] });
    local.addRoutes(from('p2p:topic:events.#').routeId('events').process((m) => (seen.set(m.id, (seen.get(m.id) ?? 0) + 1), m)));
    await local.start();
    node = p2pPeer(local)!;
    const seed = node.address;
    expect(seed).to.match(/^127\.0\.0\.1:\d+$/);
    procs.push(...(await Promise.all(['p1', 'p2', 'p3', 'p4'].map((n) => startPeer(n, [seed])))));
  });
  after(async () => {
    for (const p of procs) {
      p.proc.kill('SIGCONT');
      p.proc.kill('SIGKILL');
    }
    await local?.stop({ timeoutMs: 3000 });
  });

  it('converges: every peer sees every other alive, learning them from one seed', async () => {
    await waitFor(() => aliveNames().length === 4, 30_000, 'the local view to hold the 4 peers');
    for (const p of procs) {
      // (a peer still starting may be suspected and then refute: poll the view, not one answer)
      await waitFor(async () => (await stats(p.name).catch(() => undefined))?.members.filter((m) => m.state === 'alive').length === 4, 30_000, `${p.name} to see 4 others`);
    }
  });

  it('publishes to wildcard subscribers on every peer, each message counted once per subscriber', async () => {
    const N = 50;
    // durable: a subscriber that is slow or briefly suspect is retried, so every one counts all
    for (let i = 0; i < N; i++) await local.send('p2p:topic:events.created?delivery=durable', { i });
    for (const p of procs) expect((await stats(p.name)).received, p.name).to.equal(N);
    // our own `events.#` subscription takes them too
    expect(seen.size).to.equal(N);
    // a topic nobody subscribes to goes nowhere (and does not fail)
    await local.send('p2p:topic:other.thing', {});
  });

  it('spreads competing-consumer calls over the providers, power of two choices', async () => {
    const by = new Map<string, number>();
    await Promise.all(Array.from({ length: 100 }, async (_, n) => {
      const r = await local.request<{ n: number; by: string }>('p2p:queue:work?idempotent=true', { n });
      expect(r.n).to.equal(n);
      by.set(r.by, (by.get(r.by) ?? 0) + 1);
    }));
    expect([...by.values()].reduce((a, b) => a + b, 0)).to.equal(100);
    expect(by.size).to.be.at.least(3);
  });

  it('has no false death while a peer blocks its event loop for 200 ms', async () => {
    const before = node.stats().deaths;
    const theirs = new Map<string, number>();
    for (const p of procs) theirs.set(p.name, (await stats(p.name)).stats.deaths);
    for (let i = 0; i < 5; i++) {
      expect(await local.request(`p2p:direct:block.p2`, { ms: 200 })).to.equal('unblocked');
      await new Promise((r) => setTimeout(r, 300));
    }
    // longer than the suspicion timeout: a suspicion raised by the blocks would have become a death
    await new Promise((r) => setTimeout(r, 2000));
    expect(node.stats().deaths).to.equal(before);
    expect(aliveNames()).to.include('p2');
    for (const p of procs) expect((await stats(p.name)).stats.deaths, p.name).to.equal(theirs.get(p.name));
  });

  it('when a provider is killed mid-traffic, idempotent calls fail over and the others fail with a code, none hangs; the dead peer is confirmed', async () => {
    const victim = procs.find((p) => p.name === 'p1')!;
    let done = 0;
    const codes = new Map<string, number>();
    let killedAt = 0;
    let deadAt = 0;
    const off = node.onChange((m) => {
      if (m.name === 'p1' && m.state === 'dead' && !deadAt) deadAt = Date.now();
    });
    const run = async (uri: string, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        try {
          await local.request(uri, { n: i });
        } catch (e) {
          const code = (e as { code?: string }).code ?? 'none';
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
        if (++done === 60) {
          killedAt = Date.now();
          victim.proc.kill('SIGKILL');
        }
      }
    };
    // (the full-size kill/pause figures come from bench/p2p-membership.ts)
    await Promise.all([...Array.from({ length: 4 }, () => run('p2p:queue:work?idempotent=true&timeoutMs=5000', 40)), ...Array.from({ length: 4 }, () => run('p2p:queue:work?timeoutMs=5000', 40))]);
    expect(done).to.equal(320);
    for (const code of codes.keys()) expect(['BUSBAR_ERR_P2P_PEER_LOST', 'BUSBAR_ERR_TIMEOUT']).to.include(code);
    await waitFor(() => node.members().find((m) => m.name === 'p1')?.state === 'dead', 10_000, 'p1 declared dead');
    off();
    process.stdout.write(`      killed p1 mid-traffic: failed calls by code ${JSON.stringify(Object.fromEntries(codes))}; confirmed dead in our view ${deadAt - killedAt} ms after the kill\n`);
    procs.splice(procs.indexOf(victim), 1);
  });

  it('a paused (SIGSTOP) peer is suspected then declared dead; best-effort publishing counts it as dropped', async () => {
    const victim = procs.find((p) => p.name === 'p3')!;
    const t0 = Date.now();
    victim.proc.kill('SIGSTOP');
    await waitFor(() => node.members().find((m) => m.name === 'p3')?.state === 'dead', 10_000, 'p3 declared dead');
    const took = Date.now() - t0;
    const dropped0 = node.stats().dropped;
    // a dead peer is no longer a target; others still get everything
    for (let i = 0; i < 20; i++) await local.send('p2p:topic:events.after?delivery=durable', { i });
    expect((await stats('p2')).received).to.equal(70);
    expect(node.stats().dropped).to.equal(dropped0);
    process.stdout.write(`      SIGSTOPped p3 confirmed dead after ${took} ms\n`);
    victim.proc.kill('SIGKILL');
    procs.splice(procs.indexOf(victim), 1);
  });

  it('a peer without the cluster secret cannot join or inject messages', async () => {
    const before = seen.size;
    const rogue = spawn(process.execPath, ['--import', 'tsx', 'spec/fixtures/p2p/peer.ts'], {
      env: { ...process.env, P2P_NAME: 'rogue', P2P_SEEDS: node.address, P2P_SECRET: 'not-the-cluster-secret-at-all' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await new Promise((r) => setTimeout(r, 3000));
      expect(node.members().map((m) => m.name)).to.not.include('rogue');
      for (const p of procs) expect((await stats(p.name)).members.map((m) => m.name)).to.not.include('rogue');
      expect(seen.size).to.equal(before);
    } finally {
      rogue.kill('SIGKILL');
    }
  });
});
