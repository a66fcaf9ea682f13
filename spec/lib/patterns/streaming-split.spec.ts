import { expect } from 'chai';
import { createReadStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { from } from '../../../lib/index.js';
import { jsonArrayItems } from '../../../lib/streaming.js';
import { testEngine } from '../../../lib/testing.js';
import { SPLIT_HEADERS } from '../../../lib/steps/patterns/common.js';
import { tempDir } from '../../helpers.js';

describe('patterns: streaming split of large inputs from files', () => {
  let dir: { path: string; cleanup: () => void };
  beforeEach(() => (dir = tempDir()));
  afterEach(() => dir.cleanup());

  it('config form: XML elements of a file stream, aggregated back by split completion', async () => {
    const path = join(dir.path, 'orders.xml');
    const n = 1000;
    writeFileSync(path, `<?xml version="1.0"?>\n<orders>${Array.from({ length: n }, (_, i) => `<order id="${i}"><amount>${i % 10}</amount></order>`).join('\n')}</orders>`);
    const { engine } = testEngine();
    engine.addRoutes({
      routes: [{ id: 'xml', from: 'direct:in', steps: [{ split: { stream: 'xml', path: 'orders.order', parallel: 4 } }, { transform: '$number(amount)' }, { aggregate: { fromSplit: true, strategy: 'sum' } }, { to: 'mock:total' }] }],
    });
    await engine.start();
    await engine.send('direct:in', createReadStream(path, { highWaterMark: 4096 }));
    const total = engine.mock('mock:total');
    await total.expectCount(1).satisfied();
    expect(total.bodies).to.deep.equal([(n / 10) * 45]);
    expect(total.received[0]!.headers['busbar.aggregate.size']).to.equal(n);
    await engine.stop();
  });

  it('builder: any async iterable, e.g. JSON array items of a file; parts carry the last flag', async () => {
    const path = join(dir.path, 'items.json');
    writeFileSync(path, JSON.stringify(Array.from({ length: 500 }, (_, i) => ({ i }))));
    const { engine } = testEngine();
    engine.addRoutes(from<string>('direct:in').split((p) => jsonArrayItems<{ i: number }>(createReadStream(p, { highWaterMark: 1024 }))).filter((it) => it.i % 100 === 99).to('mock:out'));
    await engine.start();
    await engine.send('direct:in', path);
    const out = engine.mock('mock:out').received;
    expect(out.map((m) => (m.body as { i: number }).i)).to.deep.equal([99, 199, 299, 399, 499]);
    expect(out.map((m) => m.headers[SPLIT_HEADERS.last])).to.deep.equal([false, false, false, false, true]);
    await engine.stop();
  });

  it('a broken input fails the message with the reader\'s code; the dead letter keeps the original', async () => {
    const { engine } = testEngine();
    engine.addRoutes({ routes: [{ from: 'direct:in', errorPolicy: { deadLetter: 'mock:dlq' }, steps: [{ split: { stream: 'json' } }, { to: 'mock:items' }] }] });
    await engine.start();
    const err = await engine.send('direct:in', '[{"a":1}, {"b":').then(() => undefined, (e: unknown) => e);
    expect(err).to.have.property('code', 'BUSBAR_ERR_PARSE');
    // the reader looks one item ahead (for the last-part flag), so the failure may come before item 0 is sent
    expect(engine.mock('mock:items').bodies.length).to.be.at.most(1);
    expect(engine.mock('mock:dlq').bodies).to.deep.equal(['[{"a":1}, {"b":']);
    await engine.stop();
  });

  it('stream xml without a path is a config problem', () => {
    const { engine } = testEngine();
    expect(engine.check({ routes: [{ from: 'direct:in', steps: [{ split: { stream: 'xml' } }] }] }).map((p) => p.path)).to.include('/routes/0/steps/0/split/path');
  });
});
