#!/usr/bin/env node
// Where the optional fast-call module (native/fast_calls.cc) gets v8-fast-api-calls.h: V8's header
// for fast API calls, which Node's header set leaves out. It must be for exactly the V8 of the Node
// that builds and runs the addon; Debian's libnode-dev ships V8's whole include directory (and
// trixie's is Node 20's V8, 11.3.244.8).
//   node scripts/v8-fast-calls.js --include   the directory to build with, or '' (binding.gyp)
//   node scripts/v8-fast-calls.js --fetch     unpack trixie's libnode-dev into the lab cache (.ci/run)
// VFIO_FAST_CALLS=0 builds without the module; VFIO_V8_INCLUDE names a directory to use.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { cacheDir } = require('../lab/cache-dir.cjs');

const HEADER = 'v8-fast-api-calls.h';
const DEBIAN = {
  pkg: 'libnode-dev',
  repo: 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main',
  include: path.join('usr', 'include', 'nodejs', 'deps', 'v8', 'include'),
};

/** The V8 version a header directory is for ("11.3.244.8"), or null. */
function v8Version(dir) {
  let text;
  try {
    text = fs.readFileSync(path.join(dir, 'v8-version.h'), 'utf8');
  } catch {
    return null;
  }
  const parts = ['MAJOR_VERSION', 'MINOR_VERSION', 'BUILD_NUMBER', 'PATCH_LEVEL'].map((n) => new RegExp(`V8_${n} (\\d+)`).exec(text)?.[1]);
  return parts.every(Boolean) ? parts.join('.') : null;
}

/** This Node's V8 version, as its headers spell it. */
const RUNNING = process.versions.v8.replace(/-.*$/, '');

/** Debian's libnode-dev include directories unpacked in the lab cache. */
function unpacked() {
  const base = path.join(cacheDir(), 'unpacked', DEBIAN.pkg);
  if (!fs.existsSync(base)) return [];
  return fs.readdirSync(base).map((v) => path.join(base, v, 'files', DEBIAN.include));
}

/** `{ dir }`: V8's include directory with the header, for this V8; or `{ dir: null, why }`. */
function fastCallsInclude() {
  if (process.env.VFIO_FAST_CALLS === '0') return { dir: null, why: 'VFIO_FAST_CALLS=0' };
  const candidates = [
    process.env.VFIO_V8_INCLUDE,
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/include/nodejs/deps/v8/include',
    ...unpacked(),
  ].filter(Boolean);
  const dir = candidates.find((d) => fs.existsSync(path.join(d, HEADER)) && v8Version(d) === RUNNING);
  if (dir) return { dir: path.resolve(dir) };
  return {
    dir: null,
    why: `no ${HEADER} for V8 ${RUNNING} (Node does not ship it; looked in ${candidates.join(', ')}; ` +
      "Debian's libnode-dev for this Node has it: node scripts/v8-fast-calls.js --fetch, or set VFIO_V8_INCLUDE)",
  };
}

module.exports = { fastCallsInclude, v8Version, HEADER, RUNNING };

if (require.main === module) {
  if (process.argv.includes('--include')) {
    process.stdout.write(fastCallsInclude().dir ?? '');
  } else if (process.argv.includes('--fetch')) {
    import('../lab/host.mjs').then(({ debianPackageFiles }) => {
      const got = debianPackageFiles(DEBIAN.pkg, DEBIAN.repo);
      const dir = got.dir && path.join(got.dir, DEBIAN.include);
      const version = dir && v8Version(dir);
      if (!dir) console.log(`v8-fast-calls: ${got.problem}`);
      else if (version !== RUNNING) console.log(`v8-fast-calls: Debian's ${DEBIAN.pkg} is for V8 ${version}, this Node's is ${RUNNING}: no fast calls`);
      else console.log(`v8-fast-calls: ${path.join(dir, HEADER)} (V8 ${version})`);
    });
  } else {
    const r = fastCallsInclude();
    console.log(r.dir ?? r.why);
  }
}
