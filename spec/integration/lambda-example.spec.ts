import { expect } from 'chai';
import { openDatabase } from '../../adapters/db/index.js';
import { Engine } from '../../lib/index.js';
import {
  appendSales,
  expectedTotals,
  layout,
  logAdapter,
  logEnds,
  randomSales,
  rebuildKappa,
  runBatch,
  startServing,
  startSpeedLayer,
  totalsCovering,
  type Sale,
  type SpeedLayer,
  type Totals,
} from '../../examples/lambda/index.js';
import { tempDir, testLogger } from '../helpers.js';

// examples/lambda: the batch layer (mapReduce on worker threads into SQLite), the speed layer
// (a process, killed -9), the serving layer (HTTP on 127.0.0.1) merging both, and the Kappa
// rebuild; every answer is compared with sums computed here from the events themselves.
describe('examples/lambda: Lambda and Kappa views over the event log', function () {
  this.timeout(120_000);

  it('batch + speed merged by the serving layer is exact; after kill -9 of the speed layer and a replay from the batch offsets it is exact again; the Kappa rebuild gives the same answer', async () => {
    const tmp = tempDir('busbar-lambda-');
    const l = layout(tmp.path);
    const producer = new Engine({ logger: testLogger(), adapters: [logAdapter(l)] });
    await producer.start();
    const sales: Sale[] = [];
    const append = async (n: number): Promise<void> => {
      const s = randomSales(n);
      await appendSales(producer, s);
      sales.push(...s);
    };
    const serving = await startServing(l);
    let speed: SpeedLayer | undefined;
    try {
      // batch layer alone: the whole log, offsets remembered with the view
      await append(1200);
      const b1 = await runBatch(l);
      expect(b1.offsets).to.deep.equal(logEnds(l));
      expect(b1.offsets.reduce((a, b) => a + b, 0)).to.equal(1200);
      expect(b1.totals).to.deep.equal(expectedTotals(sales));
      const db = openDatabase({ engine: 'sqlite', file: l.db });
      const stored = (await db.query('SELECT part, next_offset FROM batch_offsets ORDER BY part')).rows.map((r) => Number(r.next_offset));
      await db.close();
      expect(stored).to.deep.equal(b1.offsets);
      // no speed layer: the serving layer says it is not exact
      const down = await fetch(serving.url);
      expect(down.status).to.equal(503);
      expect(((await down.json()) as Totals).exact).to.equal(false);

      // the speed layer covers what came after the batch
      speed = await startSpeedLayer(tmp.path);
      serving.speedAt(speed.port);
      await append(400);
      let t = await totalsCovering(serving.url, logEnds(l));
      expect(t.batch).to.deep.equal(b1.offsets);
      expect(t.totals).to.deep.equal(expectedTotals(sales));

      // a newer batch takes over what the speed layer had counted: counted once, not twice
      const b2 = await runBatch(l);
      expect(b2.offsets).to.deep.equal(logEnds(l));
      t = await totalsCovering(serving.url, logEnds(l));
      expect(t.batch).to.deep.equal(b2.offsets);
      expect(t.totals).to.deep.equal(expectedTotals(sales));

      // kill -9 the speed layer while events are being appended; start it again: it replays from the batch offsets
      await append(300);
      const more = append(600);
      await new Promise((r) => setTimeout(r, Math.random() * 100));
      speed.child.kill('SIGKILL');
      await speed.exited;
      await more;
      const gone = await fetch(serving.url);
      expect(gone.status, 'the killed speed layer is noticed').to.equal(503);
      speed = await startSpeedLayer(tmp.path);
      serving.speedAt(speed.port);
      t = await totalsCovering(serving.url, logEnds(l));
      expect(t.batch).to.deep.equal(b2.offsets);
      expect(t.upTo).to.deep.equal(logEnds(l));
      expect(t.totals).to.deep.equal(expectedTotals(sales));
      expect(Object.values(t.totals).reduce((a, b) => a + b, 0)).to.equal(sales.reduce((a, s) => a + s.amount, 0));

      // Kappa: drop the view, replay the whole log into it; twice, same answer
      expect(await rebuildKappa(l)).to.deep.equal(expectedTotals(sales));
      expect(await rebuildKappa(l)).to.deep.equal(expectedTotals(sales));
    } finally {
      speed?.child.kill('SIGKILL');
      await serving.close();
      await producer.stop();
      tmp.cleanup();
    }
  });
});
