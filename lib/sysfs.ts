import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, optionsObject } from './args';
import { EBUSY, EINVAL, ENODEV, ENOENT, VfioError } from './errors';

/** One PCI function as sysfs describes it. */
export interface PciDeviceInfo {
  /** Full address, e.g. `'0000:00:03.0'`. */
  bdf: string;
  vendorId: number;
  deviceId: number;
  /** 24-bit class code, e.g. `0x010802` for NVMe. */
  classCode: number;
  /** Bound driver name, or null. */
  driver: string | null;
  iommuGroup: number | null;
  /**
   * `/dev/vfio/devices/vfioN` when the device has a VFIO cdev (`noiommu-vfioN` for a noiommu
   * device on Linux 7.3+), else null.
   */
  cdevPath: string | null;
  /**
   * Whether vfio made the device an unsafe noiommu device (no IOMMU; vfio's
   * enable_unsafe_noiommu_mode): its group is `/dev/vfio/noiommu-<iommuGroup>`.
   */
  noiommu: boolean;
  /** For an SR-IOV virtual function: its physical function's address, else null. */
  physfn: string | null;
  /** For an SR-IOV physical function: how many VFs it can have (sriov_totalvfs), else null. */
  totalVfs: number | null;
}

const PCI_DEVICES = '/sys/bus/pci/devices';
const BDF_RE = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/i;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const VFIO_DRIVERS = /^vfio(-|_|$)|^mtty$|^mbochs$|^mdpy$/;

/** Normalise a PCI address: `'00:03.0'` becomes `'0000:00:03.0'`. Throws TypeError if malformed. */
export function normalizeBdf(bdf: string): string {
  if (typeof bdf !== 'string') throw new TypeError(`bdf must be a string, got ${describe(bdf)}`);
  const m = BDF_RE.exec(bdf.trim());
  if (!m) throw new TypeError(`'${bdf}' is not a PCI address (expected DDDD:BB:DD.F, e.g. 0000:00:03.0)`);
  return `${(m[1] ?? '0000').toLowerCase()}:${m[2].toLowerCase()}:${m[3].toLowerCase()}.${m[4]}`;
}

/** Whether a string is a PCI address. */
export function isBdf(s: string): boolean {
  return BDF_RE.test(s.trim());
}

/** Whether a string is an mdev UUID. */
export function isMdevUuid(s: string): boolean {
  return UUID_RE.test(s.trim());
}

function readText(p: string): string | null {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return null;
  }
}

function linkBase(p: string): string | null {
  try {
    return path.basename(fs.readlinkSync(p));
  } catch {
    return null;
  }
}

/** The cdev of a device sysfs dir, or a reason there is none. */
function cdevOf(sysDir: string): { path: string } | { reason: 'no-vfio-dev' | 'no-cdev' } {
  const vfioDev = path.join(sysDir, 'vfio-dev');
  let names: string[];
  try {
    names = fs.readdirSync(vfioDev).filter((n) => /^(noiommu-)?vfio\d+$/.test(n));
  } catch {
    return { reason: 'no-vfio-dev' };
  }
  const name = names.find((n) => fs.existsSync(path.join(vfioDev, n, 'dev')));
  if (!name) return { reason: names.length ? 'no-cdev' : 'no-vfio-dev' };
  return { path: `/dev/vfio/devices/${name}` };
}

function describeDevice(bdf: string): PciDeviceInfo {
  const dir = path.join(PCI_DEVICES, bdf);
  const num = (f: string): number => Number.parseInt(readText(path.join(dir, f)) ?? '0', 16);
  const group = linkBase(path.join(dir, 'iommu_group'));
  const cdev = cdevOf(dir);
  return {
    bdf,
    vendorId: num('vendor'),
    deviceId: num('device'),
    classCode: num('class'),
    driver: linkBase(path.join(dir, 'driver')),
    iommuGroup: group === null ? null : Number(group),
    cdevPath: 'path' in cdev ? cdev.path : null,
    noiommu: group !== null && isNoiommuGroup(group),
    physfn: linkBase(path.join(dir, 'physfn')),
    totalVfs: readNumber(path.join(dir, 'sriov_totalvfs')),
  };
}

