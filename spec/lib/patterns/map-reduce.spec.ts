import { expect } from 'chai';
import { join } from 'node:path';
import { from } from '../../../lib/index.js';
import { testEngine } from '../../../lib/testing.js';
import { generateText } from '../../../examples/word-count/generate.js';
import { map as wordMap } from '../../../examples/word-count/words.js';
import { wordCountRoutes } from '../../../examples/word-count/index.js';
import { tempDir } from '../../helpers.js';

describe('patterns: map/reduce', () => {
  it('in process: maps items to pairs and reduces per key', async () => {
    const { engine } = testEngine();
    engine.addRoutes(
      from<string[]>('direct:in').mapReduce<number>({ map: (line) => wordMap(line), reduce: (a, b) => a + b }),
      from<string>('direct:text').mapReduce<number>({ tokenize: '\n', map: (line) => wordMap(line), reduce: 'sum' }),
    );
    await engine.start();
    expect(await engine.request('direct:in', ['a b a', 'b a'])).to.deep.equal({ a: 3, b: 2 });
    expect(await engine.request('direct:text', 'x y\ny\n')).to.deep.equal({ x: 1, y: 2 });
    await engine.stop();
  });

  it('word count over a generated file, streamed, in process and across worker threads', async function () {
    this.timeout(60_000);
    const dir = tempDir();
    try {
      const path = join(dir.path, 'text.txt');
      const expected = Object.fromEntries(await generateText(path, 5000));
      const { engine } = testEngine();
      engine.addRoutes(wordCountRoutes(2));
      await engine.start();
      expect(await engine.request('direct:count-in-process', path)).to.deep.equal(expected);
      expect(await engine.request('direct:count-in-workers', path)).to.deep.equal(expected);
      await engine.stop();
    } finally {
      dir.cleanup();
    }
  });

  it('a worker module that cannot be loaded fails with WORKER_FAILED', async function () {
    this.timeout(30_000);
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').deadLetter('mock:dlq').mapReduce({ reduce: 'sum', workers: { module: '/nonexistent/map.js', threads: 1 } }));
    await engine.start();
    const err = await engine.request('direct:in', ['a']).then(() => undefined, (e: unknown) => e);
    expect(err).to.have.property('code', 'BUSBAR_ERR_WORKER_FAILED');
    expect(engine.mock('mock:dlq').received).to.have.length(1);
    await engine.stop();
  });

  it('a map that throws fails the message with STEP_FAILED, the cause kept', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').mapReduce({ map: () => { throw new SyntaxError('bad line'); }, reduce: 'sum' }));
    await engine.start();
    const err = (await engine.request('direct:in', ['x']).then(() => undefined, (e: unknown) => e)) as { code: string; cause: unknown };
    expect(err.code).to.equal('BUSBAR_ERR_STEP_FAILED');
    expect(err.cause).to.be.instanceOf(SyntaxError);
    await engine.stop();
  });

  it('config form with a registered map function and a named reduce; entries output sorted by value', async () => {
    const { engine } = testEngine({ functions: { words: (line) => wordMap(line) } });
    engine.addRoutes({ routes: [{ from: 'direct:in', steps: [{ mapReduce: { tokenize: '\n', map: { fn: 'words' }, reduce: 'sum', output: 'entries' } }] }] });
    await engine.start();
    expect(await engine.request('direct:in', 'b a b\nc b a')).to.deep.equal([['b', 3], ['a', 2], ['c', 1]]);
    expect(engine.check({ routes: [{ from: 'direct:x', steps: [{ mapReduce: { reduce: 'sum' } }] }] }).map((p) => p.path)).to.include('/routes/0/steps/0/mapReduce');
    await engine.stop();
  });
});
