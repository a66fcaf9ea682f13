// A busbar process consuming an event log topic as a group member (spawned by
// spec/integration/eventlog-processes.spec.ts): every record becomes a row (partition, offset,
// worker) of a table in SQLite (EVL_DB, a file) or PostgreSQL (EVL_PG_URL); with
// EVL_MODE=effectively-once the offset is committed in the row's transaction.
// Started and stopped through spec/process-worker.ts.
import { createDbAdapter } from '../../../adapters/db/index.js';
import { createEventlogAdapter } from '../../../adapters/eventlog/index.js';
import { Engine, from, withBody } from '../../../lib/index.js';
import { testLogger } from '../../helpers.js';
import { serveWorker } from '../../process-worker.js';

const { EVL_DIR, EVL_DB, EVL_WORKER, EVL_MODE, EVL_PG_URL } = process.env as Record<string, string>;
const table = process.env.EVL_TABLE ?? 'out';
const offsets = process.env.EVL_OFFSETS ?? 'busbar_eventlog_offsets';
const slowMs = Number(process.env.EVL_SLOW_MS ?? 0);
const db = EVL_PG_URL ? 'db:postgres:out' : `db:sqlite:${EVL_DB}`;
// EVL_RABBIT_URL: the topic lives on RabbitMQ streams (EVL_RABBIT_PREFIX), group files under EVL_DIR
const rabbit = process.env.EVL_RABBIT_URL ? { url: process.env.EVL_RABBIT_URL, prefix: process.env.EVL_RABBIT_PREFIX ?? 'eventlog.' } : undefined;
const topic = process.env.EVL_TOPIC ?? 't';
const partitions = process.env.EVL_PARTITIONS ? `&partitions=${process.env.EVL_PARTITIONS}` : '';
const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: EVL_DIR, ...(rabbit ? { rabbitmq: rabbit } : {}) }), createDbAdapter(EVL_PG_URL ? { connections: { out: { engine: 'postgres', url: EVL_PG_URL } } } : {})] });
const eo = EVL_MODE === 'effectively-once';
const insert = encodeURIComponent(`INSERT INTO ${table} (part, off, worker) VALUES (:body.p, :body.o, :body.w)`);
engine.addRoutes(
  from(`eventlog:${topic}?group=g${partitions}&delivery=${EVL_MODE}&heartbeatMs=${process.env.EVL_HEARTBEAT_MS ?? 50}&sessionTimeoutMs=${process.env.EVL_SESSION_MS ?? 1000}&commitIntervalMs=${process.env.EVL_COMMIT_MS ?? 50}&pollMs=10${eo ? `&offsetsIn=${db}&offsetsTable=${offsets}` : ''}`)
    .process(async (m) => {
      if (slowMs) await new Promise((r) => setTimeout(r, slowMs));
      return withBody(m, { p: m.headers['eventlog.partition'], o: m.headers['eventlog.offset'], w: EVL_WORKER });
    })
    .to(`${db}?statement=${insert}${eo ? `&eventlogOffsets=${offsets}` : ''}`),
);
// EVL_HOLD: load now, start on "go" (a spare that replaces a killed worker at once)
await serveWorker(engine, {
  hold: Boolean(process.env.EVL_HOLD),
  // commits this member made that were refused because its partitions had moved on (fenced)
  onStop: () => `fenced=${Object.values(engine.stats().routes).reduce((n, r) => n + Number((r.source.details as { fencedCommits?: number } | undefined)?.fencedCommits ?? 0), 0)}`,
});
