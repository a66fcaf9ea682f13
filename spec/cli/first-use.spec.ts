import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatFailure } from '../../lib/cli/main.js';
import { BusbarError } from '../../lib/errors.js';
import { tempDir } from '../helpers.js';

/** A project as `npm init -y` makes it ("type": "commonjs"), with busbar linked into node_modules. */
function userProject(dir: string, extra: Record<string, string> = {}): void {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'my-app', version: '1.0.0', main: 'index.js', license: 'ISC', type: 'commonjs' }, null, 2));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(resolve('.'), join(dir, 'node_modules', 'busbar'));
  for (const [name, target] of Object.entries(extra)) symlinkSync(target, join(dir, 'node_modules', name));
}

function busbarIn(dir: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(dir, 'node_modules', 'busbar', 'bin', 'busbar.js'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const ROUTES_TS = [
  "import { defineRoutes, from } from 'busbar';",
  'interface Order { id: string; amount: number }',
  'export default defineRoutes({',
  '  routes: [',
  "    from<Order>('timer:tick?period=100&repeatCount=1')",
  "      .routeId('orders')",
  "      .setBody<Order>({ id: 'o-1', amount: 21 })",
  '      .transform((o: Order) => ({ ...o, total: o.amount * 2 }))',
  "      .to('log:priced?showBody=true'),",
  '  ],',
  '});',
  '',
].join('\n');

/** `validate` of a file with a type error and a correct one in one run: the error with its place, the other file ok and type-checked. */
function validatesBadAndGood(dir: string, okLine: RegExp): void {
  writeFileSync(join(dir, 'bad.ts'), ROUTES_TS.replace('total: o.amount * 2', 'total: o.amont * 2'));
  writeFileSync(join(dir, 'routes.ts'), ROUTES_TS);
  const v = busbarIn(dir, ['validate', 'bad.ts', 'routes.ts']);
  expect(v.code, v.stdout + v.stderr).to.equal(1);
  expect(v.stderr).to.contain('bad.ts: 1 problem');
  expect(v.stderr).to.match(/bad\.ts:8:\d+: TS2551: Property 'amont' does not exist on type 'Order'/);
  // the correct file in the same run: no problem, and said to be type-checked
  expect(v.stderr).not.to.contain('routes.ts: ');
  expect(v.stdout).to.match(okLine);
}

describe('busbar CLI in a fresh `npm init -y` project', function () {
  this.timeout(90_000);
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir('busbar-first-use-');
  });
  afterEach(() => dir.cleanup());

  it('validates and runs a .ts routes file in a "type": "commonjs" project', () => {
    userProject(dir.path);
    writeFileSync(join(dir.path, 'routes.ts'), ROUTES_TS);
    const v = busbarIn(dir.path, ['validate', 'routes.ts']);
    expect(v.stderr).not.to.contain('Cannot require() ES Module');
    expect(v.code, v.stderr).to.equal(0);
    expect(v.stdout).to.contain('routes.ts: ok');
    // no typescript in this project: validate says it could not type-check, and why
    expect(v.stderr).to.contain('not type-checked').and.contain('npm install -D typescript');
    const r = busbarIn(dir.path, ['run', 'routes.ts', '--for', '1s', '--no-pretty']);
    expect(r.code, r.stderr).to.equal(0);
    // the route ran: the log endpoint printed the transformed body
    expect(r.stdout).to.contain('"total":42');
  });

  it('validate type-checks .ts routes files with the project\'s typescript (one program for all) and reports each error with its place', () => {
    // typescript and Node's types, as the README's getting-started installs them
    userProject(dir.path, { typescript: resolve('node_modules/typescript'), '@types': resolve('node_modules/@types') });
    validatesBadAndGood(dir.path, /^routes\.ts: ok \(type-checked with TypeScript 5\.\d+/m);
  });

  it('validate type-checks with TypeScript 7 too (a native tsc, no compiler API), with and without the project\'s tsconfig.json', () => {
    // `npm install -D typescript` installs 7.x now: its package is a tsc program and a version
    userProject(dir.path, { typescript: resolve('node_modules/typescript-7'), '@types': resolve('node_modules/@types') });
    validatesBadAndGood(dir.path, /^routes\.ts: ok \(type-checked with TypeScript 7\.\d+/m);
    // the project's tsconfig.json decides the options (here: Node's types by name), not which
    // files: a file of the project outside the routes files is not checked
    writeFileSync(join(dir.path, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, target: 'ES2022', module: 'ESNext', moduleResolution: 'bundler', skipLibCheck: true, types: ['node'] }, include: ['*.ts'] }));
    writeFileSync(join(dir.path, 'other.ts'), 'const n: string = 1;\nexport { n };\n');
    const c = busbarIn(dir.path, ['validate', 'routes.ts', 'bad.ts']);
    expect(c.code, c.stdout + c.stderr).to.equal(1);
    expect(c.stdout).to.match(/^routes\.ts: ok \(type-checked with TypeScript 7/m);
    expect(c.stderr).to.match(/bad\.ts:8:\d+: TS2551/).and.not.contain('other.ts');
    // what validate wrote for tsc is gone again
    expect(readdirSync(dir.path).filter((f) => f.startsWith('tsconfig.')).sort()).to.deep.equal(['tsconfig.json']);
  });

  it('prints the code of a failure\'s cause (ROUTE_START_FAILED caused by DB_DRIVER, as docs/db.md says)', () => {
    const err = new BusbarError('ROUTE_START_FAILED', 'route "rows" failed to start: the db: adapter needs the "pg" package: npm install pg', {
      cause: new BusbarError('DB_DRIVER', 'the db: adapter needs the "pg" package: npm install pg', { cause: Object.assign(new Error("Cannot find package 'pg'"), { code: 'ERR_MODULE_NOT_FOUND' }) }),
    });
    const text = formatFailure(err);
    expect(text).to.contain('code: BUSBAR_ERR_ROUTE_START_FAILED');
    expect(text).to.contain('cause: BUSBAR_ERR_DB_DRIVER\n');
    expect(text).to.contain("cause: ERR_MODULE_NOT_FOUND: Cannot find package 'pg'");
  });
});
