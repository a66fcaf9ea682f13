import { expect } from 'chai';
import { Engine, from, type BusbarError } from '../../../lib/index.js';
import { testLogger } from '../../helpers.js';

describe('a failure inside a direct: sub-route', () => {
  let engine: Engine;
  afterEach(() => engine?.stop());

  it('is reported with the inner route and its step, and the outer route as the one that dead-lettered it', async () => {
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes(
      // the outer route's /steps/0 is a setHeader: a report saying "outer, /steps/0 (unmarshal)" names a step that does not exist
      from('direct:outer').routeId('outer').setHeader('a', () => '1').setHeader('b', () => '2').to('direct:inner').deadLetter('mock:dead'),
      from('direct:inner').routeId('inner').unmarshal('json').to('mock:out'),
    );
    await engine.start();
    const err = await engine.send('direct:outer', 'not json').then(() => undefined, (e: BusbarError) => e);
    expect(err?.code).to.equal('BUSBAR_ERR_PARSE');
    expect(err?.details).to.include({ routeId: 'inner', step: '/steps/0 (unmarshal)' });
    const [dead] = engine.mock('mock:dead').received;
    expect(dead!.headers).to.include({
      'busbar.error.code': 'BUSBAR_ERR_PARSE',
      'busbar.error.routeId': 'inner',
      'busbar.error.step': '/steps/0 (unmarshal)',
      'busbar.error.handledBy': 'outer',
    });
    // a failure in the outer route itself names only the outer route
    await engine.stop();
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes(from('direct:outer').routeId('outer').setHeader('a', () => '1').unmarshal('json').deadLetter('mock:dead'));
    await engine.start();
    await engine.send('direct:outer', 'not json').catch(() => undefined);
    const [own] = engine.mock('mock:dead').received;
    expect(own!.headers).to.include({ 'busbar.error.routeId': 'outer', 'busbar.error.step': '/steps/1 (unmarshal)' });
    expect(own!.headers).not.to.have.property('busbar.error.handledBy');
  });
});
