import pg from 'pg';
import { pino } from 'pino';
import { createDbAdapter } from '../../dist/adapters/db/index.js';
import { Engine, from } from '../../dist/lib/index.js';
import { round, type BenchCase } from '../harness.js';

const URL = process.env.BUSBAR_PG_URL ?? 'postgres://postgres@127.0.0.1:54329/busbar';
const TABLE = 'bench_db_poll';
const BATCH = 100;

interface Job { id: number; customer: string; amount: number }
const enrich = (j: Job): Job & { total: number } => ({ ...j, total: j.amount * 1.21 });

async function reset(pool: pg.Pool): Promise<void> {
  await pool.query(`UPDATE ${TABLE} SET status = NULL WHERE status IS NOT NULL`);
  await pool.query(`VACUUM ANALYZE ${TABLE}`);
}

async function doneCount(pool: pg.Pool): Promise<number> {
  return Number((await pool.query(`SELECT COUNT(*) AS n FROM ${TABLE} WHERE status = 'done'`)).rows[0].n);
}

/** The hand-written loop busbar is measured against: claim 100 with SKIP LOCKED, transform, mark done, commit. */
async function baseline(pool: pg.Pool, n: number): Promise<number> {
  const client = await pool.connect();
  let seen = 0;
  let sink = 0;
  try {
    for (;;) {
      await client.query('BEGIN');
      const { rows } = await client.query(`SELECT * FROM ${TABLE} WHERE (status IS NULL OR status NOT IN ($1, $2)) ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`, ['done', 'failed', BATCH]);
      if (!rows.length) {
        await client.query('COMMIT');
        break;
      }
      for (const r of rows as Job[]) sink += enrich(r).total;
      await client.query(`UPDATE ${TABLE} SET status = $1 WHERE id = ANY($2)`, ['done', rows.map((r: Job) => r.id)]);
      await client.query('COMMIT');
      seen += rows.length;
    }
  } finally {
    client.release();
  }
  if (seen !== n || !(sink > 0)) throw new Error(`baseline saw ${seen} rows of ${n}`);
  return seen;
}

async function busbar(n: number): Promise<void> {
  let count = 0;
  let all!: () => void;
  const finished = new Promise<void>((r) => (all = r));
  let sink = 0;
  const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [createDbAdapter({ connections: { bench: { engine: 'postgres', url: URL, poolSize: 4 } } })] });
  engine.addRoutes(
    from<Job>(`db:postgres:bench?table=${TABLE}&batchSize=${BATCH}&onConsume=mark&onConsumeFailed=mark&delay=0&maxIdleDelay=50`)
      .routeId('poll')
      .transform(enrich)
      .process((m) => {
        sink += m.body.total;
        if (++count === n) all();
        return m;
      }),
  );
  await engine.start();
  await finished;
  // the last batch is marked done just after its messages completed
  const pool = new pg.Pool({ connectionString: URL, max: 1 });
  try {
    for (let i = 0; i < 2000 && (await doneCount(pool)) < n; i++) await new Promise((r) => setTimeout(r, 2));
  } finally {
    await pool.end();
  }
  await engine.stop();
  if (count !== n || !(sink > 0)) throw new Error(`busbar saw ${count} rows of ${n}`);
}

const bench: BenchCase = {
  name: 'db-poll-postgres',
  description: `${'20,000'} rows polled from PostgreSQL in batches of ${BATCH} (FOR UPDATE SKIP LOCKED) -> transform -> marked done, vs a hand-written SKIP LOCKED loop`,
  requires: ['postgres'],
  async run({ quick }) {
    const n = quick ? 5_000 : 20_000;
    const rounds = quick ? 1 : 3;
    const pool = new pg.Pool({ connectionString: URL, max: 2 });
    try {
      await pool.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await pool.query(`CREATE TABLE ${TABLE} (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount INTEGER NOT NULL, status TEXT, error TEXT)`);
      await pool.query(`INSERT INTO ${TABLE} (id, customer, amount) SELECT g, 'c' || g, g % 1000 FROM generate_series(1, $1) g`, [n]);
      await pool.query(`VACUUM ANALYZE ${TABLE}`);
      let best = { busbar: 0, baseline: 0 };
      // alternate the two so both see the same machine (the 2 cores are shared)
      for (let r = 0; r < rounds; r++) {
        await reset(pool);
        let t0 = process.hrtime.bigint();
        await baseline(pool, n);
        const b = n / (Number(process.hrtime.bigint() - t0) / 1e9);
        if ((await doneCount(pool)) !== n) throw new Error('baseline left rows behind');
        await reset(pool);
        t0 = process.hrtime.bigint();
        await busbar(n);
        const s = n / (Number(process.hrtime.bigint() - t0) / 1e9);
        if ((await doneCount(pool)) !== n) throw new Error('busbar left rows behind');
        best = { busbar: Math.max(best.busbar, s), baseline: Math.max(best.baseline, b) };
      }
      return { busbar_per_s: best.busbar, baseline_per_s: best.baseline, rows: n, batch: BATCH, rounds, busbar_ms: round((n / best.busbar) * 1000), baseline_ms: round((n / best.baseline) * 1000) };
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${TABLE}`).catch(() => undefined);
      await pool.end();
    }
  },
};

export default bench;
