import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AMQP_URL, tempDir } from '../helpers.js';

describe('busbar topology plan (against the real RabbitMQ)', function () {
  this.timeout(60_000);
  const existing = `busbar-cli-plan-${process.pid}`;
  const fresh = `busbar-cli-plan-new-${process.pid}`;
  const dir = tempDir('busbar-plan-');

  before(async () => {
    const amqp = await import('amqplib');
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.assertQueue(existing, { durable: true, arguments: { 'x-message-ttl': 1000 } });
    await conn.close();
  });

  after(async () => {
    const amqp = await import('amqplib');
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.deleteQueue(existing);
    await ch.deleteQueue(fresh);
    await conn.close();
    dir.cleanup();
  });

  function plan(queues: unknown[], topLevel = false): { code: number | null; out: string } {
    const file = join(dir.path, `plan-${queues.length}-${Math.random().toString(36).slice(2)}.json`);
    const doc = topLevel ? { routes: [], topology: { queues }, adapters: { amqp: { url: AMQP_URL } } } : { routes: [], adapters: { amqp: { url: AMQP_URL, topology: { queues } } } };
    writeFileSync(file, JSON.stringify(doc));
    const r = spawnSync(process.execPath, ['bin/busbar.js', 'topology', 'plan', file], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, out: r.stdout + r.stderr };
  }

  it('reports a declaration that conflicts with the broker, and exits 1 without changing it', async () => {
    const r = plan([{ name: existing, messageTtlMs: 5000 }, { name: fresh }]);
    expect(r.code, r.out).to.equal(1);
    expect(r.out).to.match(new RegExp(`! queue +${existing} +conflict`));
    expect(r.out).to.contain('BUSBAR_ERR_');
    expect(r.out).to.match(new RegExp(`\\+ queue +${fresh} +create`));
    const amqp = await import('amqplib');
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    // the plan created nothing: a passive check of the new queue fails with 404
    const missing = await ch.checkQueue(fresh).then(() => 'exists', () => 'missing');
    await conn.close().catch(() => undefined);
    expect(missing).to.equal('missing');
  });

  it('exits 0 when every declaration matches', () => {
    const r = plan([{ name: existing, messageTtlMs: 1000 }]);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.match(new RegExp(`= queue +${existing} +unchanged`));
  });

  it('plans the README example, whose amqp adapter is passed as an instance (examples/amqp-bridge/routes.ts)', () => {
    const r = spawnSync(process.execPath, ['bin/busbar.js', 'topology', 'plan', 'examples/amqp-bridge/routes.ts'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, BUSBAR_AMQP_URL: AMQP_URL } });
    const out = r.stdout + r.stderr;
    expect(out).not.to.contain('declares no amqp topology');
    expect(r.status, out).to.equal(0);
    expect(out).to.match(/exchange +orders /).and.match(/queue +orders\.in /).and.match(/binding +orders -> queue orders\.all \[orders\.#\]/);
  });

  it('plans a named amqp instance of a .ts file (named(\'amqp-eu\', createAmqpAdapter({...})) keeps its config)', () => {
    const file = join(dir.path, 'named.ts');
    writeFileSync(
      file,
      [
        `import { createAmqpAdapter } from ${JSON.stringify(resolve('adapters/amqp/index.js'))};`,
        `import { defineRoutes, from, named } from ${JSON.stringify(resolve('lib/index.js'))};`,
        'export default defineRoutes({',
        `  adapters: [named('amqp-eu', createAmqpAdapter({ url: ${JSON.stringify(AMQP_URL)}, topology: { queues: [{ name: ${JSON.stringify(existing)}, messageTtlMs: 1000 }, { name: ${JSON.stringify(fresh)} }] } }))],`,
        "  routes: [from('amqp-eu:queue:" + existing + "').to('log:in')],",
        '});',
        '',
      ].join('\n'),
    );
    const r = spawnSync(process.execPath, ['bin/busbar.js', 'topology', 'plan', file], { encoding: 'utf8', timeout: 30_000 });
    const out = r.stdout + r.stderr;
    expect(out).not.to.contain('declares no amqp topology');
    expect(r.status, out).to.equal(0);
    expect(out).to.contain('adapter amqp-eu:');
    expect(out).to.match(new RegExp(`= queue +${existing} +unchanged`)).and.match(new RegExp(`\\+ queue +${fresh} +create`));
  });

  it('plans every amqp instance a JSON file configures, named ones ({ "type": "amqp" }) included', () => {
    const file = join(dir.path, 'two.json');
    writeFileSync(
      file,
      JSON.stringify({
        routes: [],
        adapters: {
          amqp: { url: AMQP_URL, topology: { queues: [{ name: existing, messageTtlMs: 1000 }] } },
          'amqp-eu': { type: 'amqp', url: AMQP_URL, topology: { queues: [{ name: existing, messageTtlMs: 5000 }] } },
        },
      }),
    );
    const r = spawnSync(process.execPath, ['bin/busbar.js', 'topology', 'plan', file], { encoding: 'utf8', timeout: 30_000 });
    const out = r.stdout + r.stderr;
    // the named instance conflicts (its TTL differs from the broker's): exit 1, both planned
    expect(r.status, out).to.equal(1);
    expect(out.indexOf('adapter amqp:')).to.be.greaterThan(-1);
    const eu = out.indexOf('adapter amqp-eu:');
    expect(eu, out).to.be.greaterThan(out.indexOf('adapter amqp:'));
    expect(out.slice(0, eu)).to.match(new RegExp(`= queue +${existing} +unchanged`));
    expect(out.slice(eu)).to.match(new RegExp(`! queue +${existing} +conflict`));
  });

  it('reads a top-level "topology" of the routes file as the amqp topology', () => {
    const r = plan([{ name: existing, messageTtlMs: 5000 }], true);
    expect(r.code, r.out).to.equal(1);
    expect(r.out).to.match(new RegExp(`! queue +${existing} +conflict`));
  });
});
