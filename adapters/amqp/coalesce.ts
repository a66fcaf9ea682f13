import type { ChannelModel } from 'amqplib';

interface Corkable {
  write: (...args: never[]) => boolean;
  cork(): void;
  uncork(): void;
}

/**
 * Coalesce the frames written to a connection's socket in one turn of the event loop into
 * one `writev`. amqplib hands the socket one write per frame (a publish, an ack), and each
 * is a system call of its own: at a few thousand messages a second, about a quarter of the
 * process's CPU. Corking at the first write of a turn and uncorking once the turn's
 * synchronous work is done (`process.nextTick`) sends the same bytes in the same order, in
 * one call. Frames are never held past the current turn, so no latency is added. A socket
 * without cork/uncork (not a Node stream) is left as it is.
 */
export function coalesceWrites(conn: ChannelModel): void {
  const stream = (conn as unknown as { connection?: { stream?: Partial<Corkable> } }).connection?.stream;
  if (!stream || typeof stream.write !== 'function' || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function') return;
  const s = stream as Corkable;
  const write = s.write;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    s.uncork();
  };
  s.write = function (this: Corkable, ...args: never[]): boolean {
    if (!corked) {
      corked = true;
      s.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Corkable['write'];
}
