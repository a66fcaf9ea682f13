import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { tempDir, waitFor } from '../helpers.js';
import { files } from '../adapters/file/setup.js';
import type { WorkerConfig } from '../adapters/file/fixtures/worker.js';

const WORKER = fileURLToPath(new URL('../adapters/file/fixtures/worker.ts', import.meta.url));


/** Start a busbar process; resolves once its engine started. */
async function startWorker(cfg: WorkerConfig): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker did not start within 60 s')), 60_000);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code} before it was ready`));
    });
  });
  return child;
}

async function stopWorker(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000).unref())]);
}

function logLines(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.log'))) {
    out.push(...readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));
  }
  return out;
}

/** Files written in `staging` and renamed into `inbox`, so they appear whole (the `readLock=rename` contract). */
function deliver(root: string, inbox: string, n: number, prefix = 'f'): string[] {
  const staging = join(root, 'staging');
  mkdirSync(staging, { recursive: true });
  mkdirSync(join(root, inbox), { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${prefix}${String(i).padStart(5, '0')}.json`;
    writeFileSync(join(staging, name), JSON.stringify({ i, name }));
    names.push(name);
  }
  for (const name of names) renameSync(join(staging, name), join(root, inbox, name));
  return names;
}

describe('file: several busbar processes on one inbox', function () {
  this.timeout(120_000);
  let t: ReturnType<typeof tempDir>;
  const children: ChildProcess[] = [];
  beforeEach(() => {
    t = tempDir('busbar-file-procs-');
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => stopWorker(c, 'SIGKILL')));
    t.cleanup();
  });

  for (const [readLock, procs] of [['rename', 3], ['marker', 2]] as const) {
    it(`${procs} processes, 2,000 files, readLock=${readLock}: each file processed exactly once`, async () => {
      const N = 2000;
      const dir = t.path;
      mkdirSync(join(dir, 'inbox'));
      const started = Array.from({ length: procs }, (_, k) => startWorker({ dir, from: `file:inbox?readLock=${readLock}&delay=20&maxMessagesPerPoll=200`, log: join(dir, `w${k}.log`), slowMs: 1 }));
      for (const s of started) void s.then((c) => children.push(c), () => undefined);
      await Promise.all(started);
      const names = deliver(dir, 'inbox', N);
      await waitFor(() => files(join(dir, 'inbox/.done')).length === N, 90_000, 'all files in .done');
      await Promise.all(children.splice(0).map((c) => stopWorker(c)));
      const lines = logLines(dir);
      const processed = lines.map((l) => l.split(' ')[1]!);
      expect(processed).to.have.length(N);
      expect(new Set(processed).size).to.equal(N);
      expect([...processed].sort()).to.deep.equal(names);
      // they really competed
      expect(new Set(lines.map((l) => l.split(' ')[0])).size).to.be.at.least(2);
      expect(files(join(dir, 'inbox')).filter((f) => !f.startsWith('.done/'))).to.deep.equal([]);
    });
  }

  it('a process killed mid-route loses nothing: the restarted one finishes every file', async () => {
    const N = 300;
    const dir = t.path;
    mkdirSync(join(dir, 'inbox'));
    const names = deliver(dir, 'inbox', N);
    const cfg: WorkerConfig = { dir, from: 'file:inbox?readLock=rename&delay=20', to: 'file:outbox', log: join(dir, 'w.log'), slowMs: 20, maxInflight: 8 };
    const first = await startWorker(cfg);
    children.push(first);
    await waitFor(() => existsSync(cfg.log) && logLines(dir).length >= 40, 60_000, 'some files processed');
    await stopWorker(first, 'SIGKILL');
    const claimedAtCrash = files(join(dir, 'inbox')).filter((f) => f.endsWith('.claim')).length;
    const doneAtCrash = files(join(dir, 'inbox/.done')).length;
    expect(doneAtCrash).to.be.below(N);

    children.push(await startWorker(cfg));
    await waitFor(() => files(join(dir, 'inbox/.done')).length === N, 60_000, 'all files in .done after restart');
    await Promise.all(children.splice(0).map((c) => stopWorker(c)));
    expect(files(join(dir, 'inbox')).map((f) => f.replace(/^\.done\//, '')).sort()).to.deep.equal(names);
    // every file reached the outbox whole
    const out = files(join(dir, 'outbox')).filter((f) => !f.startsWith('.'));
    expect(out.sort()).to.deep.equal(names);
    for (const n of out) expect(JSON.parse(readFileSync(join(dir, 'outbox', n), 'utf8')).name).to.equal(n);
    // at-least-once: only files in flight at the crash may have been processed twice
    const processed = logLines(dir).map((l) => l.split(' ')[1]!);
    expect(new Set(processed).size).to.equal(N);
    expect(processed.length - N).to.be.at.most(claimedAtCrash);
  });

  it('a file the process cannot read goes to .error/ with the I/O reason', async () => {
    // root reads anything: then the worker drops to nobody; otherwise permissions alone do it
    const uid = process.getuid?.() === 0 ? 65534 : undefined;
    const dir = t.path;
    chmodSync(dir, 0o777);
    mkdirSync(join(dir, 'inbox'));
    chmodSync(join(dir, 'inbox'), 0o777);
    writeFileSync(join(dir, 'inbox/secret.txt'), 'root only');
    chmodSync(join(dir, 'inbox/secret.txt'), 0o000);
    writeFileSync(join(dir, 'inbox/open.txt'), 'anyone');
    chmodSync(join(dir, 'inbox/open.txt'), 0o644);
    writeFileSync(join(dir, 'w.log'), '');
    chmodSync(join(dir, 'w.log'), 0o666);
    children.push(await startWorker({ dir, from: 'file:inbox?readLock=rename&delay=20', log: join(dir, 'w.log'), ...(uid === undefined ? {} : { uid }) }));
    await waitFor(() => existsSync(join(dir, 'inbox/.error/secret.txt.error.json')) && existsSync(join(dir, 'inbox/.done/open.txt')), 30_000, 'both files settled');
    const reason = JSON.parse(readFileSync(join(dir, 'inbox/.error/secret.txt.error.json'), 'utf8')) as { code: string };
    expect(reason.code).to.equal('BUSBAR_ERR_FILE_IO');
    expect(logLines(dir).map((l) => l.split(' ')[1])).to.deep.equal(['open.txt']);
  });
});
