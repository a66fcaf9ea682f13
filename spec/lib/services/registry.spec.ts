import { expect } from 'chai';
import { Engine, ServiceRegistry, startGateway, type BusbarError, type ServiceContract } from '../../../lib/index.js';
import { testLogger, waitFor } from '../../helpers.js';

interface Inventory {
  reserve(req: { sku: string; qty: number }): { sku: string; qty: number; by: string };
  slow(ms: number): Promise<string>;
}

const contract: ServiceContract = {
  methods: {
    reserve: {
      description: 'reserve stock',
      idempotent: true,
      input: { type: 'object', required: ['sku', 'qty'], properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1 } }, additionalProperties: false },
      output: { type: 'object', properties: { sku: { type: 'string' }, qty: { type: 'integer' }, by: { type: 'string' } } },
    },
    slow: { input: { type: 'integer' } },
  },
};

class Impl implements Inventory {
  calls = 0;
  broken = false;
  constructor(readonly name: string) {}
  reserve(req: { sku: string; qty: number }) {
    this.calls++;
    return { ...req, by: this.name };
  }
  async slow(ms: number) {
    this.calls++;
    await new Promise((r) => setTimeout(r, this.broken ? ms * 10 : ms));
    return this.name;
  }
}

describe('service registry (in memory)', function () {
  this.timeout(15000);
  let engine: Engine;
  let registry: ServiceRegistry;
  let a: Impl;
  let b: Impl;
  let idA: string;
  let idB: string;
  let healthyB = true;

  beforeEach(async () => {
    engine = new Engine({ logger: testLogger() });
    registry = new ServiceRegistry(engine, { heartbeatMs: 50, ttlMs: 1500, drainGraceMs: 80 });
    a = new Impl('a');
    b = new Impl('b');
    healthyB = true;
    idA = registry.register('inventory', a, { version: '1.2.0', contract, metadata: { zone: 'eu' } });
    idB = registry.register('inventory', b, { version: '1.1.0', contract, check: () => healthyB });
    await engine.start();
    await waitFor(() => registry.instances('inventory').filter((i) => i.passing).length === 2, 3000, 'two passing instances');
  });
  afterEach(() => engine.stop({ timeoutMs: 2000 }));

  it('announces instances (name, version, node, metadata, contract) and balances calls over them', async () => {
    const view = registry.instances('inventory');
    expect(view.map((i) => i.id).sort()).to.deep.equal([idA, idB].sort());
    const va = view.find((i) => i.id === idA)!;
    expect(va).to.include({ service: 'inventory', version: '1.2.0', status: 'up', health: 'passing' });
    expect(va.metadata).to.deep.equal({ zone: 'eu' });
    expect(va.node).to.match(new RegExp(`/${process.pid}/`));
    expect(registry.contractOf('inventory')?.version).to.equal('1.2.0');
    const inv = registry.proxy<Inventory>('inventory');
    const by = new Set<string>();
    for (let i = 0; i < 40; i++) by.add((await inv.reserve({ sku: "x", qty: 1 })).by);
    expect([...by].sort()).to.deep.equal(['a', 'b']);
    expect(a.calls + b.calls).to.equal(40);
  });

  it('power of two choices: concurrent calls go to the instance with fewer outstanding', async () => {
    const inv = registry.proxy<Inventory>('inventory');
    // b is slow: with two instances, p2c always compares both, so b never holds more than a few
    b.broken = true;
    // four callers in a closed loop: each next call sees which instance still holds calls
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 8; i++) await inv.slow(20);
    }));
    expect(a.calls + b.calls).to.equal(32);
    expect(a.calls).to.be.greaterThan(b.calls * 1.5);
  });

  it('checks the contract on the instance: a bad argument is VALIDATION_FAILED with the pointer', async () => {
    const inv = registry.proxy<Inventory>('inventory');
    const err = (await inv.reserve({ sku: 'x', qty: 0 }).catch((e: unknown) => e)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    expect(err.message).to.contain('/qty');
  });

  it('calls only passing instances: a failing health check takes an instance out until it passes again', async () => {
    healthyB = false;
    await waitFor(() => registry.instances('inventory').find((i) => i.id === idB)!.health === 'critical', 2000, 'b critical');
    const inv = registry.proxy<Inventory>('inventory');
    const before = b.calls;
    for (let i = 0; i < 20; i++) expect((await inv.reserve({ sku: 'x', qty: 1 })).by).to.equal('a');
    expect(b.calls).to.equal(before);
    healthyB = true;
    await waitFor(() => registry.instances('inventory').every((i) => i.passing), 2000, 'b passing again');
  });

  it('opens a per-instance circuit after failures (timeouts) and sends the calls elsewhere', async () => {
    b.broken = true;
    const inv = registry.proxy<Inventory>('inventory', { timeoutMs: 100, breaker: { windowSize: 4, minimumCalls: 2, openMs: 60_000 } });
    const results: string[] = [];
    for (let i = 0; i < 24; i++) results.push(await inv.slow(40).catch((e: BusbarError) => e.code));
    const vb = registry.instances('inventory').find((i) => i.id === idB)!;
    expect(vb.circuit).to.equal('open');
    // once open, every call went to a
    expect(results.slice(-12)).to.deep.equal(Array(12).fill('a'));
    expect(results.filter((r) => r === 'BUSBAR_ERR_TIMEOUT').length).to.be.within(1, 3);
  });

  it('stop(): announces draining, lets the calls in flight finish, then deregisters', async () => {
    const changes: string[] = [];
    registry.onChange((i, c) => changes.push(`${i.id === idA ? 'a' : 'b'}:${c}:${i.status}`));
    const inv = registry.proxy<Inventory>('inventory');
    const inflight = Array.from({ length: 6 }, () => inv.slow(150));
    await registry.stop();
    expect((await Promise.all(inflight)).length).to.equal(6);
    expect(changes).to.include.members(['a:changed:draining', 'b:changed:draining', 'a:gone:down', 'b:gone:down']);
    expect(changes.indexOf('a:changed:draining')).to.be.lessThan(changes.indexOf('a:gone:down'));
    const err = (await inv.reserve({ sku: 'x', qty: 1 }).catch((e: unknown) => e)) as BusbarError;
    expect(err.code).to.equal('BUSBAR_ERR_SERVICE_UNAVAILABLE');
  });
});

