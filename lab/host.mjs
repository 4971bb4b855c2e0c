// Host-side helpers for the lab: the cache, Debian packages, and the lab kernel.
// Used by lab/run.mjs; nothing here runs inside the guest.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from './cache-dir.cjs';

export const LAB_DIR = path.dirname(fileURLToPath(import.meta.url));
/**
 * The lab kernels, by series: Debian's source package, and for one the machine's apt does not
 * carry, the repository it comes from (read through a private sources list and package lists in
 * the lab cache, checked against the machine's Debian keyring; the machine's own apt sources are
 * never touched). `objects` is how many files a build compiles, for the progress line.
 */
export const KERNELS = Object.freeze({
  '6.12': { package: 'linux-source-6.12', repo: null, objects: 1380, config: ['kernel.config'] },
  '7.3': {
    package: 'linux-source-7.3',
    repo: 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main',
    objects: 1460,
    // The newest kernel also carries the kernel's mock IOMMU (CONFIG_IOMMUFD_TEST), so the HWPT
    // features QEMU's VT-d lacks are tested against the real iommufd core, and P2P DMA (dma-buf).
    config: ['kernel.config', 'kernel-mock-iommu.config', 'kernel-p2p-dma.config'],
  },
});
/** The series `npm run lab` uses when none is named: the newest. (`npm test` runs them all.) */
export const DEFAULT_KERNEL = '7.3';

/** Print a lab message on stderr, prefixed so it stands out from guest output. */
export function say(message) {
  process.stderr.write(`lab: ${message}\n`);
}

/** Stop the lab with a message that says what went wrong and how to fix it. */
export function fail(message, code = 1) {
  process.stderr.write(`lab: error: ${message}\n`);
  process.exit(code);
}

/** The cache directory, outside the repo: $VFIO_LAB_CACHE or ~/.cache/vfio-lab. */
export { cacheDir };

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error) throw r.error;
  return r;
}

function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function missingPackages(packages) {
  return packages.filter((p) => {
    const r = run('dpkg-query', ['-W', '-f=${Status}', p]);
    return r.status !== 0 || !r.stdout.includes('install ok installed');
  });
}

/**
 * Make sure the given Debian packages are installed: install them when running as root,
 * otherwise stop with the exact command to run.
 */
