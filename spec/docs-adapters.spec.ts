import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Adapter } from '../lib/adapter.js';
import { Engine, from } from '../lib/index.js';
import type { Message } from '../lib/message.js';
import { testLogger, waitFor } from './helpers.js';

/**
 * docs/adapters.md's complete adapter (`lines:`), as the page has it: the program runs and
 * prints what the page says, and what the page claims of the adapter holds (a dead-lettered
 * line is answered ok, a line too long is refused without harm to other clients, a
 * connection's lines are taken one at a time and answered in order, a stop lets the line in
 * the route finish and answer).
 */
const page = readFileSync('docs/adapters.md', 'utf8');
const section = page.slice(page.indexOf('## A complete adapter'));
const program = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
const printed = /it prints:\n\n```text\n([\s\S]*?)```/.exec(section)![1]!;
const MARK = '// ------------------------------------------------------------------ the adapter at work';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * Send `text` on one connection (pieces a few milliseconds apart, so they arrive as chunks of
 * their own) and collect `lines` answer lines, or what came before the server closed it.
 */
async function talk(port: number, text: string | string[], lines: number): Promise<string[]> {
  const c = createConnection({ host: '127.0.0.1', port });
  c.setEncoding('utf8');
  c.setNoDelay(true);
  c.on('error', () => undefined);
  void (async () => {
    for (const piece of typeof text === 'string' ? [text] : text) {
      c.write(piece);
      await new Promise((r) => setTimeout(r, 3));
    }
  })();
  let got = '';
  await new Promise<void>((done) => {
    c.on('data', (chunk: string) => {
      got += chunk;
      if (got.split('\n').length > lines) done();
    });
    c.on('close', () => done());
  });
  c.destroy();
  return got.split('\n').filter((l) => l !== '').slice(0, lines);
}

describe('docs/adapters.md: the complete adapter', function () {
  this.timeout(60_000);
  // in the repository, so `import ... from 'busbar'` resolves to this package (its exports)
  const dir = resolve('.tmp', `adapter-guide-${process.pid}`);
  let linesAdapter: Adapter<{ host: string; port: number; maxLineBytes: number; timeoutMs: number }>;
  let engine: Engine | undefined;

  before(async () => {
    expect(program, 'the page has the adapter at work after its marker').to.contain(MARK);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'lines.mts'), program);
    writeFileSync(join(dir, 'adapter.mts'), program.slice(0, program.indexOf(MARK)));
    ({ linesAdapter } = (await import(pathToFileURL(join(dir, 'adapter.mts')).href)) as { linesAdapter: typeof linesAdapter });
  });
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs as the page says and prints what it shows', async () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(dir, 'lines.mts')], {
      env: { ...process.env, BUSBAR_LOG_LEVEL: 'error', LINES_PORT: String(await freePort()) },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.stderr).to.equal('');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.equal(printed);
  });

  it('answers ok for a line the error policy dead-lettered, with the reason where it went', async () => {
    const port = await freePort();
    engine = new Engine({ logger: testLogger(), adapters: [linesAdapter] });
    const dead: Message[] = [];
    engine.addRoutes(
      from<string>(`lines:orders?port=${port}`).routeId('orders').deadLetter('direct:rejected').unmarshal('json').to('log:orders?level=debug'),
      from('direct:rejected').routeId('rejected').process((m) => {
        dead.push(m);
        return m;
      }),
    );
    await engine.start();
    expect(await talk(port, 'not json\n{"id":1}\n', 2)).to.deep.equal(['ok', 'ok']);
    expect(dead.map((m) => [m.body, m.headers['busbar.error.code']])).to.deep.equal([['not json', 'BUSBAR_ERR_PARSE']]);
  });

  it('refuses a line longer than maxLineBytes and closes that connection; other clients go on', async () => {
    const port = await freePort();
    engine = new Engine({ logger: testLogger(), adapters: [linesAdapter] });
    let taken = 0;
    engine.addRoutes(from<string>(`lines:orders?port=${port}&maxLineBytes=64`).routeId('orders').process((m) => (taken++, m)));
    await engine.start();
    expect(await talk(port, 'x'.repeat(65), 1)).to.deep.equal(['error BUSBAR_ERR_LIMIT_EXCEEDED a line is longer than 64 bytes']);
    expect(await talk(port, 'short\n', 1)).to.deep.equal(['ok']);
    expect(taken).to.equal(1);
  });

  it('takes the lines of a connection one at a time and answers them in order; a stop lets the line in the route answer', async () => {
    const port = await freePort();
    engine = new Engine({ logger: testLogger(), adapters: [linesAdapter] });
    let inflight = 0;
    let most = 0;
    const order: string[] = [];
    let release: (() => void) | undefined;
    engine.addRoutes(
      from<string>(`lines:orders?port=${port}`)
        .routeId('orders')
        .process(async (m) => {
          most = Math.max(most, ++inflight);
          if (m.body === 'hold') await new Promise<void>((r) => (release = r));
          else await new Promise((r) => setTimeout(r, 5));
          order.push(m.body);
          inflight--;
          return m;
        }),
    );
    await engine.start();
    expect(await talk(port, ['a\n', 'b\n', 'c\n'], 3)).to.deep.equal(['ok', 'ok', 'ok']);
    expect(order).to.deep.equal(['a', 'b', 'c']);
    expect(most).to.equal(1);
    // a line held in the route while the engine stops: its client still gets the answer, then the connection ends
    const held = talk(port, 'hold\n', 1);
    await waitFor(() => release !== undefined, 5000, 'the held line to reach the route');
    const stopping = engine.stop();
    engine = undefined;
    setTimeout(() => release!(), 50);
    expect(await held).to.deep.equal(['ok']);
    await stopping;
  });

  it('sends through its producer and fails the send when the other side answers an error', async () => {
    const port = await freePort();
    engine = new Engine({ logger: testLogger(), adapters: [linesAdapter] });
    engine.addRoutes(from<string>(`lines:in?port=${port}`).routeId('in').unmarshal('json'));
    await engine.start();
    await engine.send(`lines:in?port=${port}`, { id: 1 });
    const err = (await engine.send(`lines:in?port=${port}`, 'not json').catch((e: unknown) => e)) as Error;
    expect(err.message).to.match(/answered "error BUSBAR_ERR_PARSE json: line 1, column 1/);
    const closed = await freePort();
    const refused = (await engine.send(`lines:in?port=${closed}`, 'x').catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(refused.code).to.equal('ECONNREFUSED');
    expect(engine.stats().routes.in).to.include({ received: 2, completed: 1, failed: 1 });
  });
});
