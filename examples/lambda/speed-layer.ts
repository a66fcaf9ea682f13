// The speed layer, a process of its own (the example and its spec kill it with kill -9):
// a real-time view of the records that came after the batch's offsets. On start it moves its
// consumer group to the batch's offsets (seekGroup) and replays from there, so a speed layer
// that died loses nothing: its view is rebuilt from the log. The view is kept per record
// offset, so a record delivered twice (at-least-once) counts once, and what a newer batch
// covers is dropped when the serving layer asks with the newer offsets.
//
//   node --import tsx examples/lambda/speed-layer.ts <dir>     prints "ready <port>"
import { createHttpAdapter, boundPort } from '../../adapters/http/index.js';
import { openDatabase } from '../../adapters/db/index.js';
import { readTopicMeta, seekGroup } from '../../adapters/eventlog/index.js';
import { join } from 'node:path';
import { pino } from 'pino';
import { Engine, from, withBody, type Message } from '../../lib/index.js';
import { batchOffsets } from './batch-layer.js';
import { layout, logAdapter, PARTITIONS, TOPIC } from './layout.js';
import type { Sale } from './sum-map.js';

export const SPEED_GROUP = 'speed';

/** Per partition: the records from `base` on, by offset, and the first offset not yet seen contiguously. */
class SpeedView {
  readonly base: number[];
  readonly next: number[];
  readonly #records: Array<Map<number, Sale>>;

  constructor(base: readonly number[]) {
    this.base = [...base];
    this.next = [...base];
    this.#records = base.map(() => new Map());
  }

  add(p: number, offset: number, sale: Sale): void {
    if (offset < this.base[p]!) return;
    const m = this.#records[p]!;
    m.set(offset, sale);
    while (m.has(this.next[p]!)) this.next[p]!++;
  }

  /** Totals of the records from `from[p]` to next[p]; what is below `from` is the batch's now, dropped. */
  since(from: readonly number[]): { covered: boolean; totals: Record<string, number>; upTo: number[] } {
    const totals: Record<string, number> = {};
    let covered = true;
    for (let p = 0; p < this.base.length; p++) {
      const f = from[p]!;
      if (f < this.base[p]!) covered = false; // the batch is older than what this view started from
      const m = this.#records[p]!;
      for (const [offset, s] of m) {
        if (offset < f) {
          m.delete(offset);
          continue;
        }
        if (offset < this.next[p]!) totals[s.user] = (totals[s.user] ?? 0) + s.amount;
      }
      if (f > this.base[p]!) this.base[p] = Math.min(f, this.next[p]!);
    }
    return { covered, totals, upTo: [...this.next] };
  }
}

async function main(): Promise<void> {
  const l = layout(process.argv[2]!);
  const db = openDatabase({ engine: 'sqlite', file: l.db });
  const base = await batchOffsets(db);
  await db.close();
  // replay from the batch's offsets: the group's committed offsets are of a view that is gone
  if (readTopicMeta(join(l.logDir, TOPIC))) seekGroup({ dir: l.logDir, topic: TOPIC, group: SPEED_GROUP, to: base });
  const view = new SpeedView(base);
  const engine = new Engine({ logger: pino({ level: 'warn' }), adapters: [logAdapter(l), createHttpAdapter()] });
  engine.addRoutes(
    from(`eventlog:${TOPIC}?group=${SPEED_GROUP}&partitions=${PARTITIONS}&pollMs=10&heartbeatMs=50&commitIntervalMs=100`)
      .routeId('speed-layer')
      .process((m: Message) => {
        view.add(Number(m.headers['eventlog.partition']), Number(m.headers['eventlog.offset']), m.body as Sale);
        return m;
      }),
    // GET /speed?from=<batch offset per partition, comma-separated>
    from('http:/speed?port=0&method=GET')
      .routeId('speed-view')
      .process((m: Message) => {
        const q = m.headers['http.query.from'];
        const fromOffsets = String(Array.isArray(q) ? q[0] : q ?? view.base.join(',')).split(',').map(Number);
        return withBody(m, view.since(fromOffsets));
      }),
  );
  await engine.start();
  process.stdout.write(`ready ${boundPort(engine, 0)}\n`);
  const stop = async (): Promise<void> => {
    await engine.stop();
    process.exit(0);
  };
  // the parent is gone: so is this process
  process.stdin.on('end', () => void stop());
  process.stdin.on('data', (d) => String(d).includes('stop') && void stop());
  process.stdin.resume();
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
