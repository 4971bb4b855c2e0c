#!/usr/bin/env node
// Builds the native addon with node-gyp, offline: node-gyp is given the running Node's own
// headers (<prefix>/include/node) as nodedir, so it never downloads a headers tarball.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const prefix = path.resolve(path.dirname(process.execPath), '..');
const args = ['rebuild'];
if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
} else {
  console.warn(`vfio: no Node headers under ${prefix}/include/node; node-gyp will look for them itself`);
}

let gyp = process.env.npm_config_node_gyp;
if (!gyp || !fs.existsSync(gyp)) {
  const npmDir = path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  try {
    gyp = require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    gyp = npmDir;
  }
}
if (process.platform !== 'linux') {
  console.error('vfio: VFIO is a Linux interface; the addon builds only on Linux');
  process.exit(1);
}
const r = spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit', cwd: path.resolve(__dirname, '..') });
if (r.error) {
  console.error(`vfio: could not run node-gyp (${gyp}): ${r.error.message}`);
  process.exit(1);
}
if (r.status === 0) {
  // What the addon was built from, so that `npm run build` rebuilds it when native/ changes.
  const { sourcesHash, STAMP } = require('./sources-hash.js');
  fs.writeFileSync(STAMP, `${sourcesHash()}\n`);
}
process.exit(r.status === null ? 1 : r.status);
