import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, waitFor } from '../helpers.js';
import { BIN, startHub, type Hub } from './hub.js';

/** Run a busbar client command against the hub (env carries the url); `nodeArgs` go to node before the script. */
function cli(hub: Hub, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return cliWith([], hub, ...args);
}

function cliWith(nodeArgs: string[], hub: Hub, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], { env: { ...process.env, BUSBAR_MANAGEMENT_URL: hub.url, BUSBAR_MANAGEMENT_TOKEN: 'ops-token' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const files = (dir: string): string[] => {
  // (the file producer's <name>.error.json reason files are not dead letters)
  try {
    return readdirSync(dir).filter((f) => !f.startsWith('.') && !f.endsWith('.error.json')).sort();
  } catch {
    return [];
  }
};

describe('busbar status|routes|route|inflight|dead-letters against a running hub', function () {
  this.timeout(120_000);

  it('stops and starts a file route through the CLI without losing or duplicating a file, and lists and replays dead letters', async () => {
    const dir = tempDir('busbar-ops-');
    const N = 60;
    mkdirSync(join(dir.path, 'inbox'));
    mkdirSync(join(dir.path, 'picky'));
    // every file is whole before the hub starts: readLock=rename claims at once (the default,
    // `changed`, would wait its 2.5 s stability window for each poll's five files: 30 s here)
    for (let i = 0; i < N; i++) writeFileSync(join(dir.path, 'inbox', `f${String(i).padStart(3, '0')}.txt`), `body ${i}`);
    const routes = join(dir.path, 'routes.json');
    writeFileSync(
      routes,
      JSON.stringify({
        adapters: { file: { baseDir: dir.path } },
        management: { host: '127.0.0.1', port: 0 },
        routes: [
          { id: 'move', from: 'file:inbox?delay=20&maxMessagesPerPoll=5&readLock=rename', maxInflight: 2, steps: [{ delay: 100 }, { to: 'file:out' }] },
          { id: 'picky', from: 'file:picky?delay=20&readLock=rename', errorPolicy: { deadLetter: 'file:dead' }, steps: [{ to: 'direct:nobody' }] },
        ],
      }),
    );
    const hub = await startHub([routes], { BUSBAR_MANAGEMENT_TOKEN: 'ops-token' });
    try {
      await waitFor(() => files(join(dir.path, 'out')).length >= 5, 20_000, 'a few files moved');
      // through the API while files are in flight
      const stopped = await fetch(`${hub.url}/api/v1/routes/move/stop`, { method: 'POST', headers: { authorization: 'Bearer ops-token' } });
      expect(((await stopped.json()) as { state: string }).state).to.equal('stopped');
      const atStop = files(join(dir.path, 'out')).length;
      expect(atStop).to.be.below(N);
      await new Promise((r) => setTimeout(r, 300));
      expect(files(join(dir.path, 'out')).length, 'a stopped route takes nothing').to.equal(atStop);
      const move = (await (await fetch(`${hub.url}/api/v1/routes/move`, { headers: { authorization: 'Bearer ops-token' } })).json()) as { state: string; stats: { completed: number; inflight: number } };
      expect(move.state).to.equal('stopped');
      expect(move.stats.inflight).to.equal(0);
      expect(move.stats.completed).to.equal(atStop);
      expect((await cli(hub, 'route', 'start', 'move')).stdout).to.match(/^move: started/);
      // and through the CLI (the route may have finished by the time the command is up: the contract holds either way)
      const stop = await cli(hub, 'route', 'stop', 'move');
      expect(stop.code, stop.stderr).to.equal(0);
      expect(stop.stdout).to.match(/^move: stopped/);
      const atCliStop = files(join(dir.path, 'out')).length;
      await new Promise((r) => setTimeout(r, 300));
      expect(files(join(dir.path, 'out')).length).to.equal(atCliStop);
      await fetch(`${hub.url}/api/v1/routes/move/start`, { method: 'POST', headers: { authorization: 'Bearer ops-token' } });
      await waitFor(() => files(join(dir.path, 'out')).length === N && files(join(dir.path, 'inbox')).length === 0, 30_000, 'every file moved');
      const out = files(join(dir.path, 'out'));
      expect(out).to.deep.equal(Array.from({ length: N }, (_, i) => `f${String(i).padStart(3, '0')}.txt`));
      for (const f of out) expect(readFileSync(join(dir.path, 'out', f), 'utf8')).to.equal(`body ${Number(f.slice(1, 4))}`);
      expect(files(join(dir.path, 'inbox', '.done'))).to.have.length(N);
      // independent commands at once (each is a process start)
      const [status, routesJson, inflight, unknown] = await Promise.all([cli(hub, 'status'), cli(hub, 'routes', '--json'), cli(hub, 'inflight'), cli(hub, 'route', 'stop', 'nope')]);
      expect(status.code, status.stderr).to.equal(0);
      expect(status.stdout).to.contain('started, ready').and.contain(`completed ${N}`);
      const shown = JSON.parse(routesJson.stdout) as { routes: Array<{ id: string; state: string; stats: { completed: number } }> };
      expect(shown.routes.map((r) => [r.id, r.state, r.stats.completed])).to.deep.equal([['move', 'started', N], ['picky', 'started', 0]]);
      expect(inflight.stdout.trim()).to.equal('nothing in flight');
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.contain('BUSBAR_ERR_NOT_FOUND');

      // dead letters: two files the route cannot deliver
      // written elsewhere and renamed in, as readLock=rename expects
      for (const [name, body] of [['p1.txt', 'one'], ['p2.txt', 'two']] as const) {
        writeFileSync(join(dir.path, name), body);
        renameSync(join(dir.path, name), join(dir.path, 'picky', name));
      }
      await waitFor(() => files(join(dir.path, 'dead')).length === 2, 20_000, 'two dead letters');
      const [listed, human] = await Promise.all([cli(hub, 'dead-letters', 'picky', '--json'), cli(hub, 'dead-letters')]);
      expect(human.stdout).to.contain('BUSBAR_ERR_NO_CONSUMER').and.contain('picky');
      const dls = (JSON.parse(listed.stdout) as { deadLetters: Array<{ code: string; body: string }> }).deadLetters;
      expect(dls.map((d) => [d.code, d.body]).sort()).to.deep.equal([
        ['BUSBAR_ERR_NO_CONSUMER', 'one'],
        ['BUSBAR_ERR_NO_CONSUMER', 'two'],
      ]);
      const replay = await cli(hub, 'dead-letters', 'picky', '--replay', '--to', 'file:fixed');
      expect(replay.code, replay.stderr).to.equal(0);
      expect(replay.stdout).to.contain('replayed 2, dead-lettered again 0, failed (kept) 0');
      expect(files(join(dir.path, 'fixed')).map((f) => readFileSync(join(dir.path, 'fixed', f), 'utf8')).sort()).to.deep.equal(['one', 'two']);
      expect(files(join(dir.path, 'dead'))).to.deep.equal([]);
    } finally {
      expect(await hub.stop()).to.equal(0);
      dir.cleanup();
    }
  });

  it('says clearly when no hub answers', async () => {
    const r = await cli({ url: 'http://127.0.0.1:1' } as Hub, 'status');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain('cannot reach the hub at http://127.0.0.1:1');
  });

  it('the hub commands start without loading the engine or any adapter (a module hook refuses them)', async () => {
    // a resolve hook that fails the process on any module of the engine's own CLI or of an adapter
    const hook = `export async function resolve(s, c, next) { const r = await next(s, c); if (/\\/dist\\/(adapters\\/|lib\\/engine\\.js|lib\\/cli\\/main\\.js)/.test(r.url)) throw new Error('loaded ' + r.url); return r; }`;
    const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
    const guard = ['--import', `data:text/javascript,${encodeURIComponent(register)}`];
    for (const cmd of [['status'], ['routes', '--json'], ['route', 'stop', 'x'], ['inflight'], ['dead-letters'], ['reload']]) {
      const r = await cliWith(guard, { url: 'http://127.0.0.1:1' } as Hub, ...cmd);
      expect(r.stderr, cmd.join(' ')).to.contain('cannot reach the hub at http://127.0.0.1:1').and.not.contain('loaded file:');
      expect(r.code, cmd.join(' ')).to.equal(2);
    }
    // the hook does refuse: the full CLI loads the engine
    const full = await cliWith(guard, { url: 'http://127.0.0.1:1' } as Hub, 'validate', 'nothing.json');
    expect(full.stderr).to.match(/loaded file:.*\/dist\/(adapters|lib\/cli\/main\.js|lib\/engine\.js)/);
  });
});
