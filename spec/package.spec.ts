import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { tempDir } from './helpers.js';

describe('the built package', function () {
  this.timeout(60_000);

  it('is importable as `busbar` from a user project, with types', () => {
    const dir = tempDir('busbar-user-');
    try {
      mkdirSync(join(dir.path, 'node_modules'));
      symlinkSync(resolve('.'), join(dir.path, 'node_modules', 'busbar'));
      writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ name: 'user-app', type: 'module' }));
      writeFileSync(
        join(dir.path, 'app.ts'),
        [
          "import { Engine, from, type Message } from 'busbar';",
          "import { pino } from 'pino';",
          'interface Order { amount: number }',
          "const engine = new Engine({ logger: pino({ level: 'silent' }) });",
          "engine.addRoutes(from<Order>('direct:in').transform((o) => o.amount * 2));",
          'await engine.start();',
          "const reply: number = await engine.request<number>('direct:in', { amount: 21 });",
          'const m: Message<number> | undefined = undefined;',
          'void m;',
          'console.log(JSON.stringify({ reply }));',
          'await engine.stop();',
        ].join('\n'),
      );
      writeFileSync(
        join(dir.path, 'tsconfig.json'),
        JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, outDir: 'out', types: [], typeRoots: [resolve('node_modules/@types')] }, files: ['app.ts'] }),
      );
      // pino for the user's own import resolves through busbar's node_modules
      symlinkSync(resolve('node_modules/pino'), join(dir.path, 'node_modules', 'pino'));
      const tsc = spawnSync(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', dir.path], { encoding: 'utf8' });
      expect(tsc.status, tsc.stdout + tsc.stderr).to.equal(0);
      const run = spawnSync(process.execPath, [join(dir.path, 'out', 'app.js')], { encoding: 'utf8' });
      expect(run.status, run.stderr).to.equal(0);
      expect(JSON.parse(run.stdout.trim())).to.deep.equal({ reply: 42 });
    } finally {
      dir.cleanup();
    }
  });

  it('loads the optional libraries only when a route uses them', () => {
    // which packages a process that imports busbar and runs an in-memory route has loaded:
    // ESM through a resolve hook, CommonJS through require.cache
    // (the resolve hook runs on the loader's own thread, so it writes what it sees to a file)
    const dir = tempDir('busbar-lazy-');
    const seen = join(dir.path, 'resolved.txt');
    const hook = `import { appendFileSync } from 'node:fs'; export async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(seen)}, r.url + '\\n'); return r; }`;
    const script = `
      const { register, createRequire } = await import('node:module');
      const { readFileSync } = await import('node:fs');
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
      const { Engine, from } = await import(${JSON.stringify(resolve('dist/lib/index.js'))});
      const { pino } = await import('pino');
      const packages = () => {
        const require = createRequire(import.meta.url);
        const names = new Set();
        const esm = readFileSync(${JSON.stringify(seen)}, 'utf8').split('\\n');
        for (const f of [...esm, ...Object.keys(require.cache)]) {
          const m = new RegExp('node_modules/((?:@[^/]+/)?[^/]+)').exec(f);
          if (m) names.add(m[1]);
        }
        return [...names].sort();
      };
      const engine = new Engine({ logger: pino({ level: 'silent' }) });
      engine.addRoutes(from('direct:in').transform((n) => n + 1));
      await engine.start();
      const reply = await engine.request('direct:in', 1);
      const plain = packages();
      engine.events$.subscribe(() => undefined);
      const observed = packages();
      await engine.stop();
      // an endpoint with options (mock: has delayMs) compiles a validator
      const other = new Engine({ logger: pino({ level: 'silent' }) });
      other.addRoutes(from('direct:b').to('mock:out'));
      const validated = packages();
      // tracing loads the OpenTelemetry API only in an engine that traces
      new Engine({ logger: pino({ level: 'silent' }), tracing: true });
      const traced = packages();
      console.log(JSON.stringify({ reply, plain, observed, validated, traced }));
    `;
    let run;
    try {
      run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: resolve('.') });
    } finally {
      dir.cleanup();
    }
    expect(run.status, run.stderr).to.equal(0);
    const r = JSON.parse(run.stdout.trim()) as { reply: number; plain: string[]; observed: string[]; validated: string[]; traced: string[] };
    expect(r.reply).to.equal(2);
    // the hook sees the packages it should (so an empty answer is not a pass)
    expect(r.plain).to.include.members(['pino', 'fast-xml-parser']);
    for (const lazy of ['@sinclair/typebox', 'rxjs', 'jsonata', 'csv-parse', 'csv-stringify', 'ajv', 'ajv-formats', '@grpc/grpc-js', '@grpc/proto-loader', '@opentelemetry/api']) expect(r.plain, lazy).not.to.include(lazy);
    expect(r.observed).to.include('rxjs');
    expect(r.validated).to.include('ajv');
    expect(r.validated).not.to.include('@opentelemetry/api');
    expect(r.traced).to.include('@opentelemetry/api');
  });
});

describe('package hygiene', function () {
  this.timeout(60_000);

  it('ships the sources its source maps and declaration maps point at', () => {
    const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' });
    expect(pack.status, pack.stderr).to.equal(0);
    const files = new Set((JSON.parse(pack.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path));
    const maps = [...files].filter((f) => f.endsWith('.map'));
    expect(maps.length).to.be.greaterThan(10);
    const missing: string[] = [];
    for (const m of maps) {
      const { sources } = JSON.parse(readFileSync(m, 'utf8')) as { sources: string[] };
      for (const s of sources) {
        const target = relative(resolve('.'), resolve(dirname(m), s));
        if (!files.has(target)) missing.push(`${m} -> ${target}`);
      }
    }
    expect(missing.slice(0, 5), `${missing.length} map sources not in the package`).to.deep.equal([]);
    expect([...files].some((f) => f.startsWith('spec/'))).to.equal(false);
  });

  it('has @types/* as runtime dependencies only where the shipped declarations need them', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> };
    const dts = spawnSync('grep', ['-rhoE', "from '[^']+'|import\\(\"[^\"]+\"\\)|reference types=\"[^\"]+\"", 'dist', '--include=*.d.ts'], { encoding: 'utf8' }).stdout;
    for (const t of Object.keys(pkg.dependencies).filter((d) => d.startsWith('@types/'))) {
      const typed = t.slice('@types/'.length).replace(/^(.*)__(.*)$/, '@$1/$2');
      expect(dts.includes(`'${typed}`) || dts.includes(`"${typed}`), `${t} is a dependency but no shipped .d.ts uses ${typed}`).to.equal(true);
    }
  });

  it('keeps local data and packed tarballs out of git', () => {
    const ignore = readFileSync('.gitignore', 'utf8').split('\n');
    expect(ignore).to.include.members(['data/', '*.tgz']);
  });
});
