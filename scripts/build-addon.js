#!/usr/bin/env node
// The package's install script, and `npm run build`'s addon step (with --from-source).
// Installed from the registry or a tarball: use the prebuilt addon for this platform when the
// package has one that loads; otherwise build it with node-gyp, and when the tools for that are
// missing say which in one line.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { onPath, runNodeGyp } = require('./node-gyp.js');

const root = path.resolve(__dirname, '..');
const tag = `${process.platform}-${process.arch}`;

function fail(message) {
  console.error(`vfio: ${message}`);
  process.exit(1);
}

if (process.platform !== 'linux') fail('VFIO is a Linux interface; the addon builds only on Linux');

/** Whether the prebuilt addon for this platform is there and loads. */
function prebuiltLoads() {
  const file = path.join(root, 'prebuilds', tag, 'vfio.napi.node');
  if (!fs.existsSync(file)) return false;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8' });
  if (r.status !== 0) console.warn(`vfio: the prebuilt addon for ${tag} does not load here; building from source`);
  return r.status === 0;
}

/** The build tools node-gyp needs that are not on PATH. */
function missingTools() {
  const missing = [];
  const cxx = process.env.CXX ? process.env.CXX.split(' ')[0] : null;
  if (cxx ? !(path.isAbsolute(cxx) ? fs.existsSync(cxx) : onPath(cxx)) : !onPath('g++') && !onPath('c++')) {
    missing.push(cxx ?? 'a C++ compiler (g++)');
  }
  if (!onPath('make')) missing.push('make');
  if (!onPath('python3') && !onPath('python')) missing.push('python3');
  return missing;
}

const fromSource = process.argv.includes('--from-source') || process.env.npm_config_build_from_source === 'true';
if (!fromSource && prebuiltLoads()) process.exit(0);

const missing = missingTools();
if (missing.length) {
  const have = fs.existsSync(path.join(root, 'prebuilds')) ? fs.readdirSync(path.join(root, 'prebuilds')).join(', ') : 'none';
  fail(`no prebuilt addon for ${tag} (the package has: ${have || 'none'}) and cannot build one: ` +
    `${missing.join(', ')} not found on PATH; install them (Debian/Ubuntu: apt-get install g++ make python3), ` +
    'then run npm rebuild vfio');
}

const r = runNodeGyp(['rebuild'], { cwd: root });
if (r.error) fail(r.error.message);
if (r.status === 0) {
  // What the addon was built from, so that `npm run build` rebuilds it when native/ changes.
  const { sourcesHash, STAMP } = require('./sources-hash.js');
  fs.writeFileSync(STAMP, `${sourcesHash()}\n`);
}
process.exit(r.status === null ? 1 : r.status);
