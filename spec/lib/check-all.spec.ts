import { expect } from 'chai';
import { Engine, from, type Problem } from '../../lib/index.js';
import { testLogger } from '../helpers.js';

/** `busbar validate` reads these: every problem of a file in one pass. */
describe('Engine.check: every problem in one pass', () => {
  const engine = new Engine({ logger: testLogger() });
  const at = (problems: Problem[]): string[] => problems.map((p) => p.path);

  it('reports every bad endpoint of a route, not only the first', () => {
    const problems = engine.check(
      from('direct:a?bogus=1')
        .to('log:x?levl=info')
        .multicast([(b) => b.to('nope:y'), (b) => b.to('log:z?showBdy=true')])
        .deadLetter('mok:dead'),
    );
    expect(at(problems)).to.have.members(['/routes/0/from', '/routes/0/steps/0', '/routes/0/steps/1/branches/0/0', '/routes/0/steps/1/branches/1/0', '/routes/0/errorPolicy']);
    expect(problems.map((p) => p.message).join('\n')).to.contain('"levl"').and.contain('"nope"').and.contain('"showBdy"').and.contain('"mok"').and.contain('"bogus"');
  });

  it('reports route-level and step-level problems of a config route together, with later steps at their own paths', () => {
    const problems = engine.check({
      routes: [
        {
          id: 'a',
          from: 'timer:t?perod=100',
          errorPolcy: {},
          steps: [{ unmarshal: 'jsn' }, { setHeadr: { name: 'x', value: '1' } }, { to: 'log:x?levl=info' }, { split: { stream: 'lnes' } }, { marshal: 'xmll' }],
        } as never,
      ],
    });
    const byPath = new Map(problems.map((p) => [p.path, p]));
    expect(byPath.get('/routes/0/errorPolcy')?.suggestion).to.equal('did you mean "errorPolicy"?');
    expect(byPath.get('/routes/0/from')?.suggestion).to.equal('did you mean "period"?');
    expect(byPath.get('/routes/0/steps/0')?.message).to.contain('did you mean "json"?');
    expect(byPath.get('/routes/0/steps/1/setHeadr')?.suggestion).to.equal('did you mean "setHeader"?');
    expect(byPath.get('/routes/0/steps/2')?.message).to.contain('"levl"');
    // an enum is one problem listing the allowed values, not one "must be equal to constant" per value
    const split = problems.filter((p) => p.path.startsWith('/routes/0/steps/3'));
    expect(split).to.have.length(1);
    expect(split[0]).to.deep.include({ path: '/routes/0/steps/3/split/stream', suggestion: 'did you mean "lines"?' });
    expect(split[0]!.message).to.contain('"lines", "json", "csv", "xml"').and.contain('got "lnes"');
    expect(byPath.get('/routes/0/steps/4')?.message).to.contain('did you mean "xml"?');
    expect(problems).to.have.length(7);
  });

  it('a union of literals is one "must be one of" problem with the value it got', () => {
    const problems = engine.check({ routes: [{ from: 'direct:b', steps: [{ log: { message: 'm', level: 'inf' } }] }] });
    expect(problems).to.have.length(1);
    expect(problems[0]).to.deep.include({ path: '/routes/0/steps/0/log/level', suggestion: 'did you mean "info"?' });
    expect(problems[0]!.message).to.match(/must be one of "trace", "debug", "info", "warn", "error", got "inf"/);
  });
});
