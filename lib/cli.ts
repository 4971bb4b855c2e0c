#!/usr/bin/env node
// The `vfio` command's entry point; the commands are in cli/.
import { main } from './cli/main';

export { main };

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
