#!/usr/bin/env node
// The vfio lab: boots the project's own kernel in QEMU (q35, emulated VT-d, and the devices of
// devices.mjs) with the host's / as the guest's read-only root, runs one command in
// the guest, streams its output, and exits with the command's exit status.
//
//   npx vfio lab [--kernel 6.12|7.3] [--device KIND ...] [--timeout SECONDS] [--out DIR] [--] COMMAND [ARGS...]
//   node lab/run.mjs [same options] [--] COMMAND [ARGS...]   # in the vfio repository (npm run lab)
//   node lab/run.mjs [--kernel ...] --suite [FILE...]         # the repository's kernel test suite, or some files of it
//
// --kernel picks the lab kernel series (host.mjs KERNELS; default DEFAULT_KERNEL there).
//
// Files the command writes to $VFIO_LAB_OUT in the guest are copied to DIR on the host (--out).
// Environment: VFIO_LAB_TIMEOUT (seconds, default 900), VFIO_LAB_CACHE (cache dir),
// VFIO_LAB_KERNEL (use this bzImage), VFIO_LAB_DMESG=1 (print the guest's dmesg after the run).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LAB_DEVICES } from './devices.mjs';
import { DEFAULT_KERNEL, KERNELS, LAB_DIR, RUNTIME_PACKAGES, ensureKernel, ensurePackages, fail, say } from './host.mjs';

const KINDS = [...new Set(LAB_DEVICES.map((d) => d.kind))];
const USAGE = `usage: vfio lab [--kernel ${Object.keys(KERNELS).join('|')}] [--device ${KINDS.join('|')} ...] [--timeout SECONDS] ` +
  '[--out DIR] [--] COMMAND [ARGS...]\n(--device, repeatable: only those devices; default: all of them)';
/** The repository's kernel test suite (not in the package). */
const SUITE = path.join(LAB_DIR, '..', 'test', 'lab', 'suite.mjs');
const EXIT_TIMEOUT = 124;
const EXIT_NO_STATUS = 125;

function parseArgs(argv) {
  const opts = { timeout: Number(process.env.VFIO_LAB_TIMEOUT || 900), out: null, command: [], kernel: DEFAULT_KERNEL, devices: [] };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    } else if (a === '--suite') {
      if (!fs.existsSync(SUITE)) fail('--suite runs the vfio repository\'s own kernel tests, which are not in the package', 2);
      opts.command = [process.execPath, SUITE];
    } else if (a === '--device') {
      const kind = argv[++i];
      if (!KINDS.includes(kind)) fail(`--device must be one of ${KINDS.join(', ')}, got '${kind}'`, 2);
      opts.devices.push(kind);
    } else if (a === '--kernel') {
      opts.kernel = argv[++i];
      if (!KERNELS[opts.kernel]) fail(`--kernel must be one of ${Object.keys(KERNELS).join(', ')}, got '${opts.kernel}'`, 2);
    } else if (a === '--timeout') {
      opts.timeout = Number(argv[++i]);
    } else if (a === '--out') {
      opts.out = path.resolve(argv[++i] ?? '.');
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else {
      break;
    }
  }
  opts.command = [...opts.command, ...argv.slice(i)];
  if (opts.command.length === 0) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  if (!(opts.timeout > 0)) fail(`--timeout must be a positive number of seconds`, 2);
  return opts;
}

