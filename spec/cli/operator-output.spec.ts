import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { tempDir, waitFor } from '../helpers.js';
import { BIN, startHub } from './hub.js';

/**
 * A destination that answers only when told: the message it holds is provably in flight
 * while the CLI drains, so the drain's progress lines must show (no timing involved).
 */
async function holdingServer(): Promise<{ server: Server; port: number; held: ServerResponse[]; hold: boolean; release(): void }> {
  const s = {
    server: createServer((req, res) => {
      req.resume();
      if (s.hold) s.held.push(res);
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    }),
    port: 0,
    held: [] as ServerResponse[],
    hold: true,
    release() {
      s.hold = false;
      for (const r of s.held.splice(0)) r.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    },
  };
  await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
  s.port = (s.server.address() as { port: number }).port;
  return s;
}

describe('operator output: drain progress on stop, --quiet', function () {
  this.timeout(90_000);

  it('busbar route stop and busbar run (SIGTERM) show the drain\'s progress while a message is in flight', async () => {
    const dir = tempDir('busbar-drain-');
    const dest = await holdingServer();
    const routes = join(dir.path, 'routes.json');
    writeFileSync(
      routes,
      JSON.stringify({
        management: { host: '127.0.0.1', port: 0 },
        routes: [{ id: 'slow', from: 'timer:t?period=50', maxInflight: 1, steps: [{ to: `http://127.0.0.1:${dest.port}/hold` }] }],
      }),
    );
    const hub = await startHub([routes], { BUSBAR_MANAGEMENT_TOKEN: '' });
    try {
      await waitFor(() => dest.held.length === 1, 20_000, 'a message held at the destination');
      // the CLI's drain: it reports every second until the held message is let go
      const stopped = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [BIN, 'route', 'stop', 'slow', '--url', hub.url], { env: { ...process.env, BUSBAR_MANAGEMENT_TOKEN: '' } });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (/stopping slow: draining, 1 in flight/.test(stderr)) dest.release();
        });
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
      expect(stopped.code, stopped.stderr).to.equal(0);
      expect(stopped.stderr).to.match(/stopping slow: draining, 1 in flight/);
      expect(stopped.stdout, stopped.stdout).to.match(/slow: stopped \(received \d+, completed \d+, failed \d+, in flight 0\)/);

      // the hub's own stop: started again, a message held, SIGTERM
      dest.hold = true;
      const start = await fetch(`${hub.url}/api/v1/routes/slow/start`, { method: 'POST' });
      expect(start.status).to.equal(200);
      await waitFor(() => dest.held.length === 1, 20_000, 'a message held again');
      hub.child.kill('SIGTERM');
      await waitFor(() => /stopping: draining 1 in flight \(slow 1\)/.test(hub.output()), 20_000, 'the drain progress of busbar run');
      dest.release();
      await waitFor(() => hub.child.exitCode !== null, 20_000, 'busbar run exited');
      expect(hub.child.exitCode).to.equal(0);
      expect(hub.output()).to.match(/busbar stopped: received \d+, completed \d+, failed \d+, dead-lettered 0, redelivered \d+, in flight 0/);
    } finally {
      dest.release();
      await hub.stop();
      dest.server.close();
      dir.cleanup();
    }
  });

  it('--quiet: no periodic summary and no final stats line', async () => {
    const dir = tempDir('busbar-quiet-');
    const routes = join(dir.path, 'routes.json');
    writeFileSync(routes, JSON.stringify({ management: { host: '127.0.0.1', port: 0 }, routes: [{ id: 'beat', from: 'timer:beat?period=20', steps: [{ to: 'log:beat?level=debug' }] }] }));
    const run = async (extra: string[]): Promise<string> => {
      const hub = await startHub([routes, '--summary-interval', '100ms', ...extra], { BUSBAR_MANAGEMENT_TOKEN: '' });
      // a few summary intervals, counted by the route's own progress
      await waitFor(async () => ((await (await fetch(`${hub.url}/api/v1/routes/beat`)).json()) as { stats: { completed: number } }).stats.completed >= 20, 20_000, 'the route ran');
      await new Promise((r) => setTimeout(r, 300));
      await hub.stop();
      return hub.output();
    };
    const loud = await run([]);
    expect(loud, 'the control run prints them').to.match(/beat +started +received \d+/).and.match(/busbar stopped: received/);
    const quiet = await run(['--quiet']);
    expect(quiet).to.not.match(/beat +started +received/);
    expect(quiet).to.not.contain('busbar stopped:');
    dir.cleanup();
  });
});
