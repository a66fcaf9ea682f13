import { expect } from 'chai';
import { Type } from '@sinclair/typebox';
import { AdapterRegistry, BusbarError, builtinAdapters, parseUri, type Adapter } from '../../lib/index.js';
import { codeOf } from '../helpers.js';

describe('endpoint URIs', () => {
  it('splits scheme, path (which may contain colons) and options', () => {
    const u = parseUri('amqp:queue:orders?prefetch=100&durable=true');
    expect(u).to.deep.include({ scheme: 'amqp', path: 'queue:orders' });
    expect(u.params).to.deep.equal({ prefetch: '100', durable: 'true' });
  });

  it('decodes percent-escapes and keeps an empty query', () => {
    expect(parseUri('file:in%20box').path).to.equal('in box');
    expect(parseUri('direct:a?').params).to.deep.equal({});
  });

  it('rejects URIs without scheme, bad schemes and repeated options with INVALID_URI', () => {
    expect(codeOf(() => parseUri('orders'))).to.equal('BUSBAR_ERR_INVALID_URI');
    expect(codeOf(() => parseUri(':x'))).to.equal('BUSBAR_ERR_INVALID_URI');
    expect(codeOf(() => parseUri('Bad_Scheme:x'))).to.equal('BUSBAR_ERR_INVALID_URI');
    expect(codeOf(() => parseUri('queue:a?size=1&size=2'))).to.equal('BUSBAR_ERR_INVALID_URI');
  });
});

describe('adapter registry', () => {
  const reg = new AdapterRegistry(builtinAdapters());

  it('coerces option strings by the schema and applies defaults', () => {
    const { endpoint } = reg.resolve('queue:orders?size=5', 'consumer');
    expect(endpoint.options).to.deep.equal({ size: 5 });
    expect(reg.resolve('queue:orders', 'producer').endpoint.options).to.deep.equal({ size: 1000 });
  });

  it('names the route, endpoint, option and nearest valid name for an unknown option', () => {
    try {
      reg.resolve('queue:orders?sise=5', 'consumer', { routeId: 'r1' });
      expect.fail('should throw');
    } catch (e) {
      const err = e as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_INVALID_OPTION');
      expect(err.details).to.include({ routeId: 'r1', uri: 'queue:orders?sise=5', option: 'sise', suggestion: 'did you mean "size"?' });
      expect(err.message).to.contain('r1').and.contain('sise').and.contain('size');
    }
  });

  it('an adapter that takes no options refuses one, and resolves without one', () => {
    const ok = reg.resolve('direct:in', 'consumer');
    expect(ok.endpoint.options).to.deep.equal({});
    let err: BusbarError | undefined;
    try {
      reg.resolve('direct:in?size=5', 'consumer', { routeId: 'r2' });
    } catch (e) {
      err = e as BusbarError;
    }
    expect(err?.code).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(err?.details).to.include({ routeId: 'r2', option: 'size' });
  });

  it('reports a wrong value with what was expected', () => {
    try {
      reg.resolve('queue:orders?size=lots', 'consumer');
      expect.fail('should throw');
    } catch (e) {
      expect((e as BusbarError).code).to.equal('BUSBAR_ERR_INVALID_OPTION');
      expect((e as BusbarError).message).to.contain('integer');
      expect((e as BusbarError).details.option).to.equal('size');
    }
  });

  it('suggests the nearest scheme for an unknown one', () => {
    try {
      reg.resolve('qeue:orders', 'producer', { routeId: 'r2' });
      expect.fail('should throw');
    } catch (e) {
      const err = e as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_UNKNOWN_SCHEME');
      expect(err.details.suggestion).to.equal('did you mean "queue"?');
    }
  });

  it('refuses a producer-only adapter as a source', () => {
    expect(codeOf(() => reg.resolve('log:x', 'consumer'))).to.equal('BUSBAR_ERR_UNSUPPORTED_ENDPOINT');
    expect(codeOf(() => reg.resolve('timer:x', 'producer'))).to.equal('BUSBAR_ERR_UNSUPPORTED_ENDPOINT');
  });

  it('requires closed option schemas, and clones are independent', () => {
    const open: Adapter = { scheme: 'x', description: '', optionsSchema: Type.Object({}) };
    expect(codeOf(() => reg.clone().register(open))).to.equal('BUSBAR_ERR_INVALID_OPTION');
    const c = reg.clone();
    c.register({ scheme: 'y', description: '', optionsSchema: Type.Object({}, { additionalProperties: false }) });
    expect(c.has('y')).to.equal(true);
    expect(reg.has('y')).to.equal(false);
  });
});
