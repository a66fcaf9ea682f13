import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

/** A deterministic vocabulary with a Zipf-like spread, so counts are easy to check. */
export const VOCABULARY = ['the', 'bus', 'message', 'route', 'queue', 'broker', 'endpoint', 'adapter', 'channel', 'splitter', 'aggregator', 'router', 'filter', 'enricher', 'translator', 'gateway'];

/**
 * Write `lines` lines of generated text to `path` (streamed, never held in memory) and
 * return the exact word counts, to check a word count against.
 */
export async function generateText(path: string, lines: number, wordsPerLine = 12): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const out = createWriteStream(path);
  let seed = 42;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  for (let i = 0; i < lines; i++) {
    const words: string[] = [];
    for (let j = 0; j < wordsPerLine; j++) {
      const w = VOCABULARY[Math.floor(VOCABULARY.length * rand() * rand())]!;
      words.push(j === 0 ? w[0]!.toUpperCase() + w.slice(1) : w);
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
    if (!out.write(`${words.join(' ')}.\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return counts;
}
