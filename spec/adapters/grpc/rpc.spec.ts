import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { BusbarError, Engine, expose, proxy } from '../../../lib/index.js';
import { createGrpcAdapter, grpcPort, rpcProtoFile, GRPC_STATUS } from '../../../adapters/grpc/index.js';
import { rejection, testLogger } from '../../helpers.js';

interface Calculator {
  add(a: number, b: number): number;
  divide(a: number, b: number): Promise<number>;
  slow(ms: number): Promise<string>;
}

class CalculatorImpl implements Calculator {
  add(a: number, b: number): number {
    return a + b;
  }
  async divide(a: number, b: number): Promise<number> {
    if (b === 0) throw new BusbarError('VALIDATION_FAILED', 'division by zero', { details: { problems: [{ path: '/1', message: 'must not be 0' }] } });
    return a / b;
  }
  async slow(ms: number): Promise<string> {
    await new Promise((r) => setTimeout(r, ms));
    return 'late';
  }
}

describe('grpc: the stub and skeleton (proxy / expose) over gRPC', function () {
  this.timeout(20_000);
  let server: Engine;
  let client: Engine;
  let port: number;

  before(async () => {
    server = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
    server.addRoutes(expose<Calculator>('calc', new CalculatorImpl(), { from: 'grpc:busbar.rpc.Rpc/Call?port=0' }));
    await server.start();
    port = grpcPort(server, 0)!;
    client = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter()] });
    await client.start();
  });
  after(async () => {
    await client?.stop();
    await server?.stop();
  });

  it('calls the methods with their results, and the remote busbar codes come back as they were', async () => {
    const calc = proxy<Calculator>('calc', { engine: client, uri: `grpc://127.0.0.1:${port}/busbar.rpc.Rpc/Call`, timeoutMs: 5000, methods: { slow: { timeoutMs: 150 } } });
    expect(await calc.add(1, 2)).to.equal(3);
    expect(await calc.divide(9, 3)).to.equal(3);
    const v = await rejection(calc.divide(1, 0));
    expect(v.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    expect(v.details.remote).to.equal(true);
    const nf = await rejection((proxy<{ nope(): void }>('calc', { engine: client, uri: `grpc://127.0.0.1:${port}/busbar.rpc.Rpc/Call` })).nope());
    expect(nf.code).to.equal('BUSBAR_ERR_RPC_METHOD_NOT_FOUND');
    const t = await rejection(calc.slow(1000));
    expect(t.code).to.equal('BUSBAR_ERR_TIMEOUT');
  });

  it('a foreign gRPC client (grpc-js generic client with busbar-rpc.proto) calls the skeleton', async () => {
    const def = protoLoader.loadSync(rpcProtoFile(), { keepCase: true });
    const Rpc = (grpc.loadPackageDefinition(def) as unknown as { busbar: { rpc: { Rpc: grpc.ServiceClientConstructor } } }).busbar.rpc.Rpc;
    const c = new Rpc(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Call: (req: unknown, cb: (e: grpc.ServiceError | null, v: { json: string }) => void) => void };
    try {
      const call = (method: string, args: unknown[]): Promise<{ value?: unknown; error?: grpc.ServiceError }> =>
        new Promise((resolve) => c.Call({ method, json: JSON.stringify(args) }, (error, v) => resolve(error ? { error } : { value: JSON.parse(v.json) })));
      expect((await call('calc.add', [20, 22])).value).to.equal(42);
      const bad = await call('calc.divide', [1, 0]);
      expect(bad.error?.code).to.equal(GRPC_STATUS.INVALID_ARGUMENT);
      expect(bad.error?.metadata.get('busbar-error-code')).to.deep.equal(['BUSBAR_ERR_VALIDATION_FAILED']);
      expect((await call('calc.missing', [])).error?.code).to.equal(GRPC_STATUS.UNIMPLEMENTED);
    } finally {
      c.close();
    }
  });
});
