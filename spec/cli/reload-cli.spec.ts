import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, waitFor } from '../helpers.js';
import { BIN, startHub, type Hub } from './hub.js';

function cli(hub: Hub, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args, '--url', hub.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const count = (dir: string): number => {
  try {
    return readdirSync(dir).filter((f) => !f.startsWith('.')).length;
  } catch {
    return 0;
  }
};

describe('busbar run --watch and busbar reload (a running hub)', function () {
  this.timeout(120_000);

  it('reloads the changed route when the file changes, keeps the running version on a broken file, and reloads on `busbar reload`', async () => {
    const dir = tempDir('busbar-watch-');
    mkdirSync(join(dir.path, 'in'));
    const routes = join(dir.path, 'routes.json');
    const write = (to: string, extra: unknown[] = []): void =>
      writeFileSync(
        routes,
        JSON.stringify({
          adapters: { file: { baseDir: dir.path } },
          management: { host: '127.0.0.1', port: 0 },
          routes: [{ id: 'move', from: 'file:in?delay=20', steps: [{ to }] }, { id: 'beat', from: 'timer:beat?period=1000', steps: [{ to: 'log:beat?level=debug' }] }, ...extra],
        }),
      );
    write('file:one');
    const hub = await startHub([routes, '--watch', '--summary-interval', '500ms']);
    try {
      writeFileSync(join(dir.path, 'in', 'a.txt'), 'a');
      await waitFor(() => count(join(dir.path, 'one')) === 1, 20_000, 'a.txt moved to one/');
      write('file:two');
      await waitFor(() => hub.output().includes('reloaded '), 20_000, 'the watch reload');
      expect(hub.output()).to.match(/reloaded .*routes\.json: changed move; added -; removed -; unchanged 1/);
      writeFileSync(join(dir.path, 'in', 'b.txt'), 'b');
      await waitFor(() => count(join(dir.path, 'two')) === 1, 20_000, 'b.txt moved to two/');
      // a broken version: logged with its code, the running one goes on
      const before = hub.output().length;
      write('nosuch:place');
      await waitFor(() => hub.output().slice(before).includes('BUSBAR_ERR_RELOAD_FAILED'), 20_000, 'the refused reload');
      expect(hub.output().slice(before)).to.contain('nosuch');
      writeFileSync(join(dir.path, 'in', 'c.txt'), 'c');
      await waitFor(() => count(join(dir.path, 'two')) === 2, 20_000, 'c.txt moved by the running version');
      // the CLI command: the same reload through the management API
      const bad = await cli(hub, 'reload');
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.contain('BUSBAR_ERR_RELOAD_FAILED');
      write('file:two', [{ id: 'extra', from: 'timer:x?period=1000', steps: [{ to: 'log:x?level=debug' }] }]);
      await waitFor(() => hub.output().includes('added extra'), 20_000, 'the watch reload adding a route');
      const again = await cli(hub, 'reload', '--json');
      expect(again.code, again.stderr).to.equal(0);
      const r = JSON.parse(again.stdout) as { changed: string[]; unchanged: string[] };
      expect(r.changed).to.deep.equal([]);
      expect(r.unchanged).to.have.members(['move', 'beat', 'extra']);
      // the periodic summary: one line per route with every counter
      expect(hub.output()).to.match(/move +started +received \d+, completed \d+, failed 0, dead-lettered 0, redelivered 0, in flight 0/);
    } finally {
      expect(await hub.stop()).to.equal(0);
      dir.cleanup();
    }
    expect(hub.output()).to.match(/busbar stopped: received \d+, completed \d+, failed 0, dead-lettered 0, redelivered 0, in flight 0/);
  });
});
