import { closeSync, constants, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { GroupCoordinator, PartitionReader } from '../../dist/adapters/eventlog/index.js';
import { bestRounds, filledLog, firstSegment, inTempDir, readSegment } from '../eventlog-fixture.js';
import { round, type BenchCase } from '../harness.js';

const READ = 1000;
const SLOT = 64 * 1024;

/**
 * The hand-written committer, durable the way busbar's is: the offset written in place into
 * one of two slots in turn (sequence number, length, CRC) and fdatasynced.
 */
function committer(path: string): { commit(next: number): void; close(): void } {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT);
  let seq = 0;
  return {
    commit(next) {
      seq++;
      const body = Buffer.from(JSON.stringify({ 0: next }));
      const buf = Buffer.allocUnsafe(20 + body.length);
      buf.writeUInt32BE(0x45564f31, 0);
      buf.writeUInt32BE(0, 4);
      buf.writeUInt32BE(seq, 8);
      buf.writeUInt32BE(body.length, 12);
      buf.writeUInt32BE(crc32(body, crc32(buf.subarray(4, 16))), 16);
      body.copy(buf, 20);
      writeSync(fd, buf, 0, buf.length, (seq % 2) * SLOT);
      fdatasyncSync(fd);
    },
    close: () => closeSync(fd),
  };
}

const bench: BenchCase = {
  name: 'eventlog-consume',
  description: 'Read a partition (~100-byte records) 1000 at a time and durably commit the group offset after each read; busbar PartitionReader + GroupCoordinator (fenced commit: an in-place write, one fdatasync and a check of the sealed flag) vs a hand-written reader of the same segment format with an in-place fdatasynced offset',
  async run({ quick }) {
    const n = quick ? 50_000 : 300_000;
    return inTempDir(async (dir) => {
      await filledLog(dir, n);
      const topicDir = join(dir, 't');
      const { busbar, baseline, busbarCpu, baselineCpu } = await bestRounds(quick ? 2 : 5, n, {
        baseline: (r) => {
          const c = committer(join(dir, `offset-${r}`));
          let sum = 0;
          const seen = readSegment(firstSegment(dir), n, READ, (first, values) => {
            sum += values[0]![0]!;
            c.commit(first + values.length);
          });
          c.close();
          return sum > 0 ? seen : 0;
        },
        busbar: async (r) => {
          const group = new GroupCoordinator(topicDir, `g${r}`, 1, { sessionTimeoutMs: 60_000, memberId: 'bench' });
          const epoch = group.heartbeat().owned.get(0)!;
          const reader = new PartitionReader(topicDir, 0, 0);
          let seen = 0;
          let sum = 0;
          while (seen < n) {
            const got = await reader.read(READ);
            if (got.length === 0) break;
            seen += got.length;
            sum += got[0]!.value![0]!;
            group.commit([[0, epoch, got[got.length - 1]!.offset + 1]]);
          }
          reader.close();
          group.leave();
          return sum > 0 ? seen : 0;
        },
      });
      return { busbar_per_s: round(busbar), baseline_per_s: round(baseline), ratio: round(busbar / baseline, 2), busbar_per_cpu_s: round(busbarCpu), baseline_per_cpu_s: round(baselineCpu), cpu_ratio: round(busbarCpu / baselineCpu, 2), records: n, read: READ };
    });
  },
};
export default bench;