describe('API gateway (in memory services)', function () {
  this.timeout(15000);
  let engine: Engine;
  let registry: ServiceRegistry;
  let gw: Awaited<ReturnType<typeof startGateway>>;
  let healthy = true;
  before(async () => {
    engine = new Engine({ logger: testLogger() });
    registry = new ServiceRegistry(engine, { heartbeatMs: 50, ttlMs: 1500 });
    registry.register('inventory', new Impl('a'), { version: '2.0.0', contract, check: () => healthy });
    await engine.start();
    await waitFor(() => registry.instances('inventory').some((i) => i.passing), 3000, 'instance');
    gw = await startGateway(registry, {
      auth: (req) => (req.headers.authorization ? req.headers.authorization === 'Bearer good' || { status: 403, message: 'bad token' } : { status: 401 }),
      routes: [
        { path: '/api/inventory', service: 'inventory', methods: ['reserve'] },
        { path: '/api/limited', service: 'inventory', methods: ['reserve'], rateLimit: { perSecond: 2, burst: 10 } },
        { path: '/api/all', service: 'inventory' },
      ],
    });
  });
  after(async () => {
    await gw?.close();
    await engine?.stop({ timeoutMs: 2000 });
  });
  const post = (path: string, body: unknown, token = 'good') =>
    fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });

  it('maps a path to the service by name and answers with the result', async () => {
    const res = await post('/api/inventory/reserve', { sku: 'apple', qty: 2 });
    expect(res.status).to.equal(200);
    expect(await res.json()).to.deep.equal({ sku: 'apple', qty: 2, by: 'a' });
  });

  it('allow-list: a method not listed is 404 GATEWAY_NOT_FOUND; the contract methods when no list is given', async () => {
    const res = await post('/api/inventory/slow', 1);
    expect(res.status).to.equal(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_GATEWAY_NOT_FOUND');
    expect((await post('/api/all/slow', 1)).status).to.equal(200);
    expect((await post('/nowhere/x', 1)).status).to.equal(404);
  });

  it('auth hook: 401 without credentials, 403 with wrong ones', async () => {
    expect((await post('/api/inventory/reserve', { sku: 'a', qty: 1 }, '')).status).to.equal(401);
    const res = await post('/api/inventory/reserve', { sku: 'a', qty: 1 }, 'bad');
    expect(res.status).to.equal(403);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).to.include({ code: 'BUSBAR_ERR_GATEWAY_FORBIDDEN' });
  });

  it('contract violations are 400 with the problems; bad JSON is 400', async () => {
    const res = await post('/api/inventory/reserve', { sku: 'a' });
    expect(res.status).to.equal(400);
    const body = (await res.json()) as { error: { code: string; details: { problems: Array<{ pointer: string }> } } };
    expect(body.error.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    const bad = await fetch(`${gw.url}/api/inventory/reserve`, { method: 'POST', headers: { authorization: 'Bearer good' }, body: '{nope' });
    expect(bad.status).to.equal(400);
  });

  it('rate limit per route: 429 with Retry-After once the burst is used', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) statuses.push((await post('/api/limited/reserve', { sku: 'a', qty: 1 })).status);
    expect(statuses.filter((s) => s === 200).length).to.be.within(10, 11);
    const res = await post('/api/limited/reserve', { sku: 'a', qty: 1 });
    expect(res.status).to.equal(429);
    expect(Number(res.headers.get('retry-after'))).to.be.greaterThan(0);
    // the other routes have no limit
    for (let i = 0; i < 5; i++) expect((await post('/api/inventory/reserve', { sku: 'a', qty: 1 })).status).to.equal(200);
  });

  it('only passing instances: 503 SERVICE_UNAVAILABLE while the only one is unhealthy', async () => {
    healthy = false;
    await waitFor(() => !registry.instances('inventory')[0]!.passing, 2000, 'unhealthy');
    const res = await post('/api/all/slow', 1);
    expect(res.status).to.equal(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_SERVICE_UNAVAILABLE');
    healthy = true;
    await waitFor(() => registry.instances('inventory')[0]!.passing, 2000, 'healthy');
  });

  it('serves an OpenAPI document generated from the services\' contracts', async () => {
    const res = await fetch(`${gw.url}/openapi.json`);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, { post: { operationId: string; requestBody: { content: Record<string, { schema: unknown }> }; responses: Record<string, unknown> } }> };
    expect(doc.openapi).to.equal('3.0.3');
    expect(Object.keys(doc.paths).sort()).to.deep.equal(['/api/all/reserve', '/api/all/slow', '/api/inventory/reserve', '/api/limited/reserve']);
    const op = doc.paths['/api/inventory/reserve']!.post;
    expect(op.operationId).to.equal('inventory.reserve');
    expect(op.requestBody.content['application/json']!.schema).to.deep.equal(contract.methods.reserve!.input);
    expect(op.responses).to.have.keys('200', '400', '404', '429', '502', '503', '504');
  });
});
