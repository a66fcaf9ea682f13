/**
 * Map/reduce word count over a large generated text file, with busbar's mapReduce step:
 * the file is streamed line by line (never loaded whole), each line mapped to [word, 1]
 * pairs, counts reduced per word; once in process and once across worker threads.
 *
 *   node --import tsx examples/word-count/index.ts [lines=400000] [threads=2]
 */
import { createReadStream, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Engine, from } from '../../lib/index.js';
import { generateText } from './generate.js';
import { map, reduce } from './words.js';

export function wordCountRoutes(threads: number) {
  const lines = (path: string) => createReadStream(path);
  return [
    from<string>('direct:count-in-process')
      .routeId('word-count')
      .mapReduce<number>({ items: lines, tokenize: '\n', map, reduce }),
    from<string>('direct:count-in-workers')
      .routeId('word-count-workers')
      .mapReduce<number>({ items: lines, tokenize: '\n', reduce: 'sum', workers: { module: new URL('./words.ts', import.meta.url), threads, batchSize: 2000 } }),
  ];
}

async function main(): Promise<void> {
  const lineCount = Number(process.argv[2] ?? 400_000);
  const threads = Number(process.argv[3] ?? 2);
  const path = join(tmpdir(), `busbar-word-count-${process.pid}.txt`);
  const expected = await generateText(path, lineCount);
  const mb = statSync(path).size / 1048576;
  const engine = new Engine({ logger: pino({ level: 'warn' }) });
  engine.addRoutes(wordCountRoutes(threads));
  await engine.start();
  try {
    for (const uri of ['direct:count-in-process', 'direct:count-in-workers']) {
      const t0 = performance.now();
      const counts = await engine.request<Record<string, number>>(uri, path);
      const s = (performance.now() - t0) / 1000;
      const ok = [...expected].every(([w, n]) => counts[w] === n) && Object.keys(counts).length === expected.size;
      const top = Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 5);
      process.stdout.write(`${uri}: ${mb.toFixed(1)} MB in ${s.toFixed(2)} s (${(mb / s).toFixed(1)} MB/s), counts ${ok ? 'match' : 'DO NOT match'}; top: ${top.map(([w, n]) => `${w}=${n}`).join(' ')}\n`);
    }
  } finally {
    await engine.stop();
    const { rmSync } = await import('node:fs');
    rmSync(path, { force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
