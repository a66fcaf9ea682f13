import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { scanSegment } from '../../../adapters/eventlog/segment.js';
import { tempDir } from '../../helpers.js';

/**
 * The order of the real system calls of a producer process, as strace(1) sees them (no mock,
 * no hook): a confirm (`confirmed <first> <count>` written to fd 1) of records whose bytes are
 * not yet covered by a finished fdatasync of their segment is a confirm before the durability
 * point. A sync covers what was written (pwrite64 returned) before it started.
 */
function confirmsBeforeDurable(trace: string, topic: string, endOf: (offset: number) => number): { confirms: number; syncs: number; early: string[] } {
  let written = 0;
  let durable = 0;
  let syncs = 0;
  let confirms = 0;
  const early: string[] = [];
  // per thread: the start of a call strace shows as "<unfinished ...>", with what a sync then covers
  const pending = new Map<string, { text: string; covers: number }>();
  for (const line of trace.split('\n')) {
    const m = /^(\d+) +(.*)$/.exec(line);
    if (!m) continue;
    const [, tid, rest] = m as unknown as [string, string, string];
    let call = rest;
    let covers = written;
    if (rest.endsWith('<unfinished ...>')) {
      pending.set(tid, { text: rest.slice(0, -'<unfinished ...>'.length).trimEnd(), covers: written });
      continue;
    }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(rest);
    if (resumed) {
      const start = pending.get(tid);
      pending.delete(tid);
      if (!start) continue;
      call = start.text + resumed[1];
      covers = start.covers;
    }
    const seg = `/${topic}/0/`;
    const w = /^pwrite64\(\d+<([^>]*\.log)>, .*, (\d+), (\d+)\) += (\d+)/.exec(call);
    if (w && w[1]!.includes(seg)) written = Math.max(written, Number(w[3]) + Number(w[4]));
    const sync = /^fdatasync\(\d+<([^>]*\.log)>\) += 0/.exec(call);
    if (sync && sync[1]!.includes(seg)) {
      syncs++;
      durable = Math.max(durable, covers);
    }
    const c = /^write\(1(?:<[^>]*>)?, "confirmed ([\w-]+) (\d+) (\d+)\\n"/.exec(call);
    if (c && c[1] === topic) {
      c.shift();
      confirms++;
      const end = endOf(Number(c[1]) + Number(c[2]) - 1);
      if (end > durable) early.push(`records ${c[1]}+${c[2]} (to byte ${end}) confirmed when ${durable} bytes were synced`);
    }
  }
  return { confirms, syncs, early };
}

describe('eventlog: a producer confirms after the durability point', function () {
  this.timeout(60_000);

  it('fsync=batch and interval: no append resolves before the fdatasync covering its records has returned (strace of a real producer process)', () => {
    const tmp = tempDir('busbar-evl-');
    try {
      const traceFile = join(tmp.path, 'trace');
      const r = spawnSync('strace', ['-f', '-qq', '-y', '--seccomp-bpf', '-e', 'trace=pwrite64,fdatasync,write', '-o', traceFile, process.execPath, '--import', 'tsx', 'spec/adapters/eventlog/append-child.ts'], {
        env: { ...process.env, EVL_DIR: tmp.path, EVL_FSYNC: 'batch,interval' },
        encoding: 'utf8',
        timeout: 50_000,
      });
      expect(r.status, `${r.stderr}`).to.equal(0);
      const trace = readFileSync(traceFile, 'utf8');
      for (const fsync of ['batch', 'interval']) {
        const topic = `t-${fsync}`;
        // where each record ends in the segment file
        const ends = new Map<number, number>();
        scanSegment(join(tmp.path, topic, '0', `${'0'.repeat(20)}.log`), 0, (rec, pos) => ends.set(rec.offset, pos + rec.size));
        expect(ends.size).to.equal(20 + 21 + 22 + 23 + 3 * (5 + 6 + 7));
        const { confirms, syncs, early } = confirmsBeforeDurable(trace, topic, (o) => ends.get(o)!);
        expect(confirms, `${fsync}: confirms seen in the trace`).to.equal(4 + 3 * 3);
        // batch: grouped sends share a sync, so fewer syncs than appends, at least one per group
        if (fsync === 'batch') expect(syncs).to.be.within(4 + 3, 4 + 3 * 3);
        else expect(syncs).to.be.greaterThan(0);
        expect(early, fsync).to.deep.equal([]);
      }
    } finally {
      tmp.cleanup();
    }
  });
});
