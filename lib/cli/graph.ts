import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { Option, type Command } from 'commander';
import { pino } from 'pino';
import { BusbarError, isBusbarError } from '../errors.js';
import { routeGraph, toMermaid, toSvg, type RouteGraph } from '../graph/index.js';
import { loadRoutesFile } from '../routes-file.js';
import { formatProblem } from '../schema.js';
import { engineFromModule } from './main.js';

export type GraphFormat = 'mermaid' | 'json' | 'svg';
const FORMATS: readonly GraphFormat[] = ['mermaid', 'json', 'svg'];
const BY_EXTENSION: Record<string, GraphFormat> = { '.mmd': 'mermaid', '.mermaid': 'mermaid', '.md': 'mermaid', '.json': 'json', '.svg': 'svg' };

/** The graph of a routes file's routes, checked as `busbar run` would check them (nothing is started). */
export async function graphOfFile(file: string): Promise<RouteGraph> {
  const mod = await loadRoutesFile(file);
  const { engine, problems } = engineFromModule(mod, pino({ level: 'silent' }));
  const inputs = Array.isArray(mod.routes) ? mod.routes : [mod.routes];
  problems.push(...engine.check(...inputs));
  if (problems.length) throw new BusbarError('ROUTES_FILE', `${file}:\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`, { details: { file, problems } });
  engine.addRoutes(...inputs);
  return routeGraph(engine.routeModels());
}

export async function renderGraph(graph: RouteGraph, format: GraphFormat): Promise<string> {
  if (format === 'json') return `${JSON.stringify(graph, null, 2)}\n`;
  if (format === 'svg') return toSvg(graph);
  return toMermaid(graph);
}

async function graphCommand(file: string, opts: { format?: GraphFormat; output?: string }): Promise<void> {
  const format = opts.format ?? (opts.output ? BY_EXTENSION[extname(opts.output).toLowerCase()] : undefined) ?? 'mermaid';
  try {
    const text = await renderGraph(await graphOfFile(file), format);
    if (opts.output) await writeFile(opts.output, text);
    else process.stdout.write(text);
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`busbar: ${err.message}\n${isBusbarError(e) ? `  code: ${e.code}\n` : ''}`);
    process.exitCode = 2;
  }
}

/** `busbar graph <file>`: the picture of a routes file, as Mermaid, JSON (nodes and links) or SVG. */
export function registerGraphCommand(program: Command): void {
  program
    .command('graph')
    .description('draw the routes of a file: Mermaid text (default), JSON nodes and links, or SVG laid out here (no browser)')
    .argument('<file>', 'routes file')
    .addOption(new Option('--format <format>', 'mermaid, json or svg (default: from the -o extension, else mermaid)').choices(FORMATS))
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action((file: string, opts: { format?: GraphFormat; output?: string }) => graphCommand(file, opts));
}