/** vfio names the IOMMU groups it makes for noiommu devices 'vfio-noiommu'. */
function isNoiommuGroup(group: string): boolean {
  return readText(`/sys/kernel/iommu_groups/${group}/name`) === 'vfio-noiommu';
}

function readNumber(p: string): number | null {
  const t = readText(p);
  return t === null ? null : Number(t);
}

/** The sysfs directory of an existing PCI device. */
function pciDir(bdf: string): [string, string] {
  const name = normalizeBdf(bdf);
  const dir = path.join(PCI_DEVICES, name);
  if (!fs.existsSync(dir)) throw notFound(name);
  return [name, dir];
}

/** How many VFs the physical function `pf` supports (sriov_totalvfs); 0 when it is not SR-IOV capable. */
export function sriovTotalVfs(pf: string): number {
  const [, dir] = pciDir(pf);
  return readNumber(path.join(dir, 'sriov_totalvfs')) ?? 0;
}

/**
 * Create `n` VFs on `pf` (0 removes them; sriov_numvfs). The kernel refuses a change from one
 * nonzero count to another (EBUSY): go through 0. A PF on vfio-pci needs vfio-pci's
 * enable_sriov=1. `{ autoprobe: false }` keeps drivers off the new VFs (sriov_drivers_autoprobe),
 * so they can go straight to vfio-pci. Needs root.
 */
export function setSriovNumVfs(pf: string, n: number, options?: { autoprobe?: boolean }): void {
  const [name, dir] = pciDir(pf);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`n must be a count of VFs, got ${describe(n)}`);
  const total = readNumber(path.join(dir, 'sriov_totalvfs'));
  if (total === null) {
    throw new VfioError({ errno: ENODEV, syscall: 'write', code: 'ENODEV', path: dir, message: `ENODEV: ${name} has no SR-IOV capability` });
  }
  if (n > total) throw new RangeError(`n: ${name} supports at most ${total} VFs, got ${n}`);
  const autoprobe = optionsObject(options, 'options').autoprobe;
  if (autoprobe !== undefined) sysfsWrite(path.join(dir, 'sriov_drivers_autoprobe'), autoprobe ? '1' : '0');
  sysfsWrite(path.join(dir, 'sriov_numvfs'), String(n));
}

