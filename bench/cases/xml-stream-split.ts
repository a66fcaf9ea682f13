import { execFile } from 'node:child_process';
import { createWriteStream, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { round, type BenchCase } from '../harness.js';

/**
 * Each side runs in its own child process, plain Node on the compiled package (as users run
 * it, no TypeScript loader), so `peak_rss_mb` is the split's peak; `rss_growth_mb` is what the
 * split added to the process once its modules were loaded. `npm run bench` builds dist/ first.
 */
const CHILD = fileURLToPath(new URL('../children/xml-stream-split-child.mjs', import.meta.url));

interface ChildResult { count: number; amount: number; seconds: number; cpuSeconds: number; peakRssMb: number; startRssMb: number; readyRssMb: number; maxHeapUsedMb: number }

async function generate(file: string, targetBytes: number): Promise<number> {
  const out = createWriteStream(file);
  out.write('<?xml version="1.0" encoding="UTF-8"?>\n<export xmlns:x="urn:example:ext"><meta><created>2026-11-24</created></meta><orders>\n');
  let written = 0;
  let i = 0;
  while (written < targetBytes) {
    let chunk = '';
    for (let k = 0; k < 1000; k++, i++) {
      chunk += `<order id="${String(i).padStart(8, '0')}"><customer>C-${i % 977}</customer><x:channel>web</x:channel><line sku="S-${i % 50}"><qty>${1 + (i % 5)}</qty></line><amount>${(i % 1000) + 0.5}</amount><note><![CDATA[handle <carefully> & quickly]]></note></order>\n`;
    }
    written += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end('</orders></export>\n');
  await once(out, 'finish');
  return i;
}

function runChild(side: 'busbar' | 'baseline', file: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CHILD, side, file], { maxBuffer: 1 << 20, timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${side} child failed: ${err.message}\n${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as ChildResult);
      } catch (e) {
        reject(new Error(`${side} child printed no result: ${stdout}\n${stderr} (${(e as Error).message})`));
      }
    });
  });
}

const bench: BenchCase = {
  name: 'xml-stream-split',
  description: 'A generated 50 MB XML file split into <order> elements with streaming (xmlElements) and sent through a route; baseline: a hand-written chunked indexOf splitter + fast-xml-parser. peak_rss_mb is the busbar child process\'s peak.',
  async run({ quick }) {
    const file = join(tmpdir(), `busbar-xml-split-${process.pid}.xml`);
    try {
      const generated = await generate(file, quick ? 5 * 1024 * 1024 : 50 * 1024 * 1024);
      const mb = statSync(file).size / 1048576;
      const busbar = await runChild('busbar', file);
      const baseline = await runChild('baseline', file);
      if (busbar.count !== generated || baseline.count !== generated) throw new Error(`split counts differ: busbar ${busbar.count}, baseline ${baseline.count}, generated ${generated}`);
      if (Math.abs(busbar.amount - baseline.amount) > 1e-6 * Math.abs(baseline.amount)) throw new Error('busbar and baseline read different amounts');
      return {
        busbar_per_s: busbar.count / busbar.seconds,
        baseline_per_s: baseline.count / baseline.seconds,
        file_mb: round(mb, 1),
        elements: generated,
        busbar_mb_per_s: round(mb / busbar.seconds, 1),
        // CPU time is less disturbed than wall time by other processes on a shared machine
        busbar_cpu_us_per_element: round((busbar.cpuSeconds * 1e6) / busbar.count, 2),
        baseline_cpu_us_per_element: round((baseline.cpuSeconds * 1e6) / baseline.count, 2),
        cpu_ratio: round(baseline.cpuSeconds / busbar.cpuSeconds, 2),
        peak_rss_mb: round(busbar.peakRssMb, 1),
        rss_at_start_mb: round(busbar.readyRssMb, 1),
        rss_growth_mb: round(busbar.peakRssMb - busbar.readyRssMb, 1),
        max_heap_used_mb: round(busbar.maxHeapUsedMb, 1),
        baseline_peak_rss_mb: round(baseline.peakRssMb, 1),
      };
    } finally {
      rmSync(file, { force: true });
    }
  },
};

export default bench;
