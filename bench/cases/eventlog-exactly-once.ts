import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pino } from 'pino';
import { createDbAdapter } from '../../dist/adapters/db/index.js';
import { createEventlogAdapter } from '../../dist/adapters/eventlog/index.js';
import { Engine, from } from '../../dist/lib/index.js';
import { bestRounds, filledLog, firstSegment, inTempDir, readSegment } from '../eventlog-fixture.js';
import { round, type BenchCase } from '../harness.js';

interface Stmt {
  run(...params: unknown[]): { changes: number };
}
interface Db {
  pragma(s: string): unknown;
  exec(sql: string): void;
  prepare(sql: string): Stmt;
  transaction<F extends (...a: never[]) => unknown>(fn: F): F;
  close(): void;
}
const Sqlite = createRequire(import.meta.url)('better-sqlite3') as new (file: string) => Db;

const TABLE = 'CREATE TABLE orders (part INTEGER, off INTEGER, body TEXT)';
const OFFSETS = 'CREATE TABLE busbar_eventlog_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset BIGINT NOT NULL, gen BIGINT NOT NULL, PRIMARY KEY (grp, topic, part))';

/**
 * The hand-written sink, with the db adapter's settings (better-sqlite3, WAL, synchronous
 * NORMAL): per record one transaction holding its row and the move of the partition's offset
 * from the expected one (a compare-and-set, as busbar's), as busbar's effectively-once does.
 */
function baseline(dir: string, file: string, n: number): number {
  const db = new Sqlite(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(TABLE);
  db.exec(OFFSETS);
  db.prepare("INSERT INTO busbar_eventlog_offsets VALUES ('g', 't', 0, 0, 1)").run();
  const insert = db.prepare('INSERT INTO orders (part, off, body) VALUES (?, ?, ?)');
  const move = db.prepare("UPDATE busbar_eventlog_offsets SET next_offset = ? WHERE grp = 'g' AND topic = 't' AND part = 0 AND gen = 1 AND next_offset = ?");
  const one = db.transaction((off: number, body: string) => {
    insert.run(0, off, body);
    if (move.run(off + 1, off).changes !== 1) throw new Error('fenced');
  });
  const seen = readSegment(firstSegment(dir), n, 1000, (first, values) => values.forEach((v, i) => one(first + i, v.toString('utf8'))));
  db.close();
  return seen;
}

const bench: BenchCase = {
  name: 'eventlog-exactly-once',
  description: 'Event log -> SQLite, effectively-once: each record\'s row and the partition\'s offset committed in one transaction; busbar route (eventlog: delivery=effectively-once -> db:sqlite with eventlogOffsets) vs a hand-written segment reader + better-sqlite3 transaction per record',
  async run({ quick }) {
    const n = quick ? 3000 : 20_000;
    return inTempDir(async (dir) => {
      await filledLog(dir, n);
      const { busbar, baseline: base, busbarCpu, baselineCpu } = await bestRounds(quick ? 1 : 3, n, {
        baseline: (r) => baseline(dir, join(dir, `base-${r}.db`), n),
        busbar: async (r) => {
          const file = join(dir, `bb-${r}.db`);
          const setup = new Sqlite(file);
          setup.exec(TABLE);
          setup.close();
          const sink = `db:sqlite:${file}`;
          const insert = encodeURIComponent('INSERT INTO orders (part, off, body) VALUES (:header.eventlog.partition, :header.eventlog.offset, :body.note)');
          const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [createEventlogAdapter({ dir }), createDbAdapter()] });
          engine.addRoutes(
            from(`eventlog:t?group=g${r}&delivery=effectively-once&offsetsIn=${sink}&pollMs=1`)
              .routeId('sink')
              .to(`${sink}?statement=${insert}&eventlogOffsets=busbar_eventlog_offsets`),
          );
          await engine.start();
          const committed = (): number => {
            const d = engine.stats().routes.sink!.source.details as { partitions?: Record<string, { committed: number }> } | undefined;
            return d?.partitions?.[0]?.committed ?? 0;
          };
          const deadline = Date.now() + 600_000;
          while (committed() < n && Date.now() < deadline) await new Promise((res) => setTimeout(res, 2));
          const done = committed();
          await engine.stop();
          const check = new Sqlite(file);
          const rows = Number((check.prepare('SELECT COUNT(*) AS c FROM orders') as unknown as { get(): { c: number } }).get().c);
          check.close();
          if (rows !== n || done !== n) throw new Error(`busbar sink: ${rows} rows, offset ${done}, expected ${n}`);
          return n;
        },
      });
      return { busbar_per_s: round(busbar), baseline_per_s: round(base), ratio: round(busbar / base, 2), busbar_per_cpu_s: round(busbarCpu), baseline_per_cpu_s: round(baselineCpu), cpu_ratio: round(busbarCpu / baselineCpu, 2), records: n };
    });
  },
};
export default bench;
