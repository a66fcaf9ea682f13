import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SHOP_PROTO } from './helpers.js';

describe('grpc: dependencies', function () {
  this.timeout(30_000);

  it('@grpc/grpc-js and @grpc/proto-loader are pinned exactly and load only when a gRPC endpoint starts', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> };
    expect(pkg.dependencies['@grpc/grpc-js']).to.match(/^1\.14\.\d+$/);
    expect(pkg.dependencies['@grpc/proto-loader']).to.match(/^0\.8\.\d+$/);
    const script = `
      const { createRequire } = await import('node:module');
      const require = createRequire(import.meta.url);
      const loaded = () => Object.keys(require.cache).filter((f) => /node_modules\\/@grpc\\//.test(f)).map((f) => /@grpc\\/[^/]+/.exec(f)[0]);
      const { Engine, from } = await import(${JSON.stringify(resolve('dist/lib/index.js'))});
      const { createGrpcAdapter, grpcPort } = await import(${JSON.stringify(resolve('dist/adapters/grpc/index.js'))});
      const { pino } = await import('pino');
      const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [createGrpcAdapter()] });
      engine.addRoutes(from('grpc:shop.Orders/GetOrder?port=0&proto=' + encodeURIComponent(${JSON.stringify(SHOP_PROTO)})).transform((b) => b));
      const before = [...new Set(loaded())];
      await engine.start();
      const after = [...new Set(loaded())].sort();
      const versions = Object.fromEntries(['@grpc/grpc-js', '@grpc/proto-loader'].map((p) => [p, require(p + '/package.json').version]));
      const port = grpcPort(engine, 0);
      await engine.stop();
      console.log(JSON.stringify({ before, after, versions, port, node: process.versions.node }));
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: resolve('.') });
    expect(run.status, run.stderr).to.equal(0);
    const r = JSON.parse(run.stdout.trim()) as { before: string[]; after: string[]; versions: Record<string, string>; port: number; node: string };
    expect(r.before).to.deep.equal([]);
    expect(r.after).to.include.members(['@grpc/grpc-js', '@grpc/proto-loader']);
    expect(r.versions).to.deep.equal({ '@grpc/grpc-js': pkg.dependencies['@grpc/grpc-js'], '@grpc/proto-loader': pkg.dependencies['@grpc/proto-loader'] });
    expect(r.port).to.be.greaterThan(0);
    expect(Number(r.node.split('.')[0])).to.be.at.least(20);
  });
});
