// A busbar process consuming an event log topic as a group member (spawned by
// spec/integration/eventlog-processes.spec.ts): every record becomes a row (partition, offset,
// worker) of table `out` in a SQLite file; with EVL_MODE=effectively-once the offset is
// committed in the row's transaction. Prints "ready" once started; stops on "stop" (or after 120 s).
import { createDbAdapter } from '../../../adapters/db/index.js';
import { createEventlogAdapter } from '../../../adapters/eventlog/index.js';
import { Engine, from, withBody } from '../../../lib/index.js';
import { testLogger } from '../../helpers.js';

const { EVL_DIR, EVL_DB, EVL_WORKER, EVL_MODE } = process.env as Record<string, string>;
const slowMs = Number(process.env.EVL_SLOW_MS ?? 0);
const engine = new Engine({ logger: testLogger(), adapters: [createEventlogAdapter({ dir: EVL_DIR }), createDbAdapter()] });
const eo = EVL_MODE === 'effectively-once';
const insert = encodeURIComponent('INSERT INTO out (part, off, worker) VALUES (:body.p, :body.o, :body.w)');
engine.addRoutes(
  from(`eventlog:t?group=g&delivery=${EVL_MODE}&heartbeatMs=50&sessionTimeoutMs=1000&commitIntervalMs=50&pollMs=10${eo ? `&offsetsIn=db:sqlite:${EVL_DB}` : ''}`)
    .process(async (m) => {
      if (slowMs) await new Promise((r) => setTimeout(r, slowMs));
      return withBody(m, { p: m.headers['eventlog.partition'], o: m.headers['eventlog.offset'], w: EVL_WORKER });
    })
    .to(`db:sqlite:${EVL_DB}?statement=${insert}${eo ? '&eventlogOffsets=busbar_eventlog_offsets' : ''}`),
);
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
