#!/usr/bin/env node
import { main } from '../dist/lib/cli/main.js';

main().catch((err) => {
  process.stderr.write(`busbar: ${err?.stack ?? err}\n`);
  process.exit(2);
});
