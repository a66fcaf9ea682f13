import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { pino, type Logger } from 'pino';
import { busbarLogger } from '../logging.js';
import type { Adapter } from '../adapter.js';
import { adapterFactories, channelsOf, namedFromConfig } from './adapter-factories.js';
import { registerGraphCommand } from './graph.js';
import { useConsole } from '../console/index.js';
import { DEFAULT_SUMMARY_INTERVAL, drainProgress, startSummary } from './summary.js';
import { watchFile } from './watch.js';
import { routesFileReloader, type FileReloadReport } from '../management/reload.js';
import { Engine } from '../engine.js';
import { BusbarError, isBusbarError } from '../errors.js';
import { loadRoutesFile, type RoutesModule } from '../routes-file.js';
import { TOP_LEVEL_KEYS } from '../config.js';
import { createAjv, didYouMean, formatProblem, toProblems, type Problem } from '../schema.js';
import type { StepKind } from '../step.js';
import type { ManagementServer } from '../management/types.js';
import { managementSettings } from './management-flag.js';
import { registerOpsCommands } from './ops.js';
import { typeCheckRoutesFiles } from './typecheck.js';

/** busbar's own package.json, found from this file whether it runs from lib/ (tsx) or dist/lib/. */
function ownVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const p = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (p.name === 'busbar' && p.version) return p.version;
    } catch {
      // not at this level
    }
  }
  return '0.0.0';
}

function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`"${v}" is not a duration (examples: 500ms, 6s, 2m)`);
  const n = Number(m[1]);
  return n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms'] ?? 1);
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A pino level, or a clear error listing them (pino itself would throw a stack trace). */
function parseLogLevel(v: string): string {
  if (!LOG_LEVELS.includes(v)) {
    const hint = didYouMean(v, LOG_LEVELS);
    throw new InvalidArgumentError(`"${v}" is not a log level (levels: ${LOG_LEVELS.join(', ')})${hint ? `; ${hint}` : ''}`);
  }
  return v;
}

