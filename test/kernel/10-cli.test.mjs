// The `vfio` command, spawned as a user would run it: stdout, stderr and exit code.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listPciDevices } from 'vfio';
import { native } from '../../dist/native.js';
import { deviceOf, devicesOf } from './lab.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const edu = deviceOf('edu');
const edu2 = devicesOf('edu')[1];
const nvme = deviceOf('nvme');

function vfio(args, { as } = {}) {
  const [cmd, argv] = as ? [as[0], [...as.slice(1), CLI, ...args]] : [CLI, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.error, undefined, String(r.error));
  return r;
}

/**
 * Run several invocations at once (the guest has two CPUs; Node's startup dominates). Only for
 * invocations that do not open the same device: a device is bound by one fd at a time.
 */
function vfioAll(argsList) {
  return Promise.all(argsList.map((args) => new Promise((resolve) => {
    execFile(CLI, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? err.code : 0, stdout, stderr });
    });
  })));
}

function entryOf(bdf) {
  return listPciDevices().find((d) => d.bdf === bdf);
}

function assertOneLineError(r, pattern) {
  assert.equal(r.status, 1, `exit ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^vfio: /);
  assert.match(lines[0], pattern);
}

function assertUsage(r, pattern) {
  assert.equal(r.status, 2, `exit ${r.status}: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.match(r.stderr, /usage: vfio <command>/);
  assert.equal(r.stdout, '');
}

/** A PCI function the lab leaves without any driver (the ICH9 SMBus controller). */
function driverless() {
  const d = listPciDevices().find((p) => p.driver === null && p.classCode >> 16 !== 0x06);
  assert.ok(d, 'the lab has a non-bridge PCI function without a driver');
  return d.bdf;
}

test('list prints a table with every test device, its driver and cdev', () => {
  const r = vfio(['list']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^BDF\s+ID\s+CLASS\s+DRIVER\s+GROUP\s+CDEV/);
  for (const d of [...devicesOf('edu'), nvme]) {
    assert.match(r.stdout, new RegExp(`${d.bdf.replace('.', '\\.')}\\s+\\S+\\s+\\S+\\s+vfio-pci\\s+${d.iommuGroup}\\s+${d.cdevPath}`));
  }
  const nio = deviceOf('edu-noiommu');
  assert.match(r.stdout, new RegExp(`${nio.bdf.replace('.', '\\.')}\\s+\\S+\\s+\\S+\\s+vfio-pci\\s+noiommu-${nio.iommuGroup}\\s+${nio.cdevPath ?? '-'}`),
    'the noiommu edu shows its noiommu group');
});

test('list --json is parseable and stable', () => {
  const r = vfio(['list', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const list = JSON.parse(r.stdout);
  const e = list.find((d) => d.bdf === edu.bdf);
  assert.deepEqual(Object.keys(e), ['bdf', 'vendorId', 'deviceId', 'classCode', 'driver', 'iommuGroup', 'cdevPath', 'noiommu',
    'physfn', 'totalVfs']);
  assert.deepEqual(e, { bdf: edu.bdf, vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00, driver: 'vfio-pci',
    iommuGroup: edu.iommuGroup, cdevPath: edu.cdevPath, noiommu: false, physfn: null, totalVfs: null });
  const nio = deviceOf('edu-noiommu');
  assert.equal(list.find((d) => d.bdf === nio.bdf).noiommu, true);
});

test('info shows the device, its driver, group, cdev, regions and IRQs', () => {
  const r = vfio(['info', edu.bdf]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`driver vfio-pci, IOMMU group ${edu.iommuGroup}, cdev ${edu.cdevPath}`));
  assert.match(r.stdout, /0\s+BAR0\s+1048576\s+0x0\s+read,write,mmap/);
  assert.match(r.stdout, /7\s+CONFIG\s+256\s+0x70000000000\s+read,write/);
  assert.match(r.stdout, /1\s+MSI\s+1\s+eventfd/);
});

test('info --json gives regions and IRQs as data', () => {
  const r = vfio(['info', nvme.bdf, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.bdf, nvme.bdf);
  assert.equal(info.cdevPath, nvme.cdevPath);
  assert.equal(info.canReset, true);
  const bar0 = info.regions.find((x) => x.index === 0);
  assert.equal(bar0.name, 'BAR0');
  assert.equal(bar0.mmappable, true);
  assert.equal(bar0.msixMappable, true);
  assert.equal(bar0.offset, '0x0');
  assert.ok(info.irqs.find((q) => q.name === 'MSI-X').count > 0);
});

test('probe walks the cdev lifecycle and exits 0 when the kernel behaves as documented', () => {
  const r = vfio(['probe', edu.bdf]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const step of ['GET_INFO before bind\\s+EINVAL', 'pread before bind\\s+EINVAL', 'pwrite before bind\\s+EINVAL',
    'mmap before bind\\s+EINVAL', 'VFIO_DEVICE_BIND_IOMMUFD\\s+ok, devid', 'second BIND on the same fd\\s+EINVAL',
    'VFIO_DEVICE_ATTACH_IOMMUFD_PT\\s+ok', 'IOMMU_IOAS_MAP 4 KiB\\s+ok', 'VFIO_DEVICE_DETACH_IOMMUFD_PT\\s+ok']) {
    assert.match(r.stdout, new RegExp(`^ok\\s+${step}`, 'm'));
  }
  assert.match(r.stdout, /the kernel behaved as documented/);
});

test('probe --json reports every step', () => {
  const r = vfio(['probe', nvme.bdf, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.ok, true);
  assert.equal(out.cdevPath, nvme.cdevPath);
  assert.ok(out.steps.length >= 10);
  assert.deepEqual(out.steps[1], { step: 'GET_INFO before bind', result: 'EINVAL', expected: 'EINVAL', ok: true });
});

test('probe exits 1 and names the cause when bind is refused (group fd open elsewhere)', () => {
  const group = native.groupOpen(edu.groupPath);
  let r;
  try {
    r = vfio(['probe', edu.bdf]);
  } finally {
    native.groupClose(group);
  }
  assert.match(r.stdout, /^FAIL VFIO_DEVICE_BIND_IOMMUFD\s+EBUSY/m);
  assertOneLineError(r, /probe failed at VFIO_DEVICE_BIND_IOMMUFD: .*group/);
});

test('an unknown bdf is one line on stderr and exit 1', async () => {
  for (const r of await vfioAll([['info', '0000:00:1e.7'], ['bind', '0000:00:1e.7']])) {
    assertOneLineError(r, /no PCI device 0000:00:1e\.7.*vfio list/);
  }
});

test('a malformed bdf is a usage error: usage and exit 2', () => {
  assertUsage(vfio(['probe', 'not-a-bdf']), /'not-a-bdf' is not a PCI address/);
});

test('a device without a VFIO driver: one line naming the fix', () => {
  const bdf = driverless();
  assertOneLineError(vfio(['info', bdf]), new RegExp(`${bdf.replace('.', '\\.')} has no driver bound.*vfio bind ${bdf.replace('.', '\\.')}`));
});

test('usage errors: no command, unknown command, unknown option, missing bdf', async () => {
  const [none, unknown, option, missing] = await vfioAll([[], ['frobnicate'], ['list', '--yaml'], ['info']]);
  assertUsage(none, /no command given/);
  assertUsage(unknown, /unknown command 'frobnicate'/);
  assertUsage(option, /unknown option --yaml/);
  assertUsage(missing, /exactly one <bdf>/);
});

test('unbind and bind move a device between no driver and vfio-pci', () => {
  let r = vfio(['unbind', edu2.bdf]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /unbound from vfio-pci, no driver/);
  assert.equal(entryOf(edu2.bdf).driver, null);
  assert.equal(entryOf(edu2.bdf).cdevPath, null);
  r = vfio(['bind', edu2.bdf]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /bound to vfio-pci, cdev \/dev\/vfio\/devices\/vfio\d+/);
  assert.equal(entryOf(edu2.bdf).driver, 'vfio-pci');
  assert.ok(entryOf(edu2.bdf).cdevPath);
});

test('bind refuses a device another driver has unless --force', () => {
  // nvme goes back to the kernel's nvme driver, then is taken back with --force.
  let r = vfio(['unbind', nvme.bdf]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /now bound to nvme/);
  try {
    assertOneLineError(vfio(['bind', nvme.bdf]), /bound to nvme.*--force/);
  } finally {
    r = vfio(['bind', nvme.bdf, '--force']);
  }
  assert.equal(r.status, 0, r.stderr);
  assert.equal(entryOf(nvme.bdf).driver, 'vfio-pci');
  assert.ok(entryOf(nvme.bdf).cdevPath);
});

test('unbind of a device vfio-pci does not have says so and exits 1', () => {
  const free = listPciDevices().find((d) => d.driver === null);
  assert.ok(free, 'the lab has a PCI function with no driver (a host bridge)');
  assertOneLineError(vfio(['unbind', free.bdf]), new RegExp(`${free.bdf.replace('.', '\\.')} is not bound to vfio-pci \\(it has no driver\\)`));
  const owned = listPciDevices().find((d) => d.driver !== null && d.driver !== 'vfio-pci');
  assertOneLineError(vfio(['unbind', owned.bdf]), new RegExp(`is not bound to vfio-pci \\(its driver is ${owned.driver}\\)`));
  assert.equal(entryOf(owned.bdf).driver, owned.driver, 'left alone');
});

test('a bind vfio-pci refuses is rolled back: no driver_override left behind', () => {
  // vfio-pci takes no bridges: a PCIe root port (driverless in the lab kernel) is refused.
  const port = listPciDevices().find((d) => d.classCode >> 8 === 0x0604 && d.driver === null)?.bdf;
  assert.ok(port, 'the lab has a root port with no driver');
  const dir = `/sys/bus/pci/devices/${port}`;
  assertOneLineError(vfio(['bind', port]), /did not bind to vfio-pci \(vfio-pci refused it: .*no bridges/);
  assert.equal(fs.readFileSync(`${dir}/driver_override`, 'utf8').trim(), '(null)', 'no override left behind');
  assert.equal(fs.existsSync(`${dir}/driver`), false, 'still no driver');
});

test('list says when the kernel has no iommufd (here: /dev hidden in a mount namespace)', () => {
  const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && exec ${CLI} list`],
    { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^BDF\s+ID/m, 'the table still prints');
  assert.match(r.stderr, /^vfio: note: no \/dev\/iommu: this kernel has no iommufd .*CONFIG_IOMMUFD/m);
  const plain = vfio(['list']);
  assert.doesNotMatch(plain.stderr, /note:/, 'no note when the kernel has what it needs');
});

test('list says when devices on vfio-pci have no cdev (here: their vfio-dev dirs hidden in a mount namespace)', () => {
  const hide = devicesOf('edu').map((d) => `mount --bind /run/empty-vfio-dev ${d.sysfsPath}/vfio-dev`).join(' && ');
  const r = spawnSync('unshare', ['-m', 'sh', '-c', `mkdir -p /run/empty-vfio-dev && ${hide} && exec ${CLI} list`],
    { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^vfio: note: devices on vfio-pci have no cdev .*CONFIG_VFIO_DEVICE_CDEV=y; use the group path/m);
});

test('permission denied as an unprivileged user names root or a udev rule', () => {
  const r = vfio(['probe', edu.bdf], { as: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] });
  assertOneLineError(r, /EACCES: permission denied, open '\/dev\/(iommu|vfio\/devices\/vfio\d+)' .*run as root, or .*udev rule.*SUBSYSTEM=="vfio"/);
});

test('an RLIMIT_MEMLOCK too low to pin DMA memory is named with the fix', () => {
  const nodes = ['/dev/iommu', edu.cdevPath];
  const modes = nodes.map((n) => fs.statSync(n).mode & 0o777);
  nodes.forEach((n) => fs.chmodSync(n, 0o666));
  try {
    const r = vfio(['probe', edu.bdf], {
      as: ['prlimit', '--memlock=0:0', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
    });
    assert.match(r.stdout, /^FAIL IOMMU_IOAS_MAP 4 KiB\s+ENOMEM/m);
    assertOneLineError(r, /probe failed at IOMMU_IOAS_MAP 4 KiB: ENOMEM: .*IOMMU_IOAS_MAP .*RLIMIT_MEMLOCK.*ulimit -l/);
  } finally {
    nodes.forEach((n, i) => fs.chmodSync(n, modes[i]));
  }
});

test('info and probe take an mdev UUID (mtty)', () => {
  const mtty = deviceOf('mtty');
  // One after the other: both bind the device, and the kernel refuses a second open binding.
  const info = vfio(['info', mtty.id, '--json']);
  const probe = vfio(['probe', mtty.id, '--json']);
  assert.equal(info.status, 0, info.stderr);
  const i = JSON.parse(info.stdout);
  assert.equal(i.uuid, mtty.id);
  assert.equal(i.type, 'mtty-2');
  assert.equal(i.cdevPath, mtty.cdevPath);
  const bar0 = i.regions.find((r) => r.index === 0);
  assert.equal(bar0.size, 8);
  assert.equal(bar0.mmappable, false);
  assert.deepEqual(i.irqs.map((q) => q.name), ['INTx', 'MSI']);
  assert.equal(probe.status, 0, probe.stdout + probe.stderr);
  assert.equal(JSON.parse(probe.stdout).ok, true);
  assertUsage(vfio(['bind', mtty.id]), /not a PCI address/);
});

test('vfio nvme identify and smart read the lab controller, as a table and as JSON', () => {
  const json = vfio(['nvme', 'identify', nvme.bdf, '--json']);
  assert.equal(json.status, 0, json.stderr);
  const id = JSON.parse(json.stdout);
  assert.equal(id.serial, 'vfiolab');
  assert.deepEqual(id.namespaces, [{ nsid: 1, blockCount: '32768', blockSize: 512 }]);
  const text = vfio(['nvme', 'identify', nvme.bdf]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /serial vfiolab/);
  const smart = vfio(['--json', 'nvme', 'smart', nvme.bdf]);
  assert.equal(smart.status, 0, smart.stderr);
  assert.ok(JSON.parse(smart.stdout).temperatureK > 200);
  assertUsage(vfio(['nvme', 'frob', nvme.bdf]), /nvme takes identify, smart or perf/);
});

test('vfio nvme perf runs polled I/O and reports IOPS, bandwidth and latency percentiles', () => {
  const r = vfio(['nvme', 'perf', nvme.bdf, '--time', '1', '--qd', '4', '--queues', '2', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const p = JSON.parse(r.stdout);
  assert.equal(p.rw, 'randread');
  assert.deepEqual([p.bs, p.qd, p.queues], [4096, 4, 2]);
  assert.ok(p.ios > 0 && p.iops > 0 && p.mibps > 0);
  assert.ok(p.latencyUs.p50 > 0 && p.latencyUs.p50 <= p.latencyUs.p99 && p.latencyUs.p99 <= p.latencyUs.max);
  const w = vfio(['nvme', 'perf', nvme.bdf, '--rw', 'write', '--bs', '8192', '--time', '1', '--qd', '2']);
  assert.equal(w.status, 0, w.stderr);
  assert.match(w.stdout, /write bs 8192 qd 2 x 1 queue.*\n.*IOPS, .* MiB\/s; latency p50 .* us, p99 .* us, max .* us/);
  assertUsage(vfio(['nvme', 'perf', nvme.bdf, '--qd', '0']), /--qd must be an integer from 1/);
  assertUsage(vfio(['nvme', 'perf', nvme.bdf, '--rw', 'sideways']), /--rw must be one of/);
});
