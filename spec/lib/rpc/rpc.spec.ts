import { expect } from 'chai';
import { Engine, type BusbarError } from '../../../lib/index.js';
import { expose, methodsOf, proxy } from '../../../lib/rpc.js';
import { httpAdapter } from '../../../adapters/http/index.js';
import { testLogger } from '../../helpers.js';
import { portOf } from '../../adapters/http/helpers.js';
import { CalculatorImpl, type Calculator } from './calculator.js';

/** The same checks for every transport: the interface is the contract, the URI the only difference. */
const transports: Array<{ name: string; serve: string; call: (e: Engine) => string }> = [
  { name: 'direct: (in memory)', serve: 'direct:calc', call: () => 'direct:calc' },
  { name: 'JSON-RPC over HTTP', serve: 'http:/rpc?port=0&protocol=jsonrpc', call: (e) => `http://127.0.0.1:${portOf(e)}/rpc?protocol=jsonrpc` },
];

for (const t of transports) {
  describe(`rpc stubs and skeletons over ${t.name}`, () => {
    let e: Engine;
    let impl: CalculatorImpl;
    let calc: ReturnType<typeof proxy<Calculator>>;
    before(async () => {
      impl = new CalculatorImpl();
      e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
      e.addRoutes(expose<Calculator>('calc', impl, { from: t.serve }));
      await e.start();
      calc = proxy<Calculator>('calc', { engine: e, uri: t.call(e), timeoutMs: 3000, methods: { slow: { timeoutMs: 100 } } });
    });
    after(() => e.stop({ timeoutMs: 2000 }));

    it('calls methods with typed results', async () => {
      const sum: number = await calc.add(2, 40);
      expect(sum).to.equal(42);
      expect(await calc.divide(9, 3)).to.equal(3);
      expect(await calc.describe({ id: 'o1', lines: [1, 2, 3] })).to.deep.equal({ id: 'o1', total: 6 });
    });

    it('runs concurrent calls independently', async () => {
      const before = impl.calls;
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => calc.add(i, i)));
      expect(results).to.deep.equal(Array.from({ length: 50 }, (_, i) => 2 * i));
      expect(impl.calls - before).to.equal(50);
    });

    it('delivers the remote error codes: NOT_FOUND, VALIDATION_FAILED with problems, STEP_FAILED', async () => {
      const nf = (await calc.find('x').catch((err: BusbarError) => err)) as BusbarError;
      expect(nf.code).to.equal('BUSBAR_ERR_NOT_FOUND');
      const inv = (await calc.divide(1, 0).catch((err: BusbarError) => err)) as BusbarError;
      expect(inv.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
      expect(inv.details.problems).to.have.length(1);
      const bug = (await calc.fail().catch((err: BusbarError) => err)) as BusbarError;
      expect(bug.code).to.equal('BUSBAR_ERR_STEP_FAILED');
      expect(bug.details.method).to.equal('fail');
    });

    it('times out per method with TIMEOUT', async () => {
      const err = (await calc.slow(1000).catch((x: BusbarError) => x)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_TIMEOUT');
      expect(err.details.method).to.equal('slow');
      expect(await calc.add(1, 1)).to.equal(2);
    });

    it('exposes only public methods: unknown and _private ones are RPC_METHOD_NOT_FOUND', async () => {
      const loose = calc as unknown as Record<string, () => Promise<unknown>>;
      for (const m of ['nope', '_internal', 'constructor', 'toString']) {
        const err = (await loose[m]!().catch((x: BusbarError) => x)) as BusbarError;
        expect(err.code, m).to.equal('BUSBAR_ERR_RPC_METHOD_NOT_FOUND');
      }
    });
  });
}

describe('rpc stubs: shape', () => {
  it('a stub is not a thenable (awaiting it does not call the remote)', async () => {
    const e = new Engine({ logger: testLogger() });
    const stub = proxy<Calculator>('calc', { engine: e, uri: 'direct:none' });
    expect((stub as unknown as { then?: unknown }).then).to.equal(undefined);
    const awaited = await Promise.resolve(stub);
    expect(awaited).to.equal(stub);
  });

  it('lists the methods a skeleton exposes and refuses to expose a missing one', () => {
    expect([...methodsOf(new CalculatorImpl())].sort()).to.deep.equal(['add', 'describe', 'divide', 'fail', 'find', 'slow']);
    expect(() => expose('calc', new CalculatorImpl(), { from: 'direct:x', methods: ['add', 'mul'] })).to.throw().with.property('code', 'BUSBAR_ERR_INVALID_ROUTE');
  });

  it('a transport failure is the transport\'s code (no server: HTTP_NETWORK; no route: NO_CONSUMER)', async () => {
    const e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
    await e.start();
    try {
      const viaHttp = proxy<Calculator>('calc', { engine: e, uri: 'http://127.0.0.1:9/rpc?protocol=jsonrpc&retries=0' });
      expect(((await viaHttp.add(1, 2).catch((x: BusbarError) => x)) as BusbarError).code).to.equal('BUSBAR_ERR_HTTP_NETWORK');
      const viaDirect = proxy<Calculator>('calc', { engine: e, uri: 'direct:nobody' });
      expect(((await viaDirect.add(1, 2).catch((x: BusbarError) => x)) as BusbarError).code).to.equal('BUSBAR_ERR_NO_CONSUMER');
    } finally {
      await e.stop();
    }
  });
});
