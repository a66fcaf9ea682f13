import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { Engine, from, type BusbarError } from '../../lib/index.js';
import { httpAdapter } from '../../adapters/http/index.js';
import { testLogger } from '../helpers.js';
import { call, portOf } from '../adapters/http/helpers.js';

/**
 * A backend in another process that dies while answering: `partial` writes the headers
 * and half a body, then exits; `silent` reads the request and exits without a word.
 */
async function dyingBackend(mode: 'partial' | 'silent'): Promise<{ port: number; child: ChildProcess }> {
  const code = `
    const http = require('node:http');
    const s = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (${JSON.stringify(mode)} === 'partial') {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
          res.write('{"half":');
          setTimeout(() => process.exit(1), 20);
        } else process.exit(1);
      });
    });
    s.listen(0, '127.0.0.1', () => console.log(s.address().port));
  `;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('backend did not start')), 10_000);
    child.stdout!.once('data', (d: Buffer) => {
      clearTimeout(t);
      resolve(Number(d.toString().trim()));
    });
  });
  return { port, child };
}

function kill(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

describe('http: real failures on real sockets', function () {
  this.timeout(20_000);
  let e: Engine;
  beforeEach(async () => {
    e = new Engine({ logger: testLogger(), adapters: [httpAdapter] });
  });
  afterEach(() => e.stop({ timeoutMs: 2000 }));

  it('a backend killed mid-response is HTTP_NETWORK for the client, 502 for the route\'s caller', async () => {
    const b = await dyingBackend('partial');
    try {
      e.addRoutes(from('http:/proxy?port=0').to(`http://127.0.0.1:${b.port}/x?method=POST`));
      await e.start();
      const r = await call(portOf(e), 'POST', '/proxy', '{}', { 'content-type': 'application/json' });
      expect(r.status).to.equal(502);
      expect((r.json() as { error: { code: string } }).error.code).to.equal('BUSBAR_ERR_HTTP_NETWORK');
    } finally {
      kill(b.child);
    }
  });

  it('a backend that dies before answering: a GET is retried, then fails with HTTP_NETWORK after every attempt', async () => {
    const b = await dyingBackend('silent');
    try {
      await e.start();
      const err = (await e.request(`http://127.0.0.1:${b.port}/x?method=GET&retries=2&retryDelayMs=1`, undefined).catch((x: BusbarError) => x)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_HTTP_NETWORK');
      expect(err.details.attempts).to.equal(3);
    } finally {
      kill(b.child);
    }
  });

  it('keeps 200 concurrent requests apart (each reply is its own request\'s)', async () => {
    e.addRoutes(
      from<{ n: number }>('http:/double?port=0&method=POST').process(async (m) => {
        await new Promise((r) => setTimeout(r, m.body.n % 7));
        return { ...m, body: { n: m.body.n, twice: m.body.n * 2 } };
      }),
    );
    await e.start();
    const url = `http://127.0.0.1:${portOf(e)}/double?method=POST`;
    const replies = await Promise.all(Array.from({ length: 200 }, (_, n) => e.request<{ n: number; twice: number }>(url, { n })));
    expect(replies.map((r) => r.twice)).to.deep.equal(Array.from({ length: 200 }, (_, n) => n * 2));
    expect(e.stats().routes['route-1']!.completed).to.equal(200);
  });
});
