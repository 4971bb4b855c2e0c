// Runs node-gyp offline: it is given the running Node's own headers (<prefix>/include/node) as
// nodedir, so it never downloads a headers tarball. Shared by the install script and prebuild.js.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const prefix = path.resolve(path.dirname(process.execPath), '..');

/** node-gyp's entry point: npm's own (npm_config_node_gyp, or the copy inside npm), else a dependency's. */
function gypPath() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && fs.existsSync(fromNpm)) return fromNpm;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  }
}

/** Whether a command is on PATH. */
function onPath(cmd) {
  return (process.env.PATH || '').split(path.delimiter).some((dir) => dir && fs.existsSync(path.join(dir, cmd)));
}

/** Run `node-gyp <args>` in `cwd` with `env`; returns spawnSync's result. */
function runNodeGyp(args, { cwd, env = process.env, stdio = 'inherit' }) {
  const all = [...args];
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
    all.push(`--nodedir=${prefix}`);
  } else {
    console.warn(`vfio: no Node headers under ${prefix}/include/node; node-gyp will look for them itself`);
  }
  const gyp = gypPath();
  const r = spawnSync(process.execPath, [gyp, ...all], { stdio, cwd, env });
  if (r.error) r.error.message = `could not run node-gyp (${gyp}): ${r.error.message}`;
  return r;
}

module.exports = { onPath, runNodeGyp };
