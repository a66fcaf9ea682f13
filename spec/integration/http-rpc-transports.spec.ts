import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Engine, type BusbarError } from '../../lib/index.js';
import { expose, proxy, type Remote } from '../../lib/rpc.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { AMQP_URL, testLogger } from '../helpers.js';
import { portOf } from '../adapters/http/helpers.js';
import { CalculatorImpl, type Calculator } from '../lib/rpc/calculator.js';

/**
 * One service, one interface, three transports: the stub and the skeleton only differ by
 * URI. AMQP needs the RabbitMQ of scripts/rabbitmq.sh (this test fails when it is down).
 */
describe('rpc: one service called through direct:, JSON-RPC over HTTP and AMQP', function () {
  this.timeout(30_000);
  const queue = `busbar.spec.rpc.${randomUUID()}`;
  let server: Engine;
  let client: Engine;
  let stubs: Record<string, Remote<Calculator>>;

  before(async () => {
    const impl = new CalculatorImpl();
    server = new Engine({ logger: testLogger(), adapters: [httpAdapter, createAmqpAdapter({ url: AMQP_URL })] });
    server.addRoutes(
      expose<Calculator>('calc', impl, { from: 'direct:calc' }).routeId('calc-direct'),
      expose<Calculator>('calc', impl, { from: 'http:/rpc?port=0&protocol=jsonrpc' }).routeId('calc-jsonrpc'),
      expose<Calculator>('calc', impl, { from: `amqp:queue:${queue}?bodyType=json` }).routeId('calc-amqp'),
    );
    await server.start();
    client = new Engine({ logger: testLogger(), adapters: [httpAdapter, createAmqpAdapter({ url: AMQP_URL })] });
    await client.start();
    stubs = {
      direct: proxy<Calculator>('calc', { engine: server, uri: 'direct:calc', timeoutMs: 5000 }),
      jsonrpc: proxy<Calculator>('calc', { engine: client, uri: `http://127.0.0.1:${portOf(server)}/rpc?protocol=jsonrpc`, timeoutMs: 5000 }),
      amqp: proxy<Calculator>('calc', { engine: client, uri: `amqp:queue:${queue}?bodyType=json`, timeoutMs: 5000 }),
    };
  });
  after(async () => {
    await client?.stop({ timeoutMs: 2000 });
    await server?.stop({ timeoutMs: 2000 });
    const amqp = await import('amqplib');
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.deleteQueue(queue);
    await conn.close();
  });

  for (const t of ['direct', 'jsonrpc', 'amqp']) {
    it(`${t}: same results and the same error codes`, async () => {
      const calc = stubs[t]!;
      expect(await calc.add(20, 22)).to.equal(42);
      expect(await calc.describe({ id: 'o', lines: [1, 2] })).to.deep.equal({ id: 'o', total: 3 });
      const all = await Promise.all(Array.from({ length: 20 }, (_, i) => calc.add(i, 1)));
      expect(all).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(((await calc.find('x').catch((x: BusbarError) => x)) as BusbarError).code).to.equal('BUSBAR_ERR_NOT_FOUND');
      expect(((await calc.divide(1, 0).catch((x: BusbarError) => x)) as BusbarError).code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
    });
  }
});
