import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { substituteVariables } from '../../lib/routes-file.js';
import { tempDir } from '../helpers.js';

function busbar(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/busbar.js', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('busbar CLI: config input as a new user writes it', function () {
  this.timeout(60_000);
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir('busbar-cli-cfg-');
  });
  afterEach(() => dir.cleanup());

  it('--log-level with an unknown level is a clear error listing the levels, not a stack trace', () => {
    const f = join(dir.path, 'r.json');
    writeFileSync(f, JSON.stringify({ routes: [{ from: 'timer:t?period=1000', steps: [{ to: 'log:x' }] }] }));
    const r = busbar(['run', f, '--log-level', 'verbose', '--for', '1s']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('"verbose" is not a log level').and.contain('fatal, error, warn, info, debug, trace, silent');
    expect(r.stderr).not.to.match(/\n\s+at /);
  });

  it('validate reports a JSON syntax error with its line and column and exits 1', () => {
    const f = join(dir.path, 'broken.json');
    writeFileSync(f, '{\n  "routes": [\n    { "from": "direct:a", }\n  ]\n}\n');
    const r = busbar(['validate', f]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/line 3, column \d+/);
  });

  it('resolves ${VAR} and ${VAR:-default} at load; a missing variable is a validation error naming it, never printing values', () => {
    const f = join(dir.path, 'env.json');
    writeFileSync(f, JSON.stringify({ routes: [{ id: '${ROUTE_ID:-orders}', from: 'direct:${SOURCE}', steps: [{ to: 'log:${SECRET_TOKEN}' }] }] }));
    const ok = busbar(['validate', f], { SOURCE: 'in', SECRET_TOKEN: 's3cr3t-value' });
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout + ok.stderr).not.to.contain('s3cr3t-value');
    const missing = busbar(['validate', f], { SOURCE: 'in', SECRET_TOKEN: '' });
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.contain('${SECRET_TOKEN}').and.contain('/routes/0/steps/0/to');
    expect(substituteVariables({ a: ['${X:-d}', '${Y}'] }, 'f', { Y: 'y' })).to.deep.equal({ a: ['d', 'y'] });
  });
});
