import type { Ajv } from 'ajv';
import { named, type Adapter } from '../adapter.js';
import { channelBindingsSchema, type ChannelBindings } from '../bindings.js';
import { createAjv, didYouMean, toProblems, type JsonSchema, type Problem } from '../schema.js';
import type { StepKind } from '../step.js';
import { amqpConfigSchema, createAmqpAdapter, type AmqpConfig } from '../../adapters/amqp/index.js';
import { createDbAdapter, dbConfigSchema, dbSteps, type DbConfigInput } from '../../adapters/db/index.js';
import { createEventlogAdapter, eventlogConfigSchema, type EventlogConfig } from '../../adapters/eventlog/index.js';
import { createFileAdapter, fileConfigSchema, type FileConfig } from '../../adapters/file/index.js';
import { createFnAdapter, fnConfigSchema, type FnConfigInput } from '../../adapters/fn/index.js';
import { createP2pAdapter, p2pConfigSchema, unconfiguredP2pAdapter, type P2pConfig } from '../../adapters/p2p/index.js';
import { createHttpAdapter, createHttpsAdapter, httpConfigSchema, type HttpConfigInput } from '../../adapters/http/index.js';
import { createGrpcAdapter, createGrpcsAdapter, grpcConfigSchema, type GrpcConfigInput } from '../../adapters/grpc/index.js';

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
    grpc: { scheme: 'grpc', configSchema: grpcConfigSchema, create: (c) => createGrpcAdapter(c as GrpcConfigInput | undefined) as unknown as Adapter },
    grpcs: { scheme: 'grpcs', configSchema: grpcConfigSchema, create: (c) => createGrpcsAdapter(c as GrpcConfigInput | undefined) as unknown as Adapter },
    fn: { scheme: 'fn', configSchema: fnConfigSchema, create: (c) => createFnAdapter(c as FnConfigInput | undefined) as unknown as Adapter },
    amqp: { scheme: 'amqp', configSchema: amqpConfigSchema, create: (c) => createAmqpAdapter(c as AmqpConfig | undefined) as unknown as Adapter },
    p2p: { scheme: 'p2p', configSchema: p2pConfigSchema, create: (c) => (c === undefined ? unconfiguredP2pAdapter() : createP2pAdapter(c as P2pConfig)) as unknown as Adapter },
    eventlog: { scheme: 'eventlog', configSchema: eventlogConfigSchema, create: (c) => createEventlogAdapter(c as EventlogConfig | undefined) as unknown as Adapter },
  };
}

/**
 * A named adapter instance from a routes file: `"adapters": { "amqp-eu": { "type": "amqp",
 * "url": "..." } }` is one more amqp adapter under the scheme `amqp-eu`, its settings checked
 * against the amqp config schema (every problem with its path). Several instances of one
 * type each get their own connection and stats.
 */
export function namedFromConfig(name: string, given: unknown, factories: Record<string, AdapterFactory>, ajv: Ajv): { adapter?: Adapter; steps: StepKind<never>[]; problems: Problem[] } {
  const path = `/adapters/${name}`;
  const type = given && typeof given === 'object' && !Array.isArray(given) ? (given as { type?: unknown }).type : undefined;
  if (typeof type !== 'string') {
    const hint = didYouMean(name, Object.keys(factories));
    return { steps: [], problems: [{ path, message: `no configurable adapter "${name}" (configurable: ${Object.keys(factories).join(', ')}; a named instance gives its kind: { "type": "amqp", ... })`, ...(hint ? { suggestion: hint } : {}) }] };
  }
  const factory = factories[type];
  if (!factory) {
    const hint = didYouMean(type, Object.keys(factories));
    return { steps: [], problems: [{ path: `${path}/type`, message: `unknown adapter type "${type}" (configurable: ${Object.keys(factories).join(', ')})`, ...(hint ? { suggestion: hint } : {}) }] };
  }
  if (name in factories) return { steps: [], problems: [{ path, message: `"${name}" is the name of a built-in adapter type; give the instance a name of its own (e.g. "${name}-2")` }] };
  const { type: _type, ...settings } = given as Record<string, unknown>;
  const validate = ajv.compile(factory.configSchema as object);
  if (!validate(settings)) return { steps: [], problems: toProblems(validate.errors, factory.configSchema, path, `${type} setting`) };
  try {
    return { adapter: named(name, factory.create(settings)), steps: [...(factory.steps ?? [])], problems: [] };
  } catch (e) {
    return { steps: [], problems: [{ path, message: (e as Error).message }] };
  }
}

/** The routes file's `"channels"` (channel bindings), checked; problems under `/channels`. */
export function channelsOf(given: unknown, problems: Problem[]): ChannelBindings[] | undefined {
  if (given === undefined) return undefined;
  const validate = createAjv().compile(channelBindingsSchema);
  const list = Array.isArray(given) ? given : [given];
  const before = problems.length;
  list.forEach((b, i) => {
    if (!validate(b)) problems.push(...toProblems(validate.errors, channelBindingsSchema as JsonSchema, Array.isArray(given) ? `/channels/${i}` : '/channels', 'channels setting'));
  });
  return problems.length === before ? (list as ChannelBindings[]) : undefined;
}
