import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { BIN, startHub } from './hub.js';

describe('busbar run --management', function () {
  this.timeout(60_000);

  it('serves the management API on the given address and stops it with the hub', async () => {
    const hub = await startHub(['spec/fixtures/cli/forever.json', '--management', '127.0.0.1:0']);
    try {
      expect(hub.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
      const ready = await fetch(`${hub.url}/ready`);
      expect(ready.status).to.equal(200);
      const routes = (await (await fetch(`${hub.url}/api/v1/routes`)).json()) as { routes: Array<{ id: string; state: string }> };
      expect(routes.routes.map((r) => [r.id, r.state])).to.deep.equal([['beat', 'started']]);
    } finally {
      expect(await hub.stop()).to.equal(0);
    }
    const after = await fetch(`${hub.url}/live`).then(() => 'answered', () => 'refused');
    expect(after).to.equal('refused');
  });

  it('takes the management settings from the routes file, token included; the command line and environment override', async () => {
    const hub = await startHub(['spec/fixtures/cli/managed.json']);
    try {
      expect((await fetch(`${hub.url}/api/v1/status`)).status).to.equal(401);
      const st = await fetch(`${hub.url}/api/v1/status`, { headers: { authorization: 'Bearer file-token' } });
      expect(st.status).to.equal(200);
      expect(((await st.json()) as { state: string }).state).to.equal('started');
    } finally {
      await hub.stop();
    }
    const env = await startHub(['spec/fixtures/cli/managed.json'], { BUSBAR_MANAGEMENT_TOKEN: 'env-token' });
    try {
      expect((await fetch(`${env.url}/api/v1/status`, { headers: { authorization: 'Bearer file-token' } })).status).to.equal(401);
      expect((await fetch(`${env.url}/api/v1/status`, { headers: { authorization: 'Bearer env-token' } })).status).to.equal(200);
    } finally {
      await env.stop();
    }
  });

  it('refuses a non-loopback address without a token, with a coded error', () => {
    const r = spawnSync(process.execPath, [BIN, 'run', 'spec/fixtures/cli/forever.json', '--management', '0.0.0.0:0', '--no-pretty'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, BUSBAR_MANAGEMENT_TOKEN: '' } });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain('BUSBAR_ERR_MANAGEMENT_CONFIG').and.contain('0.0.0.0');
  });
});
