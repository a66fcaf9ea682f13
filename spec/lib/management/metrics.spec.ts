import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { Registry } from 'prom-client';
import { from } from '../../../lib/builder.js';
import { Engine } from '../../../lib/engine.js';
import type { ManagementServer } from '../../../lib/management/types.js';
import { managementFixture } from './fixture.js';

/** Prometheus's own linter over an exposition; its complaints (none expected). */
function promtool(text: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw new Error(`promtool is needed (Debian package prometheus; scripts/test-services.sh installs it): ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('management API: Prometheus metrics', () => {
  let engine: Engine;
  let m: ManagementServer | undefined;
  const fx = managementFixture();

  it('serves the issue\'s metrics at /metrics with route, endpoint and outcome labels, and promtool finds nothing to complain about', async () => {
    engine = fx.engine();
    engine.addRoutes(
      from<{ n: number }>('direct:orders')
        .routeId('orders')
        .deadLetter('mock:dead')
        .redelivery({ maxAttempts: 2 })
        .process((msg) => {
          if (msg.body.n < 0) throw new Error('negative');
          return msg;
        })
        .to('mock:out'),
      from('direct:plain').routeId('plain').to('direct:nobody'),
    );
    await engine.start();
    m = await fx.serve(engine);
    for (const n of [1, 2, 3, -1]) await engine.send('direct:orders', { n }).catch(() => undefined);
    await engine.send('direct:plain', 'x').catch(() => undefined);
    const res = await fetch(`${m.url}/metrics`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.contain('text/plain');
    const text = await res.text();
    expect(value(text, 'busbar_route_messages_total{route="orders",outcome="completed"}')).to.equal(3);
    expect(value(text, 'busbar_route_messages_total{route="orders",outcome="dead_lettered"}')).to.equal(1);
    expect(value(text, 'busbar_route_messages_total{route="orders",outcome="redelivered"}')).to.equal(1);
    expect(value(text, 'busbar_route_messages_total{route="plain",outcome="failed"}')).to.equal(1);
    expect(value(text, 'busbar_route_inflight{route="orders"}')).to.equal(0);
    expect(value(text, 'busbar_route_duration_seconds_count{route="orders",outcome="completed"}')).to.equal(3);
    expect(value(text, 'busbar_endpoint_messages_total{endpoint="direct:orders",direction="in"}')).to.equal(4);
    expect(value(text, 'busbar_endpoint_messages_total{endpoint="mock:out",direction="out"}')).to.equal(3);
    expect(value(text, 'busbar_endpoint_messages_total{endpoint="mock:dead",direction="out"}')).to.equal(1);
    expect(value(text, 'busbar_endpoint_connected{endpoint="direct:orders"}')).to.equal(1);
    expect(value(text, 'busbar_endpoint_connection_failures_total{endpoint="direct:orders"}')).to.equal(0);
    expect(text).to.contain('process_cpu_seconds_total').and.contain('nodejs_eventloop_lag_seconds');
    const lint = promtool(text);
    expect(lint.out, lint.out).to.equal('');
    expect(lint.status).to.equal(0);
    // the linter does complain about a bad exposition (so the check above can fail)
    expect(promtool('# TYPE busbar_bad counter\nbusbar_bad 1\n').out).to.contain('counter metrics should have "_total" suffix');
  });

  it('registers on the user\'s own prom-client registry, and a management API with metrics off observes nothing', async () => {
    engine = fx.engine();
    engine.addRoutes(from('direct:a').routeId('a').to('mock:out'));
    await engine.start();
    const registry = new Registry();
    const metrics = await engine.metrics({ registry });
    await engine.send('direct:a', 1);
    const text = await registry.metrics();
    expect(value(text, 'busbar_route_messages_total{route="a",outcome="completed"}')).to.equal(1);
    expect(text, 'no process metrics on a registry that is not ours unless asked').not.to.contain('process_cpu_seconds_total');
    metrics.close();
    m = await fx.serve(engine, { metrics: false });
    expect((await fetch(`${m.url}/metrics`)).status).to.equal(404);
  });
});
