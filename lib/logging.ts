import { pino, stdSerializers, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { messageWithCauses } from './errors.js';

/**
 * pino's error serializer (type, message, stack with causes, own properties), with the
 * message naming each cause once (see messageWithCauses).
 */
export function serializeError(err: unknown): unknown {
  const out = stdSerializers.err(err as Error) as unknown;
  if (err instanceof Error && out !== null && typeof out === 'object') (out as { message: string }).message = messageWithCauses(err);
  return out;
}

/** The serializers of the loggers busbar makes (`err` as serializeError); pass them to a logger of your own for the same log lines. */
export const logSerializers = { err: serializeError } as const;

/** A pino logger with busbar's serializers (writing to `destination`, stdout by default). */
export function busbarLogger(opts: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const o = { ...opts, serializers: { ...logSerializers, ...opts.serializers } };
  return destination === undefined ? pino(o) : pino(o, destination);
}
