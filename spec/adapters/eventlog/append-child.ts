// A producer process for spec/adapters/eventlog/durability.spec.ts, run under strace: appends
// batches to topic `t` under EVL_DIR with EVL_FSYNC (default batch), a few one after the other
// and some at once (grouped), and prints `confirmed <first offset> <count>` with a plain
// write(2) on fd 1 the moment each append resolved.
import { writeSync } from 'node:fs';
import { EventLog, type RecordInput } from '../../../adapters/eventlog/index.js';

const log = EventLog.open(process.env.EVL_DIR!, 't', { fsync: (process.env.EVL_FSYNC ?? 'batch') as 'batch' | 'interval' | 'none', fsyncIntervalMs: 20 });
const batch = (n: number): RecordInput[] => Array.from({ length: n }, (_, i) => ({ key: null, value: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(100) })), kind: 'json', headers: {} }));
const confirm = (first: number, n: number): void => {
  writeSync(1, `confirmed ${first} ${n}\n`);
};
for (let b = 0; b < 4; b++) confirm(await log.append(0, batch(20 + b)), 20 + b);
// sends arriving together: one write and one sync for the group, each confirmed after it
for (let round = 0; round < 3; round++) await Promise.all([5, 6, 7].map(async (n) => confirm(await log.append(0, batch(n)), n)));
await log.close();
