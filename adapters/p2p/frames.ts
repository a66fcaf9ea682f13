import { createMessage, type Headers, type Message } from '../../lib/message.js';
import { wireHeaders, withoutEngineTrace } from '../../lib/tracing/context.js';

/** A message as it travels between peers (JSON; byte bodies as base64). */
export interface WireMessage {
  id: string;
  headers: Headers;
  body: unknown;
  b64?: boolean;
  timestamp: number;
  correlationId: string;
  causationId?: string;
}

export type MemberState = 'alive' | 'suspect' | 'dead';

/** What a peer announces about itself; the newest incarnation wins. */
export interface MemberRecord {
  id: string;
  name: string;
  addrs: string[];
  state: MemberState;
  incarnation: number;
  /** Topic patterns its routes subscribe to. */
  subs: string[];
  /** `direct:NAME` / `queue:NAME` channels its routes serve. */
  services: string[];
  relay: boolean;
}

export type Frame =
  /** `members`: the joiner's whole view (push-pull: two clusters merge in one exchange); absent from older peers. */
  | { t: 'join'; self: MemberRecord; members?: MemberRecord[] }
  | { t: 'sync'; members: MemberRecord[] }
  /** Anti-entropy: our whole view, answered with theirs (`state`). */
  | { t: 'push-pull'; members: MemberRecord[] }
  | { t: 'state'; members: MemberRecord[] }
  | { t: 'ping'; seq: number; updates: MemberRecord[] }
  | { t: 'ack'; seq: number; updates: MemberRecord[] }
  | { t: 'ping-req'; seq: number; target: string; updates: MemberRecord[] }
  | { t: 'pub'; id: number; topic: string; msg: WireMessage }
  | { t: 'req'; id: number; channel: string; msg: WireMessage; inOut: boolean }
  | { t: 'rep'; id: number; msg?: WireMessage; err?: { code: string; message: string; retryable: boolean } }
  | { t: 'relay'; to: string; frame: Frame }
  /** What a super-peer hands on: `from` is the peer it got the frame from (authenticated by its own connection). */
  | { t: 'relayed'; from: string; frame: Frame };

export function toWire(msg: Message): WireMessage {
  const b = msg.body;
  // the trace context travels as W3C traceparent/tracestate, not as the engine's busbar.trace.*
  const w: WireMessage = { id: msg.id, headers: wireHeaders(msg), body: b, timestamp: msg.timestamp, correlationId: msg.correlationId };
  if (b instanceof Uint8Array) {
    w.body = Buffer.from(b).toString('base64');
    w.b64 = true;
  }
  if (msg.causationId !== undefined) w.causationId = msg.causationId;
  return w;
}

export function fromWire(w: WireMessage): Message {
  const body = w.b64 ? Buffer.from(String(w.body), 'base64') : w.body;
  const init: Parameters<typeof createMessage>[1] = { id: w.id, headers: withoutEngineTrace(w.headers ?? {}), timestamp: w.timestamp, correlationId: w.correlationId };
  if (w.causationId !== undefined) init.causationId = w.causationId;
  return createMessage(body, init);
}

/** 4-byte big-endian length, then the JSON text. */
export function encodeFrame(f: Frame): Uint8Array {
  const json = Buffer.from(JSON.stringify(f), 'utf8');
  const out = Buffer.allocUnsafe(4 + json.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  return out;
}

/** Splits a byte stream into frames; a frame larger than `maxBytes` is a protocol error. */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0);
  readonly #max: number;
  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }
  push(chunk: Uint8Array): Frame[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : Buffer.from(chunk);
    const out: Frame[] = [];
    while (this.#buf.length >= 4) {
      const n = this.#buf.readUInt32BE(0);
      if (n > this.#max) throw new Error(`frame of ${n} bytes exceeds the limit of ${this.#max}`);
      if (this.#buf.length < 4 + n) break;
      out.push(JSON.parse(this.#buf.subarray(4, 4 + n).toString('utf8')) as Frame);
      this.#buf = this.#buf.subarray(4 + n);
    }
    return out;
  }
}
