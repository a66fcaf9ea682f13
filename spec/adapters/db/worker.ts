// A busbar process competing for one jobs table (spawned by spec/integration/db-competing.spec.ts):
// polls the table and records which worker processed each row (group commits: one fsync per
// group of rows, not per row). Prints "ready" once polling,
// stops on "stop" from stdin (or after 120 s, so a lost parent never leaves it behind).
import { createDbAdapter, type DbConfigInput } from '../../../adapters/db/index.js';
import { Engine, from } from '../../../lib/index.js';
import { testLogger } from '../../helpers.js';

const [config, jobs, processed, worker] = [JSON.parse(process.env.DB_CONFIG!) as DbConfigInput, process.env.DB_JOBS!, process.env.DB_PROCESSED!, process.env.DB_WORKER!];
const engine = new Engine({ logger: testLogger(), adapters: [createDbAdapter(config)] });
// DB_SLOW_MS makes each row take that long (so a test can kill the process mid-batch)
const slowMs = Number(process.env.DB_SLOW_MS ?? 0);
const claimTimeout = Number(process.env.DB_CLAIM_TIMEOUT ?? 60_000);
engine.addRoutes(
  from<{ id: number }>(`db:w?table=${jobs}&batchSize=${process.env.DB_BATCH ?? 100}&delay=10&maxIdleDelay=50&claimTimeout=${claimTimeout}`)
    .setHeader('worker', worker)
    .process(async (m) => {
      if (slowMs) await new Promise((r) => setTimeout(r, slowMs));
      return m;
    })
    .to(`db:w?statement=${encodeURIComponent(`INSERT INTO ${processed} (id, worker) VALUES (:body.id, :header.worker)`)}&groupCommit=true&batchSize=100`),
);
// DB_HOLD: load now, start polling on "go" (so a test pays the process start-up in advance)
if (process.env.DB_HOLD) await new Promise<void>((resolve) => process.stdin.on('data', (d) => String(d).includes('go') && resolve()));
await engine.start();
process.stdout.write('ready\n');
const stop = async (): Promise<void> => {
  await engine.stop();
  process.exit(0);
};
setTimeout(() => void stop(), 120_000).unref();
process.stdin.on('data', (d) => {
  if (String(d).includes('stop')) void stop();
});
