/**
 * The hand-written baseline of the p2p cases: plain TCP on 127.0.0.1, 4-byte big-endian length
 * prefix + JSON, one connection per peer pair, requests matched to replies by id. No
 * encryption, no membership, no routes: what busbar's p2p adapter is compared against.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface Frame {
  id: number;
  body: unknown;
}

function reader(onFrame: (f: Frame) => void): (chunk: Buffer) => void {
  let buf: Buffer = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (buf.length < 4 + n) break;
      onFrame(JSON.parse(buf.subarray(4, 4 + n).toString('utf8')) as Frame);
      buf = buf.subarray(4 + n);
    }
  };
}

export function write(sock: Socket, f: Frame): void {
  const json = Buffer.from(JSON.stringify(f), 'utf8');
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(json.length, 0);
  sock.write(Buffer.concat([head, json]));
}

/** A server answering every frame with `handle(body)` under the same id. */
export async function tcpServer(handle: (body: unknown) => unknown): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<Socket>();
  const server: Server = createServer((s) => {
    socks.add(s);
    s.setNoDelay(true);
    s.on('data', reader((f) => write(s, { id: f.id, body: handle(f.body) })));
    s.on('close', () => socks.delete(s));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A client: `call(body)` resolves with the reply's body. */
export async function tcpClient(port: number): Promise<{ call(body: unknown): Promise<unknown>; close(): void }> {
  const sock = connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise<void>((r, j) => {
    sock.once('connect', () => r());
    sock.once('error', j);
  });
  const pending = new Map<number, (b: unknown) => void>();
  let seq = 0;
  sock.on('data', reader((f) => {
    const p = pending.get(f.id);
    pending.delete(f.id);
    p?.(f.body);
  }));
  return {
    call: (body) =>
      new Promise((resolve) => {
        const id = ++seq;
        pending.set(id, resolve);
        write(sock, { id, body });
      }),
    close: () => sock.destroy(),
  };
}

/** `total` calls by `concurrency` callers in closed loops; per-call latencies in ms. */
export async function closedLoop(total: number, concurrency: number, call: (i: number) => Promise<unknown>): Promise<{ perS: number; p50: number; p99: number }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const s = process.hrtime.bigint();
        await call(i);
        lat.push(Number(process.hrtime.bigint() - s) / 1e6);
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  const q = (p: number): number => Math.round((lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? 0) * 100) / 100;
  return { perS: Math.round(total / secs), p50: q(0.5), p99: q(0.99) };
}
