import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileAdapter } from '../../../adapters/file/index.js';
import { Engine, from, type RouteConfig } from '../../../lib/index.js';
import { routeGraph, toMermaid, toSvg, type RouteGraph } from '../../../lib/graph/index.js';
import { tempDir, testLogger } from '../../helpers.js';

function engineWith(...routes: Parameters<Engine['addRoutes']>): Engine {
  return new Engine({ logger: testLogger(), adapters: [fileAdapter] }).addRoutes(...routes);
}

const hub = JSON.parse(readFileSync('spec/fixtures/graph/hub.json', 'utf8')) as { routes: RouteConfig[] };

function graphOf(...routes: Parameters<Engine['addRoutes']>): RouteGraph {
  return routeGraph(engineWith(...routes).routeModels());
}

const linksOf = (g: RouteGraph, kind?: string): string[] => g.links.filter((l) => !kind || l.kind === kind).map((l) => `${l.from} ${l.kind} ${l.to}${l.label ? ` [${l.label}]` : ''}`);

/** Well-formed XML, checked by libxml2 (not by our own parser). */
function xmllint(svg: string): { code: number | null; stderr: string } {
  const dir = tempDir('busbar-svg-');
  try {
    const f = join(dir.path, 'g.svg');
    writeFileSync(f, svg);
    const r = spawnSync('xmllint', ['--noout', f], { encoding: 'utf8' });
    return { code: r.status, stderr: r.stderr };
  } finally {
    dir.cleanup();
  }
}