function makeLogger(level: string, pretty: boolean | undefined): Logger {
  level = LOG_LEVELS.includes(level) ? level : parseLogLevel(level);
  const usePretty = pretty ?? Boolean(process.stdout.isTTY);
  return usePretty ? busbarLogger({ level, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l' } } }) : busbarLogger({ level });
}

/** Per-scheme adapter config of a routes module; a top-level `topology` belongs to amqp. */
function amqpWithTopology(mod: RoutesModule): Record<string, unknown> {
  const configs = mod.adapters && !Array.isArray(mod.adapters) ? { ...(mod.adapters as Record<string, unknown>) } : {};
  if (mod.topology !== undefined) configs.amqp = { ...(configs.amqp as object | undefined), topology: mod.topology };
  return configs;
}

/** Build an engine from a loaded routes module; adapters given as config are created by their factories. */
export function engineFromModule(mod: RoutesModule, logger: Logger): { engine: Engine; problems: Problem[] } {
  const problems: Problem[] = [];
  for (const key of Object.keys(mod)) {
    if (!TOP_LEVEL_KEYS.includes(key)) {
      const hint = didYouMean(key, TOP_LEVEL_KEYS);
      problems.push({ path: `/${key}`, message: `unknown top-level key "${key}" (valid: ${TOP_LEVEL_KEYS.join(', ')})`, ...(hint ? { suggestion: hint } : {}) });
    }
  }
  const adapters: Adapter[] = [];
  const steps: StepKind<never>[] = [];
  const factories = adapterFactories();
  const configs = amqpWithTopology(mod);
  const ajv = createAjv();
  for (const [scheme, factory] of Object.entries(factories)) {
    const given = configs[scheme];
    if (given !== undefined) {
      const validate = ajv.compile(factory.configSchema as object);
      if (!validate(given)) {
        problems.push(...toProblems(validate.errors, factory.configSchema, `/adapters/${scheme}`, `${scheme} setting`));
        continue;
      }
    }
    try {
      adapters.push(factory.create(given));
      steps.push(...(factory.steps ?? []));
    } catch (e) {
      problems.push({ path: `/adapters/${scheme}`, message: (e as Error).message });
    }
  }
  for (const scheme of Object.keys(configs)) {
    if (scheme in factories) continue;
    // a named instance: "amqp-eu": { "type": "amqp", ...amqp settings }
    const made = namedFromConfig(scheme, configs[scheme], factories, ajv);
    problems.push(...made.problems);
    if (made.adapter) adapters.push(made.adapter);
    steps.push(...made.steps);
  }
  if (Array.isArray(mod.adapters)) adapters.push(...mod.adapters);
  const channels = channelsOf(mod.channels, problems);
  const engine = new Engine({ ...mod.engine, logger, adapters, steps, ...(mod.functions ? { functions: mod.functions } : {}), ...(channels ? { channels } : {}) });
  return { engine, problems };
}

/**
 * What `busbar` prints for an error it stops on: the message, its code, and the code of each
 * cause (a route that failed to start because its driver is missing says ROUTE_START_FAILED
 * and, under it, DB_DRIVER: the code docs/db.md tells the user to look for).
 */
export function formatFailure(err: unknown): string {
  if (!isBusbarError(err)) return `busbar: ${(err as Error)?.stack ?? String(err)}\n`;
  let out = `busbar: ${err.message}\n  code: ${err.code}\n`;
  let said = err.message;
  let cause: unknown = err.cause;
  for (let depth = 0; cause instanceof Error && depth < 4; depth++) {
    const code = isBusbarError(cause) ? cause.code : (cause as { code?: unknown }).code;
    const text = said.includes(cause.message) ? '' : cause.message;
    if (typeof code === 'string' || text) out += `  cause: ${[typeof code === 'string' ? code : '', text].filter(Boolean).join(': ')}\n`;
    said += cause.message;
    cause = cause.cause;
  }
  return out;
}

function fail(err: unknown): never {
  process.stderr.write(formatFailure(err));
  process.exit(2);
}

async function validateCommand(files: string[]): Promise<void> {
  const found = new Map<string, Problem[]>();
  for (const file of files) {
    let mod: RoutesModule;
    try {
      mod = await loadRoutesFile(file);
    } catch (e) {
      // a file that does not even load is a problem of the file: exit 1 like any other
      if (isBusbarError(e) && e.code === 'BUSBAR_ERR_ROUTES_FILE') {
        found.set(file, [{ path: '', message: e.message }]);
        continue;
      }
      fail(e);
    }
    const { engine, problems } = engineFromModule(mod, pino({ level: 'silent' }));
    const inputs = Array.isArray(mod.routes) ? mod.routes : [mod.routes];
    problems.push(...engine.check(...inputs));
    found.set(file, problems);
  }
  // tsx runs a .ts file with type errors as if it had none: the project's compiler checks them
  // (all in one program: the declarations they share are read once)
  const typed = new Map<string, string>();
  const tsFiles = files.filter((f) => /\.[mc]?ts$/.test(f));
  if (tsFiles.length) {
    for (const [file, tc] of typeCheckRoutesFiles(tsFiles)) {
      if (tc.checked) {
        found.get(file)?.push(...tc.problems);
        typed.set(file, ` (type-checked with TypeScript ${tc.version})`);
      } else process.stderr.write(`${file}: ${tc.reason}\n`);
    }
  }
  let failed = false;
  for (const [file, problems] of found) {
    if (problems.length) {
      failed = true;
      process.stderr.write(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n`);
      for (const p of problems) process.stderr.write(`  ${p.path ? formatProblem(p) : p.message}\n`);
    } else process.stdout.write(`${file}: ok${typed.get(file) ?? ''}\n`);
  }
  process.exit(failed ? 1 : 0);
}

interface RunOptions {
  for?: number;
  logLevel: string;
  pretty?: boolean;
  stopTimeout: number;
  management?: string;
  managementToken?: string;
  summary?: number;
  summaryInterval?: number;
  quiet?: boolean;
  watch?: boolean;
}

async function runCommand(file: string, opts: RunOptions): Promise<void> {
  const logger = makeLogger(opts.logLevel, opts.pretty);
  let engine: Engine;
  let management: ManagementServer | undefined;
  let reload: (() => Promise<FileReloadReport>) | undefined;
  try {
    const mod = await loadRoutesFile(file, { fresh: opts.watch === true });
    const settings = managementSettings(opts.management, opts.managementToken, mod.management);
    const built = engineFromModule(mod, logger);
    if (built.problems.length) throw new BusbarError('ROUTES_FILE', `${file}:\n${built.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
    engine = built.engine;
    reload = routesFileReloader(engine, file, { first: mod, timeoutMs: opts.stopTimeout });
    if (settings) settings.reload = reload;
    engine.addRoutes(...(Array.isArray(mod.routes) ? mod.routes : [mod.routes]));
    // before the routes start: /live answers and /ready says 503 while they are starting
    if (settings) management = await useConsole(engine).management(settings);
    await engine.start();
    if (management) process.stdout.write(`busbar console: ${management.url}/console/\n`);
  } catch (e) {
    await management?.close().catch(() => undefined);
    logger.flush?.();
    fail(e);
  }
  const every = opts.summaryInterval ?? opts.summary ?? DEFAULT_SUMMARY_INTERVAL;
  const endSummary = opts.quiet ? undefined : startSummary(engine, every, (t) => process.stdout.write(t));
  const unwatch = opts.watch ? watchFile(file, async () => {
    try {
      const r = await reload!();
      if (!opts.quiet) process.stdout.write(`reloaded ${file}: changed ${r.changed.join(', ') || '-'}; added ${r.added.join(', ') || '-'}; removed ${r.removed.join(', ') || '-'}; unchanged ${r.unchanged.length}\n`);
    } catch (e) {
      // the running version stays; the error was logged with its code
      process.stderr.write(`busbar: ${(e as Error).message}\n  code: ${(e as { code?: string }).code ?? '-'}\n`);
    }
  }) : undefined;
  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) {
      logger.warn('second signal: exiting without waiting');
      process.exit(130);
    }
    stopping = true;
    unwatch?.();
    logger.info({ reason: why }, 'stopping');
    const endProgress = opts.quiet ? undefined : drainProgress(engine, (t) => process.stderr.write(t));
    const report = await engine.stop({ timeoutMs: opts.stopTimeout });
    endProgress?.();
    endSummary?.();
    await management?.close();
    logger.flush?.();
    // let pino-pretty's worker drain before exiting
    setTimeout(() => process.exit(report.timedOut ? 1 : 0), 100).unref();
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  if (opts.for !== undefined) setTimeout(() => void stop(`--for ${opts.for} ms elapsed`), opts.for);
}

export function buildProgram(): Command {
  const program = new Command('busbar')
    .description('busbar: an enterprise service bus for Node.js. Runs integration routes as a standalone broker process.')
    .version(ownVersion(), '-v, --version')
    .showHelpAfterError();
  program
    .command('run')
    .description('load routes from a .ts, .js or .json file, start them, stop gracefully on SIGINT/SIGTERM')
    .argument('<file>', 'routes file')
    .option('--for <duration>', 'stop after this long (e.g. 6s), for demos and smoke tests', parseDuration)
    .option('--log-level <level>', LOG_LEVELS.join(', '), parseLogLevel, process.env.BUSBAR_LOG_LEVEL ?? 'info')
    .option('--pretty', 'pretty logs (default when stdout is a terminal)')
    .option('--no-pretty', 'JSON logs')
    .option('--stop-timeout <duration>', 'how long a graceful stop waits for in-flight messages', parseDuration, 10_000)
    .option('--management <host:port>', 'serve the management API (health, metrics, route operations) here, e.g. 127.0.0.1:9464')
    .option('--management-token <token>', 'bearer token of the management API (default: BUSBAR_MANAGEMENT_TOKEN); required off loopback')
    .option('--summary-interval <duration>', `print a one-line summary per route this often (default ${DEFAULT_SUMMARY_INTERVAL / 1000}s; a final one at stop)`, parseDuration)
    .option('--summary <duration>', 'the same as --summary-interval', parseDuration)
    .option('--quiet', 'no periodic summary, no final stats line, no progress (logs only)')
    .option('--watch', 'reload the routes file when it changes: only changed routes are redeployed; a file that fails to validate or start leaves the running version')
    .action((file: string, opts: RunOptions) => runCommand(file, opts));
  program
    .command('validate')
    .description('check routes files and print every problem with its path; exit 1 if there is any')
    .argument('<file...>', 'routes files (.ts files are type-checked together)')
    .action((files: string[]) => validateCommand(files));
  const topology = program.command('topology').description('broker topology (RabbitMQ exchanges, queues, bindings) declared in a routes file');
  topology
    .command('plan')
    .description('show what starting would declare, and which declarations conflict with the running broker, without changing it; exit 1 on a conflict')
    .argument('<file>', 'routes file with "adapters": { "amqp": { "url", "topology" } }')
    .option('--url <amqp-url>', 'broker to check (default: the file\'s amqp url)')
    .action((file: string, opts: { url?: string }) => topologyPlanCommand(file, opts));
  registerGraphCommand(program);
  registerOpsCommands(program);
  return program;
}

/**
 * Every amqp adapter a routes module declares, however it declares it: as config
 * (`"adapters": { "amqp": {...} }`, a top-level `"topology"`, a named instance
 * `"amqp-eu": { "type": "amqp", ... }`) or as instances in `adapters: [...]`
 * (`createAmqpAdapter(config)`, `named('amqp-eu', createAmqpAdapter(config))`: both keep their config).
 */
function amqpDeclarations(mod: RoutesModule): Array<{ name: string; config: unknown }> {
  const out: Array<{ name: string; config: unknown }> = [];
  for (const [name, given] of Object.entries(amqpWithTopology(mod))) {
    if (name === 'amqp') out.push({ name, config: given });
    else if (given && typeof given === 'object' && (given as { type?: unknown }).type === 'amqp') {
      const { type: _type, ...settings } = given as Record<string, unknown>;
      out.push({ name, config: settings });
    }
  }
  if (Array.isArray(mod.adapters)) {
    for (const a of mod.adapters) {
      const config = (a as Adapter & { config?: unknown }).config;
      if ((a.type ?? a.scheme) === 'amqp' && config && typeof config === 'object') out.push({ name: a.scheme, config });
    }
  }
  return out;
}

async function topologyPlanCommand(file: string, opts: { url?: string }): Promise<void> {
  let mod: RoutesModule;
  try {
    mod = await loadRoutesFile(file);
  } catch (e) {
    fail(e);
  }
  const declared = amqpDeclarations(mod);
  if (declared.length === 0) fail(new BusbarError('ROUTES_FILE', `${file} declares no amqp topology (expected "topology": {...}, "adapters": { "amqp": { "topology": {...} } }, a named instance { "type": "amqp", ... }, or an amqp adapter instance in adapters: [...])`, { details: { file } }));
  try {
    const { planTopology, formatPlan } = await import('../../adapters/amqp/topology.js');
    let ok = true;
    for (const { name, config } of declared) {
      const plan = await planTopology(config, opts.url);
      ok &&= plan.ok;
      // which instance a plan is for, when it is not the one plain amqp adapter
      if (declared.length > 1 || name !== 'amqp') process.stdout.write(`adapter ${name}:\n`);
      process.stdout.write(`${formatPlan(plan)}\n`);
    }
    process.exit(ok ? 0 : 1);
  } catch (e) {
    fail(e);
  }
}

export async function main(argv: string[] = process.argv): Promise<void> {
  await buildProgram().parseAsync(argv);
}
