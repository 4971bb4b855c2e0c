#!/usr/bin/env node
// `npm run build`: rebuild the native addon when native/ or binding.gyp changed since it was
// built (so a test never runs an old vfio.node), then compile the TypeScript.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { sourcesHash, STAMP } = require('./sources-hash.js');

const root = path.resolve(__dirname, '..');
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
  if (r.status !== 0) process.exit(r.status === null ? 1 : r.status);
};

const built = fs.existsSync(STAMP) && fs.existsSync(path.join(root, 'build', 'Release', 'vfio.node'))
  ? fs.readFileSync(STAMP, 'utf8').trim()
  : null;
if (built !== sourcesHash()) {
  console.log(built === null ? 'build: building the native addon' : 'build: native/ changed; rebuilding the addon');
  run(process.execPath, [path.join(__dirname, 'build-addon.js'), '--from-source']);
}
run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json']);
fs.chmodSync(path.join(root, 'dist', 'cli.js'), 0o755);
