#!/usr/bin/env node
// the hub commands (status, routes, route, inflight, dead-letters, reload) load only an HTTP
// client; everything else loads the whole CLI
const { opsProgramFor } = await import('../dist/lib/cli/ops-main.js');
const ops = opsProgramFor(process.argv[2]);
const run = ops ? ops.parseAsync(process.argv) : import('../dist/lib/cli/main.js').then((m) => m.main());

run.catch((err) => {
  process.stderr.write(`busbar: ${err?.stack ?? err}\n`);
  process.exit(2);
});
