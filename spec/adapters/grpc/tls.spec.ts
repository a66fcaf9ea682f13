import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Engine, from, type Message } from '../../../lib/index.js';
import { createGrpcAdapter, createGrpcsAdapter, grpcPort } from '../../../adapters/grpc/index.js';
import { rejection, tempDir, testLogger } from '../../helpers.js';
import { SHOP_PROTO, shopClient, unary } from './helpers.js';

/** A self-signed certificate and key for `cn`, made here with openssl (valid for localhost and 127.0.0.1). */
function selfSigned(dir: string, name: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'pipe' });
  return { cert, key };
}

describe('grpcs: gRPC over TLS (certificates made by the spec)', function () {
  this.timeout(30_000);
  let dir: ReturnType<typeof tempDir>;
  let server: { cert: string; key: string };
  let clientId: { cert: string; key: string };
  let rogue: { cert: string; key: string };

  before(() => {
    dir = tempDir('busbar-grpcs-');
    server = selfSigned(dir.path, 'server', 'localhost');
    clientId = selfSigned(dir.path, 'client', 'busbar-client');
    rogue = selfSigned(dir.path, 'rogue', 'rogue');
  });
  after(() => dir?.cleanup());

  it('serves over TLS: a busbar grpcs client trusting the certificate calls it, an untrusting one fails without retrying, a plaintext one fails', async () => {
    const seen: Message[] = [];
    const e = new Engine({ logger: testLogger(), adapters: [createGrpcsAdapter({ protos: [SHOP_PROTO], tls: server })] });
    e.addRoutes(from<{ id: string }>('grpcs:shop.Orders/GetOrder?port=0').process((m: Message<{ id: string }>) => (seen.push(m), { ...m, body: { id: m.body.id, customer: 'tls' } })));
    await e.start();
    const port = grpcPort(e, 0, '127.0.0.1', 'grpcs')!;
    const trusting = new Engine({ logger: testLogger(), adapters: [createGrpcsAdapter({ protos: [SHOP_PROTO], tls: { ca: server.cert } })] });
    const untrusting = new Engine({ logger: testLogger(), adapters: [createGrpcsAdapter({ protos: [SHOP_PROTO] })] });
    const plain = new Engine({ logger: testLogger(), adapters: [createGrpcAdapter({ protos: [SHOP_PROTO] })] });
    await Promise.all([trusting.start(), untrusting.start(), plain.start()]);
    try {
      expect(await trusting.request(`grpcs://localhost:${port}/shop.Orders/GetOrder`, { id: '1' })).to.include({ id: '1', customer: 'tls' });
      const bad = await rejection(untrusting.request(`grpcs://localhost:${port}/shop.Orders/GetOrder?timeoutMs=3000`, { id: '2' }));
      expect(bad.code).to.equal('BUSBAR_ERR_GRPC_UNAVAILABLE');
      expect(bad.retryable).to.equal(false);
      const clear = await rejection(plain.request(`grpc://127.0.0.1:${port}/shop.Orders/GetOrder?timeoutMs=3000`, { id: '3' }));
      expect(clear.code).to.match(/BUSBAR_ERR_(GRPC_UNAVAILABLE|TIMEOUT|GRPC_REMOTE_ERROR)/);
      expect(seen.map((m) => (m.body as { id: string }).id)).to.deep.equal(['1']);
      // grpc-js's own client with the certificate as its root
      const c = shopClient(port, grpc.credentials.createSsl(readFileSync(server.cert)), { 'grpc.ssl_target_name_override': 'localhost' });
      try {
        expect((await unary(c, 'GetOrder', { id: '4' })).value).to.include({ id: '4' });
      } finally {
        c.close();
      }
    } finally {
      await Promise.all([trusting.stop(), untrusting.stop(), plain.stop()]);
      await e.stop();
    }
  });

  it('mutual TLS: clientAuth require refuses a client without a certificate the server trusts', async () => {
    const e = new Engine({ logger: testLogger(), adapters: [createGrpcsAdapter({ protos: [SHOP_PROTO], tls: { ...server, ca: clientId.cert, clientAuth: 'require' } })] });
    e.addRoutes(from('grpcs:shop.Orders/GetOrder?port=0').transform((b) => b));
    await e.start();
    const port = grpcPort(e, 0, '127.0.0.1', 'grpcs')!;
    const good = new Engine({ logger: testLogger(), adapters: [createGrpcsAdapter({ protos: [SHOP_PROTO], tls: { ca: server.cert, ...clientId } })] });
    const wrong = new Engine({ logger: testLogger(), adapters: [createGrpcsAdapter({ protos: [SHOP_PROTO], tls: { ca: server.cert, ...rogue } })] });
    const none = new Engine({ logger: testLogger(), adapters: [createGrpcsAdapter({ protos: [SHOP_PROTO], tls: { ca: server.cert } })] });
    await Promise.all([good.start(), wrong.start(), none.start()]);
    try {
      expect(await good.request(`grpcs://localhost:${port}/shop.Orders/GetOrder`, { id: 'm' })).to.include({ id: 'm' });
      for (const [name, eng] of [['rogue', wrong], ['no certificate', none]] as const) {
        const err = await rejection(eng.request(`grpcs://localhost:${port}/shop.Orders/GetOrder?timeoutMs=3000`, { id: 'x' }));
        expect(err.code, name).to.match(/BUSBAR_ERR_(GRPC_UNAVAILABLE|GRPC_REMOTE_ERROR)/);
      }
    } finally {
      await Promise.all([good.stop(), wrong.stop(), none.stop()]);
      await e.stop();
    }
  });

  it('a grpcs server route without a certificate is refused when the route is created', () => {
    const e = new Engine({ logger: testLogger(), adapters: [createGrpcsAdapter({ protos: [SHOP_PROTO] })] });
    let code: string | undefined;
    try {
      e.addRoutes(from('grpcs:shop.Orders/GetOrder?port=0').to('mock:x'));
    } catch (x) {
      code = (x as { code?: string }).code;
    }
    expect(code).to.equal('BUSBAR_ERR_INVALID_OPTION');
  });
});
