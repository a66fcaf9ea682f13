import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AMQP_URL, PG_URL, tempDir, waitFor } from '../helpers.js';

/**
 * docs/command-line-clients.md as a user runs it: its routes file under `busbar run`, and its
 * shell lines, as written, with psql and Debian's amqp-tools (nothing on the other side of
 * busbar imports it). Lines that read a result are run again until the result is there (the
 * broker process works in the background).
 */
const PAGE = 'docs/command-line-clients.md';
const BIN = resolve('bin/busbar.js');

function blocks(lang: string): string[] {
  const text = readFileSync(PAGE, 'utf8');
  const out: string[] = [];
  const re = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm');
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[1]!);
  return out;
}

/** The page's shell lines (comments and blank lines left out). */
function shellLines(): string[] {
  return blocks('sh').flatMap((b) => b.split('\n')).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

describe('docs/command-line-clients.md: busbar run between PostgreSQL and RabbitMQ, driven by psql and amqp-tools', function () {
  this.timeout(90_000);
  const dir = tempDir('busbar-cli-clients-');
  let broker: ChildProcess | undefined;
  let log = '';
  const env = { ...process.env, DATABASE_URL: PG_URL };

  const sh = (line: string): { code: number | null; out: string } => {
    const r = spawnSync('bash', ['-c', line], { cwd: dir.path, env, encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };
  /** Run `line` until `ok(output)` (the broker process needs a moment). */
  const until = async (line: string, ok: (r: { code: number | null; out: string }) => boolean, what: string): Promise<string> => {
    let last = { code: null as number | null, out: '' };
    await waitFor(() => ok((last = sh(line))), 15_000, what).catch((e: Error) => {
      throw new Error(`${e.message}; \`${line}\` printed: ${last.out}`);
    });
    return last.out;
  };
  const psql = (sql: string): void => {
    const r = spawnSync('psql', [PG_URL, '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
  };
  const deleteQueues = async (): Promise<void> => {
    const amqp = await import('amqplib');
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    for (const q of ['shop.orders', 'shop.invoices', 'shop.invoices.dead']) await ch.deleteQueue(q);
    await conn.close();
  };

  before(async () => {
    psql('DROP TABLE IF EXISTS shop_orders; DROP TABLE IF EXISTS shop_invoices');
    await deleteQueues();
    const [routes] = blocks('json');
    writeFileSync(join(dir.path, 'shop.json'), routes!);
  });

  after(async () => {
    if (broker && broker.exitCode === null) {
      broker.kill('SIGTERM');
      await new Promise((r) => broker!.once('exit', r));
    }
    psql('DROP TABLE IF EXISTS shop_orders; DROP TABLE IF EXISTS shop_invoices');
    await deleteQueues();
    dir.cleanup();
  });

  it('every line of the page does what the page says', async () => {
    const lines = shellLines();
    expect(lines.some((l) => l.startsWith('amqp-publish')) && lines.some((l) => l.startsWith('amqp-consume')) && lines.some((l) => l.startsWith('psql'))).to.equal(true);
    for (const line of lines) {
      if (line.startsWith('export ')) continue; // DATABASE_URL: the test database (the page's own value by default)
      if (line.startsWith('npx busbar run ')) {
        broker = spawn(process.execPath, [BIN, ...line.replace(/ &$/, '').split(/\s+/).slice(2)], { cwd: dir.path, env, stdio: ['ignore', 'pipe', 'pipe'] });
        broker.stdout!.on('data', (d: Buffer) => (log += d.toString()));
        broker.stderr!.on('data', (d: Buffer) => (log += d.toString()));
        await waitFor(() => log.includes('"engine started"') || broker!.exitCode !== null, 30_000, 'busbar run to start');
        expect(broker.exitCode, log).to.equal(null);
        continue;
      }
      if (line.startsWith('amqp-consume')) {
        const r = sh(line);
        expect(r.code, r.out).to.equal(0);
        // both rows, as JSON (numeric as a string)
        expect(r.out).to.include('{"id":1,"customer":"acme","amount":"99.5","status":"new"}');
        expect(r.out).to.include('{"id":2,"customer":"globex","amount":"12","status":"new"}');
        continue;
      }
      if (line.includes('SELECT id, status FROM shop_orders')) {
        await until(line, (r) => /1 \| done/.test(r.out) && /2 \| done/.test(r.out), 'both orders marked done');
        continue;
      }
      if (line.includes('SELECT * FROM shop_invoices')) {
        await until(line, (r) => /7 \| acme\s+\|\s+120\.4 \| t1/.test(r.out), 'the invoice row with its tenant');
        continue;
      }
      if (line.startsWith('amqp-get')) {
        // the page says the dead letter carries the reason in its headers: look before amqp-get takes it
        const amqp = await import('amqplib');
        const conn = await amqp.connect(AMQP_URL);
        const ch = await conn.createChannel();
        let dead: false | { properties: { headers?: Record<string, unknown> } } = false;
        await waitFor(async () => (dead = await ch.get('shop.invoices.dead', { noAck: false })) !== false, 15_000, 'the dead letter');
        const headers = (dead as unknown as { properties: { headers: Record<string, unknown> } }).properties.headers;
        expect(String(headers['busbar.error.code'])).to.equal('BUSBAR_ERR_DB_QUERY');
        expect(String(headers['busbar.error.message'])).to.include('invalid input syntax for type integer');
        expect(headers['busbar.error.step']).to.not.equal(undefined);
        ch.nackAll(true);
        await conn.close();
        const out = await until(line, (r) => r.code === 0, 'amqp-get to read the dead letter');
        expect(out).to.include('{"id":"seven"}');
        continue;
      }
      const r = sh(line);
      expect(r.code, `${line}\n${r.out}`).to.equal(0);
    }
    // what the page says last: without a content type a JSON body is parsed all the same, and one that is not JSON is dead-lettered with BUSBAR_ERR_PARSE
    const url = `--url=${AMQP_URL}`;
    expect(sh(`amqp-publish ${url} -r shop.invoices -b '{"id":8,"customer":"initech","total":5}'`).code).to.equal(0);
    await until(`psql "$DATABASE_URL" -c "SELECT * FROM shop_invoices WHERE id = 8"`, (r) => /8 \| initech/.test(r.out), 'the invoice published without a content type');
    expect(sh(`amqp-publish ${url} -r shop.invoices -b 'not json'`).code).to.equal(0);
    const amqp = await import('amqplib');
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    let dead: false | { content: Buffer; properties: { headers?: Record<string, unknown> } } = false;
    await waitFor(async () => (dead = await ch.get('shop.invoices.dead', { noAck: true })) !== false, 15_000, 'the undecodable message dead-lettered');
    const got = dead as unknown as { content: Buffer; properties: { headers: Record<string, unknown> } };
    await conn.close();
    expect(got.content.toString()).to.equal('not json');
    expect(String(got.properties.headers['busbar.error.code'])).to.equal('BUSBAR_ERR_PARSE');
    // the refused message is in the broker process's log with its reason
    expect(log).to.include('invalid input syntax for type integer');
    expect(broker!.exitCode, log).to.equal(null);
  });
});
