// Helpers for specs that run busbar in child processes (competing consumers, kill -9 tests):
// the parent starts a worker script and waits for its "ready"; the worker side starts an engine,
// says "ready", and stops on "stop" from stdin (or after 120 s, so a lost parent never leaves
// it behind). One copy for every such spec.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Engine } from '../lib/index.js';

export interface WorkerProcess {
  child: ChildProcess;
  ready: Promise<void>;
  exited: Promise<number | null>;
}

/** Parent side: run `script` (a .ts file, through tsx) with `env` added. */
export function startWorker(script: string, env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      if (String(d).includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker ${script} exited with ${code} before it was ready`)));
  });
  ready.catch(() => undefined);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, ready, exited };
}

/**
 * Worker side: start the engine (with `hold`, only after "go" on stdin, so a test pays the
 * process start-up in advance), print "ready", stop on "stop".
 */
export async function serveWorker(engine: Engine, opts: { hold?: boolean; onStop?: () => string } = {}): Promise<void> {
  // the parent is gone (its end of stdin closed): so is this worker
  process.stdin.on('end', () => process.exit(0));
  if (opts.hold) await new Promise<void>((resolve) => process.stdin.on('data', (d) => String(d).includes('go') && resolve()));
  await engine.start();
  process.stdout.write('ready\n');
  const stop = async (): Promise<void> => {
    await engine.stop();
    // what the parent wants to know about the run (one line), then exit once it is written
    if (opts.onStop) process.stdout.write(`${opts.onStop()}\n`, () => process.exit(0));
    else process.exit(0);
  };
  setTimeout(() => void stop(), 120_000).unref();
  process.stdin.on('data', (d) => {
    if (String(d).includes('stop')) void stop();
  });
}
