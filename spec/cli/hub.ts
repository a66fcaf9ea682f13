import { spawn, type ChildProcess } from 'node:child_process';

export const BIN = 'bin/busbar.js';

/** A `busbar run` child process with its management API; `url` is read from its startup log. */
export interface Hub {
  url: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

export async function startHub(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<Hub> {
  const child = spawn(process.execPath, [BIN, 'run', ...args, '--no-pretty'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BUSBAR_LOG_LEVEL: 'info', ...env } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const deadline = Date.now() + timeoutMs;
  let url: string | undefined;
  while (!url && Date.now() < deadline && child.exitCode === null) {
    const line = out.split('\n').find((l) => l.includes('management API listening'));
    if (line) url = (JSON.parse(line) as { url: string }).url;
    else await new Promise((r) => setTimeout(r, 50));
  }
  if (!url) {
    child.kill('SIGKILL');
    throw new Error(`busbar run did not start its management API:\n${out}`);
  }
  return {
    url,
    child,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