/** Resolve a command name on the host's PATH, so the guest runs the same program. */
function resolveCommand(cmd) {
  if (cmd.includes('/')) return path.resolve(cmd);
  if (cmd === 'node') return process.execPath;
  for (const dir of (process.env.PATH || '').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  fail(`command not found on PATH: ${cmd}`, 127);
}

/** The nvme's disk: 16 MiB, sparse, one per run (two labs at once must not share one). */
function nvmeImage(ioDir) {
  const img = path.join(ioDir, 'nvme.img');
  if (!fs.existsSync(img)) {
    const fd = fs.openSync(img, 'w');
    fs.ftruncateSync(fd, 16 * 1024 * 1024);
    fs.closeSync(fd);
  }
  return img;
}

function qemuArgs(kernel, ioDir, devices) {
  const append = [
    'console=ttyS0',
    'root=hostroot',
    'rootfstype=9p',
    'rootflags=trans=virtio,version=9p2000.L,cache=loose,msize=262144',
    'ro',
    `init=${path.join(LAB_DIR, 'guest-init.sh')}`,
    'intel_iommu=on',
    ...devices.flatMap((d) => d.kernelArgs ?? []),
    'panic=-1',
    'quiet',
    'loglevel=3',
    `vfio_lab_node=${process.execPath}`,
    `vfio_lab_dir=${LAB_DIR}`,
  ].join(' ');
  return [
    '-machine', 'q35,accel=tcg',
    '-cpu', 'max',
    '-m', '2G',
    '-smp', '2',
    '-display', 'none',
    '-vga', 'none',
    '-nic', 'none',
    '-monitor', 'none',
    '-serial', 'stdio',
    '-no-reboot',
    '-device', 'intel-iommu,intremap=on',
    '-kernel', kernel,
    '-append', append,
    '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,bus=pcie.0',
    '-fsdev', `local,id=labio,path=${ioDir},security_model=none,multidevs=remap`,
    '-device', 'virtio-9p-pci,fsdev=labio,mount_tag=labio,bus=pcie.0',
    ...devices.flatMap((d) => d.qemu({ nvmeImage: () => nvmeImage(ioDir) })),
  ];
}

/**
 * Under `npm run lab` the command runs from the package root, but a user in another directory
 * means files relative to where they typed it (npm's INIT_CWD): make such arguments absolute
 * when they exist there and not here.
 */
function resolveFromInitCwd(args) {
  const initCwd = process.env.INIT_CWD;
  if (!initCwd || path.resolve(initCwd) === process.cwd()) return args;
  return args.map((a) => {
    if (a.startsWith('-') || path.isAbsolute(a)) return a;
    const there = path.resolve(initCwd, a);
    return !fs.existsSync(path.resolve(a)) && fs.existsSync(there) ? there : a;
  });
}

/** Environment passed to the guest command: the host's, minus what only makes sense here. */
function guestEnv() {
  const env = { ...process.env };
  // NODE_TEST_CONTEXT: a lab started from inside a node:test file must not make the guest's own
  // test runner believe it is nested (it would then skip every file).
  for (const k of ['DISPLAY', 'SSH_AUTH_SOCK', 'XDG_RUNTIME_DIR', 'INIT_CWD', 'NODE_TEST_CONTEXT']) delete env[k];
  // The guest's stdout is a serial tty; colour only if the host's own stdout is a terminal.
  if (!process.stdout.isTTY && env.FORCE_COLOR === undefined) {
    env.NO_COLOR = '1';
    env.NODE_DISABLE_COLORS = '1';
  }
  return env;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  ensurePackages(RUNTIME_PACKAGES, 'to boot the lab guest');
  const kernel = await ensureKernel(opts.kernel);
  const ioDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-lab-'));
  fs.mkdirSync(path.join(ioDir, 'out'));
  const command = resolveFromInitCwd(opts.command);
  const devices = opts.devices.length ? LAB_DEVICES.filter((d) => opts.devices.includes(d.kind)) : LAB_DEVICES;
  const argv = [resolveCommand(command[0]), ...command.slice(1)];
  fs.writeFileSync(
    path.join(ioDir, 'job.json'),
    JSON.stringify({ argv, cwd: process.cwd(), env: guestEnv(), devices: devices.map((d) => d.kind) }),
  );

  const started = Date.now();
  const qemu = spawn('qemu-system-x86_64', qemuArgs(kernel, ioDir, devices), { stdio: ['ignore', 'pipe', 'pipe'] });
  let panic = false;
  let stderr = '';
  let pending = '';
  qemu.stdout.setEncoding('utf8');
  qemu.stdout.on('data', (chunk) => {
    const text = (pending + chunk).replace(/\r\n/g, '\n');
    // Keep a trailing '\r' until the next chunk shows whether a '\n' follows.
    pending = text.endsWith('\r') ? '\r' : '';
    const out = pending ? text.slice(0, -1) : text;
    if (/Kernel panic|end Kernel panic/.test(out)) panic = true;
    process.stdout.write(out);
  });
  qemu.stderr.setEncoding('utf8');
  qemu.stderr.on('data', (chunk) => {
    stderr += chunk;
  });

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    qemu.kill('SIGKILL');
  }, opts.timeout * 1000);
  const forward = (sig) => () => {
    qemu.kill('SIGKILL');
    process.exit(128 + os.constants.signals[sig]);
  };
  process.on('SIGINT', forward('SIGINT'));
  process.on('SIGTERM', forward('SIGTERM'));

  const [code, signal] = await new Promise((resolve) => qemu.on('close', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (pending) process.stdout.write(pending);

  if (process.env.VFIO_LAB_DMESG === '1' && fs.existsSync(path.join(ioDir, 'dmesg.txt'))) {
    process.stderr.write(`--- guest dmesg ---\n${fs.readFileSync(path.join(ioDir, 'dmesg.txt'), 'utf8')}--- end ---\n`);
  }
  const statusFile = path.join(ioDir, 'status');
  const status = fs.existsSync(statusFile) ? Number(fs.readFileSync(statusFile, 'utf8').trim()) : null;
  if (opts.out) {
    fs.mkdirSync(opts.out, { recursive: true });
    fs.cpSync(path.join(ioDir, 'out'), opts.out, { recursive: true });
  }
  fs.rmSync(ioDir, { recursive: true, force: true });

  if (timedOut) {
    if (stderr) process.stderr.write(stderr);
    fail(
      `the guest did not finish within ${opts.timeout} s and was stopped (hung guest or command); ` +
        'raise the limit with --timeout or VFIO_LAB_TIMEOUT if the command needs longer',
      EXIT_TIMEOUT,
    );
  }
  if (status === null || Number.isNaN(status)) {
    if (stderr) process.stderr.write(`qemu: ${stderr}`);
    const why = panic
      ? 'the guest kernel panicked (see the console output above)'
      : code !== 0
        ? `qemu exited with ${code ?? signal}`
        : 'the guest powered off without reporting the command status';
    fail(`${why}; the command's exit status is unknown (${seconds} s)`, EXIT_NO_STATUS);
  }
  if (code !== 0 && stderr) process.stderr.write(`qemu: ${stderr}`);
  say(`guest finished in ${seconds} s; command exit status ${status}`);
  process.exit(status);
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
