import { alternateRounds, round, type BenchCase } from '../harness.js';
import { benchBroker, messageCount, orderBody, publishAll, silentEngine, WINDOW } from './amqp-bridge.js';

const bench: BenchCase = {
  name: 'amqp-publish',
  description: 'Publish persistent JSON messages to a queue with publisher confirms (bounded window of unconfirmed, drain respected, not mandatory); busbar producer (engine.send, concurrent) vs hand-written amqplib confirm channel',
  requires: ['rabbitmq'],
  async run({ quick }) {
    const n = quick ? 5000 : 30_000;
    const rounds = quick ? 1 : 2;
    const broker = await benchBroker();
    const { conn } = broker;
    const fresh = async (): Promise<string> => {
      const q = await broker.queue('publish');
      await broker.settle();
      return q;
    };
    const engine = silentEngine();
    await engine.start();
    let busbar = 0;
    let baseline = 0;
    try {
      const runBaseline = async (): Promise<void> => {
        const q = await fresh();
        const out = await conn.createConfirmChannel();
        const t0 = process.hrtime.bigint();
        await publishAll(out, q, n, orderBody);
        baseline = Math.max(baseline, n / (Number(process.hrtime.bigint() - t0) / 1e9));
        await out.close();
        if ((await messageCount(conn, q)) !== n) throw new Error('baseline lost messages');
        await broker.drop(q);
      };
      const runBusbar = async (): Promise<void> => {
        const q = await fresh();
        const uri = `amqp:queue:${q}?confirmWindow=${WINDOW}&mandatory=false`; // like the baseline
        const t0 = process.hrtime.bigint();
        // as many sends in flight as the window holds: what a route with that in-flight bound does
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < n) {
            const i = next++;
            await engine.send(uri, { seq: i, amount: (i * 37) % 1000, country: i % 2 ? 'NL' : 'DE' });
          }
        };
        await Promise.all(Array.from({ length: WINDOW }, worker));
        busbar = Math.max(busbar, n / (Number(process.hrtime.bigint() - t0) / 1e9));
        if ((await messageCount(conn, q)) !== n) throw new Error('busbar lost messages');
        await broker.drop(q);
      };
      await alternateRounds(rounds, runBaseline, runBusbar, () => {
        busbar = 0;
        baseline = 0;
      });
    } finally {
      await engine.stop();
      await broker.close();
    }
    return { busbar_per_s: busbar, baseline_per_s: baseline, messages: n, window: WINDOW, busbar_us_per_msg: round(1e6 / busbar, 1) };
  },
};

export default bench;
