import { alternateRounds, round, type BenchCase, type BenchResult } from '../harness.js';
import { benchBroker, brokerCpu, messageCount, orderBody, publishAll, silentEngine, WINDOW } from './amqp-bridge.js';

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
    // CPU per message of this process and of the broker, each side's best round: the broker
    // doing most of the work is what holds both sides to the same rate
    const brokerNow = brokerCpu();
    const cpu = { busbar: Infinity, baseline: Infinity, brokerBusbar: Infinity, brokerBaseline: Infinity };
    const timed = async (side: 'busbar' | 'baseline', work: () => Promise<void>): Promise<number> => {
      const b0 = brokerNow?.();
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      await work();
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const c = process.cpuUsage(c0);
      cpu[side] = Math.min(cpu[side], (c.user + c.system) / n);
      if (brokerNow && b0 !== undefined) {
        const k = side === 'busbar' ? 'brokerBusbar' : 'brokerBaseline';
        cpu[k] = Math.min(cpu[k], ((brokerNow() - b0) * 1e6) / n);
      }
      return n / s;
    };
    try {
      const runBaseline = async (): Promise<void> => {
        const q = await fresh();
        const out = await conn.createConfirmChannel();
        baseline = Math.max(baseline, await timed('baseline', () => publishAll(out, q, n, orderBody)));
        await out.close();
        if ((await messageCount(conn, q)) !== n) throw new Error('baseline lost messages');
        await broker.drop(q);
      };
      const runBusbar = async (): Promise<void> => {
        const q = await fresh();
        const uri = `amqp:queue:${q}?confirmWindow=${WINDOW}&mandatory=false`; // like the baseline
        // as many sends in flight as the window holds: what a route with that in-flight bound does
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < n) {
            const i = next++;
            await engine.send(uri, { seq: i, amount: (i * 37) % 1000, country: i % 2 ? 'NL' : 'DE' });
          }
        };
        busbar = Math.max(busbar, await timed('busbar', () => Promise.all(Array.from({ length: WINDOW }, worker)).then(() => undefined)));
        if ((await messageCount(conn, q)) !== n) throw new Error('busbar lost messages');
        await broker.drop(q);
      };
      await alternateRounds(rounds, runBaseline, runBusbar, () => {
        busbar = 0;
        baseline = 0;
        cpu.busbar = cpu.baseline = cpu.brokerBusbar = cpu.brokerBaseline = Infinity;
      });
    } finally {
      await engine.stop();
      await broker.close();
    }
    const out: BenchResult = {
      busbar_per_s: busbar,
      baseline_per_s: baseline,
      messages: n,
      window: WINDOW,
      busbar_us_per_msg: round(1e6 / busbar, 1),
      busbar_cpu_us_per_msg: round(cpu.busbar, 1),
      baseline_cpu_us_per_msg: round(cpu.baseline, 1),
    };
    if (brokerNow) {
      out.broker_cpu_us_per_msg_busbar = round(cpu.brokerBusbar, 1);
      out.broker_cpu_us_per_msg_baseline = round(cpu.brokerBaseline, 1);
    }
    return out;
  },
};

export default bench;
