import type { Channel } from 'amqplib';

/**
 * Coalesces acknowledgements of one channel: once every delivery up to tag T is settled,
 * a single `basic.ack` with `multiple` covers them all. Acks of messages that finish in the
 * same turn of the event loop go out as one frame, which spares the broker (and the
 * socket) one frame per message. An ack never covers a delivery still in the route: only
 * the settled prefix of the delivery order is acknowledged. Nacks go out at once, singly.
 */
export class AckBatcher {
  readonly #ch: Channel;
  /** Delivery tags in delivery order, from `#head` on not yet acknowledged to the broker. */
  #tags: number[] = [];
  #head = 0;
  readonly #settled = new Set<number>();
  /** Highest tag of the settled prefix not yet sent. */
  #ready = 0;
  #scheduled = false;

  constructor(ch: Channel) {
    this.#ch = ch;
  }

  delivered(tag: number): void {
    this.#tags.push(tag);
  }

  ack(tag: number): void {
    this.#settled.add(tag);
    this.#advance();
    if (this.#ready && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Reject one delivery now (a nack cannot wait: it hands the message back to the broker). */
  nack(tag: number, requeue: boolean): void {
    this.#ch.nack({ fields: { deliveryTag: tag } } as never, false, requeue);
    this.#settled.add(tag);
    this.#advance();
    if (this.#ready && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Send the pending multiple-ack now (before closing the channel). */
  flush(): void {
    this.#scheduled = false;
    if (!this.#ready) return;
    const tag = this.#ready;
    this.#ready = 0;
    try {
      this.#ch.ack({ fields: { deliveryTag: tag } } as never, true);
    } catch {
      // channel gone: the broker redelivers what it did not get an ack for
    }
  }

  #advance(): void {
    const tags = this.#tags;
    let h = this.#head;
    while (h < tags.length && this.#settled.has(tags[h]!)) {
      this.#settled.delete(tags[h]!);
      this.#ready = tags[h]!;
      h++;
    }
    // compact now and then so the array does not grow with every delivery
    if (h > 1024 && h * 2 > tags.length) {
      this.#tags = tags.slice(h);
      h = 0;
    }
    this.#head = h;
  }
}
