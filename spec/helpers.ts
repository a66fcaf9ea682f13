import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { BusbarError } from '../lib/errors.js';

/** A logger for tests: silent unless BUSBAR_TEST_LOG=level. */
export function testLogger(): Logger {
  return pino({ level: process.env.BUSBAR_TEST_LOG ?? 'silent' });
}

/** A pino logger (default level debug) whose JSON lines are kept: to see what busbar logs, and at which level. */
export function capturedLogger(level = 'debug'): { logger: Logger; lines: Array<{ level: number; msg: string; [k: string]: unknown }> } {
  const lines: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  return { logger: pino({ level }, sink) as unknown as Logger, lines };
}

/** A fresh temp dir; removed by the returned cleanup. */
export function tempDir(prefix = 'busbar-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Poll until `cond` holds or `timeoutMs` passes (bounded; for waiting on real I/O, never a timing assertion). */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const AMQP_URL = process.env.BUSBAR_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const PG_URL = process.env.BUSBAR_PG_URL ?? 'postgres://postgres@127.0.0.1:54329/busbar';

/** The `code` of what `fn` throws synchronously (undefined when it does not throw). */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

/** The error `fn` throws synchronously (a test fails if it does not throw). */
export function failure(fn: () => unknown): BusbarError {
  try {
    fn();
  } catch (e) {
    return e as BusbarError;
  }
  throw new Error('expected a failure');
}

/** The error a promise rejects with (a test fails if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<BusbarError> {
  try {
    await p;
  } catch (e) {
    return e as BusbarError;
  }
  throw new Error('expected a rejection');
}

/** The second broker, for bridges (scripts/rabbitmq-second.sh): BUSBAR_AMQP_PORT + 1 unless BUSBAR_AMQP2_PORT says otherwise. */
export const AMQP2_URL = process.env.BUSBAR_AMQP2_URL ?? `amqp://guest:guest@127.0.0.1:${process.env.BUSBAR_AMQP2_PORT ?? Number(process.env.BUSBAR_AMQP_PORT ?? 5672) + 1}`;

/** A promise that waits until `open` is called: what a test holds a route's step (or a server's reply) on. */
export function latch(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}
