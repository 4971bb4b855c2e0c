// Runs inside the lab guest as root (started by guest-init.sh): binds the test devices to
// vfio-pci, creates the mtty mdev, writes the device manifest, runs the job's command with
// its output on the console, and records the command's exit status for the host.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { createMdev } from 'vfio';
import { LAB_DEVICES, byPciId } from './devices.mjs';

const IO = '/run/vfio-lab';
const PCI = '/sys/bus/pci/devices';

function log(message) {
  process.stderr.write(`lab-guest: ${message}\n`);
}

function read(p) {
  return fs.readFileSync(p, 'utf8').trim();
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function waitFor(p, what) {
  for (let i = 0; i < 200; i++) {
    if (fs.existsSync(p)) return;
    sleep(10);
  }
  throw new Error(`${what}: ${p} did not appear`);
}

/** The vfio cdev of a device's sysfs dir, or null when the kernel made none. */
function cdevOf(sysDir) {
  const vfioDev = path.join(sysDir, 'vfio-dev');
  if (!fs.existsSync(vfioDev)) return null;
  const name = fs.readdirSync(vfioDev).find((n) => /^(noiommu-)?vfio\d+$/.test(n));
  if (!name || !fs.existsSync(path.join(vfioDev, name, 'dev'))) return null;
  const node = `/dev/vfio/devices/${name}`;
  waitFor(node, 'cdev node');
  return node;
}

function groupOf(sysDir) {
  const link = path.join(sysDir, 'iommu_group');
  return fs.existsSync(link) ? Number(path.basename(fs.readlinkSync(link))) : null;
}

/** The group's character device: /dev/vfio/N, or /dev/vfio/noiommu-N for vfio's noiommu groups. */
function groupPathOf(group) {
  if (group === null) return null;
  const noiommu = fs.existsSync(`/dev/vfio/noiommu-${group}`);
  return `/dev/vfio/${noiommu ? 'noiommu-' : ''}${group}`;
}

function bindToVfioPci(bdf) {
  const dir = path.join(PCI, bdf);
  const driverLink = path.join(dir, 'driver');
  if (fs.existsSync(driverLink)) {
    const driver = path.basename(fs.readlinkSync(driverLink));
    if (driver === 'vfio-pci') return;
    fs.writeFileSync(path.join(driverLink, 'unbind'), bdf);
  }
  fs.writeFileSync(path.join(dir, 'driver_override'), 'vfio-pci');
  fs.writeFileSync('/sys/bus/pci/drivers_probe', bdf);
  waitFor(path.join(dir, 'vfio-dev'), `binding ${bdf} to vfio-pci`);
}

/** Bind the PCI devices QEMU was given, create the selected mdevs, and describe them all. */
function setupDevices(kinds) {
  const devices = [];
  for (const bdf of fs.readdirSync(PCI).sort()) {
    const dir = path.join(PCI, bdf);
    const kind = byPciId(`${read(path.join(dir, 'vendor'))}:${read(path.join(dir, 'device'))}`, dir)?.kind;
    if (!kind) continue;
    bindToVfioPci(bdf);
    devices.push({
      kind,
      id: bdf,
      bdf,
      cdevPath: cdevOf(dir),
      iommuGroup: groupOf(dir),
      groupPath: groupPathOf(groupOf(dir)),
      sysfsPath: dir,
    });
  }
  for (const mdev of LAB_DEVICES.filter((d) => d.mdevType && kinds.includes(d.kind))) devices.push(...createMdevs(mdev));
  return devices;
}

function createMdevs({ kind, count, mdevParent, mdevType }) {
  const devices = [];
  if (!fs.existsSync(`/sys/class/mdev_bus/${mdevParent}`)) {
    log(`no ${kind} mdev parent ${mdevParent}; the kernel lacks its mdev sample driver`);
    return devices;
  }
  for (let i = 0; i < count; i++) {
    const mdev = createMdev(mdevParent, mdevType); // the library's own helper
    const dir = `/sys/bus/mdev/devices/${mdev.uuid}`;
    waitFor(path.join(dir, 'vfio-dev'), `${kind} vfio device`);
    devices.push({
      kind,
      id: mdev.uuid,
      bdf: null,
      cdevPath: cdevOf(dir),
      iommuGroup: mdev.iommuGroup,
      groupPath: mdev.iommuGroup === null ? null : `/dev/vfio/${mdev.iommuGroup}`,
      sysfsPath: fs.realpathSync(dir),
    });
  }
  return devices;
}

/**
 * Let every user of the guest reach `dir`: the checkout may live under a directory only its
 * owner can enter (a 0700 mktemp dir, /root), and some tests run commands as an unprivileged
 * user. Only the search bit of each ancestor changes, and only in the guest's overlay: nothing
 * reaches the host.
 */
function openPathTo(dir) {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      const mode = fs.statSync(d).mode & 0o7777;
      if ((mode & 0o001) === 0) fs.chmodSync(d, mode | 0o001);
    } catch (err) {
      log(`cannot open ${d} to other users: ${err.message}`);
    }
    if (d === path.dirname(d)) break;
  }
}

function main() {
  const job = JSON.parse(fs.readFileSync(path.join(IO, 'job.json'), 'utf8'));
  openPathTo(job.cwd);
  openPathTo(path.dirname(new URL(import.meta.url).pathname));
  let status = 1;
  try {
    const manifest = {
      kernel: read('/proc/sys/kernel/osrelease'),
      iommufd: fs.existsSync('/dev/iommu') ? '/dev/iommu' : null,
      devices: setupDevices(job.devices ?? LAB_DEVICES.map((d) => d.kind)),
    };
    const manifestPath = path.join(IO, 'manifest.json');
    fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
    const env = {
      ...job.env,
      HOME: '/root',
      VFIO_LAB: '1',
      VFIO_LAB_MANIFEST: manifestPath,
      VFIO_LAB_OUT: path.join(IO, 'out'),
      VFIO_LAB_KERNEL_RELEASE: manifest.kernel,
    };
    status = runCommand(job, env);
  } catch (err) {
    log(`setup failed: ${err && err.stack ? err.stack : err}`);
    status = 125;
  }
  return status;
}

function runCommand(job, env) {
  const [cmd, ...args] = job.argv;
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: job.cwd, env, stdio: 'inherit' });
    child.on('error', (err) => {
      log(`cannot run ${cmd}: ${err.message}`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      resolve(code !== null ? code : 128 + (os.constants.signals[signal] || 0));
    });
  });
}

const status = await main();
fs.writeFileSync(path.join(IO, 'status'), `${status}\n`);
