import { randomBytes } from 'node:crypto';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { AMQP_URL } from '../../helpers.js';

/** A name no other test (or earlier run) uses. */
export function uniqueName(prefix: string): string {
  return `busbar-test.${prefix}.${randomBytes(4).toString('hex')}`;
}

/**
 * A plain amqplib connection for checking what is on the broker. Fails (never skips) when
 * RabbitMQ is unreachable, naming the URL and how to start it.
 */
export async function rawConnection(): Promise<ChannelModel> {
  try {
    const c = await amqp.connect(AMQP_URL, { timeout: 5000 });
    c.on('error', () => undefined);
    return c;
  } catch (err) {
    throw new Error(`RabbitMQ is not reachable at ${AMQP_URL.replace(/:[^:@/]*@/, ':***@')} (${(err as Error).message}); start it with: bash scripts/rabbitmq.sh start`);
  }
}

/** Helpers on one raw channel, reopened when a passive check closes it. */
export class Broker {
  #conn: ChannelModel;
  #ch: Channel | undefined;
  readonly created: Array<{ kind: 'queue' | 'exchange'; name: string }> = [];

  private constructor(conn: ChannelModel) {
    this.#conn = conn;
  }

  static async open(): Promise<Broker> {
    return new Broker(await rawConnection());
  }

  get connection(): ChannelModel {
    return this.#conn;
  }

  async channel(): Promise<Channel> {
    if (!this.#ch) {
      const ch = await this.#conn.createChannel();
      ch.on('error', () => undefined);
      ch.on('close', () => {
        if (this.#ch === ch) this.#ch = undefined;
      });
      this.#ch = ch;
    }
    return this.#ch;
  }

  /** Remember a queue or exchange to delete in `cleanup`. */
  track(kind: 'queue' | 'exchange', name: string): string {
    this.created.push({ kind, name });
    return name;
  }

  async queueCount(name: string): Promise<{ messageCount: number; consumerCount: number }> {
    const ch = await this.channel();
    const r = await ch.checkQueue(name);
    return { messageCount: r.messageCount, consumerCount: r.consumerCount };
  }

  async queueExists(name: string): Promise<boolean> {
    try {
      await (await this.channel()).checkQueue(name);
      return true;
    } catch {
      return false;
    }
  }

  /** Take every message from a queue (acked), up to `max`, waiting `idleMs` for stragglers. */
  async drain(name: string, max = 1_000_000): Promise<amqp.GetMessage[]> {
    const ch = await this.channel();
    const out: amqp.GetMessage[] = [];
    while (out.length < max) {
      const m = await ch.get(name, { noAck: true });
      if (!m) break;
      out.push(m);
    }
    return out;
  }

  async cleanup(): Promise<void> {
    for (const { kind, name } of this.created.splice(0).reverse()) {
      const ch = await this.channel();
      if (kind === 'queue') await ch.deleteQueue(name).catch(() => undefined);
      else await ch.deleteExchange(name).catch(() => undefined);
    }
    await this.#conn.close().catch(() => undefined);
  }
}
