import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { Engine, ServiceRegistry, startGateway, type Gateway } from '../../lib/index.js';
import { AMQP_URL, testLogger, waitFor } from '../helpers.js';

interface Instance {
  proc: ChildProcess;
  id: string;
  out: () => string;
}

function startInstance(name: string): Promise<Instance> {
  let out = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', 'spec/fixtures/services/instance.ts'], { env: { ...process.env, AMQP_URL, INSTANCE_NAME: name }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`instance ${name} did not start: ${out}`)), 60_000);
    proc.stdout!.on('data', () => {
      const m = /ready (\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ proc, id: m[1]!, out: () => out });
      }
    });
    proc.once('exit', (code) => reject(new Error(`instance ${name} exited with ${code}: ${out}`)));
  });
}

interface LoadResult {
  ok: Record<string, number>;
  failed: Array<{ method: string; status: number; code: string; instance?: string }>;
  by: Record<string, number>;
}

/**
 * `total` POSTs by `workers` callers in closed loops, alternating the idempotent `reserve` and
 * the non-idempotent `order` (or only `order`); `at.fn` runs once after `at.n` answers.
 * Bounded by count and time.
 */
async function load(url: string, methods: readonly string[], total: number, workers: number, at: { n: number; fn: () => void }): Promise<LoadResult> {
  const r: LoadResult = { ok: {}, failed: [], by: {} };
  let next = 0;
  let done = 0;
  const deadline = Date.now() + 40_000;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < total && Date.now() < deadline) {
        const i = next++;
        const method = methods[i % methods.length]!;
        const res = await fetch(`${url}/api/inventory/${method}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sku: `s${i}`, qty: 1, id: `o${i}` }) });
        const body = (await res.json()) as { by?: string; error?: { code: string; details?: { instance?: string } } };
        if (res.status === 200) {
          r.ok[method] = (r.ok[method] ?? 0) + 1;
          r.by[body.by!] = (r.by[body.by!] ?? 0) + 1;
        } else {
          const f: LoadResult['failed'][number] = { method, status: res.status, code: body.error?.code ?? '?' };
          if (body.error?.details?.instance) f.instance = body.error.details.instance;
          r.failed.push(f);
        }
        if (++done === at.n) at.fn();
      }
    }),
  );
  return r;
}

describe('service registry and API gateway: three instances in three processes over RabbitMQ', function () {
  this.timeout(120_000);
  const instances: Instance[] = [];
  let engine: Engine;
  let registry: ServiceRegistry;
  let gw: Gateway;

  const passing = (): string[] => registry.instances('inventory').filter((i) => i.passing).map((i) => i.id);

  before(async () => {
    engine = new Engine({ name: 'gateway', logger: testLogger(), adapters: [createAmqpAdapter({ url: AMQP_URL })] });
    registry = new ServiceRegistry(engine, { transport: 'amqp', heartbeatMs: 100, ttlMs: 700 });
    await engine.start();
    gw = await startGateway(registry, { routes: [{ path: '/api/inventory', service: 'inventory', timeoutMs: 10_000 }] });
    instances.push(...(await Promise.all(['i1', 'i2', 'i3'].map(startInstance))));
    await waitFor(() => passing().length === 3, 20_000, 'three passing instances');
  });
  after(async () => {
    for (const i of instances) if (i.proc.exitCode === null) i.proc.kill('SIGKILL');
    await gw?.close();
    await engine?.stop({ timeoutMs: 3000 });
  });

  it('SIGKILL of one of three under load: idempotent calls never fail; non-idempotent ones fail only if they were on the killed instance, coded', async () => {
    const victim = instances[0]!;
    let outstandingAtKill = -1;
    const r = await load(gw.url, ['reserve', 'order'], 400, 8, {
      n: 100,
      fn: () => {
        outstandingAtKill = registry.instances('inventory').find((i) => i.id === victim.id)?.outstanding ?? 0;
        victim.proc.kill('SIGKILL');
      },
    });
    // the killed instance's calls: the idempotent ones were retried on another instance
    expect(r.failed.filter((f) => f.method === 'reserve'), JSON.stringify(r.failed.slice(0, 5))).to.deep.equal([]);
    expect(r.ok.reserve).to.equal(200);
    // a non-idempotent call may have run before the instance died: it is not repeated, its caller is told
    for (const f of r.failed) expect(f).to.deep.equal({ method: 'order', status: 502, code: 'BUSBAR_ERR_SERVICE_INSTANCE_LOST', instance: victim.id });
    expect(r.failed.length).to.be.at.most(8); // at most one per caller: those on the killed instance when it died
    expect((r.ok.order ?? 0) + r.failed.length).to.equal(200);
    // the killed one served until it died; the other two took everything after
    expect(r.by.i1 ?? 0).to.be.within(1, 150);
    expect((r.by.i2 ?? 0) + (r.by.i3 ?? 0)).to.be.greaterThan(250);
    await waitFor(() => !registry.instances('inventory').some((i) => i.id === victim.id), 5000, 'the killed instance to leave the view');
    expect(passing()).to.have.length(2);
    expect(outstandingAtKill).to.be.at.least(0);
  });

  it('graceful stop (SIGTERM) under load: drain first, then deregister; no failure even for non-idempotent calls', async () => {
    const victim = instances[1]!;
    const seen: string[] = [];
    registry.onChange((i, c) => {
      if (i.id === victim.id) seen.push(`${c}:${i.status}`);
    });
    const r = await load(gw.url, ['order'], 300, 8, { n: 60, fn: () => victim.proc.kill('SIGTERM') });
    expect(r.failed, JSON.stringify(r.failed.slice(0, 5))).to.deep.equal([]);
    expect(r.ok.order).to.equal(300);
    await waitFor(() => victim.proc.exitCode !== null, 10_000, 'the instance to exit');
    expect(victim.out()).to.match(/stopped \d+/);
    expect(seen).to.deep.equal(['changed:draining', 'gone:down']);
    expect(r.by.i3).to.be.greaterThan(r.by.i2 ?? 0);
  });
});
