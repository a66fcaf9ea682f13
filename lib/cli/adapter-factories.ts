import type { Adapter } from '../adapter.js';
import type { JsonSchema } from '../schema.js';
import type { StepKind } from '../step.js';
import { amqpConfigSchema, createAmqpAdapter, type AmqpConfig } from '../../adapters/amqp/index.js';
import { createDbAdapter, dbConfigSchema, dbSteps, type DbConfigInput } from '../../adapters/db/index.js';
import { createEventlogAdapter, eventlogConfigSchema, type EventlogConfig } from '../../adapters/eventlog/index.js';
import { createFileAdapter, fileConfigSchema, type FileConfig } from '../../adapters/file/index.js';
import { createHttpAdapter, createHttpsAdapter, httpConfigSchema, type HttpConfigInput } from '../../adapters/http/index.js';

/**
 * Adapters that a routes file configures with data (`"adapters": { "<scheme>": {...} }`).
 * The standalone `busbar` process registers all of them; drivers (amqplib, pg,
 * better-sqlite3) load only when an endpoint of theirs starts, so an unused adapter costs
 * nothing. The core Engine imports none of these: a library user picks adapters with
 * `new Engine({ adapters: [...] })` or `engine.use(...)`.
 */
export interface AdapterFactory {
  readonly scheme: string;
  /** JSON Schema of the adapter-level config (connections, credentials, topology). */
  readonly configSchema: JsonSchema;
  create(config?: unknown): Adapter;
  /** Step kinds the adapter contributes (e.g. the db outbox). */
  readonly steps?: readonly StepKind<never>[];
}

export function adapterFactories(): Record<string, AdapterFactory> {
  return {
    file: { scheme: 'file', configSchema: fileConfigSchema, create: (c) => createFileAdapter(c as FileConfig | undefined) as unknown as Adapter },
    db: { scheme: 'db', configSchema: dbConfigSchema, create: (c) => createDbAdapter(c as DbConfigInput | undefined) as unknown as Adapter, steps: dbSteps as unknown as StepKind<never>[] },
    http: { scheme: 'http', configSchema: httpConfigSchema, create: (c) => createHttpAdapter(c as HttpConfigInput | undefined) as unknown as Adapter },
    https: { scheme: 'https', configSchema: httpConfigSchema, create: (c) => createHttpsAdapter(c as HttpConfigInput | undefined) as unknown as Adapter },
    amqp: { scheme: 'amqp', configSchema: amqpConfigSchema, create: (c) => createAmqpAdapter(c as AmqpConfig | undefined) as unknown as Adapter },
    eventlog: { scheme: 'eventlog', configSchema: eventlogConfigSchema, create: (c) => createEventlogAdapter(c as EventlogConfig | undefined) as unknown as Adapter },
  };
}
