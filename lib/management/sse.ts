import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ManagementServer } from './types.js';

/** One open server-sent-events stream: what a handler writes to it. */
export interface EventStream {
  /** Writes one event (`event: type`, `data: JSON`); nothing once the stream has ended. */
  event(type: string, data: unknown): void;
  /** Writes a comment line, which keeps an idle stream open through proxies. */
  comment(text: string): void;
}

/**
 * Opens a server-sent-events stream on `res`: `tick` runs once at once and then every
 * `intervalMs` (at least 50 ms); the stream ends, and `onEnd` runs once, when the client goes,
 * the response fails or the management server closes. The timer never keeps the process alive.
 */
export function openEventStream(server: ManagementServer, req: IncomingMessage, res: ServerResponse, opts: { intervalMs: number; tick: (s: EventStream) => void; onEnd?: () => void }): EventStream {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
  const stream: EventStream = {
    event: (type, data) => {
      if (!res.writableEnded) res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    comment: (text) => {
      if (!res.writableEnded) res.write(`: ${text}\n\n`);
    },
  };
  const timer = setInterval(() => opts.tick(stream), Math.max(50, opts.intervalMs));
  timer.unref();
  let done = false;
  const end = (): void => {
    if (done) return;
    done = true;
    clearInterval(timer);
    unClose();
    opts.onEnd?.();
    res.end();
  };
  const unClose = server.onClose(end);
  req.on('close', end);
  res.on('error', end);
  opts.tick(stream);
  return stream;
}
