import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const BIN = 'bin/busbar.js';

function busbar(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 100_000, env: { ...process.env, BUSBAR_LOG_LEVEL: 'info' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('busbar CLI (the standalone broker process)', function () {
  // a validate of a fixture inside this repository type-checks against busbar's own sources (~10 s CPU): room for a loaded machine
  this.timeout(120_000);

  it('prints its version and help', () => {
    const v = busbar('--version');
    expect(v.code).to.equal(0);
    expect(v.stdout.trim()).to.equal((JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
    const h = busbar('--help');
    expect(h.code).to.equal(0);
    expect(h.stdout).to.contain('run').and.contain('validate');
  });

  it('validates a good routes file with exit 0', () => {
    const r = busbar('validate', 'spec/fixtures/cli/good.json');
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('ok');
  });

  it('prints every problem with its path and exits 1', () => {
    const r = busbar('validate', 'spec/fixtures/cli/bad.json');
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('4 problems');
    expect(r.stderr).to.contain('/engin: unknown top-level key "engin"').and.contain('did you mean "engine"?');
    expect(r.stderr).to.contain('/routes/0/steps/0/trasform: unknown step "trasform" (did you mean "transform"?)');
    expect(r.stderr).to.contain('/routes/0/from:').and.contain('did you mean "size"?');
    expect(r.stderr).to.contain('/routes/1/steps/0:').and.contain('did you mean "mock"?');
  });

  it('validates TypeScript routes files without a build step', () => {
    const r = busbar('validate', 'spec/fixtures/cli/bad-uri.ts');
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('route "typo"').and.contain('did you mean "size"?');
  });

  it('runs a JSON routes file for a while and stops gracefully, logging JSON', () => {
    const r = busbar('run', 'spec/fixtures/cli/good.json', '--for', '1s', '--no-pretty');
    expect(r.code, r.stderr).to.equal(0);
    const lines = jsonLines(r.stdout);
    expect(lines.filter((l) => typeof l.msg === 'string' && /^(even|odd) tick \d$/.test(l.msg as string)).map((l) => l.msg)).to.deep.equal(['odd tick 1', 'even tick 2', 'odd tick 3']);
    const stopped = lines.find((l) => l.msg === 'engine stopped');
    expect(stopped?.stats).to.deep.equal({ ticks: { received: 3, completed: 3, failed: 0, deadLettered: 0, redelivered: 0 } });
  });

  it('runs the TypeScript demo without a build step', () => {
    const r = busbar('run', 'routes/demo.ts', '--for', '2s', '--no-pretty');
    expect(r.code, r.stderr).to.equal(0);
    const lines = jsonLines(r.stdout);
    expect(lines.some((l) => l.route === 'audit' && /ORD-0001 -> orders\.\w+:/.test(String(l.msg)))).to.equal(true);
  });

  it('stops gracefully on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'run', 'spec/fixtures/cli/forever.ts', '--no-pretty'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 20_000;
    while (!out.includes('engine started') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    expect(out).to.contain('engine started');
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).to.equal(0);
    expect(jsonLines(out).some((l) => l.msg === 'engine stopped')).to.equal(true);
  });

  it('exits non-zero with a clear message when the file is missing or wrong', () => {
    const missing = busbar('run', 'spec/fixtures/cli/nope.json');
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.contain('cannot read routes file').and.contain('BUSBAR_ERR_ROUTES_FILE');
    const bad = busbar('run', 'spec/fixtures/cli/bad.json', '--no-pretty');
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.contain('BUSBAR_ERR_ROUTES_FILE').and.contain('/engin');
    const badUri = busbar('run', 'spec/fixtures/cli/bad-uri.ts', '--no-pretty');
    expect(badUri.code).to.equal(2);
    expect(badUri.stderr).to.contain('BUSBAR_ERR_INVALID_OPTION').and.contain('did you mean "size"?');
  });
});
