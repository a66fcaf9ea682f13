import { BusbarError } from '../../lib/errors.js';
import type { Message } from '../../lib/message.js';
import { wireHeaders } from '../../lib/tracing/context.js';
import type { RecordInput, ValueKind } from './record.js';

/** Inbound transport headers of other adapters describe how a message arrived: they are not written to the log. */
const TRANSPORT = /^(eventlog|http|https|amqp|file|db|soap|grpc|p2p)\./;

/** A message as a record: the body as it was (Buffer, string or JSON), null/undefined as a tombstone. */
export function toRecord(msg: Message, key: string | undefined): RecordInput {
  const headers: Record<string, unknown> = {};
  // the trace context as W3C record headers (the engine's busbar.trace.* stays in the engine)
  const h = wireHeaders(msg);
  for (const k in h) {
    const v = h[k];
    if (v !== undefined && !TRANSPORT.test(k)) headers[k] = v;
  }
  headers['busbar.id'] = msg.id;
  if (msg.correlationId !== msg.id) headers['busbar.correlationId'] = msg.correlationId;
  const b = msg.body;
  let value: Buffer | null;
  let kind: ValueKind = 'buffer';
  if (b === null || b === undefined) value = null;
  else if (Buffer.isBuffer(b)) value = b;
  else if (typeof b === 'string') {
    value = Buffer.from(b);
    kind = 'string';
  } else {
    value = Buffer.from(JSON.stringify(b));
    kind = 'json';
  }
  return { key: key === undefined || key === '' ? null : Buffer.from(key), value, kind, headers };
}

export function decodeValue(v: Buffer | null, kind: ValueKind, as: 'auto' | 'string' | 'buffer' | 'json'): unknown {
  if (v === null) return null;
  const mode = as === 'auto' ? kind : as;
  if (mode === 'buffer') return v;
  if (mode === 'string') return v.toString('utf8');
  try {
    return JSON.parse(v.toString('utf8')) as unknown;
  } catch (err) {
    throw new BusbarError('PARSE', `record value is not JSON: ${(err as Error).message}`, { cause: err });
  }
}
