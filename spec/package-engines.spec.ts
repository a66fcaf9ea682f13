import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';

const root = new URL('..', import.meta.url).pathname;

/** Production dependencies (the installed tree) whose `engines.node` this Node does not satisfy. */
function engineMisfits(): string[] {
  const out = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const misfits = new Set<string>();
  for (const dir of out.split('\n').filter((l) => l.includes('node_modules'))) {
    let pkg: { name?: string; version?: string; engines?: { node?: string } };
    try {
      pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as typeof pkg;
    } catch {
      continue;
    }
    const range = pkg.engines?.node;
    if (range && semver.validRange(range) && !semver.satisfies(process.version, range)) misfits.add(`${pkg.name}@${pkg.version}`);
  }
  return [...misfits].sort();
}

/** The exceptions docs/topologies.md documents (inside its engine-exceptions markers). */
function documented(): string[] {
  const doc = readFileSync(join(root, 'docs/topologies.md'), 'utf8');
  const m = /<!-- engine-exceptions -->([\s\S]*?)<!-- engine-exceptions:end -->/.exec(doc);
  if (!m) throw new Error('docs/topologies.md has no engine-exceptions section');
  return [...new Set([...m[1]!.matchAll(/`((?:@[\w.-]+\/)?[\w.-]+@\d+\.\d+\.\d+)`/g)].map((x) => x[1]!))].sort();
}

describe('dependencies on this Node (the engines they declare)', function () {
  this.timeout(60_000);

  it('every production dependency declares an engine this Node satisfies, except the documented ones', () => {
    expect(engineMisfits()).to.deep.equal(documented());
  });

  it('p-retry 8 (declares Node >= 22) works on this Node: retries, gives up, honours an abort', async () => {
    const { default: pRetry, AbortError } = await import('p-retry');
    let n = 0;
    expect(await pRetry(async () => (++n < 3 ? Promise.reject(new Error('again')) : n), { retries: 5, minTimeout: 1, maxTimeout: 2 })).to.equal(3);
    let tries = 0;
    const gaveUp = await pRetry(async () => {
      tries++;
      throw new Error('always');
    }, { retries: 2, minTimeout: 1, maxTimeout: 2 }).catch((e: Error) => e);
    expect((gaveUp as Error).message).to.equal('always');
    expect(tries).to.equal(3);
    let aborted = 0;
    const stopped = await pRetry(async () => {
      aborted++;
      throw new AbortError('stop now');
    }, { retries: 5, minTimeout: 1 }).catch((e: Error) => e);
    expect((stopped as Error).message).to.equal('stop now');
    expect(aborted).to.equal(1);
    const ac = new AbortController();
    const signalled = pRetry(async () => {
      ac.abort(new Error('cancelled'));
      throw new Error('x');
    }, { retries: 5, minTimeout: 50, signal: ac.signal }).catch((e: Error) => e);
    expect(((await signalled) as Error).message).to.equal('cancelled');
  });
});
