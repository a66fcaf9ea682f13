import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { fileURLToPath } from 'node:url';
import { BusbarError, Engine, from } from '../../../lib/index.js';
import { boundPort, createHttpAdapter, createHttpsAdapter, type HttpConfigInput } from '../../../adapters/http/index.js';
import { testLogger, rejection } from '../../helpers.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../../fixtures/tls/${name}`, import.meta.url));
const TLS = { cert: fixture('server.pem'), key: fixture('server-key.pem'), ca: fixture('ca.pem') };

describe('https: TLS servers and clients (real TLS on 127.0.0.1)', function () {
  this.timeout(20_000);
  let server: Engine;
  let port: number;

  before(async () => {
    server = new Engine({ logger: testLogger(), adapters: [createHttpsAdapter({ tls: TLS })] });
    server.addRoutes(
      from<{ id: string }>('https:/orders/:id?port=0&method=GET')
        .routeId('orders')
        .transform((_b, m) => ({ id: m.headers['http.param.id'], secure: true })),
      from<{ id: string }>('https:/rpc?port=0&protocol=jsonrpc').routeId('rpc').transform((b) => ({ echo: b })),
    );
    await server.start();
    port = boundPort(server, 0, '127.0.0.1', 'https')!;
  });
  after(() => server?.stop());

  it('serves over TLS, and a busbar https client that trusts the CA calls it (REST and JSON-RPC)', async () => {
    const client = new Engine({ logger: testLogger(), adapters: [createHttpsAdapter({ tls: { ca: TLS.ca } })] });
    await client.start();
    try {
      const reply = await client.request<{ id: string; secure: boolean }>(`https://localhost:${port}/orders/{body.id}?method=GET`, { id: '42' });
      expect(reply).to.deep.equal({ id: '42', secure: true });
      const rpc = await client.request<{ echo: unknown }>(`https://127.0.0.1:${port}/rpc?protocol=jsonrpc&rpcMethod=echo`, { a: 1 });
      expect(rpc).to.deep.equal({ echo: { a: 1 } });
    } finally {
      await client.stop();
    }
  });

  it('a client that does not trust the certificate fails with a TLS error, not retried', async () => {
    const client = new Engine({ logger: testLogger(), adapters: [createHttpsAdapter()] }); // Node's built-in authorities only
    await client.start();
    try {
      const err = await rejection(client.request(`https://localhost:${port}/orders/1?method=GET&retries=3&retryDelayMs=1`, {}));
      expect(err.code).to.equal('BUSBAR_ERR_HTTP_NETWORK');
      expect(err.message).to.contain('TLS');
      expect(err.details.errno).to.match(/UNABLE_TO_VERIFY|SELF_SIGNED|CERT/);
      expect(err.details.attempts).to.equal(1);
      expect(err.retryable).to.equal(false);
    } finally {
      await client.stop();
    }
  });

  it('a plain TLS client (node:https) sees the server certificate', async () => {
    const subject = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/orders/7', method: 'GET', ca: readFileSync(TLS.ca), servername: 'localhost' }, (res) => {
        const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
        res.resume();
        res.on('end', () => resolve(String(cert.subject.CN)));
      });
      req.on('error', reject);
      req.end();
    });
    expect(subject).to.equal('localhost');
  });

  it('refuses an https server route without a certificate, and an unreadable PEM file, naming the problem', () => {
    const e = new Engine({ logger: testLogger(), adapters: [createHttpsAdapter({ tls: { ca: TLS.ca } })] });
    let err: BusbarError | undefined;
    try {
      e.addRoutes(from('https:/x?port=0').routeId('nocert').to('mock:out'));
    } catch (x) {
      err = x as BusbarError;
    }
    expect(err?.code).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect(err?.message).to.contain('tls.cert and tls.key').and.contain('nocert');
    expect(() => createHttpsAdapter({ tls: { cert: '/nonexistent/server.pem', key: TLS.key } })).to.throw(BusbarError, /tls\.cert "\/nonexistent\/server\.pem": ENOENT/);
    expect(() => createHttpAdapter({ tls: { ca: TLS.ca } } as never)).to.throw(BusbarError, /createHttpsAdapter/);
  });

  describe('mutual TLS (client certificates)', () => {
    const CLIENT = { cert: fixture('client.pem'), key: fixture('client-key.pem'), ca: TLS.ca };
    const ROGUE = { cert: fixture('rogue.pem'), key: fixture('rogue-key.pem'), ca: TLS.ca };
    let mtls: Engine;
    let mport: number;
    const seen: Array<Record<string, unknown>> = [];

    async function call(tls: HttpConfigInput['tls'], path: string): Promise<unknown> {
      const client = new Engine({ logger: testLogger(), adapters: [createHttpsAdapter({ tls })] });
      await client.start();
      try {
        return await client.request(`https://localhost:${mport}${path}?method=GET&retries=0`, {});
      } finally {
        await client.stop();
      }
    }

    before(async () => {
      mtls = new Engine({ logger: testLogger(), adapters: [createHttpsAdapter({ tls: { ...TLS, clientAuth: 'require' } })] });
      mtls.addRoutes(
        from('https:/who?port=0&method=GET')
          .routeId('who')
          .transform((_b, m) => {
            seen.push({ authorized: m.headers['http.tls.authorized'], subject: m.headers['http.tls.clientSubject'] });
            return { hello: m.headers['http.tls.clientSubject'] };
          }),
      );
      await mtls.start();
      mport = boundPort(mtls, 0, '127.0.0.1', 'https')!;
    });
    after(() => mtls?.stop());

    it('clientAuth=require: a client with a certificate from the CA gets in, and the route sees who it is', async () => {
      seen.length = 0;
      expect(await call(CLIENT, '/who')).to.deep.equal({ hello: 'busbar-test-client' });
      expect(seen).to.deep.equal([{ authorized: true, subject: 'busbar-test-client' }]);
    });

    it('clientAuth=require: no certificate, or one the CA did not sign, is refused in the handshake; the route never runs', async () => {
      seen.length = 0;
      for (const tls of [{ ca: TLS.ca }, ROGUE]) {
        const err = await rejection(call(tls, '/who'));
        expect(err.code, JSON.stringify(tls)).to.equal('BUSBAR_ERR_HTTP_NETWORK');
      }
      expect(seen).to.have.length(0);
    });

    it('clientAuth=request: the route decides, from http.tls.authorized', async () => {
      const lax = new Engine({ logger: testLogger(), adapters: [createHttpsAdapter({ tls: { ...TLS, clientAuth: 'request' } })] });
      const got: Array<[unknown, unknown]> = [];
      lax.addRoutes(from('https:/who?port=0&method=GET').routeId('lax').transform((_b, m) => (got.push([m.headers['http.tls.authorized'], m.headers['http.tls.clientSubject']]), 'ok')));
      await lax.start();
      const port2 = boundPort(lax, 0, '127.0.0.1', 'https')!;
      try {
        for (const tls of [CLIENT, { ca: TLS.ca }, ROGUE]) {
          const client = new Engine({ logger: testLogger(), adapters: [createHttpsAdapter({ tls })] });
          await client.start();
          await client.request(`https://localhost:${port2}/who?method=GET&retries=0`, {});
          await client.stop();
        }
      } finally {
        await lax.stop();
      }
      expect(got).to.deep.equal([
        [true, 'busbar-test-client'],
        [false, undefined],
        [false, 'rogue-client'],
      ]);
    });

    it('clientAuth without a ca is refused when the route is added', () => {
      const e = new Engine({ logger: testLogger(), adapters: [createHttpsAdapter({ tls: { cert: TLS.cert, key: TLS.key, clientAuth: 'require' } })] });
      expect(() => e.addRoutes(from('https:/x?port=0').to('mock:out'))).to.throw(BusbarError, /clientAuth "require" needs tls.ca/);
    });
  });
});