/** The addresses of the VFs of physical function `pf`, in VF order. */
export function virtfnsOf(pf: string): string[] {
  const [, dir] = pciDir(pf);
  return fs.readdirSync(dir)
    .map((f) => /^virtfn(\d+)$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((m) => linkBase(path.join(dir, m[0])) as string);
}

/** The physical function of virtual function `vf`, or null when `vf` is not a VF. */
export function physfnOf(vf: string): string | null {
  const [, dir] = pciDir(vf);
  return linkBase(path.join(dir, 'physfn'));
}

/** Every PCI function of the host, sorted by address. */
export function listPciDevices(): PciDeviceInfo[] {
  let names: string[];
  try {
    names = fs.readdirSync(PCI_DEVICES);
  } catch {
    return [];
  }
  return names.filter((n) => BDF_RE.test(n)).sort().map(describeDevice);
}

function notFound(bdf: string): VfioError {
  return new VfioError({
    errno: ENOENT, syscall: 'open', code: 'ENOENT', path: path.join(PCI_DEVICES, bdf),
    message: `ENOENT: no PCI device ${bdf} (see 'vfio list' or ls ${PCI_DEVICES})`,
  });
}

/**
 * The VFIO cdev path of a PCI device or an mdev UUID. Throws a VfioError that says why when
 * there is none: no such device, not bound to a VFIO driver, or a kernel without cdev support.
 */
export function cdevPathFor(bdfOrUuid: string): string {
  if (typeof bdfOrUuid !== 'string') throw new TypeError(`bdf must be a string, got ${describe(bdfOrUuid)}`);
  let dir: string;
  let name: string;
  if (isMdevUuid(bdfOrUuid)) {
    name = bdfOrUuid.trim().toLowerCase();
    dir = path.join('/sys/bus/mdev/devices', name);
    if (!fs.existsSync(dir)) {
      throw new VfioError({ errno: ENOENT, syscall: 'open', code: 'ENOENT', path: dir, message: `ENOENT: no mdev device ${name}` });
    }
  } else {
    name = normalizeBdf(bdfOrUuid);
    dir = path.join(PCI_DEVICES, name);
    if (!fs.existsSync(dir)) throw notFound(name);
  }
  const driver = linkBase(path.join(dir, 'driver'));
  const cdev = cdevOf(dir);
  if ('path' in cdev) return cdev.path;
  if (driver === null || !VFIO_DRIVERS.test(driver)) {
    throw new VfioError({
      errno: ENODEV, syscall: 'open', code: 'ERR_VFIO_NO_DRIVER', path: dir,
      message: `ERR_VFIO_NO_DRIVER: ${name} ${driver === null ? 'has no driver bound' : `is bound to ${driver}`}, ` +
        `not to a VFIO driver; bind it to vfio-pci with 'vfio bind ${name}' (or bindToVfioPci('${name}'))`,
    });
  }
  throw new VfioError({
    errno: ENODEV, syscall: 'open', code: 'ERR_VFIO_NO_CDEV', path: dir,
    message: `ERR_VFIO_NO_CDEV: ${name} is bound to ${driver} but has no VFIO cdev: ` +
      (cdev.reason === 'no-cdev' && noiommuGroupOf(dir) !== null
        ? `it is a noiommu device, which has a cdev only on Linux 7.3+ (CONFIG_IOMMUFD_NOIOMMU); use its group, ` +
          `VfioGroup.open(${noiommuGroupOf(dir)}, { noiommu: true })`
        : cdev.reason === 'no-cdev'
        ? 'the kernel was built without CONFIG_VFIO_DEVICE_CDEV; use the group path'
        : 'the kernel is older than 6.6 or lacks CONFIG_VFIO_DEVICE_CDEV; use the group path (VfioGroup)'),
  });
}

/** The group number of a device in a vfio noiommu group, else null. */
function noiommuGroupOf(dir: string): number | null {
  const group = linkBase(path.join(dir, 'iommu_group'));
  return group !== null && isNoiommuGroup(group) ? Number(group) : null;
}

/** One mediated device (mdev) as sysfs describes it. */
export interface MdevDeviceInfo {
  uuid: string;
  /** The mdev type, e.g. `'mtty-2'`. */
  type: string | null;
  driver: string | null;
  iommuGroup: number | null;
  cdevPath: string | null;
}

/** The mdev with this UUID, or null when there is none. */
export function mdevDevice(uuid: string): MdevDeviceInfo | null {
  if (typeof uuid !== 'string' || !isMdevUuid(uuid)) throw new TypeError(`'${uuid}' is not an mdev UUID`);
  const name = uuid.trim().toLowerCase();
  const dir = path.join('/sys/bus/mdev/devices', name);
  if (!fs.existsSync(dir)) return null;
  const group = linkBase(path.join(dir, 'iommu_group'));
  const cdev = cdevOf(dir);
  return {
    uuid: name,
    type: linkBase(path.join(dir, 'mdev_type')),
    driver: linkBase(path.join(dir, 'driver')),
    iommuGroup: group === null ? null : Number(group),
    cdevPath: 'path' in cdev ? cdev.path : null,
  };
}

const MDEV_BUS = '/sys/class/mdev_bus';

/** One mdev type a parent offers (`mdev_supported_types/<type>/`). */
export interface MdevType {
  /** The type's directory name, e.g. `'mtty-2'`: what createMdev() takes. */
  type: string;
  name: string | null;
  description: string | null;
  /** How many more mdevs of this type the parent can create now. */
  availableInstances: number;
  /** `'vfio-pci'`, `'vfio-ccw'`, ... */
  deviceApi: string | null;
}

/** The sysfs directory of mdev parent `parent` (its name under /sys/class/mdev_bus: 'mtty', or a PCI address). */
function mdevParentDir(parent: string): string {
  if (typeof parent !== 'string' || parent === '' || parent.includes('/') || parent.includes('\0')) {
    throw new TypeError(`parent must be the name of an mdev parent (ls ${MDEV_BUS}), got ${describe(parent)}`);
  }
  const name = isBdf(parent) ? normalizeBdf(parent) : parent;
  const dir = path.join(MDEV_BUS, name);
  if (!fs.existsSync(path.join(dir, 'mdev_supported_types'))) {
    throw new VfioError({ errno: ENOENT, syscall: 'open', code: 'ENOENT', path: dir,
      message: `ENOENT: no mdev parent '${name}' (the parents are in ${MDEV_BUS}; load the parent's driver)` });
  }
  return dir;
}

/** The mdev types `parent` offers (`parent`: its name under /sys/class/mdev_bus). */
export function mdevTypes(parent: string): MdevType[] {
  const dir = path.join(mdevParentDir(parent), 'mdev_supported_types');
  return fs.readdirSync(dir).sort().map((type) => {
    const t = path.join(dir, type);
    return {
      type,
      name: readText(path.join(t, 'name')),
      description: readText(path.join(t, 'description')),
      availableInstances: Number(readText(path.join(t, 'available_instances')) ?? 0),
      deviceApi: readText(path.join(t, 'device_api')),
    };
  });
}

/**
 * Create an mdev of `type` on `parent` (`uuid`: a random one by default) and return it once its
 * VFIO device is there. Remove it with removeMdev(uuid). Needs root.
 */
export function createMdev(parent: string, type: string, uuid: string = randomUUID()): MdevDeviceInfo {
  const dir = mdevParentDir(parent);
  if (typeof type !== 'string' || type === '' || type.includes('/') || type.includes('\0')) {
    throw new TypeError(`type must be an mdev type name (mdevTypes(parent)), got ${describe(type)}`);
  }
  if (typeof uuid !== 'string' || !isMdevUuid(uuid)) throw new TypeError(`uuid must be a UUID, got ${describe(uuid)}`);
  const typeDir = path.join(dir, 'mdev_supported_types', type);
  if (!fs.existsSync(typeDir)) {
    throw new VfioError({ errno: ENOENT, syscall: 'open', code: 'ENOENT', path: typeDir,
      message: `ENOENT: ${parent} offers no mdev type '${type}' (it offers: ${fs.readdirSync(path.dirname(typeDir)).join(', ')})` });
  }
  const name = uuid.toLowerCase();
  sysfsWrite(path.join(typeDir, 'create'), name);
  // The VFIO driver binds to the new mdev as it is added; give it a moment if it probes late.
  const deadline = Date.now() + 2000;
  const vfioDev = path.join('/sys/bus/mdev/devices', name, 'vfio-dev');
  while (!fs.existsSync(vfioDev) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  const info = mdevDevice(name);
  if (!info) throw new VfioError({ errno: ENODEV, syscall: 'write', code: 'ENODEV', path: typeDir, message: `ENODEV: mdev ${name} did not appear` });
  return info;
}

/** Remove the mdev with this UUID (it must not be open). */
export function removeMdev(uuid: string): void {
  if (typeof uuid !== 'string' || !isMdevUuid(uuid)) throw new TypeError(`uuid must be an mdev UUID, got ${describe(uuid)}`);
  const dir = path.join('/sys/bus/mdev/devices', uuid.toLowerCase());
  if (!fs.existsSync(dir)) {
    throw new VfioError({ errno: ENOENT, syscall: 'write', code: 'ENOENT', path: dir, message: `ENOENT: no mdev ${uuid}` });
  }
  sysfsWrite(path.join(dir, 'remove'), '1');
}

/** Options of {@link bindToVfioPci}. */
export interface BindOptions {
  /** Unbind the current driver even if it is not vfio-pci (the device may be in use). */
  force?: boolean;
}

/**
 * Bind a PCI device to vfio-pci with driver_override. Refuses a device bound to another driver
 * unless `force`. Returns the device's cdev path (or null without cdev support).
 */
export function bindToVfioPci(bdf: string, options?: BindOptions): string | null {
  const [name, dir] = pciDir(bdf);
  const opts = optionsObject(options, 'options');
  const driver = linkBase(path.join(dir, 'driver'));
  if (driver !== 'vfio-pci') {
    if (driver !== null && opts.force !== true) {
      throw new VfioError({
        errno: EBUSY, syscall: 'write', code: 'EBUSY', path: path.join(dir, 'driver'),
        message: `EBUSY: ${name} is bound to ${driver}, which may be using it; pass { force: true } (vfio bind --force) to unbind it`,
      });
    }
    sysfsWrite(path.join(dir, 'driver_override'), 'vfio-pci');
    try {
      if (driver !== null) sysfsWrite(path.join(dir, 'driver', 'unbind'), name);
      sysfsWrite('/sys/bus/pci/drivers_probe', name);
      if (linkBase(path.join(dir, 'driver')) !== 'vfio-pci') {
        throw new VfioError({
          errno: ENODEV, syscall: 'write', code: 'ENODEV', path: dir,
          message: `ENODEV: ${name} did not bind to vfio-pci (vfio-pci refused it: it takes only normal-header ` +
            'devices, no bridges; or the driver is not loaded: modprobe vfio-pci; see dmesg)' +
            (driver !== null ? `; it was given back to ${driver}` : ''),
        });
      }
    } catch (err) {
      // Leave the device as it was: no override left behind, its own driver back.
      try {
        sysfsWrite(path.join(dir, 'driver_override'), '\n');
        if (driver !== null && linkBase(path.join(dir, 'driver')) === null) sysfsWrite('/sys/bus/pci/drivers_probe', name);
      } catch {
        // The first error is the one to report.
      }
      throw err;
    }
  }
  const cdev = cdevOf(dir);
  return 'path' in cdev ? cdev.path : null;
}

/**
 * Unbind a PCI device from vfio-pci, clear driver_override and re-probe, so its own kernel
 * driver (if any) takes it back. Returns the driver bound afterwards, or null. EINVAL when the
 * device is not on vfio-pci (and no override would put it there).
 */
export function unbindFromVfioPci(bdf: string): string | null {
  const [name, dir] = pciDir(bdf);
  const driver = linkBase(path.join(dir, 'driver'));
  const override = readText(path.join(dir, 'driver_override'));
  // Nothing to undo unless vfio-pci has it, or an override would give it to vfio-pci.
  if (driver !== 'vfio-pci' && override !== 'vfio-pci') {
    throw new VfioError({
      errno: EINVAL, syscall: 'write', code: 'EINVAL', path: dir,
      message: `EINVAL: ${name} is not bound to vfio-pci (${driver === null ? 'it has no driver' : `its driver is ${driver}`})`,
    });
  }
  if (driver === 'vfio-pci') sysfsWrite(path.join(dir, 'driver', 'unbind'), name);
  sysfsWrite(path.join(dir, 'driver_override'), '\n');
  sysfsWrite('/sys/bus/pci/drivers_probe', name);
  return linkBase(path.join(dir, 'driver'));
}

function sysfsWrite(file: string, text: string): void {
  try {
    fs.writeFileSync(file, text);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const errno = typeof e.errno === 'number' ? e.errno : -5;
    throw new VfioError({ errno, syscall: 'write', path: file, ...(e.code ? { code: e.code } : {}) });
  }
}
