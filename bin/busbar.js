#!/usr/bin/env node
// the hub commands (status, routes, route, inflight, dead-letters, reload) load only an HTTP
// client; everything else loads the whole CLI
const ops = await import('../dist/lib/cli/ops-main.js');
const run = ops.isOpsCommand(process.argv[2]) ? ops.opsMain() : import('../dist/lib/cli/main.js').then((m) => m.main());

run.catch((err) => {
  process.stderr.write(`busbar: ${err?.stack ?? err}\n`);
  process.exit(2);
});
