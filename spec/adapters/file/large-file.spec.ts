import { closeSync, createReadStream, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { expect } from 'chai';
import { from } from '../../../lib/index.js';
import { waitFor } from '../../helpers.js';
import { exists, fileWorld } from './setup.js';

const MB = 1024 * 1024;
const SIZE_MB = 128;
const LINE = 64; // bytes per line, newline included

/** A file of `mb` MB made of numbered lines of `line` bytes, written 1 MB at a time. */
function generate(path: string, mb = SIZE_MB, line = LINE): number {
  const fd = openSync(path, 'w');
  let n = 0;
  try {
    const perChunk = MB / line;
    for (let c = 0; c < mb; c++) {
      let s = '';
      for (let i = 0; i < perChunk; i++) s += `line ${String(n++).padStart(10, '0')} `.padEnd(line - 1, 'x') + '\n';
      writeSync(fd, s);
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

/** Peak RSS and heap above the level when it started, sampled until stopped. */
/**
 * Peak RSS growth (sampled every 5 ms) and peak retained heap growth (measured after a full
 * GC every 50 ms, so garbage left by earlier tests or not yet collected does not count).
 */
function memoryProbe(): { stop: () => { rssMb: number; heapMb: number } } {
  const gc = global.gc;
  if (!gc) throw new Error('run mocha with --expose-gc (see .mocharc.json)');
  gc();
  const base = process.memoryUsage();
  let rss = 0;
  let heap = 0;
  let n = 0;
  const sample = (): void => {
    if (n++ % 10 === 0) {
      gc();
      heap = Math.max(heap, process.memoryUsage().heapUsed - base.heapUsed);
    }
    rss = Math.max(rss, process.memoryUsage().rss - base.rss);
  };
  const t = setInterval(sample, 5);
  return {
    stop: () => {
      clearInterval(t);
      n = 0;
      sample();
      return { rssMb: rss / MB, heapMb: heap / MB };
    },
  };
}

describe('file: large files as streams', function () {
  this.timeout(60_000);
  let w: ReturnType<typeof fileWorld>;
  beforeEach(() => {
    w = fileWorld();
  });
  afterEach(async () => {
    await w.cleanup();
  });

  it(`splits a ${SIZE_MB} MB file by lines with bounded memory`, async () => {
    mkdirSync(join(w.dir, 'in'));
    const lines = generate(join(w.dir, 'in/big.txt'));
    let last = '';
    w.engine.addRoutes(
      from<Readable>('file:in?readLock=rename&delay=20&bodyType=stream')
        .transform(async (stream) => {
          let count = 0;
          for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
            count++;
            last = line;
          }
          return count;
        })
        .to('mock:out'),
    );
    const probe = memoryProbe();
    await w.engine.start();
    await w.engine.mock('mock:out').expectBodies([lines]).satisfied({ timeoutMs: 50_000 });
    const peak = probe.stop();
    expect(last.startsWith(`line ${String(lines - 1).padStart(10, '0')} `)).to.equal(true);
    // loading the file would cost SIZE_MB of RSS at least (and twice that as a string)
    expect(peak.rssMb).to.be.below(SIZE_MB / 2);
    expect(peak.heapMb).to.be.below(SIZE_MB / 4);
    await waitFor(() => exists(w.dir, 'in/.done/big.txt'), 5000, 'big file moved to .done');
  });

  it(`copies a ${SIZE_MB} MB file file -> file as a stream with bounded memory`, async () => {
    mkdirSync(join(w.dir, 'in'));
    const lines = generate(join(w.dir, 'in/big.txt'));
    w.engine.addRoutes(from('file:in?readLock=rename&delay=20&bodyType=stream').to('file:out').to('mock:out'));
    const probe = memoryProbe();
    await w.engine.start();
    await w.engine.mock('mock:out').expectCount(1).satisfied({ timeoutMs: 50_000 });
    const peak = probe.stop();
    expect(statSync(join(w.dir, 'out/big.txt')).size).to.equal(SIZE_MB * MB);
    // the copy ends with the same last line
    const tail: Buffer[] = [];
    for await (const c of createReadStream(join(w.dir, 'out/big.txt'), { start: SIZE_MB * MB - LINE })) tail.push(c as Buffer);
    expect(Buffer.concat(tail).toString().startsWith(`line ${String(lines - 1).padStart(10, '0')} `)).to.equal(true);
    expect(peak.rssMb).to.be.below(SIZE_MB / 2);
    expect(peak.heapMb).to.be.below(SIZE_MB / 4);
  });

  it('splits a 64 MB stream body into line messages with the splitter, with bounded memory', async () => {
    mkdirSync(join(w.dir, 'in'));
    const lines = generate(join(w.dir, 'in/big.txt'), 64, 16 * 1024);
    let count = 0;
    let bytes = 0;
    w.engine.addRoutes(
      from<Readable>('file:in?readLock=rename&delay=20&bodyType=stream')
        .tokenize('\n')
        .process((m) => {
          count++;
          bytes += (m.body as string).length + 1;
          return m;
        })
        .filter(() => false),
    );
    const probe = memoryProbe();
    await w.engine.start();
    await waitFor(() => exists(w.dir, 'in/.done/big.txt'), 50_000, 'file split and moved to .done');
    const peak = probe.stop();
    expect(count).to.equal(lines);
    expect(bytes).to.equal(64 * MB);
    // loading the file would grow RSS by at least its 64 MB (plus its strings); RSS also
    // carries GC slack from earlier tests in a full run, so the bound is the file size
    expect(peak.rssMb).to.be.below(64);
    expect(peak.heapMb).to.be.below(32);
  });
});
