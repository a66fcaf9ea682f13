// The serving layer: GET /totals on 127.0.0.1 merges the batch view (SQLite) with the speed
// layer's view of what came after the batch's offsets. The answer says up to which offset of
// each partition it counts, and `exact: false` (503) when the speed layer is away or started
// after a batch it does not know about.
import { pino } from 'pino';
import { openDatabase } from '../../adapters/db/index.js';
import { boundPort, createHttpAdapter } from '../../adapters/http/index.js';
import { Engine, from, withBody, withHeaders, type Message } from '../../lib/index.js';
import { batchOffsets } from './batch-layer.js';
import type { Layout } from './layout.js';

export interface Totals {
  exact: boolean;
  totals: Record<string, number>;
  /** The batch view's offsets, per partition. */
  batch: number[];
  /** Records below these offsets are counted, per partition. */
  upTo: number[];
  reason?: string;
}

export interface Serving {
  url: string;
  /** Where the speed layer answers (it moves when it is restarted). */
  speedAt(port: number | undefined): void;
  close(): Promise<void>;
}

export async function startServing(l: Layout, port = 0): Promise<Serving> {
  const db = openDatabase({ engine: 'sqlite', file: l.db });
  let speedPort: number | undefined;
  const engine = new Engine({ logger: pino({ level: 'warn' }), adapters: [createHttpAdapter()] });
  engine.addRoutes(
    from(`http:/totals?port=${port}&method=GET`)
      .routeId('serving-layer')
      .process(async (m: Message) => {
        // the view and its offsets read together (a batch replaces both in one transaction)
        const { view, batch } = await db.transaction(async (tx) => ({
          batch: await batchOffsets(tx),
          view: (await tx.query('SELECT user, total FROM batch_view')).rows,
        }));
        const totals: Record<string, number> = {};
        for (const r of view) totals[String(r.user)] = Number(r.total);
        const answer = (t: Totals, status = 200): Message => withHeaders(withBody(m, t), { 'http.reply.status': status });
        if (speedPort === undefined) return answer({ exact: false, totals, batch, upTo: batch, reason: 'the speed layer is not running' }, 503);
        let speed: { covered: boolean; totals: Record<string, number>; upTo: number[] };
        try {
          const res = await fetch(`http://127.0.0.1:${speedPort}/speed?from=${batch.join(',')}`);
          speed = (await res.json()) as typeof speed;
        } catch (err) {
          return answer({ exact: false, totals, batch, upTo: batch, reason: `the speed layer did not answer: ${(err as Error).message}` }, 503);
        }
        for (const [user, n] of Object.entries(speed.totals)) totals[user] = (totals[user] ?? 0) + n;
        if (!speed.covered) return answer({ exact: false, totals, batch, upTo: speed.upTo, reason: 'the speed layer started after this batch' }, 503);
        return answer({ exact: true, totals, batch, upTo: speed.upTo });
      }),
  );
  await engine.start();
  return {
    url: `http://127.0.0.1:${boundPort(engine, port)}/totals`,
    speedAt: (p) => (speedPort = p),
    close: async () => {
      await engine.stop();
      await db.close();
    },
  };
}
