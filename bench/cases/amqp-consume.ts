import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { createAmqpAdapter } from '../../dist/adapters/amqp/index.js';
import { Engine, from, type Adapter } from '../../dist/lib/index.js';
import { alternateRounds, round, type BenchCase } from '../harness.js';
import { AMQP_URL, benchBroker, PREFETCH, waitUntil, type Order } from './amqp-bridge.js';

/** A sink that only counts (and keeps the last amount) so both sides do the same work. */
function countingSink(state: { count: number; sum: number }): Adapter {
  return {
    scheme: 'count',
    description: 'bench sink',
    optionsSchema: Type.Object({}, { additionalProperties: false }),
    createProducer() {
      return {
        send(msg) {
          state.count++;
          state.sum += (msg.body as Order).amount;
          return Promise.resolve(undefined);
        },
      };
    },
  };
}

const bench: BenchCase = {
  name: 'amqp-consume',
  description: 'Consume persistent JSON messages from a queue, parse, hand to a sink, ack after it (prefetch 256); busbar route vs hand-written amqplib consumer',
  requires: ['rabbitmq'],
  async run({ quick }) {
    const n = quick ? 5000 : 30_000;
    const rounds = quick ? 1 : 2;
    const broker = await benchBroker();
    const { conn } = broker;
    const fresh = async (): Promise<string> => {
      const q = await broker.queue('consume', n);
      await broker.settle();
      return q;
    };
    let busbar = 0;
    let baseline = 0;
    const base = { count: 0, sum: 0 };
    const bb = { count: 0, sum: 0 };
    try {
      const runBaseline = async (): Promise<void> => {
        const q = await fresh();
        const ch = await conn.createChannel();
        await ch.prefetch(PREFETCH);
        const start = base.count;
        const t0 = process.hrtime.bigint();
        const { consumerTag } = await ch.consume(q, (m) => {
          if (!m) return;
          const o = JSON.parse(m.content.toString('utf8')) as Order;
          base.count++;
          base.sum += o.amount;
          ch.ack(m);
        });
        await waitUntil(() => base.count - start >= n, 300_000, 'the baseline consumer');
        baseline = Math.max(baseline, n / (Number(process.hrtime.bigint() - t0) / 1e9));
        await ch.cancel(consumerTag);
        await ch.close();
        await broker.drop(q);
      };
      const runBusbar = async (): Promise<void> => {
        const q = await fresh();
        const engine = new Engine({ logger: pino({ level: 'silent' }), adapters: [createAmqpAdapter({ url: AMQP_URL }), countingSink(bb)], maxInflight: PREFETCH });
        engine.addRoutes(from<string>(`amqp:queue:${q}`).routeId('consume').unmarshal<Order>('json').to('count:sink'));
        const start = bb.count;
        const t0 = process.hrtime.bigint();
        await engine.start();
        await waitUntil(() => engine.stats().routes.consume!.completed >= n, 300_000, 'the busbar consumer');
        busbar = Math.max(busbar, n / (Number(process.hrtime.bigint() - t0) / 1e9));
        await engine.stop();
        if (bb.count - start !== n) throw new Error(`busbar consumed ${bb.count - start} of ${n}`);
        await broker.drop(q);
      };
      await alternateRounds(rounds, runBaseline, runBusbar, () => {
        busbar = 0;
        baseline = 0;
      });
    } finally {
      await broker.close();
    }
    if (bb.sum !== base.sum) throw new Error('busbar and baseline consumed different messages');
    return { busbar_per_s: busbar, baseline_per_s: baseline, messages: n, prefetch: PREFETCH, busbar_us_per_msg: round(1e6 / busbar, 1) };
  },
};

export default bench;
