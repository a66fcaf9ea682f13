import { Command } from 'commander';
import { registerOpsCommands } from './ops.js';

/**
 * The commands that talk to a running hub (`busbar status`, `routes`, `route`, `reload`,
 * `inflight`, `dead-letters`) on their own: they need an HTTP client and nothing else, so
 * bin/busbar.js starts them without loading the engine, the adapters and their option
 * schemas (about 1 s of CPU per command, most of it compiling schemas nobody uses here).
 */
function opsProgram(): Command {
  const program = new Command('busbar').showHelpAfterError();
  registerOpsCommands(program);
  return program;
}

/** Whether `name` (argv[2]) is one of the hub commands. */
export function isOpsCommand(name: string | undefined): boolean {
  return name !== undefined && opsProgram().commands.some((c) => c.name() === name);
}

export async function opsMain(argv: string[] = process.argv): Promise<void> {
  await opsProgram().parseAsync(argv);
}
