// The package as a user gets it: `npm pack` (prepack builds dist/ and the prebuilt addons), the
// tarball's contents, and installs into a fresh project with no compiler on PATH: with the
// prebuilt addon `require('vfio')` and `import('vfio')` load it; without it the install fails
// with one line naming what is missing. Then the lab from that project: `npx vfio lab`.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-package-'));
let tarball;
let files;
/** The project the prebuilt-addon install test made, for the lab test. */
let installed;

/**
 * A PATH with only what npm needs to install a package from a tarball (node, npm, sh, env): no
 * g++, cc, make or python3.
 */
function bareBin() {
  const bin = path.join(work, 'bare-bin');
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(bin);
  const npmCli = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  const which = (cmd) => execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim();
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(fs.existsSync(npmCli) ? npmCli : fs.realpathSync(which('npm')), path.join(bin, 'npm'));
  for (const cmd of ['sh', 'env']) fs.symlinkSync(which(cmd), path.join(bin, cmd));
  return bin;
}

/** `npm install <tgz>` into a new project with PATH = only `bin`; returns spawnSync's result. */
function installInto(name, tgz, bin) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tgz], {
    cwd: dir, encoding: 'utf8', env: { ...process.env, PATH: bin, npm_config_foreground_scripts: 'true' },
  });
  return { dir, ...r };
}

before(() => {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'] });
  const [info] = JSON.parse(out.slice(out.indexOf('[')));
  tarball = path.join(work, info.filename);
  files = info.files.map((f) => f.path);
  process.stdout.write(`# tarball ${info.filename}: ${info.entryCount} files, ${(info.size / 1024).toFixed(0)} KiB packed, ` +
    `${(info.unpackedSize / 1024).toFixed(0)} KiB unpacked\n`);
});

after(() => fs.rmSync(work, { recursive: true, force: true }));

test('the tarball holds dist/, the prebuilt addons, the sources for a fallback build and the docs', () => {
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'dist/nvme/index.js', 'prebuilds/linux-x64/vfio.napi.node',
    'prebuilds/linux-arm64/vfio.napi.node', 'native/addon.cc', 'native/uapi.h', 'binding.gyp', 'scripts/build-addon.js',
    'scripts/node-gyp.js', 'lab/run.mjs', 'lab/host.mjs', 'lab/guest.mjs', 'lab/guest-init.sh', 'lab/devices.mjs',
    'lab/kernel.config', 'LICENSE', 'CHANGELOG.md', 'README.md', 'package.json']) {
    assert.ok(files.includes(f), `${f} is in the tarball`);
  }
  for (const f of files) assert.doesNotMatch(f, /^(test|bench|build|lib|node_modules|examples)\//, `${f} does not belong in the tarball`);
});

test('installed with no compiler on PATH, the prebuilt addon loads through require and import', () => {
  const bin = bareBin();
  const found = spawnSync('sh', ['-c', 'for c in g++ c++ cc gcc make python3; do command -v $c; done; true'],
    { env: { PATH: bin }, encoding: 'utf8' });
  assert.equal(found.stdout, '', 'no compiler, make or python3 on the bare PATH');
  const r = installInto('with-prebuild', tarball, bin);
  assert.equal(r.status, 0, r.stderr);
  const pkg = path.join(r.dir, 'node_modules', 'vfio');
  assert.equal(fs.existsSync(path.join(pkg, 'build')), false, 'nothing was compiled');
  const check = `const v = require('vfio'); const b = v.DmaBuffer.alloc(4096); b.store32(0, 7);
    console.log(b.load32(0), typeof v.listPciDevices()); b.free();
    import('vfio').then((m) => console.log(m.DmaBuffer === v.DmaBuffer));`;
  const run = spawnSync(process.execPath, ['-e', check], { cwd: r.dir, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(run.stdout.trim().split('\n'), ['7 object', 'true']);
  const cli = spawnSync(path.join(r.dir, 'node_modules', '.bin', 'vfio'), ['--help'], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /usage: vfio/);
  installed = r.dir;
});

test('npx vfio lab runs a script of the project against an edu in the guest', () => {
  assert.ok(installed, 'the install test ran');
  fs.writeFileSync(path.join(installed, 'probe.mjs'), `
    import { Iommufd, VfioDevice, listPciDevices } from 'vfio';
    const edus = listPciDevices().filter((d) => d.vendorId === 0x1234 && d.deviceId === 0x11e8 && d.cdevPath);
    const iommufd = Iommufd.open();
    const dev = VfioDevice.open(edus[0].bdf);
    dev.bind(iommufd);
    dev.attach(iommufd.allocIoas());
    const bar = dev.region(0).map();
    console.log('edus', edus.length, 'id', bar.read32(0).toString(16), 'from', process.cwd());
    bar.close(); dev.close(); iommufd.close();`);
  // The lab builds and caches its kernel on first use (minutes); later runs boot in seconds.
  const r = spawnSync('npx', ['vfio', 'lab', '--device', 'edu', '--timeout', '600', '--', 'node', 'probe.mjs'],
    { cwd: installed, encoding: 'utf8', timeout: 40 * 60_000, env: { ...process.env, npm_config_yes: 'true' } });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, new RegExp(`edus 2 id 10000ed from ${installed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
});

test('with neither a matching prebuild nor a compiler, the install fails with one line naming what is missing', (t) => {
  const unpacked = path.join(work, 'unpacked');
  fs.mkdirSync(unpacked);
  execFileSync('tar', ['-xzf', tarball, '-C', unpacked]);
  fs.rmSync(path.join(unpacked, 'package', 'prebuilds', `linux-${process.arch}`), { recursive: true });
  const stripped = path.join(work, 'no-prebuild.tgz');
  execFileSync('tar', ['-czf', stripped, '-C', unpacked, 'package']);
  const r = installInto('without-prebuild', stripped, bareBin());
  assert.notEqual(r.status, 0);
  const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('vfio: '));
  assert.equal(ours.length, 1, `one line from the install script:\n${r.stdout}${r.stderr}`);
  t.diagnostic(ours[0].trim());
  assert.match(ours[0], new RegExp(`no prebuilt addon for linux-${process.arch} .*a C\\+\\+ compiler \\(g\\+\\+\\), make, python3 not found on PATH.*apt-get install g\\+\\+ make python3`));
  assert.doesNotMatch(`${r.stdout}${r.stderr}`, /gyp (ERR|info)/, 'node-gyp never ran');
});
