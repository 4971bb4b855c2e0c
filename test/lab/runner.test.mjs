// The lab runner itself: exit status, output, hangs and panics are reported, never hidden.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const runner = path.join(path.dirname(fileURLToPath(import.meta.url)), 'run.mjs');
const lab = (args, opts = {}) =>
  spawnSync(process.execPath, [runner, ...args], { encoding: 'utf8', timeout: 240_000, ...opts });

test('the lab runs a script outside the repo, named relative to where npm was invoked, and returns its exit status', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-outside-'));
  const script = path.join(dir, 'check.mjs');
  fs.writeFileSync(script, [
    'import fs from "node:fs";',
    'import os from "node:os";',
    'const m = JSON.parse(fs.readFileSync(process.env.VFIO_LAB_MANIFEST, "utf8"));',
    'console.log("hello from", os.hostname(), "with", m.devices.length, "devices");',
    'process.exit(3);',
  ].join('\n'));
  try {
    // As `cd <dir> && npm --prefix <repo> run lab -- node check.mjs` would run it: npm starts the
    // runner in the repo and says where the user was in INIT_CWD.
    const r = lab(['node', 'check.mjs'], { env: { ...process.env, INIT_CWD: dir } });
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stdout, /hello from vfio-lab with 4 devices/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('without root, a missing package stops the lab with the exact apt-get line', () => {
  const script = `import { ensurePackages } from ${JSON.stringify(path.join(path.dirname(runner), 'host.mjs'))};
    ensurePackages(['vfio-lab-no-such-package'], 'for this test');`;
  const asUser = process.getuid() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
  const argv = [...asUser, process.execPath, '--input-type=module', '-e', script];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /lab: error: the lab needs vfio-lab-no-such-package \(for this test\)/);
  assert.match(r.stderr, /sudo apt-get install -y --no-install-recommends vfio-lab-no-such-package/);
});

test('a hung guest is stopped by the timeout and reported', () => {
  const r = lab(['--timeout', '10', 'sleep', '600']);
  assert.equal(r.status, 124);
  assert.match(r.stderr, /did not finish within 10 s/);
});

test('a guest kernel panic is reported', () => {
  const r = lab(['sh', '-c', 'echo c > /proc/sysrq-trigger']);
  assert.equal(r.status, 125);
  assert.match(r.stderr, /panicked/);
});
