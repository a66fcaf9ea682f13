// A producer process for spec/adapters/eventlog/durability.spec.ts, run under strace: for each
// fsync policy in EVL_FSYNC (comma-separated), appends batches to topic `t-<policy>` under
// EVL_DIR, a few one after the other and some at once (grouped), and prints
// `confirmed <topic> <first offset> <count>` with a plain write(2) on fd 1 the moment each
// append resolved.
import { writeSync } from 'node:fs';
import { EventLog, type RecordInput } from '../../../adapters/eventlog/index.js';

const batch = (n: number): RecordInput[] => Array.from({ length: n }, (_, i) => ({ key: null, value: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(100) })), kind: 'json', headers: {} }));
for (const fsync of (process.env.EVL_FSYNC ?? 'batch').split(',') as Array<'batch' | 'interval' | 'none'>) {
  const topic = `t-${fsync}`;
  const log = EventLog.open(process.env.EVL_DIR!, topic, { fsync, fsyncIntervalMs: 20 });
  const confirm = (first: number, n: number): void => {
    writeSync(1, `confirmed ${topic} ${first} ${n}\n`);
  };
  for (let b = 0; b < 4; b++) confirm(await log.append(0, batch(20 + b)), 20 + b);
  // sends arriving together: one write and one sync for the group, each confirmed after it
  for (let round = 0; round < 3; round++) await Promise.all([5, 6, 7].map(async (n) => confirm(await log.append(0, batch(n)), n)));
  // (no close: with fsync=interval the last sends must be confirmed, and the process must not
  // exit before, with nothing but the pending sync to keep it alive)
  if (fsync !== 'interval') await log.close();
}
