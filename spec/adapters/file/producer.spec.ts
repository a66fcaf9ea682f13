import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import { BusbarError, from, type Headers } from '../../../lib/index.js';
import { FILE_HEADERS } from '../../../adapters/file/index.js';
import { exists, files, fileWorld, put, read } from './setup.js';
import { rejection } from '../../helpers.js';

describe('file: producer', () => {
  let w: ReturnType<typeof fileWorld>;
  beforeEach(() => {
    w = fileWorld();
  });
  afterEach(async () => {
    await w.cleanup();
  });

  type Send = (body: unknown, headers?: Headers) => Promise<void>;
  /** A direct: route into each endpoint, then start the engine. */
  async function routes(...uris: string[]): Promise<Send[]> {
    const sends = uris.map((uri, i) => {
      w.engine.addRoutes(from(`direct:r${i}`).to(uri));
      return ((body, headers) => w.engine.send(`direct:r${i}`, body, headers)) as Send;
    });
    await w.engine.start();
    return sends;
  }
  async function route(uri: string): Promise<Send> {
    return (await routes(uri))[0]!;
  }

  it('writes the body under a templated name, creating directories, leaving no temp files', async () => {
    const send = await route('file:out?fileName={header.kind}/{body.id}-{date}.json');
    await send({ id: 7, v: 'x' }, { kind: 'orders' });
    const date = new Date().toISOString().slice(0, 10);
    expect(files(join(w.dir, 'out'))).to.deep.equal([`orders/7-${date}.json`]);
    expect(JSON.parse(read(w.dir, `out/orders/7-${date}.json`))).to.deep.equal({ id: 7, v: 'x' });
  });

  it('names the file after the consumed file by default, else after the message id', async () => {
    const send = await route('file:out');
    await send('a', { [FILE_HEADERS.relativePath]: 'sub/a.txt', [FILE_HEADERS.name]: 'a.txt' });
    await send('b');
    const out = files(join(w.dir, 'out'));
    expect(out).to.have.length(2);
    expect(out).to.include('sub/a.txt');
    const other = out.find((f) => f !== 'sub/a.txt')!;
    expect(other).to.match(/^[\w-]+$/); // the message id
    expect(read(w.dir, `out/${other}`)).to.equal('b');
  });

  it('copies a consumed file, keeping its name (file -> file)', async () => {
    put(w.dir, 'in/x/y.bin', Buffer.from([0, 1, 2, 255]));
    w.engine.addRoutes(from('file:in?readLock=rename&delay=20&recursive=true').to('file:out').to('mock:done'));
    await w.engine.start();
    const done = w.engine.mock('mock:done').expectCount(1);
    await done.satisfied();
    expect(readFileSync(join(w.dir, 'out/x/y.bin'))).to.deep.equal(Buffer.from([0, 1, 2, 255]));
    expect(done.received[0]!.headers[FILE_HEADERS.written]).to.equal('x/y.bin');
  });

  it('refuses names that leave the directory with BUSBAR_ERR_PATH_TRAVERSAL', async () => {
    const send = await route('file:out?fileName={header.name}');
    for (const name of ['../evil.txt', '../../etc/evil', 'a/../../evil', '/tmp/evil-abs']) {
      const err = await rejection(send('x', { name }));
      expect(err.code, name).to.equal('BUSBAR_ERR_PATH_TRAVERSAL');
    }
    expect(exists(w.dir, 'evil.txt')).to.equal(false);
    await send('fine', { name: 'a/../b.txt' }); // stays inside: allowed
    expect(files(join(w.dir, 'out'))).to.deep.equal(['b.txt']);
  });

  it('fails with BUSBAR_ERR_FILE_NAME when a template placeholder has no value', async () => {
    const send = await route('file:out?fileName={header.missing}.txt');
    const err = await rejection(send('x'));
    expect(err.code).to.equal('BUSBAR_ERR_FILE_NAME');
    expect(err.details.placeholder).to.equal('header.missing');
    expect(files(join(w.dir, 'out'))).to.deep.equal([]);
  });

  it('handles an existing target per fileExist', async () => {
    const modes = ['override', 'append', 'fail', 'ignore', 'unique'] as const;
    for (const m of modes) put(w.dir, `out-${m}/a.txt`, 'old');
    const sends = await routes(...modes.map((m) => `file:out-${m}?fileName=a.txt&fileExist=${m}`));
    for (const [i, m] of modes.entries()) {
      const send = sends[i]!;
      if (m === 'fail') {
        const err = await rejection(send('new'));
        expect(err.code).to.equal('BUSBAR_ERR_FILE_EXISTS');
      } else {
        await send('new');
        await send('newer');
      }
    }
    expect(read(w.dir, 'out-override/a.txt')).to.equal('newer');
    expect(read(w.dir, 'out-append/a.txt')).to.equal('oldnewnewer');
    expect(read(w.dir, 'out-fail/a.txt')).to.equal('old');
    expect(read(w.dir, 'out-ignore/a.txt')).to.equal('old');
    expect(files(join(w.dir, 'out-unique'))).to.deep.equal(['a-1.txt', 'a-2.txt', 'a.txt']);
    expect([read(w.dir, 'out-unique/a-1.txt'), read(w.dir, 'out-unique/a-2.txt')]).to.deep.equal(['new', 'newer']);
    for (const m of modes) expect(files(join(w.dir, `out-${m}`)).filter((f) => f.startsWith('.'))).to.deep.equal([]);
  });

  it('writes a done file after the data file, streams, charsets and fsync', async () => {
    const [send, latin] = await routes('file:out?fileName={header.n}&doneFileName={name}.done&fsync=true', 'file:latin?fileName=l.txt&charset=latin1');
    await send!(Readable.from([Buffer.from('str'), Buffer.from('eamed')]), { n: 's.txt' });
    expect(read(w.dir, 'out/s.txt')).to.equal('streamed');
    expect(exists(w.dir, 'out/s.txt.done')).to.equal(true);
    await latin!('café');
    expect(readFileSync(join(w.dir, 'latin/l.txt'))).to.deep.equal(Buffer.from([0x63, 0x61, 0x66, 0xe9]));
  });

  it('refuses a charset it cannot write', () => {
    let err: unknown;
    try {
      w.engine.addRoutes(from('direct:x').to('file:out?charset=windows-1252'));
    } catch (e) {
      err = e;
    }
    expect((err as BusbarError).code).to.equal('BUSBAR_ERR_INVALID_OPTION');
    expect((err as BusbarError).details.option).to.equal('charset');
  });

  it('never lets a reader see a partial file (temp + rename)', async () => {
    const send = await route('file:out?fileName=big.txt');
    const SIZE = 256 * 1024;
    const letters = 'abcdefghij';
    writeFileSync(join(w.dir, 'probe'), '');
    let writing = true;
    let reads = 0;
    const bad: string[] = [];
    const reader = (async () => {
      // bounded: stops when the writer is done, and after 100k reads at most
      while (writing && reads < 100_000) {
        try {
          const s = readFileSync(join(w.dir, 'out/big.txt'), 'latin1');
          reads++;
          if (s.length !== SIZE || s !== s[0]!.repeat(SIZE)) bad.push(`${s.length} bytes starting ${s.slice(0, 3)}`);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 0; i < 30; i++) await send(letters[i % letters.length]!.repeat(SIZE));
    writing = false;
    await reader;
    expect(reads).to.be.greaterThan(0);
    expect(bad).to.deep.equal([]);
  });
});