describe('route graph (lib/graph)', () => {
  it('has a node for every source, step (with its pattern kind) and output, and the flow between them', () => {
    const g = graphOf(hub);
    const kinds = Object.fromEntries(g.nodes.filter((n) => n.kind === 'step').map((n) => [n.id, n.pattern]));
    expect(kinds).to.include({
      'step:orders-in/steps/0': 'unmarshal',
      'step:orders-in/steps/1': 'wireTap',
      'step:orders-in/steps/2': 'choice',
      'step:orders-in/steps/2/when/0/steps/0': 'setHeader',
      'step:orders-in/steps/2/when/0/steps/1': 'to',
      'step:orders-in/steps/2/otherwise/0': 'to',
      'step:orders-in/steps/3': 'multicast',
      'step:orders-in/steps/3/branches/0/0': 'to',
      'step:orders-in/steps/3/branches/1/0': 'log',
      'step:orders-in/steps/4': 'recipientList',
      'step:billing/steps/0': 'transform',
    });
    const source = g.nodes.find((n) => n.id === 'endpoint:file:spec-inbox')!;
    expect(source).to.include({ kind: 'endpoint', uri: 'file:spec-inbox?include=*.json', scheme: 'file' });
    expect(source.roles).to.deep.equal(['source']);
    const flow = linksOf(g, 'flow');
    expect(flow).to.include.members([
      'endpoint:file:spec-inbox flow step:orders-in/steps/0',
      'step:orders-in/steps/0 flow step:orders-in/steps/1',
      'step:orders-in/steps/1 flow step:orders-in/steps/2',
      // a choice's branches go on with the step after the choice
      'step:orders-in/steps/2/when/0/steps/0 flow step:orders-in/steps/2/when/0/steps/1',
      'step:orders-in/steps/2/when/0/steps/1 flow step:orders-in/steps/3',
      'step:orders-in/steps/2/otherwise/0 flow step:orders-in/steps/3',
      // a multicast waits for its copies, then goes on itself
      'step:orders-in/steps/3 flow step:orders-in/steps/4',
    ]);
    // the choice itself hands nothing straight on: its branches do
    expect(flow).not.to.include('step:orders-in/steps/2 flow step:orders-in/steps/3');
  });

  it('draws the branches of choice, multicast and recipient lists, wire taps and request links', () => {
    const g = graphOf(hub, from('direct:ask').routeId('ask').enrich('direct:billing', { into: 'invoice' }));
    expect(linksOf(g, 'branch')).to.include.members([
      'step:orders-in/steps/2 branch step:orders-in/steps/2/when/0/steps/0 [amount > 400]',
      'step:orders-in/steps/2 branch step:orders-in/steps/2/otherwise/0 [otherwise]',
      'step:orders-in/steps/3 branch step:orders-in/steps/3/branches/0/0 [copy 1]',
      'step:orders-in/steps/3 branch step:orders-in/steps/3/branches/1/0 [copy 2]',
    ]);
    expect(linksOf(g, 'send')).to.include.members([
      'step:orders-in/steps/2/when/0/steps/1 send endpoint:topic:orders.big',
      'step:orders-in/steps/4 send endpoint:queue:archive',
      'step:orders-in/steps/4 send endpoint:direct:billing',
    ]);
    expect(linksOf(g, 'tap')).to.deep.equal(['step:orders-in/steps/1 tap endpoint:direct:audit [copy]']);
    expect(linksOf(g, 'request')).to.deep.equal(['step:ask/steps/0 request endpoint:direct:billing [request]']);
    expect(g.nodes.find((n) => n.id === 'step:ask/steps/0')).to.include({ pattern: 'enrich', detail: 'into invoice', category: 'endpoint' });
  });

  it('links routes through direct:, queue: and topic: endpoints, wildcard subscriptions included', () => {
    const g = graphOf(hub);
    const billing = g.nodes.find((n) => n.id === 'endpoint:direct:billing')!;
    // one node for the channel both sides use: written by orders-in, read by billing
    expect(billing.roles).to.have.members(['output', 'source']);
    expect(billing.routes).to.have.members(['orders-in', 'billing']);
    expect(linksOf(g)).to.include.members(['endpoint:direct:billing flow step:billing/steps/0', 'endpoint:direct:audit flow step:audit/steps/0']);
    expect(linksOf(g, 'channel')).to.have.members([
      'endpoint:topic:orders.big channel endpoint:topic:orders.# [subscribed]',
      'endpoint:topic:orders.small channel endpoint:topic:orders.# [subscribed]',
    ]);
  });

  it('links the error policy to its dead-letter endpoints, per error code', () => {
    const g = graphOf(hub);
    expect(linksOf(g, 'deadLetter')).to.deep.equal([
      'route:orders-in deadLetter endpoint:queue:orders.invalid [VALIDATION_FAILED]',
      'route:orders-in deadLetter endpoint:queue:orders.dead [after 3 attempts]',
    ]);
    expect(g.nodes.find((n) => n.id === 'endpoint:queue:orders.dead')!.roles).to.deep.equal(['deadLetter']);
    // the engine's policy counts too: it is the one in force for routes without their own
    const e = new Engine({ logger: testLogger(), errorPolicy: { deadLetter: 'mock:engine-dlq' } }).addRoutes(from('direct:x').routeId('x').to('mock:y'));
    expect(linksOf(routeGraph(e.routeModels()), 'deadLetter')).to.deep.equal(['route:x deadLetter endpoint:mock:engine-dlq [failures]']);
  });

  it('gives builder and config routes the same graph (one model)', () => {
    const config: RouteConfig = {
      id: 'r',
      from: 'direct:in',
      errorPolicy: { deadLetter: 'mock:dlq' },
      steps: [{ choice: { when: [{ if: 'n > 1', steps: [{ to: 'mock:big' }] }], otherwise: [{ to: 'mock:small' }] } }, { wireTap: 'mock:tap' }, { to: 'direct:next' }],
    };
    const builder = from<{ n: number }>('direct:in')
      .routeId('r')
      .deadLetter('mock:dlq')
      .choice((c) => c.when((b) => b.n > 1, (x) => x.to('mock:big')).otherwise((x) => x.to('mock:small')))
      .wireTap('mock:tap')
      .to('direct:next');
    const shape = (g: RouteGraph): unknown => ({ nodes: g.nodes.map((n) => [n.id, n.kind, n.pattern]), links: g.links.map((l) => [l.id, l.kind]) });
    expect(shape(graphOf(builder))).to.deep.equal(shape(graphOf(config)));
  });

  it('keeps ids stable: the same routes give the same ids, and adding a route changes none of the others', () => {
    const a = graphOf(hub);
    const b = graphOf(JSON.parse(JSON.stringify(hub)) as typeof hub);
    expect(b.nodes.map((n) => n.id)).to.deep.equal(a.nodes.map((n) => n.id));
    expect(b.links.map((l) => l.id)).to.deep.equal(a.links.map((l) => l.id));
    const c = graphOf(hub, from('timer:t?period=1000').routeId('extra').to('direct:audit'));
    expect(c.nodes.map((n) => n.id)).to.include.members(a.nodes.map((n) => n.id));
    expect(c.links.map((l) => l.id)).to.include.members(a.links.map((l) => l.id));
    // every id is unique
    expect(new Set(c.nodes.map((n) => n.id)).size).to.equal(c.nodes.length);
    expect(new Set(c.links.map((l) => l.id)).size).to.equal(c.links.length);
    // every link joins two nodes of the graph
    const ids = new Set(c.nodes.map((n) => n.id));
    for (const l of c.links) expect(ids.has(l.from) && ids.has(l.to), l.id).to.equal(true);
  });

  it('writes Mermaid: a subgraph per route, every node declared once, every arrow between declared nodes', () => {
    const g = graphOf(hub, from('direct:q').routeId('quotes').log('say "hi" <b>#1</b>'));
    const text = toMermaid(g);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).to.equal('flowchart LR');
    const subgraphs = lines.filter((l) => /^ {2}subgraph /.test(l));
    expect(subgraphs.map((l) => /\["route (.*)"\]$/.exec(l)?.[1])).to.deep.equal(['orders-in', 'billing', 'audit', 'all-orders', 'quotes']);
    expect(lines.filter((l) => l.trim() === 'end')).to.have.length(subgraphs.length);
    const declared = new Map<string, number>();
    for (const l of lines) {
      const m = /^\s+(n_\w+)(\(\[|\[\(|\[\[|\[|\{)"/.exec(l);
      if (m) declared.set(m[1]!, (declared.get(m[1]!) ?? 0) + 1);
      const s = /^ {2}subgraph (n_\w+)\[/.exec(l);
      if (s) declared.set(s[1]!, (declared.get(s[1]!) ?? 0) + 1);
    }
    expect(declared.size).to.equal(g.nodes.length);
    for (const [id, n] of declared) expect(n, id).to.equal(1);
    const arrows = lines.filter((l) => /^ {2}n_\w+ (-->|<-->|-\.->|==>)/.test(l));
    expect(arrows).to.have.length(g.links.length);
    for (const a of arrows) {
      const m = /^ {2}(n_\w+) \S+?(?:\|"[^"]*"\|)? (n_\w+)$/.exec(a);
      expect(m, a).to.not.equal(null);
      expect(declared.has(m![1]!) && declared.has(m![2]!), a).to.equal(true);
    }
    // quotes and angle brackets in a label cannot end it early or become HTML
    const quoted = lines.find((l) => l.includes('n_step_quotes_steps_0['))!;
    expect(quoted).to.equal('    n_step_quotes_steps_0["log: say #quot;hi#quot; #lt;b#gt;#35;1#lt;/b#gt;"]');
  });

  it('lays the graph out as well-formed SVG (xmllint) with every node and link, inside its viewBox', async function () {
    this.timeout(90_000);
    const g = graphOf(hub, from('direct:x').routeId('x&<"y>').log('a < b & "c"'));
    const svg = await toSvg(g, { counters: true });
    const lint = xmllint(svg);
    expect(lint.code, lint.stderr).to.equal(0);
    const nodeIds = [...svg.matchAll(/<g class="[^"]*" data-node-id="([^"]+)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"'));
    expect(nodeIds).to.have.members(g.nodes.map((n) => n.id));
    const linkIds = [...svg.matchAll(/data-link-id="([^"]+)"/g)].map((m) => m[1]!.replace(/&gt;/g, '>').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&quot;/g, '"'));
    expect(linkIds).to.have.members(g.links.map((l) => l.id));
    const [, w, h] = /viewBox="0 0 (\d+) (\d+)"/.exec(svg)!.map(Number);
    for (const m of svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/g)) {
      const [x, y, rw, rh] = m.slice(1).map(Number) as [number, number, number, number];
      expect(x + rw).to.be.at.most(w!);
      expect(y + rh).to.be.at.most(h!);
    }
    // a counter slot in every node for the console
    expect(svg.match(/class="counter" data-counter-for=/g)).to.have.length(g.nodes.length);
    expect(svg).to.contain('a &lt; b &amp; &quot;c&quot;');
  });
});
