import { expect } from 'chai';
import { mkdirSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, from } from '../../../lib/index.js';
import { createFileAdapter } from '../../../adapters/file/index.js';
import { tempDir, testLogger, waitFor } from '../../helpers.js';
import { files, put } from './setup.js';

function world(): { dir: string; engine: () => Engine; cleanup: () => Promise<void> } {
  const t = tempDir('busbar-file-hard-');
  const engines: Engine[] = [];
  return {
    dir: t.path,
    engine: () => {
      const e = new Engine({ logger: testLogger(), adapters: [createFileAdapter({ baseDir: t.path })] });
      engines.push(e);
      return e;
    },
    cleanup: async () => {
      for (const e of engines) await e.stop();
      t.cleanup();
    },
  };
}

describe('file: settling never leaves a file claimed; reasons travel with files', function () {
  this.timeout(30_000);
  let w: ReturnType<typeof world>;
  beforeEach(() => {
    w = world();
  });
  afterEach(async () => {
    await w.cleanup();
  });

  it('refuses, when the route is created, a move template naming a header the consumed file does not have', () => {
    const e = w.engine();
    let code: string | undefined;
    try {
      e.addRoutes(from('file:inbox?readLock=rename&move=.done/{header.country}/{name}').setHeader('country', 'NL').to('mock:out'));
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).to.equal('BUSBAR_ERR_INVALID_OPTION');
    const problems = w.engine().check({ from: 'file:inbox?moveFailed=.bad/{body.x}', steps: [] });
    expect(problems).to.have.length(1);
    expect(problems[0]!.message).to.contain('moveFailed');
    // what the file's own message has is fine
    w.engine().addRoutes(from('file:ok?move=.done/{date}/{header.busbar.file.size}-{name}').to('mock:ok'));
  });

  it('moves a file it cannot settle to .error with the reason, instead of leaving it claimed to be processed again at every start', async () => {
    put(w.dir, 'inbox/a.txt', 'hello');
    // the move target is taken by a directory: the settle after a successful route fails
    mkdirSync(join(w.dir, 'inbox/.done/a.txt/blocker'), { recursive: true });
    let outputs = 0;
    for (let start = 0; start < 3; start++) {
      const e = w.engine();
      e.addRoutes(from('file:inbox?readLock=rename&delay=20&move=.done/{name}').to('mock:out'));
      await e.start();
      e.mock('mock:out').whenReceived(() => void outputs++);
      if (start === 0) await waitFor(() => files(join(w.dir, 'inbox')).includes('.error/a.txt'), 5000, 'file moved to .error');
      else await new Promise((r) => setTimeout(r, 300));
      await e.stop();
    }
    expect(outputs).to.equal(1);
    const left = files(join(w.dir, 'inbox'));
    expect(left.filter((f) => f.endsWith('.claim'))).to.deep.equal([]);
    expect(left).to.include.members(['.error/a.txt', '.error/a.txt.error.json']);
    const reason = JSON.parse(readFileSync(join(w.dir, 'inbox/.error/a.txt.error.json'), 'utf8')) as { code: string; message: string; outcome: string };
    expect(reason.outcome).to.equal('ok');
    expect(reason.message).to.contain('could not be settled');
  });

  it('a file: dead letter of a message from another source gets its reason beside it', async () => {
    const e = w.engine();
    e.addRoutes(
      from('direct:in')
        .routeId('orders')
        .deadLetter('file:dead?fileName={id}.json')
        .process(() => {
          throw new Error('no stock');
        }),
    );
    await e.start();
    await e.send('direct:in', { sku: 'A' }).catch(() => undefined);
    const dead = files(join(w.dir, 'dead'));
    expect(dead).to.have.length(2);
    const reasonFile = dead.find((f) => f.endsWith('.error.json'))!;
    expect(dead).to.include(reasonFile.replace(/\.error\.json$/, ''));
    const reason = JSON.parse(readFileSync(join(w.dir, 'dead', reasonFile), 'utf8')) as Record<string, unknown>;
    expect(reason).to.include({ code: 'BUSBAR_ERR_STEP_FAILED', routeId: 'orders' });
    expect(String(reason.message)).to.contain('no stock');
    expect(String(reason.step)).to.match(/^\/steps\/0/);
  });
});

describe('file: the default read lock', function () {
  this.timeout(60_000);
  let w: ReturnType<typeof world>;
  beforeEach(() => {
    w = world();
  });
  afterEach(async () => {
    await w.cleanup();
  });

  it('never reads a file half-written by a writer that pauses up to 2 s between chunks', async () => {
    const e = w.engine();
    const seen: string[] = [];
    e.addRoutes(from<Buffer>('file:slow?delay=100').transform((b) => void seen.push(b.toString())));
    await e.start();
    mkdirSync(join(w.dir, 'slow'), { recursive: true });
    const pauses = [300, 900, 1500, 2000, 1200, 600, 1800, 2000];
    // eight writers at once, each writing four chunks with its pause between them
    await Promise.all(
      pauses.map(async (pause, k) => {
        const fd = openSync(join(w.dir, 'slow', `f${k}.txt`), 'w');
        for (let c = 0; c < 4; c++) {
          writeSync(fd, `chunk${c};`);
          if (c < 3) await new Promise((r) => setTimeout(r, pause));
        }
        closeSync(fd);
      }),
    );
    await waitFor(() => seen.length >= pauses.length, 20_000, 'every file read');
    expect(seen.filter((s) => s !== 'chunk0;chunk1;chunk2;chunk3;'), 'files read half-written').to.deep.equal([]);
  });
});
