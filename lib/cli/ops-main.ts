import { Command } from 'commander';
import { registerOpsCommands } from './ops.js';

/**
 * The commands that talk to a running hub (`busbar status`, `routes`, `route`, `reload`,
 * `inflight`, `dead-letters`) on their own: they need an HTTP client and nothing else, so
 * bin/busbar.js starts them without loading the engine, the adapters and their option
 * schemas (about 1 s of CPU per command, most of it compiling schemas nobody uses here).
 *
 * The program of the hub commands when `name` (argv[2]) is one of them, else undefined.
 */
export function opsProgramFor(name: string | undefined): Command | undefined {
  const program = new Command('busbar').showHelpAfterError();
  registerOpsCommands(program);
  return name !== undefined && program.commands.some((c) => c.name() === name) ? program : undefined;
}
