import { expect } from 'chai';
import { createP2pNode, type P2pNode } from '../../../adapters/p2p/index.js';
import { createMessage } from '../../../lib/index.js';
import { testLogger, waitFor } from '../../helpers.js';

const SECRET = 'spec-membership-secret-0123456789';

/**
 * Push-pull: a join and the exchanges after it carry whole views, both ways. Probing is off
 * (one probe a minute), so nothing reaches anyone by gossip on probes: what the peers learn
 * here they learn from join/push-pull exchanges alone.
 */
describe('p2p membership: push-pull state exchange (peers in this process, 127.0.0.1)', function () {
  this.timeout(30_000);
  const nodes: P2pNode[] = [];
  const peer = async (name: string): Promise<P2pNode> => {
    const n = createP2pNode({ secret: SECRET, name, probeIntervalMs: 60_000 }, testLogger());
    await n.acquire();
    nodes.push(n);
    return n;
  };
  const alive = (n: P2pNode): string[] => n.members().filter((m) => m.state === 'alive').map((m) => m.name).sort();
  after(async () => {
    for (const n of nodes) await n.release();
  });

  it('two clusters merge through one join: every member of each learns every member of the other', async () => {
    const [a, b, c, d] = [await peer('a'), await peer('b'), await peer('c'), await peer('d')];
    await b.join([a.address]);
    await d.join([c.address]);
    await waitFor(() => alive(a).length === 1 && alive(b).length === 1 && alive(c).length === 1 && alive(d).length === 1, 10_000, 'the two clusters {a,b} and {c,d}');
    expect(alive(a)).to.deep.equal(['b']);
    expect(alive(c)).to.deep.equal(['d']);

    // one join from c to a: a's answer gives c a's view, c's join gives a c's view (d included),
    // and c's exchanges with the members it just learned give b and d the rest
    await c.join([a.address]);
    await waitFor(() => [a, b, c, d].every((n) => alive(n).length === 3), 10_000, 'every peer to see the 3 others');
    expect(alive(a)).to.deep.equal(['b', 'c', 'd']);
    expect(alive(b)).to.deep.equal(['a', 'c', 'd']);
    expect(alive(c)).to.deep.equal(['a', 'b', 'd']);
    expect(alive(d)).to.deep.equal(['a', 'b', 'c']);
  });

  it('a peer restarted at another address (same name, so the same id, a newer incarnation) is found there; a seed may be a host name', async () => {
    const a = await peer('ra');
    const start = async (tag: string): Promise<P2pNode> => {
      const n = await peer('rc');
      n.provide('whoami', async (m) => createMessage(`${tag}:${String(m.body)}`));
      // a host name seed, looked up at the attempt
      await n.join([`localhost:${a.address.split(':')[1]}`]);
      return n;
    };
    const ask = (): Promise<unknown> => a.request('whoami', createMessage('hi'), { inOut: true, idempotent: true, timeoutMs: 3000 }).then((r) => r?.body);
    const first = await start('first');
    await waitFor(() => a.members().some((m) => m.name === 'rc' && m.state === 'alive' && m.services.includes('whoami')), 10_000, 'a to see rc providing whoami');
    expect(await ask()).to.equal('first:hi');
    const before = a.members().find((m) => m.name === 'rc')!;
    const oldAddress = first.address;
    await first.release();
    nodes.splice(nodes.indexOf(first), 1);
    const second = await start('second');
    expect(second.address).to.not.equal(oldAddress);
    await waitFor(() => (a.members().find((m) => m.name === 'rc')?.incarnation ?? 0) > before.incarnation, 10_000, 'a to hear of the newer incarnation');
    const now = a.members().find((m) => m.name === 'rc')!;
    expect(now.id).to.equal(before.id);
    expect(now.state).to.equal('alive');
    expect(await ask()).to.equal('second:hi');
  });

  it('join() says what is wrong with a seed', async () => {
    const [a] = nodes;
    let err: unknown;
    await a!.join(['localhost:1:2']).catch((e: unknown) => (err = e));
    expect(err).to.have.property('code', 'BUSBAR_ERR_P2P_CONFIG');
  });
});
