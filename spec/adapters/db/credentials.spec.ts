import { Writable } from 'node:stream';
import { expect } from 'chai';
import { pino } from 'pino';
import { createDbAdapter } from '../../../adapters/db/index.js';
import { Engine, from, type BusbarError } from '../../../lib/index.js';
import { waitFor } from '../../helpers.js';

describe('db adapter: an unreachable PostgreSQL server', () => {
  it('keeps the route up (polling retries), fails sends with a retryable DB_CONNECTION, and never shows the password', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = pino({ level: 'debug' }, sink);
    // port 1 on loopback refuses connections at once
    const adapter = createDbAdapter({ connections: { down: { engine: 'postgres', url: 'postgres://app:s3cret-pw@127.0.0.1:1/x', connectTimeoutMs: 1000 } } });
    const engine = new Engine({ logger, adapters: [adapter] });
    engine.addRoutes(
      from('db:postgres:down?table=jobs&errorDelay=20&maxErrorDelay=50').routeId('poll').to('mock:out'),
      from('direct:in').routeId('write').to(`db:down?statement=${encodeURIComponent('INSERT INTO t VALUES (:body.id)')}`),
    );
    await engine.start();
    try {
      await waitFor(() => engine.stats().routes.poll!.source.status === 'disconnected', 5000, 'status disconnected');
      const err = (await engine.send('direct:in', { id: 1 }).then(() => undefined, (e: unknown) => e)) as BusbarError;
      expect(err.code).to.equal('BUSBAR_ERR_DB_CONNECTION');
      expect(err.retryable).to.equal(true);
      expect(err.message).to.include('postgres:down');
      await waitFor(() => lines.some((l) => l.includes('poll failed')), 5000, 'a logged poll failure');
      const everything = lines.join('\n') + err.message + JSON.stringify(err.toJSON()) + JSON.stringify(engine.stats());
      expect(everything).to.not.include('s3cret-pw');
    } finally {
      await engine.stop();
    }
  });
});
