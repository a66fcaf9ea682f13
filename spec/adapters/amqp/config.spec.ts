import { expect } from 'chai';
import { createAmqpAdapter, redactUrl, resolveConfig } from '../../../adapters/amqp/index.js';
import { queueArguments } from '../../../adapters/amqp/topology.js';
import { BusbarError, Engine, from } from '../../../lib/index.js';
import { testLogger } from '../../helpers.js';

function thrown(fn: () => unknown): BusbarError {
  try {
    fn();
  } catch (e) {
    return e as BusbarError;
  }
  throw new Error('expected an error');
}

describe('amqp adapter configuration and endpoints (no broker needed)', () => {
  it('fills in defaults', () => {
    const c = resolveConfig({});
    expect(c.url).to.equal('amqp://guest:guest@127.0.0.1:5672');
    expect(c.reconnect).to.deep.include({ initialDelayMs: 100, maxDelayMs: 5000, startAttempts: 3 });
    expect(c.topology).to.deep.equal({ exchanges: [], queues: [], bindings: [] });
    const t = resolveConfig({ topology: { queues: [{ name: 'q' }], exchanges: [{ name: 'x' }] } }).topology;
    expect(t.queues[0]).to.deep.include({ type: 'classic', durable: true, exclusive: false, autoDelete: false });
    expect(t.exchanges[0]).to.deep.include({ type: 'direct', durable: true });
  });

  it('reports every configuration problem at once with its path, as AMQP_CONFIG', () => {
    const err = thrown(() =>
      resolveConfig({
        url: 'http://host',
        reconect: {},
        topology: {
          queues: [{ name: 'q', type: 'quorum', exclusive: true }, { name: 'q' }, { name: 'c', deliveryLimit: 3 }, { name: 'x', type: 'fifo' }],
          bindings: [{ exchange: 'undeclared', queue: 'q' }, { exchange: 'amq.topic' }],
        },
      }),
    );
    expect(err.code).to.equal('BUSBAR_ERR_AMQP_CONFIG');
    const problems = err.details.problems as Array<{ path: string; message: string; suggestion?: string }>;
    // schema problems are reported first and alone (the cross-field rules need a valid document)
    expect(problems.map((p) => p.path)).to.include.members(['/reconect', '/topology/queues/3/type']);
    expect(problems.find((p) => p.path === '/reconect')!.suggestion).to.match(/reconnect/);
    const rules = thrown(() =>
      resolveConfig({
        url: 'http://host',
        topology: {
          queues: [{ name: 'q', type: 'quorum', exclusive: true }, { name: 'q' }, { name: 'c', deliveryLimit: 3 }],
          bindings: [{ exchange: 'undeclared', queue: 'q' }, { exchange: 'amq.topic' }],
        },
      }),
    );
    const paths = (rules.details.problems as Array<{ path: string }>).map((p) => p.path);
    expect(paths).to.include.members(['/url', '/topology/queues/0/exclusive', '/topology/queues/1/name', '/topology/queues/2/deliveryLimit', '/topology/bindings/0/exchange', '/topology/bindings/1']);
  });

  it('rejects a bad configuration when the adapter is created, before any I/O', () => {
    expect(thrown(() => createAmqpAdapter({ heartbeatSeconds: -1 })).code).to.equal('BUSBAR_ERR_AMQP_CONFIG');
  });

  it('never shows the password of a URL', () => {
    expect(redactUrl('amqp://bob:s3cret@broker:5672/vh')).to.equal('amqp://bob:***@broker:5672/vh');
    expect(redactUrl('not a url')).to.not.include('not a url');
  });

  it('declares quorum, stream and classic queues with exactly the arguments asked for', () => {
    const c = resolveConfig({
      topology: {
        queues: [
          { name: 'a', type: 'quorum', deliveryLimit: 4, deadLetterExchange: 'dlx' },
          { name: 'b', type: 'stream', maxAge: '7D' },
          { name: 'c', messageTtlMs: 1000, maxLength: 10, overflow: 'reject-publish', arguments: { 'x-custom': 'v' } },
        ],
      },
    });
    expect(queueArguments(c.topology.queues[0]!)).to.deep.equal({ 'x-queue-type': 'quorum', 'x-delivery-limit': 4, 'x-dead-letter-exchange': 'dlx' });
    expect(queueArguments(c.topology.queues[1]!)).to.deep.equal({ 'x-queue-type': 'stream', 'x-max-age': '7D' });
    // classic is the broker default and is not sent, so existing classic queues do not conflict
    expect(queueArguments(c.topology.queues[2]!)).to.deep.equal({ 'x-message-ttl': 1000, 'x-max-length': 10, 'x-overflow': 'reject-publish', 'x-custom': 'v' });
  });

  it('checks endpoint URIs and options when routes are added', () => {
    const engine = new Engine({ logger: testLogger(), adapters: [createAmqpAdapter()] });
    const typo = thrown(() => engine.addRoutes(from('amqp:queue:orders?prefetc=10').to('mock:x')));
    expect(typo.code).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(typo.details.suggestion).to.match(/prefetch/);
    const wrongType = thrown(() => engine.addRoutes(from('amqp:queue:orders?maxDeliveries=many').to('mock:x')));
    expect(wrongType.code).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(wrongType.details.option).to.equal('maxDeliveries');
    expect(thrown(() => engine.addRoutes(from('amqp:topic:orders').to('mock:x'))).code).to.equal('BUSBAR_ERR_INVALID_URI');
    expect(thrown(() => engine.addRoutes(from('amqp:exchange:').to('mock:x'))).code).to.equal('BUSBAR_ERR_INVALID_URI');
    expect(thrown(() => engine.addRoutes(from('direct:a').to('amqp:queue:'))).code).to.equal('BUSBAR_ERR_INVALID_URI');
    // a valid one is accepted (nothing connects until start)
    engine.addRoutes(from('amqp:queue:orders?prefetch=10&maxDeliveries=3&deadLetter=mock:dead').to('amqp:exchange:events?routingKey=orders.{header.country}'));
    expect(engine.routeIds()).to.have.length(1);
  });
});
