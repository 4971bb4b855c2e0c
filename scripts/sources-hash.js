// The hash of what the native addon is built from (native/*, binding.gyp, and which V8 header
// the fast-call module builds with, if any) and where the build records it
// (build/Release/vfio.sources.sha256).
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { fastCallsInclude } = require('./v8-fast-calls.js');

const root = path.resolve(__dirname, '..');
const STAMP = path.join(root, 'build', 'Release', 'vfio.sources.sha256');

function sourcesHash() {
  const hash = crypto.createHash('sha256');
  const files = ['binding.gyp', ...fs.readdirSync(path.join(root, 'native')).sort().map((f) => path.join('native', f))];
  for (const f of files) {
    hash.update(`${f}\0`);
    hash.update(fs.readFileSync(path.join(root, f)));
  }
  hash.update(`fast calls: ${fastCallsInclude().dir ?? 'none'}\0`);
  return hash.digest('hex');
}

module.exports = { sourcesHash, STAMP };
