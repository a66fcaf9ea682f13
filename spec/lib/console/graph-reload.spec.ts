import { expect } from 'chai';
import { Engine, from, useConsole } from '../../../lib/index.js';
import { testLogger } from '../../helpers.js';

interface Graph {
  nodes: Array<{ id: string; kind: string; label?: string; uri?: string }>;
}

describe('console graph after a hot reload (real socket on 127.0.0.1)', () => {
  it('draws the reloaded version of a route whose step changed kind without changing the step count', async () => {
    const engine = new Engine({ logger: testLogger() });
    engine.addRoutes(from('direct:in').routeId('r').to('mock:a'));
    useConsole(engine);
    const m = await engine.management({ port: 0 });
    await engine.start();
    try {
      const graph = async (): Promise<Graph> => (await (await fetch(`${m.url}/api/v1/graph`)).json()) as Graph;
      const before = await graph();
      expect(JSON.stringify(before)).to.contain('mock:a');
      // same id, same source, one step as before: only the step differs
      const report = await engine.reload([from('direct:in').routeId('r').to('mock:b')]);
      expect(report).to.deep.include({ changed: ['r'] });
      const after = await graph();
      expect(JSON.stringify(after)).to.contain('mock:b').and.not.contain('mock:a');
      const svg = await (await fetch(`${m.url}/api/v1/graph?format=svg`)).text();
      expect(svg).to.contain('mock:b');
    } finally {
      await m.close();
      await engine.stop();
    }
  });
});
