import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { createAmqpAdapter } from '../../adapters/amqp/index.js';
import { createDbAdapter } from '../../adapters/db/index.js';
import { createFileAdapter } from '../../adapters/file/index.js';
import type { Adapter } from '../../lib/adapter.js';
import { Engine, from } from '../../lib/index.js';
import { Broker, uniqueName } from '../adapters/amqp/amqp-helpers.js';
import { createJobs, dbFixture, type DbFixture } from '../adapters/db/suite.js';
import { AMQP_URL, tempDir, testLogger, waitFor } from '../helpers.js';

const N = 5;

/** The lag gauge of `endpoint` in an exposition. */
function lag(text: string, endpoint: string): number | undefined {
  const series = `busbar_endpoint_lag_messages{endpoint="${endpoint}"} `;
  const line = text.split('\n').find((l) => l.startsWith(series));
  return line === undefined ? undefined : Number(line.slice(series.length));
}

/**
 * A route on `uri` that holds its first message (maxInflight 1) while N are waiting: the
 * backlog is N - 1 in engine.stats() and the gauge; once let go it drains to 0.
 */
async function checkLag(adapters: Adapter[], uri: string, fill: () => Promise<void>): Promise<void> {
  const engine = new Engine({ logger: testLogger(), adapters });
  let open = (): void => undefined;
  const gate = new Promise<void>((r) => (open = r));
  engine.addRoutes(
    from(uri)
      .routeId('lagging')
      .maxInflight(1)
      .process(async (m) => {
        await gate;
        return m;
      })
      .to('mock:out'),
  );
  const registry = new Registry();
  const metrics = await engine.metrics({ registry });
  try {
    await fill();
    await engine.start();
    await waitFor(() => engine.routeStats('lagging').inflight === 1, 20_000, 'the first message held');
    const text = await registry.metrics();
    expect(lag(text, uri), text).to.equal(N - 1);
    expect(engine.stats().routes.lagging!.source).to.include({ backlog: N - 1 });
    expect(engine.stats().routes.lagging!.source.backlogAt).to.be.a('string');
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
    expect(`${lint.stdout}${lint.stderr}`).to.equal('');
    open();
    await waitFor(() => engine.mock('mock:out').received.length === N, 20_000, 'all consumed');
    await waitFor(async () => lag(await registry.metrics(), uri) === 0, 20_000, 'lag back to 0');
    expect(engine.stats().routes.lagging!.source).to.include({ backlog: 0 });
  } finally {
    open();
    metrics.close();
    await engine.stop();
  }
}

describe('consumer lag where the source knows it: engine.stats() and busbar_endpoint_lag_messages', function () {
  this.timeout(60_000);

  it('file backlog: files waiting in the folder', async () => {
    const dir = tempDir('busbar-lag-');
    try {
      await checkLag([createFileAdapter({ baseDir: dir.path })], 'file:inbox?delay=20&readLock=rename', async () => {
        const { mkdirSync } = await import('node:fs');
        mkdirSync(join(dir.path, 'inbox'));
        for (let i = 0; i < N; i++) writeFileSync(join(dir.path, 'inbox', `f${i}.txt`), `body ${i}`);
        // not waiting: dot files and files the include pattern leaves out
        writeFileSync(join(dir.path, 'inbox', '.hidden'), 'x');
      });
    } finally {
      dir.cleanup();
    }
  });

  for (const dialect of ['sqlite', 'postgres'] as const) {
    it(`db backlog: rows pending for a polling ${dialect === 'sqlite' ? 'SQLite (claim=update)' : 'PostgreSQL (claim=lock)'} source`, async () => {
      const f: DbFixture = await dbFixture(dialect);
      try {
        const t = await createJobs(f, 'lag', N);
        // a row that failed for good is not pending
        await f.admin.query(`INSERT INTO ${t} (id, customer, amount, retries) VALUES (99, 'gone', 0, 5)`);
        await checkLag([createDbAdapter(f.config)], `db:t?table=${t}&batchSize=1&delay=20`, async () => undefined);
      } finally {
        await f.cleanup();
      }
    });
  }

  it('amqp queue depth (RabbitMQ)', async () => {
    const broker = await Broker.open();
    const q = broker.track('queue', uniqueName('lag'));
    try {
      await checkLag([createAmqpAdapter({ url: AMQP_URL })], `amqp:queue:${q}?prefetch=1`, async () => {
        const ch = await broker.channel();
        await ch.assertQueue(q, { durable: true });
        for (let i = 0; i < N; i++) ch.sendToQueue(q, Buffer.from(`m${i}`));
        await waitFor(async () => (await broker.queueCount(q)).messageCount === N, 10_000, 'messages queued');
      });
    } finally {
      await broker.cleanup();
    }
  });
});
