import { expect } from 'chai';
import { spawn } from 'node:child_process';

describe('npm run demo (routes/demo.ts): the four integration styles with the console', function () {
  this.timeout(120_000);

  it('runs file drop, SQLite, HTTP and in-memory routes, serves the console on 127.0.0.1 and prints a line per route', async () => {
    const child = spawn(process.execPath, ['bin/busbar.js', 'run', 'routes/demo.ts', '--for', '8s', '--summary', '1s', '--no-pretty'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    const deadline = Date.now() + 60_000;
    while (!/busbar console: (http:\/\/127\.0\.0\.1:\d+)\/console\//.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    const url = /busbar console: (http:\/\/127\.0\.0\.1:\d+)\/console\//.exec(out)?.[1];
    expect(url, out + err).to.be.a('string');
    // the console and its graph answer while the demo runs (loopback: no token)
    const page = await fetch(`${url}/console/`);
    expect(page.status).to.equal(200);
    expect(await page.text()).to.contain('<script type="module" src="app/main.js">');
    const graph = (await (await fetch(`${url}/api/v1/graph`)).json()) as { nodes: Array<{ id: string; kind: string }> };
    expect(graph.nodes.filter((n) => n.kind === 'route').map((n) => n.id)).to.have.members(['route:order-intake', 'route:audit', 'route:approvals', 'route:file-drop', 'route:customs', 'route:file-intake', 'route:shipping']);
    const code = await exited;
    expect(code, err).to.equal(0);
    // the chain went through every style: a dropped file, the HTTP customs call, the SQLite table
    expect(out).to.match(/shipped ORD-\d{4} \([^)]+\): [\d.]+ EUR \+ [\d.]+ EUR duty/);
    expect(out).to.contain('approval needed for ORD-');
    const last = out.slice(out.lastIndexOf('routes at '));
    for (const [id, scheme] of [['order-intake', 'timer:'], ['file-drop', 'topic:'], ['customs', 'http:'], ['file-intake', 'file:'], ['shipping', 'db:sqlite:']] as const) {
      const line = last.split('\n').find((l) => l.trim().startsWith(`${id} `));
      expect(line, `${id} in\n${last}`).to.be.a('string');
      expect(line).to.contain(scheme).and.not.match(/received 0,/);
      expect(line).to.match(/failed 0, dead-lettered 0, redelivered \d+, in flight \d+/);
    }
  });
});
