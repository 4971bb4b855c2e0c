// The lab runner itself: exit status, output, hangs and panics are reported, never hidden.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LAB_DEVICE_COUNT } from '../../lab/devices.mjs';

const runner = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'lab', 'run.mjs');
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
    assert.match(r.stdout, new RegExp(`hello from vfio-lab with ${LAB_DEVICE_COUNT} devices`));
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

test('--kernel names a lab kernel series; anything else is refused with the choices', () => {
  const r = lab(['--kernel', '5.10', 'true']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--kernel must be one of 6\.12, 7\.3, got '5\.10'/);
});

for (const series of ['6.12', '7.3']) {
  test(`the ${series} lab kernel is taken from the cache once built`, () => {
    const r = lab(['--kernel', series, 'uname', '-r']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${series.replace('.', '\\.')}\\.`, 'm'));
    assert.doesNotMatch(r.stderr, /building the lab kernel/);
  });
}

test('an unreachable kernel repository stops the lab with a message naming it and the way around', () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-lab-cache-'));
  const script = `import { sourceVersion } from ${JSON.stringify(path.join(path.dirname(runner), 'host.mjs'))};
    const { version, problem } = sourceVersion({ package: 'linux-source-7.3',
      repo: 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://127.0.0.1:9/debian trixie-backports main' });
    if (version === null) { process.stderr.write(problem); process.exit(1); }`;
  try {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script],
      { encoding: 'utf8', env: { ...process.env, VFIO_LAB_CACHE: cache, VFIO_LAB_KERNEL_VERSION: '' }, timeout: 120_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /could not read the package list for linux-source-7\.3 from .*127\.0\.0\.1:9/);
    assert.match(r.stderr, /VFIO_LAB_KERNEL/);
    assert.equal(fs.existsSync(path.join(cache, 'apt', 'linux-source-7.3', 'sources.list')), true, 'the sources list is private to the lab cache');
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
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

test('a checkout in a directory only its owner can enter passes the tests that run as an unprivileged user', () => {
  const repo = path.resolve(path.dirname(runner), '..');
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-private-'));
  fs.chmodSync(parent, 0o700);
  const clone = path.join(parent, 'vfio');
  try {
    const git = spawnSync('git', ['clone', '-q', '--no-hardlinks', repo, clone], { encoding: 'utf8' });
    assert.equal(git.status, 0, git.stderr);
    // The clone gets this checkout's build outputs (the tests need no other package).
    fs.cpSync(path.join(repo, 'dist'), path.join(clone, 'dist'), { recursive: true });
    fs.mkdirSync(path.join(clone, 'build', 'Release'), { recursive: true });
    fs.copyFileSync(path.join(repo, 'build', 'Release', 'vfio.node'), path.join(clone, 'build', 'Release', 'vfio.node'));
    const r = spawnSync(process.execPath, ['lab/run.mjs', '--suite', 'test/kernel/10-cli.test.mjs'],
      { cwd: clone, encoding: 'utf8', timeout: 400_000 });
    assert.equal(r.status, 0, `${r.stdout.slice(-3000)}\n${r.stderr}`);
    assert.match(r.stdout, /permission denied as an unprivileged user names root or a udev rule/);
    assert.match(r.stdout, /lab: \d+ passed, 0 failed/);
  } finally {
    fs.rmSync(parent, { recursive: true, force: true });
  }
});
