import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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
});
