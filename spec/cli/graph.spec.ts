import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RouteGraph } from '../../lib/graph/index.js';
import { tempDir } from '../helpers.js';

function busbar(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/busbar.js', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('busbar graph <routes file>', function () {
  this.timeout(90_000);

  it('prints Mermaid by default and JSON nodes and links with --format json', () => {
    const m = busbar('graph', 'spec/fixtures/graph/hub.json');
    expect(m.code, m.stderr).to.equal(0);
    expect(m.stdout.split('\n')[0]).to.equal('flowchart LR');
    expect(m.stdout).to.contain('subgraph n_route_orders_in["route orders-in"]');
    const j = busbar('graph', 'spec/fixtures/graph/hub.json', '--format', 'json');
    expect(j.code, j.stderr).to.equal(0);
    const g = JSON.parse(j.stdout) as RouteGraph;
    expect(g.nodes.filter((n) => n.kind === 'route').map((n) => n.id)).to.deep.equal(['route:orders-in', 'route:billing', 'route:audit', 'route:all-orders']);
    expect(g.links.some((l) => l.kind === 'deadLetter' && l.to === 'endpoint:queue:orders.dead')).to.equal(true);
  });

  it('writes SVG laid out without a browser to -o FILE (format from the extension), well-formed for xmllint', () => {
    const dir = tempDir('busbar-graph-');
    try {
      const out = join(dir.path, 'routes.svg');
      const r = busbar('graph', 'routes/demo.ts', '-o', out);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.equal('');
      const lint = spawnSync('xmllint', ['--noout', out], { encoding: 'utf8' });
      expect(lint.status, lint.stderr).to.equal(0);
      const svg = readFileSync(out, 'utf8');
      expect(svg).to.contain('<svg xmlns="http://www.w3.org/2000/svg"');
      expect(svg).to.contain('data-node-id="route:order-intake"').and.contain('data-node-id="endpoint:topic:orders.big"');
    } finally {
      dir.cleanup();
    }
  });

  it('fails with the coded problem of a bad routes file, and refuses an unknown format', () => {
    const r = busbar('graph', 'spec/fixtures/cli/bad.json');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain('BUSBAR_ERR_').and.contain('/routes/0/steps/0/trasform');
    const f = busbar('graph', 'spec/fixtures/graph/hub.json', '--format', 'png');
    expect(f.code).to.equal(1);
    expect(f.stderr).to.contain("Allowed choices are mermaid, json, svg");
  });
});
