// The addon loads on first use: with no addon at all (a copy of dist/ without build/), the
// sysfs helpers and `vfio list` work, and the first call that needs it throws the one error that
// says what is missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(import.meta.dirname, '../..');

function withoutAddon(fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-noaddon-'));
  try {
    fs.cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
    return fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('without the addon, listPciDevices and vfio list work; a device call names what is missing', () => {
  withoutAddon((dir) => {
    const env = { ...process.env, VFIO_NATIVE_PATH: '' };
    const list = spawnSync(process.execPath, [path.join(dir, 'dist/cli.js'), 'list', '--json'], { encoding: 'utf8', env });
    assert.equal(list.status, 0, list.stderr);
    assert.ok(Array.isArray(JSON.parse(list.stdout)));
    const probe = spawnSync(process.execPath, ['-e', `
      const v = require(${JSON.stringify(path.join(dir, 'dist/index.js'))});
      console.log(Array.isArray(v.listPciDevices()), v.constants.VFIO_PCI_CONFIG_REGION_INDEX);
      try { v.Iommufd.open(); } catch (e) { console.log(e.message.split('\\n')[0]); }
    `], { encoding: 'utf8', env });
    assert.equal(probe.status, 0, probe.stderr);
    const [first, second] = probe.stdout.trim().split('\n');
    assert.equal(first, 'true 7');
    assert.match(second, /^vfio: could not load the native addon/);
  });
});
