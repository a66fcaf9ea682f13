import { pino } from 'pino';
import { createAmqpAdapter } from '../../dist/adapters/amqp/index.js';
import { Engine, named } from '../../dist/lib/index.js';
import { alternateRounds, round, type BenchCase } from '../harness.js';
import { AMQP_URL, baselineBridge, benchBroker, busbarBridge, messageCount, PREFETCH } from './amqp-bridge.js';

/** The second broker (bench/run.ts starts it beside the first: port + 1, its own node name). */
export const AMQP2_URL = process.env.BUSBAR_AMQP2_URL ?? AMQP_URL.replace(/:(\d+)$/, (_, p: string) => `:${Number(p) + 1}`);

/**
 * A bridge between two brokers, as docs/topologies.md writes it: two named instances of the
 * amqp adapter (`amqp-eu:` on broker A, `amqp-us:` on broker B), the amqp-bridge case's route.
 */
async function twoBrokerBridge(a: string, b: string, n: number): Promise<number> {
  const engine = new Engine({
    logger: pino({ level: 'silent' }),
    adapters: [named('amqp-eu', createAmqpAdapter({ url: AMQP_URL })), named('amqp-us', createAmqpAdapter({ url: AMQP2_URL }))],
    maxInflight: PREFETCH,
  });
  return (await busbarBridge(a, b, n, engine, { from: 'amqp-eu', to: 'amqp-us' })).perS;
}

const bench: BenchCase = {
  name: 'bridge-amqp',
  description: 'Bridge between two RabbitMQ brokers: consume queue A on broker A, JSON transform, publish to queue B on broker B with confirms, ack A after B confirmed (30,000 messages, prefetch 256); busbar route over two named amqp instances vs a hand-written amqplib bridge with two connections',
  requires: ['rabbitmq', 'rabbitmq2'],
  async run({ quick }) {
    const n = quick ? 5000 : 30_000;
    const rounds = quick ? 1 : 3;
    const brokerA = await benchBroker(AMQP_URL);
    const brokerB = await benchBroker(AMQP2_URL);
    const fresh = async (): Promise<[string, string]> => {
      const pair: [string, string] = [await brokerA.queue('bridge2-a', n), await brokerB.queue('bridge2-b')];
      await brokerA.settle();
      return pair;
    };
    let busbar = 0;
    let baseline = 0;
    const check = async (side: string, a: string, b: string): Promise<void> => {
      const got = await messageCount(brokerB.conn, b);
      if (got !== n) throw new Error(`${side} bridge: ${got} of ${n} messages on broker B`);
      await brokerA.drop(a);
      await brokerB.drop(b);
    };
    try {
      await alternateRounds(
        rounds,
        async () => {
          const [a, b] = await fresh();
          baseline = Math.max(baseline, await baselineBridge(a, b, n, AMQP2_URL));
          await check('baseline', a, b);
        },
        async () => {
          const [a, b] = await fresh();
          busbar = Math.max(busbar, await twoBrokerBridge(a, b, n));
          await check('busbar', a, b);
        },
        () => {
          busbar = 0;
          baseline = 0;
        },
      );
    } finally {
      await brokerA.close();
      await brokerB.close();
    }
    return { busbar_per_s: busbar, baseline_per_s: baseline, messages: n, prefetch: PREFETCH, brokers: 2, busbar_us_per_msg: round(1e6 / busbar, 1), baseline_us_per_msg: round(1e6 / baseline, 1) };
  },
};

export default bench;
