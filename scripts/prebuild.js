#!/usr/bin/env node
// `npm run prebuilds` (and prepack): build the addon for linux-x64 and, when the cross compiler
// g++-aarch64-linux-gnu is installed, for linux-arm64, into prebuilds/linux-<arch>/vfio.napi.node
// (N-API: one binary serves every Node version the package supports). Each build runs in a
// scratch copy of native/ and binding.gyp, so the checkout's own build/ is left alone.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { onPath, runNodeGyp } = require('./node-gyp.js');

const root = path.resolve(__dirname, '..');

const TARGETS = [
  { arch: 'x64', cross: null },
  { arch: 'arm64', cross: 'aarch64-linux-gnu-' },
];

fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
for (const { arch, cross } of TARGETS) {
  if (cross && !onPath(`${cross}g++`)) {
    console.log(`prebuild: linux-${arch} skipped (no ${cross}g++; Debian: apt-get install g++-aarch64-linux-gnu)`);
    continue;
  }
  if (!cross && process.arch !== arch) {
    console.log(`prebuild: linux-${arch} skipped (not the host's architecture)`);
    continue;
  }
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-prebuild-'));
  try {
    fs.cpSync(path.join(root, 'native'), path.join(scratch, 'native'), { recursive: true });
    fs.copyFileSync(path.join(root, 'binding.gyp'), path.join(scratch, 'binding.gyp'));
    // What binding.gyp asks for the fast-call module's header (it answers none: VFIO_FAST_CALLS=0).
    for (const f of ['scripts/v8-fast-calls.js', 'lab/cache-dir.cjs']) {
      fs.mkdirSync(path.join(scratch, path.dirname(f)), { recursive: true });
      fs.copyFileSync(path.join(root, f), path.join(scratch, f));
    }
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(scratch, 'node_modules'));
    // N-API only: the prebuilt addon loads in every Node the package supports (no fast-call module).
    const env = { ...process.env, VFIO_FAST_CALLS: '0' };
    if (cross) Object.assign(env, { CC: `${cross}gcc`, CXX: `${cross}g++`, LINK: `${cross}g++`, AR: `${cross}ar` });
    console.log(`prebuild: building linux-${arch}`);
    const r = runNodeGyp(['rebuild', `--arch=${arch}`, '--loglevel=warn'], { cwd: scratch, env, stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.error || r.status !== 0) {
      console.error(`prebuild: linux-${arch} failed${r.error ? `: ${r.error.message}` : ''}`);
      process.exit(1);
    }
    const dir = path.join(root, 'prebuilds', `linux-${arch}`);
    fs.mkdirSync(dir, { recursive: true });
    const out = path.join(dir, 'vfio.napi.node');
    fs.copyFileSync(path.join(scratch, 'build', 'Release', 'vfio.node'), out);
    spawnSync(`${cross ?? ''}strip`, ['--strip-unneeded', out], { stdio: 'inherit' });
    console.log(`prebuild: ${path.relative(root, out)} (${Math.round(fs.statSync(out).size / 1024)} KiB)`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
