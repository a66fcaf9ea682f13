import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';
import type { Session } from './database.js';

/**
 * The db sink's half of effectively-once delivery from the event log: in the transaction of
 * the message's rows, move its partition's committed offset from `eventlog.expected` to the
 * record's offset + 1, only if the consumer still owns the partition in `eventlog.epoch`.
 * Anything else (a fenced zombie, a record already committed) rolls the rows back with
 * EVENTLOG_FENCED, so a crash anywhere neither loses nor duplicates a row.
 * Headers are those the `eventlog:` consumer sets (names kept here so db needs no import of it).
 */
export async function commitEventlogOffset(s: Session, table: string, msg: Message): Promise<void> {
  const h = msg.headers;
  const offset = h['eventlog.offset'];
  if (offset === undefined) return;
  const ph = s.dialect === 'postgres' ? (i: number) => `$${i}` : (i: number) => `?${i}`;
  const sql = `UPDATE ${table} SET next_offset = ${ph(1)} WHERE grp = ${ph(2)} AND topic = ${ph(3)} AND part = ${ph(4)} AND gen = ${ph(5)} AND next_offset = ${ph(6)}`;
  const r = await s.query(sql, [Number(offset) + 1, h['eventlog.group'], h['eventlog.topic'], Number(h['eventlog.partition']), Number(h['eventlog.epoch']), Number(h['eventlog.expected'])]);
  if (r.rowCount !== 1) {
    throw new BusbarError('EVENTLOG_FENCED', `event log ${String(h['eventlog.topic'])}/${String(h['eventlog.partition'])} offset ${String(offset)}: the offsets table ${table} does not show this consumer (epoch ${String(h['eventlog.epoch'])}) at offset ${String(h['eventlog.expected'])}; rows rolled back`, {
      details: { table, topic: h['eventlog.topic'], partition: h['eventlog.partition'], offset, epoch: h['eventlog.epoch'] },
    });
  }
}
