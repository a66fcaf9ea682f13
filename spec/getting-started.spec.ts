import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { tempDir } from './helpers.js';

/**
 * README.md's "Getting started in a new project", run as a new user would: the package as
 * `npm pack` builds it, installed into a fresh `npm init -y` project ("type": "commonjs"), the
 * README's files written as the README shows them (blocks marked `<!-- getting-started:<file> -->`)
 * and its commands (the block marked `<!-- getting-started:run -->`) run one by one. A changed
 * README is what is tested. Needs `npm run build` (dist/), as the package spec does.
 *
 * Installing needs no network: `npm install --offline` from npm's cache (filled by `npm ci` of
 * this repository); where the cache cannot answer (a cache filled by `npm ci` alone has the
 * tarballs but not the registry documents a fresh install asks for), the tarball is unpacked
 * into node_modules/busbar and its dependencies are linked from this repository's
 * node_modules: what the tarball contains is still what runs.
 */

function readmeBlocks(): Map<string, string> {
  const lines = readFileSync('README.md', 'utf8').split('\n');
  const out = new Map<string, string>();
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!-- getting-started:(\S+) -->$/.exec(lines[i]!.trim());
    if (!m) continue;
    let j = i + 1;
    while (j < lines.length && !lines[j]!.startsWith('```')) j++;
    let k = j + 1;
    while (k < lines.length && !/^```\s*$/.test(lines[k]!)) k++;
    out.set(m[1]!, lines.slice(j + 1, k).join('\n'));
    i = k;
  }
  return out;
}

function sh(cmd: string, cwd: string, timeout = 90_000): { code: number | null; out: string; stdout: string } {
  const r = spawnSync('sh', ['-c', cmd], {
    cwd,
    encoding: 'utf8',
    timeout,
    // no network: npm and npx answer from the cache and the project's node_modules
    env: { ...process.env, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', BUSBAR_LOG_LEVEL: 'info' },
  });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}`, stdout: r.stdout };
}

/** Unpack the tarball as node_modules/busbar and link what it depends on from this repository. */
function linkInstall(project: string, tgz: string, extra: Record<string, string>): void {
  const target = join(project, 'node_modules', 'busbar');
  mkdirSync(target, { recursive: true });
  const tar = spawnSync('tar', ['-xzf', tgz, '-C', target, '--strip-components=1'], { encoding: 'utf8' });
  expect(tar.status, tar.stderr).to.equal(0);
  const pkg = JSON.parse(readFileSync(join(target, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const links: Record<string, string> = { ...Object.fromEntries(Object.keys(pkg.dependencies).map((n) => [n, n])), ...extra };
  for (const [name, from] of Object.entries(links)) {
    const link = join(project, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(resolve('node_modules', from), link);
  }
  mkdirSync(join(project, 'node_modules', '.bin'), { recursive: true });
  symlinkSync('../busbar/bin/busbar.js', join(project, 'node_modules', '.bin', 'busbar'));
}

describe('README getting-started, as a new user (npm pack, npm init -y, the README\'s files and commands)', function () {
  this.timeout(240_000);
  const dir = tempDir('busbar-getting-started-');
  after(() => dir.cleanup());

  it('the packed tarball installs into a fresh commonjs project, and the README\'s routes file validates, runs, and its library snippet prints its answer', () => {
    const blocks = readmeBlocks();
    expect([...blocks.keys()]).to.include.members(['routes.ts', 'app.mjs', 'run']);
    const packed = spawnSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir.path], { encoding: 'utf8', timeout: 60_000 });
    expect(packed.status, packed.stderr).to.equal(0);
    const tgz = join(dir.path, readdirSync(dir.path).find((f) => f.endsWith('.tgz'))!);

    const project = join(dir.path, 'my-app');
    mkdirSync(project);
    const init = sh('npm init -y', project);
    expect(init.code, init.out).to.equal(0);
    expect(JSON.parse(readFileSync(join(project, 'package.json'), 'utf8'))).not.to.have.property('type', 'module');

    // the README's two install lines, offline: busbar's tarball, then typescript and Node's types.
    // `npm install -D typescript` installs TypeScript 7 (this repository has it as typescript-7)
    const dev = JSON.parse(readFileSync('package.json', 'utf8')) as { devDependencies: Record<string, string> };
    const ts7 = dev.devDependencies['typescript-7']!.replace(/^npm:typescript@/, '');
    const install = sh(`npm install --offline ${JSON.stringify(tgz)} typescript@${ts7} @types/node@${dev.devDependencies['@types/node']}`, project);
    if (install.code !== 0) {
      expect(install.out, 'an install that failed for another reason than an offline cache miss').to.match(/ENOTCACHED|offline|cache/i);
      linkInstall(project, tgz, { typescript: 'typescript-7', '@types/node': '@types/node' });
    }

    for (const [file, text] of blocks) if (file !== 'run') writeFileSync(join(project, file), `${text}\n`);
    const commands = blocks
      .get('run')!
      .split('\n')
      .map((l) => l.replace(/\s+#.*$/, '').trim())
      .filter((l) => l.length > 0);
    expect(commands.length).to.be.greaterThan(2);
    const results = new Map<string, ReturnType<typeof sh>>();
    for (const c of commands) {
      const r = sh(c, project);
      expect(r.code, `${c}\n${r.out}`).to.equal(0);
      results.set(c, r);
    }
    const of = (prefix: string): ReturnType<typeof sh> => [...results].find(([c]) => c.startsWith(prefix))![1];
    // validate type-checked the file with the project's typescript (not "not type-checked")
    expect(of('npx busbar validate').out).to.match(/routes\.ts: ok \(type-checked with TypeScript 7\./);
    // the route ran: three orders priced through the log: endpoint
    expect(of('npx busbar run').out.match(/"total":42/g)).to.have.length(3);
    // the library snippet printed its answer
    expect(of('node app.mjs').stdout.split('\n')).to.include('42');
  });
});
