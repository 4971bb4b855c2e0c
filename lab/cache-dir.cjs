// The lab's cache directory, outside the repo: $VFIO_LAB_CACHE or ~/.cache/vfio-lab (kernels,
// package lists, unpacked Debian packages). CommonJS, so the build scripts read it too.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function cacheDir() {
  const base =
    process.env.VFIO_LAB_CACHE ||
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'vfio-lab');
  fs.mkdirSync(base, { recursive: true });
  return base;
}

module.exports = { cacheDir };
