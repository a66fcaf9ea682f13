import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { BusbarError, busbarLogger, messageWithCauses } from '../../lib/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A logger writing its lines into an array (parsed). */
function capture(): { logger: ReturnType<typeof busbarLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { logger: busbarLogger({ level: 'info' }, sink), lines };
}

const count = (text: string, part: string): number => text.split(part).length - 1;

describe('log lines name each cause of an error once', () => {
  it('a wrapping error that quotes its cause is logged with the cause\'s message once; a cause it does not quote is appended', () => {
    const schema = new BusbarError('DB_SCHEMA', 'table "orders" has no column "retries"');
    const start = new BusbarError('ROUTE_START_FAILED', `route "out" failed to start: ${schema.message}`, { cause: schema });
    expect(messageWithCauses(start)).to.equal('route "out" failed to start: table "orders" has no column "retries"');
    const io = new Error('ECONNREFUSED 127.0.0.1:5432');
    const quiet = new BusbarError('DB_CONNECTION', 'postgres:main: cannot connect', { cause: io });
    expect(messageWithCauses(quiet)).to.equal('postgres:main: cannot connect: ECONNREFUSED 127.0.0.1:5432');
    // a cycle of causes ends
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(messageWithCauses(b)).to.equal('b: a');

    const { logger, lines } = capture();
    logger.error({ err: start }, 'start failed');
    logger.error({ err: quiet }, 'poll failed');
    const [first, second] = lines as Array<{ err: { message: string; type: string; stack: string; code: string } }>;
    expect(count(first!.err.message, 'has no column "retries"')).to.equal(1);
    expect(first!.err.type).to.equal('BusbarError');
    expect(first!.err.code).to.equal('BUSBAR_ERR_ROUTE_START_FAILED');
    // the stack keeps the chain
    expect(first!.err.stack).to.include('caused by: BusbarError: table "orders" has no column "retries"');
    expect(second!.err.message).to.equal('postgres:main: cannot connect: ECONNREFUSED 127.0.0.1:5432');
  });

  it('an engine without a logger of its own logs so (its default logger, on stdout)', async () => {
    const script = `
      import { Engine, BusbarError } from './lib/index.ts';
      const cause = new BusbarError('DB_SCHEMA', 'no column "retries"');
      new Engine().logger.error({ err: new BusbarError('ROUTE_START_FAILED', 'route "out" failed to start: ' + cause.message, { cause }) }, 'x');
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 30_000 });
    const line = JSON.parse(stdout.trim().split('\n').pop()!) as { err: { message: string } };
    expect(line.err.message).to.equal('route "out" failed to start: no column "retries"');
  });
});
