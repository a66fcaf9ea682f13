import { expect } from 'chai';
import { execSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Engine, from } from '../../../lib/index.js';
import { createHttpAdapter, type HttpConfigInput } from '../../../adapters/http/index.js';
import { testLogger, waitFor } from '../../helpers.js';
import { call, portOf } from './helpers.js';

function engine(config: HttpConfigInput = {}): Engine {
  return new Engine({ logger: testLogger(), adapters: [createHttpAdapter(config)] });
}

/**
 * POST `size` bytes and read the answer only after the whole body is sent, as curl, Python's
 * requests and most SDKs do: a server that closes early makes the kernel reset the connection,
 * and the answer it had sent is lost.
 */
function upload(port: number, size: number, timeoutMs = 20_000): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => s.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.pause();
    let raw = '';
    s.on('data', (c: Buffer) => (raw += c.toString('latin1')));
    s.on('end', () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.1 (\d+)[^]*?\r\n\r\n([^]*)$/.exec(raw);
      if (!m) reject(new Error(`not an HTTP answer: ${JSON.stringify(raw.slice(0, 200))}`));
      else resolve({ status: Number(m[1]), text: m[2]! });
    });
    s.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${size}\r\n\r\n`);
    const chunk = Buffer.alloc(65536, 'x');
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        const n = Math.min(chunk.length, size - sent);
        sent += n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          s.once('drain', pump);
          return;
        }
      }
      // all sent: now read the answer
      s.write('', () => s.resume());
    };
    pump();
  });
}

/** A client that connects and then sends nothing and ignores the server's FIN (slowloris, a stuck proxy). */
function hostile(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    s.on('error', () => undefined);
    s.on('end', () => undefined); // half-open: never answers the FIN
    s.once('connect', () => resolve(s));
    s.once('close', () => resolve(s));
  });
}

describe('http adapter: server under hostile clients', function () {
  this.timeout(60_000);
  let e: Engine | undefined;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await e?.stop({ timeoutMs: 2000 });
    e = undefined;
  });

  it('answers every body over maxBodyBytes with its coded 413, however much the client still sends', async () => {
    e = engine();
    e.addRoutes(from('http:/upload?port=0&maxBodyBytes=1000').transform(() => 'ok'));
    await e.start();
    const port = portOf(e);
    const sizes = [...Array<number>(10).fill(2 * 1024 * 1024), ...Array<number>(3).fill(32 * 1024 * 1024)];
    const results = await Promise.allSettled(sizes.map((n) => upload(port, n)));
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    expect(failed, 'clients that got no answer').to.deep.equal([]);
    for (const r of results) {
      const v = (r as PromiseFulfilledResult<{ status: number; text: string }>).value;
      expect(v.status).to.equal(413);
      expect((JSON.parse(v.text) as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
    }
    expect((await call(port, 'POST', '/upload', 'small', { 'content-type': 'text/plain' })).status).to.equal(200);
  });

  it('stays open to new clients after 2,000 idle connections: they are cut at the headers timeout, not kept half-closed', async () => {
    // each connection costs two descriptors here (client and server end)
    const limit = Number(execSync('ulimit -n', { shell: '/bin/bash', encoding: 'utf8' }).trim());
    const count = Math.min(2000, Math.floor((limit - 256) / 2));
    expect(count, `ulimit -n is ${limit}: too low for this test`).to.be.greaterThan(1100);
    const headersTimeoutMs = 1000;
    e = engine({ headersTimeoutMs, requestTimeoutMs: 2000, idleTimeoutMs: 60_000 });
    e.addRoutes(from('http:/ping?port=0').transform(() => 'pong'));
    await e.start();
    const port = portOf(e);
    for (let i = 0; i < count; i += 200) sockets.push(...(await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => hostile(port)))));
    // the idle ones are cut at the headers timeout (plus Node's check interval)
    await new Promise((r) => setTimeout(r, headersTimeoutMs + 600));
    const answers = await Promise.allSettled(Array.from({ length: 120 }, () => call(port, 'GET', '/ping', undefined, {}, headersTimeoutMs)));
    const served = answers.filter((a) => a.status === 'fulfilled' && a.value.status === 200).length;
    expect(served, 'new clients served').to.equal(120);
  });

  it('limits connections per client address (maxConnectionsPerClient): one address cannot lock out the others', async () => {
    e = engine({ maxConnectionsPerClient: 20 });
    e.addRoutes(from('http:/ping?port=0').transform(() => 'pong'));
    await e.start();
    const port = portOf(e);
    const hog = await Promise.all(Array.from({ length: 50 }, () => hostile(port, '127.0.0.2')));
    sockets.push(...hog);
    await waitFor(() => hog.filter((s) => s.destroyed || s.readableEnded).length >= 30, 5000, 'connections over the limit refused');
    const open = hog.filter((s) => !s.destroyed && !s.readableEnded).length;
    expect(open).to.equal(20);
    // another address is served
    expect((await call(port, 'GET', '/ping')).status).to.equal(200);
    // and the hog gets a slot back when it closes one
    hog.find((s) => !s.destroyed && !s.readableEnded)!.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const again = await hostile(port, '127.0.0.2');
    sockets.push(again);
    await new Promise((r) => setTimeout(r, 200));
    expect(again.destroyed || again.readableEnded).to.equal(false);
  });
});
