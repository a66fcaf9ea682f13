// A busbar process competing for one jobs table (spawned by spec/integration/db-competing.spec.ts):
// polls the table and records which worker processed each row (group commits: one fsync per
// group of rows, not per row). Started and stopped through spec/process-worker.ts.
import { createDbAdapter, type DbConfigInput } from '../../../adapters/db/index.js';
import { Engine, from } from '../../../lib/index.js';
import { testLogger } from '../../helpers.js';
import { serveWorker } from '../../process-worker.js';

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
// DB_HOLD: load now, start polling on "go"
await serveWorker(engine, { hold: Boolean(process.env.DB_HOLD) });
