#!/usr/bin/env node
// The `vfio` command's entry point; the commands are in cli/.
import { main } from './cli/main';

export { main };

if (require.main === module) {
  void Promise.resolve(main(process.argv.slice(2))).then((code) => {
    process.exitCode = code;
  });
}
