import { round, type BenchCase, type BenchResult } from '../harness.js';
import { benchBroker, brokerCpu, messageCount, orderBody, orderProperties, publishAll, silentEngine, WINDOW } from './amqp-bridge.js';

const bench: BenchCase = {
  name: 'amqp-publish',
  description:
    'Publish persistent JSON messages to a queue with publisher confirms (bounded window of unconfirmed, drain respected, not mandatory); busbar producer (engine.send, concurrent) vs hand-written amqplib confirm channel sending properties of the same size (ids shaped like busbar\'s); the same baseline with short ids (a content header frame under 64 bytes) reported beside it',
  requires: ['rabbitmq'],
  async run({ quick }) {
    const n = quick ? 5000 : 30_000;
    const rounds = quick ? 1 : 3;
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
    let shortIds = 0;
    // CPU per message of this process and of the broker, each side's best round: the broker
    // doing most of the work is what holds both sides to the same rate
    const brokerNow = brokerCpu();
    const cpu = { busbar: Infinity, baseline: Infinity, brokerBusbar: Infinity, brokerBaseline: Infinity, brokerShort: Infinity };
    const timed = async (side: 'busbar' | 'baseline' | 'short', work: () => Promise<void>): Promise<number> => {
      const b0 = brokerNow?.();
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      await work();
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const c = process.cpuUsage(c0);
      if (side !== 'short') cpu[side] = Math.min(cpu[side], (c.user + c.system) / n);
      if (brokerNow && b0 !== undefined) {
        const k = side === 'busbar' ? 'brokerBusbar' : side === 'baseline' ? 'brokerBaseline' : 'brokerShort';
        cpu[k] = Math.min(cpu[k], ((brokerNow() - b0) * 1e6) / n);
      }
      return n / s;
    };
    try {
      const hand = async (side: 'baseline' | 'short'): Promise<number> => {
        const q = await fresh();
        const out = await conn.createConfirmChannel();
        const perS = await timed(side, () => publishAll(out, q, n, orderBody, WINDOW, (i) => orderProperties(i, side === 'short')));
        await out.close();
        if ((await messageCount(conn, q)) !== n) throw new Error(`${side === 'short' ? 'short-id ' : ''}baseline lost messages`);
        await broker.drop(q);
        return perS;
      };
      const runBaseline = async (): Promise<void> => {
        baseline = Math.max(baseline, await hand('baseline'));
      };
      const runShort = async (): Promise<void> => {
        shortIds = Math.max(shortIds, await hand('short'));
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
      // a warm-up round of each, then the rounds, each in another order (the broker's pace drifts)
      const sides = [runBaseline, runBusbar, runShort];
      for (const side of sides) await side();
      busbar = baseline = shortIds = 0;
      for (const k of Object.keys(cpu) as Array<keyof typeof cpu>) cpu[k] = Infinity;
      for (let r = 0; r < rounds; r++) for (let k = 0; k < sides.length; k++) await sides[(k + r) % sides.length]!();
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
      baseline_short_ids_per_s: Math.round(shortIds),
      ratio_short_ids: round(busbar / shortIds, 2),
      baseline_cpu_us_per_msg: round(cpu.baseline, 1),
    };
    if (brokerNow) {
      out.broker_cpu_us_per_msg_busbar = round(cpu.brokerBusbar, 1);
      out.broker_cpu_us_per_msg_baseline = round(cpu.brokerBaseline, 1);
      out.broker_cpu_us_per_msg_short_ids = round(cpu.brokerShort, 1);
    }
    return out;
  },
};

export default bench;
