import { expect } from 'chai';
import { engineFromModule } from '../../lib/cli/main.js';
import { ChannelBinder, Engine, from } from '../../lib/index.js';
import { codeOf, testLogger } from '../helpers.js';

describe('channel bindings', () => {
  it('carries direct:, queue: and topic: channels on amqp queues and the amq.topic exchange', () => {
    const b = new ChannelBinder({ transport: 'amqp-hub', prefix: 'shop' }, 'amqp');
    expect(b.bind('direct:quote', 'producer')).to.equal('amqp-hub:queue:shop.direct.quote?bodyType=value');
    expect(b.bind('queue:orders?size=10', 'consumer')).to.equal('amqp-hub:queue:shop.queue.orders?bodyType=value');
    expect(b.bind('topic:orders.new', 'producer')).to.equal('amqp-hub:exchange:amq.topic?routingKey=shop.orders.new&bodyType=value');
    expect(b.bind('topic:orders.*', 'consumer')).to.equal('amqp-hub:exchange:amq.topic?bindingKey=shop.orders.*&bodyType=value');
    expect(b.bind('mock:x', 'producer')).to.equal(undefined);
    expect(b.bind('amqp:queue:x', 'producer')).to.equal(undefined);
  });

  it('binds only the channels it includes, and refuses what is not a transport or a pattern', () => {
    const b = new ChannelBinder({ transport: 'p2p', include: ['queue:orders*', 'topic:*'] }, 'p2p');
    expect(b.bind('queue:orders.eu', 'producer')).to.equal('p2p:queue:orders.eu');
    expect(b.bind('queue:billing', 'producer')).to.equal(undefined);
    expect(b.bind('topic:a.b', 'consumer')).to.equal('p2p:topic:a.b');
    expect(b.bind('direct:quote', 'producer')).to.equal(undefined);
    expect(codeOf(() => new ChannelBinder({ transport: 'queue' }, 'queue'))).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(codeOf(() => new ChannelBinder({ transport: 'amqp', include: ['orders'] }, 'amqp'))).to.equal('BUSBAR_ERR_INVALID_OPTION');
  });

  it('rewrites the routes of an engine: an unknown transport fails when the route is added', () => {
    const engine = new Engine({ logger: testLogger(), channels: { transport: 'amqq' } });
    expect(codeOf(() => engine.addRoutes(from('direct:a').to('log:x')))).to.equal('BUSBAR_ERR_UNKNOWN_SCHEME');
    // channels the binding does not include stay in memory
    const partly = new Engine({ logger: testLogger(), channels: { transport: 'amqq', include: ['queue:*'] } });
    expect(codeOf(() => partly.addRoutes(from('direct:a').to('log:x')))).to.equal(undefined);
  });

  it('reads "channels" in a routes file, one binding or a list, with the path of every problem', () => {
    const { problems } = engineFromModule({ routes: [], channels: [{ transport: 'amqp' }, { transport: 'amqp', include: ['nope'], prefx: 'a' } as never] }, testLogger());
    expect(problems.map((p) => p.path)).to.include.members(['/channels/1/include/0', '/channels/1/prefx']);
    expect(engineFromModule({ routes: [], channels: { transport: 'amqp' } }, testLogger()).problems).to.deep.equal([]);
  });
});