export function ensurePackages(packages, why) {
  const missing = missingPackages(packages);
  if (missing.length === 0) return;
  const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (!isRoot()) {
    fail(`the lab needs ${missing.join(', ')} (${why}); install them as root:\n    sudo ${line}`);
  }
  say(`installing ${missing.join(' ')} (${why})`);
  let r = run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (r.status !== 0) {
    say('apt-get install failed; refreshing the package lists once and retrying');
    run('apt-get', ['update', '-q'], { stdio: 'inherit' });
    r = run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  if (r.status !== 0) fail(`could not install ${missing.join(' ')}; run: ${line}`);
}

export const RUNTIME_PACKAGES = ['qemu-system-x86', 'busybox-static'];
export const KERNEL_BUILD_PACKAGES = [
  'bc', 'bison', 'flex', 'libelf-dev', 'libssl-dev', 'cpio', 'xz-utils', 'gcc', 'make',
];

/** apt options that read `k.repo` through a private sources list and lists in the cache. */
function aptOptions(k) {
  if (!k.repo) return [];
  const dir = path.join(cacheDir(), 'apt', k.package);
  const lists = path.join(dir, 'lists');
  fs.mkdirSync(path.join(lists, 'partial'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'cache', 'archives', 'partial'), { recursive: true });
  const sources = path.join(dir, 'sources.list');
  if (!fs.existsSync(sources) || fs.readFileSync(sources, 'utf8') !== `${k.repo}\n`) fs.writeFileSync(sources, `${k.repo}\n`);
  return ['-o', `Dir::Etc::SourceList=${sources}`, '-o', 'Dir::Etc::SourceParts=/nonexistent',
    '-o', `Dir::State::Lists=${lists}`, '-o', `Dir::Cache=${path.join(dir, 'cache')}`, '-o', 'Debug::NoLocking=1'];
}

/** Refresh the private package lists of `k` when they are missing or a day old; a problem, or null. */
function refreshLists(k) {
  if (!k.repo) return null;
  const options = aptOptions(k);
  const lists = path.join(cacheDir(), 'apt', k.package, 'lists');
  const stamp = fs.readdirSync(lists).filter((f) => f.endsWith('Packages') || f.endsWith('InRelease'))
    .map((f) => fs.statSync(path.join(lists, f)).mtimeMs).sort().pop() ?? 0;
  if (Date.now() - stamp < 24 * 3600 * 1000) return null;
  say(`reading the package list of ${k.repo.replace(/^deb \[[^\]]*\] /, '')} (private to the lab cache)`);
  const r = run('apt-get', [...options, 'update', '-q', '--error-on=any'], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status === 0) return null;
  return `could not read the package list for ${k.package} from ${k.repo}:\n${(r.stderr || '').trim()}\n` +
    'check the network, or set VFIO_LAB_KERNEL to a bzImage built with lab/kernel.config (in the vfio package)';
}

/**
 * One Debian package's files, unpacked into the lab cache (`<cache>/unpacked/<package>/<version>`),
 * fetched through the same private sources list as a kernel from `repo`; the directory, or
 * `{ problem }` saying why there is none.
 */
export function debianPackageFiles(pkg, repo) {
  const k = { package: pkg, repo };
  const problem = refreshLists(k);
  const options = aptOptions(k);
  const show = run('apt-cache', [...options, 'show', '--no-all-versions', pkg]);
  const version = /^Version:\s*(\S+)/m.exec(show.stdout || '')?.[1];
  if (!version) return { problem: problem ?? `${repo} has no ${pkg}` };
  const dir = path.join(cacheDir(), 'unpacked', pkg, version);
  if (fs.existsSync(path.join(dir, '.done'))) return { dir: path.join(dir, 'files') };
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const download = run('apt-get', [...options, 'download', '-q', `${pkg}=${version}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const deb = fs.readdirSync(dir).find((f) => f.endsWith('.deb'));
  if (download.status !== 0 || !deb) return { problem: `could not download ${pkg} ${version}: ${(download.stderr || '').trim()}` };
  const unpack = run('dpkg-deb', ['-x', deb, 'files'], { cwd: dir });
  if (unpack.status !== 0) return { problem: `could not unpack ${deb}: ${(unpack.stderr || '').trim()}` };
  fs.rmSync(path.join(dir, deb));
  fs.writeFileSync(path.join(dir, '.done'), `${version}\n`);
  return { dir: path.join(dir, 'files') };
}

/**
 * The Debian version of the kernel source to build ($VFIO_LAB_KERNEL_VERSION or apt's
 * candidate) as `{ version }`, or `{ version: null, problem }` saying why there is none.
 */
export function sourceVersion(k) {
  if (process.env.VFIO_LAB_KERNEL_VERSION) return { version: process.env.VFIO_LAB_KERNEL_VERSION, problem: null };
  const problem = refreshLists(k);
  const r = run('apt-cache', [...aptOptions(k), 'show', '--no-all-versions', k.package]);
  const m = /^Version:\s*(\S+)/m.exec(r.stdout || '');
  if (m) return { version: m[1], problem: null };
  return { version: null, problem: problem ?? (k.repo
    ? `${k.repo} has no ${k.package}; set VFIO_LAB_KERNEL to a bzImage built with lab/kernel.config (in the vfio package)`
    : `apt does not know ${k.package}; refresh the package lists as root (apt-get update) ` +
      'or set VFIO_LAB_KERNEL to a bzImage built with lab/kernel.config (in the vfio package)') };
}

/** The config fragment of a series: its files in lab/, in order, joined. */
function fragmentText(k) {
  return k.config.map((f) => fs.readFileSync(path.join(LAB_DIR, f), 'utf8')).join('\n');
}

/** Options the fragment requires, as `[name, value]`, value `'n'` for "is not set". */
function requiredOptions(fragment) {
  const out = [];
  for (const line of fragment.split('\n')) {
    let m = /^(CONFIG_\w+)=(.*)$/.exec(line.trim());
    if (m) out.push([m[1], m[2]]);
    m = /^# (CONFIG_\w+) is not set$/.exec(line.trim());
    if (m) out.push([m[1], 'n']);
  }
  return out;
}

/** The config symbols a source tree's Kconfig files define (an option can go away: PROC_SYSCTL in 7.x). */
function knownSymbols(tree) {
  const r = run('grep', ['-rhoE', '--include=Kconfig*', '^[[:space:]]*(menu)?config [A-Za-z0-9_]+', '.'], { cwd: tree, maxBuffer: 64 << 20 });
  return new Set((r.stdout || '').split('\n').map((l) => `CONFIG_${l.trim().split(/\s+/)[1]}`));
}

function checkConfig(configPath, fragment, tree) {
  const config = fs.readFileSync(configPath, 'utf8');
  const known = knownSymbols(tree);
  const bad = [];
  for (const [name, value] of requiredOptions(fragment)) {
    if (!known.has(name)) continue; // not an option of this kernel
    const has = new RegExp(`^${name}=(.*)$`, 'm').exec(config);
    const actual = has ? has[1] : 'n';
    if (actual !== value) bad.push(`${name} wanted ${value}, got ${actual}`);
  }
  return bad;
}

/** The cache key of the kernel: Debian source version + hash of the config fragment. */
function kernelKey(version, fragment) {
  const hash = createHash('sha256').update(fragment).digest('hex').slice(0, 12);
  return `${version.replace(/[^A-Za-z0-9.+-]/g, '_')}-${hash}`;
}

function newestCachedKernel(kernelsDir, fragment, series) {
  const hash = createHash('sha256').update(fragment).digest('hex').slice(0, 12);
  if (!fs.existsSync(kernelsDir)) return null;
  const hits = fs
    .readdirSync(kernelsDir)
    .filter((d) => d.startsWith(`${series}.`) && d.endsWith(`-${hash}`) && fs.existsSync(path.join(kernelsDir, d, 'bzImage')))
    .sort();
  return hits.length ? path.join(kernelsDir, hits[hits.length - 1], 'bzImage') : null;
}

/**
 * Return the path of the lab kernel of `series` (a key of KERNELS), building it on first use.
 * The built bzImage is cached under <cache>/kernels/<version>-<fragment hash>/, so later runs
 * skip the build.
 */
export async function ensureKernel(series = DEFAULT_KERNEL) {
  const k = KERNELS[series];
  if (!k) fail(`--kernel must be one of ${Object.keys(KERNELS).join(', ')}, got '${series}'`, 2);
  if (process.env.VFIO_LAB_KERNEL) {
    if (!fs.existsSync(process.env.VFIO_LAB_KERNEL)) {
      fail(`VFIO_LAB_KERNEL=${process.env.VFIO_LAB_KERNEL} does not exist`);
    }
    return process.env.VFIO_LAB_KERNEL;
  }
  const cache = cacheDir();
  const fragment = fragmentText(k);
  const kernelsDir = path.join(cache, 'kernels');
  const { version, problem } = sourceVersion(k);
  if (!version) {
    const cached = newestCachedKernel(kernelsDir, fragment, series);
    if (cached) {
      say(`${problem.split('\n')[0]}; using the cached ${path.basename(path.dirname(cached))}`);
      return cached;
    }
    fail(problem);
  }
  const key = kernelKey(version, fragment);
  const image = path.join(kernelsDir, key, 'bzImage');
  if (fs.existsSync(image)) return image;

  ensurePackages(KERNEL_BUILD_PACKAGES, 'to build the lab kernel');
  say(`building the lab kernel ${k.package} ${version} (first run only; 6-10 minutes on 2 cores)`);
  const started = Date.now();
  const work = fs.mkdtempSync(path.join(cache, 'build-'));
  try {
    const tree = await fetchSource(cache, k, version, work);
    await configure(tree, fragment);
    await buildImage(tree, k.objects);
    const out = path.join(kernelsDir, key);
    const tmp = `${out}.tmp-${process.pid}`;
    fs.mkdirSync(tmp, { recursive: true });
    fs.copyFileSync(path.join(tree, 'arch/x86/boot/bzImage'), path.join(tmp, 'bzImage'));
    fs.copyFileSync(path.join(tree, '.config'), path.join(tmp, 'config'));
    fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    say(`kernel built in ${Math.round((Date.now() - started) / 1000)} s, cached at ${out}`);
    return image;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function fetchSource(cache, k, version, work) {
  const SOURCE_PACKAGE = k.package;
  const debs = path.join(cache, 'debs');
  fs.mkdirSync(debs, { recursive: true });
  const deb = fs
    .readdirSync(debs)
    .find((f) => f.startsWith(`${SOURCE_PACKAGE}_`) && f.includes(version.replace(/:/g, '%3a')));
  let debPath = deb ? path.join(debs, deb) : null;
  if (!debPath) {
    say(`downloading ${SOURCE_PACKAGE}=${version} with apt-get download (~150 MB)`);
    const r = run('apt-get', [...aptOptions(k), 'download', `${SOURCE_PACKAGE}=${version}`], { cwd: debs, stdio: 'inherit' });
    if (r.status !== 0) fail(`apt-get download ${SOURCE_PACKAGE}=${version} failed`);
    const found = fs.readdirSync(debs).find((f) => f.startsWith(`${SOURCE_PACKAGE}_`) && f.endsWith('.deb'));
    if (!found) fail(`apt-get download left no ${SOURCE_PACKAGE} .deb in ${debs}`);
    // Keep only the newest download of this package to bound the cache size.
    for (const f of fs.readdirSync(debs)) {
      if (f !== found && f.startsWith(`${SOURCE_PACKAGE}_`)) fs.rmSync(path.join(debs, f), { force: true });
    }
    debPath = path.join(debs, found);
  }
  say('extracting the kernel source');
  const pkgDir = path.join(work, 'pkg');
  let r = run('dpkg-deb', ['-x', debPath, pkgDir], { stdio: 'inherit' });
  if (r.status !== 0) fail(`dpkg-deb -x ${debPath} failed`);
  const tarball = path.join(pkgDir, 'usr/src', `${SOURCE_PACKAGE}.tar.xz`);
  r = run('tar', ['-xJf', tarball, '-C', work], { stdio: 'inherit' });
  if (r.status !== 0) fail(`extracting ${tarball} failed`);
  fs.rmSync(pkgDir, { recursive: true, force: true });
  return path.join(work, SOURCE_PACKAGE);
}

function make(tree, args) {
  const r = run('make', ['-s', ...args], { cwd: tree, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) fail(`make ${args.join(' ')} failed in ${tree}`);
}

async function configure(tree, fragment) {
  make(tree, ['allnoconfig']);
  const fragPath = path.join(tree, 'vfio-lab.config');
  fs.writeFileSync(fragPath, fragment);
  const r = run('scripts/kconfig/merge_config.sh', ['-m', '-O', tree, '.config', fragPath], {
    cwd: tree,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status !== 0) fail('merging the kernel config fragment (lab/kernel*.config) failed');
  make(tree, ['olddefconfig']);
  const bad = checkConfig(path.join(tree, '.config'), fragment, tree);
  if (bad.length) fail(`the kernel config does not have what lab/kernel*.config ask:\n  ${bad.join('\n  ')}`);
}

// `expected`: the number of objects `make bzImage` compiles for this config (KERNELS), used only
// to show a rough percentage while building.
function buildImage(tree, expected) {
  return new Promise((resolve) => {
    const jobs = String(os.availableParallelism ? os.availableParallelism() : os.cpus().length);
    const child = spawn('make', [`-j${jobs}`, 'bzImage'], { cwd: tree, stdio: ['ignore', 'pipe', 'pipe'] });
    const started = Date.now();
    let compiled = 0;
    let tail = [];
    let lastReport = 0;
    const onLine = (line) => {
      tail.push(line);
      if (tail.length > 40) tail = tail.slice(-40);
      if (/^\s+CC\s/.test(line)) compiled++;
      const now = Date.now();
      if (now - lastReport > 15000) {
        lastReport = now;
        const pct = Math.min(99, Math.round((compiled / expected) * 100));
        say(`building kernel: ${compiled} files compiled (~${pct}%), ${Math.round((now - started) / 1000)} s`);
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
    child.on('close', (code) => {
      if (code !== 0) {
        process.stderr.write(tail.join('\n') + '\n');
        fail(`make bzImage failed (exit ${code}); the last lines of its output are above`);
      }
      say(`building kernel: done, ${compiled} files compiled`);
      resolve();
    });
  });
}
