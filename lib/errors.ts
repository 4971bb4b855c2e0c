import { constants as os } from 'node:os';
import { getSystemErrorMap } from 'node:util';

/** Fields of a {@link VfioError}. `errno` is negative, as in Node's fs errors. */
export interface VfioErrorFields {
  errno: number;
  syscall: string;
  code?: string;
  ioctl?: string;
  path?: string;
  message?: string;
}

const MEMLOCK = 'pinning the memory exceeded RLIMIT_MEMLOCK: raise it (ulimit -l unlimited, or memlock in ' +
  '/etc/security/limits.conf), grant CAP_IPC_LOCK, or run as root';

/**
 * Likely causes of well-known ioctl failures, by ioctl (a row of the addon's ioctl table,
 * native/uapi.h; a unit test checks every name against it) and errno name.
 */
export const IOCTL_HINTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  VFIO_DEVICE_BIND_IOMMUFD: {
    EBUSY: "the device's IOMMU group is open through the legacy group path (/dev/vfio/<group>) elsewhere; close it first",
    EPERM: 'the kernel refused DMA ownership: the IOMMU group is owned by another iommufd, container or driver, ' +
      'or the platform has no interrupt remapping (iommufd.allow_unsafe_interrupts=1 overrides, unsafely)',
    EINVAL: 'the fd is already bound, the device is open through another fd or the group path, or the iommufd is invalid',
  },
  IOMMU_IOAS_MAP: {
    ENOMEM: MEMLOCK,
    EEXIST: 'the IOVA range overlaps an existing mapping',
    ENOSPC: 'no free IOVA range of that size is left',
  },
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
    ENOMEM: MEMLOCK,
    EADDRINUSE: "a mapping in the IOAS lies in the device's reserved IOVA ranges or outside its aperture",
  },
  VFIO_IOMMU_MAP_DMA: { ENOMEM: MEMLOCK },
  IOMMU_IOAS_UNMAP: { ENOENT: 'nothing is mapped there, or the range does not cover whole mappings' },
  IOMMU_IOAS_MAP_FILE: { ENOTTY: 'IOMMU_IOAS_MAP_FILE needs Linux 6.13 or newer' },
  VFIO_DEVICE_RESET: { EINVAL: 'the device does not support reset (info().canReset is false)' },
};

/** Likely causes of well-known failures of the other syscalls (open, write to sysfs). */
const SYSCALL_HINTS: Array<[(e: VfioErrorFields & { code: string }) => boolean, string]> = [
  [(e) => e.syscall === 'open' && (e.code === 'EACCES' || e.code === 'EPERM'),
    'no permission: run as root, or let your group use VFIO with a udev rule, e.g. SUBSYSTEM=="vfio", ' +
      'GROUP="vfio", MODE="0660" in /etc/udev/rules.d/90-vfio.rules, and MODE="0660" for /dev/iommu'],
  [(e) => e.syscall === 'open' && e.code === 'ENOENT' && e.path === '/dev/iommu',
    'this kernel has no iommufd: it needs Linux >= 6.6 with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV'],
  [(e) => e.syscall === 'write' && (e.code === 'EACCES' || e.code === 'EPERM') && !!e.path?.startsWith('/sys/'),
    'binding drivers needs root'],
  [(e) => e.syscall === 'mmap' && e.code === 'EIO',
    "the device's memory is off (the thread that owns the device turned memory decode off, put it in D3 or low " +
      'power); the mapping works again once it is back on'],
  [(e) => e.syscall === 'open' && e.code === 'ENOENT' && !!e.path && e.path.startsWith('/dev/vfio/devices/'),
    'no such VFIO device cdev: bind the device to vfio-pci (vfio bind <bdf>) on a kernel with CONFIG_VFIO_DEVICE_CDEV'],
];

function hintFor(e: VfioErrorFields & { code: string }): string | undefined {
  if (e.ioctl !== undefined) return IOCTL_HINTS[e.ioctl]?.[e.code];
  return SYSCALL_HINTS.find(([match]) => match(e))?.[1];
}

function errnoName(errno: number): [string, string] {
  const entry = getSystemErrorMap().get(errno);
  return entry ? [entry[0], entry[1]] : [`E${-errno}`, `error ${-errno}`];
}

/** A failed syscall on a VFIO or iommufd fd, shaped like Node's own system errors. */
export class VfioError extends Error {
  /** Errno name such as `'EBUSY'`, or an `ERR_VFIO_*` code for library-level refusals. */
  readonly code: string;
  /** Negative errno, as in Node's fs errors (`-16` for EBUSY). */
  readonly errno: number;
  /** The syscall that failed: `'open'`, `'ioctl'`, `'mmap'`, `'pread'`, `'pwrite'`, ... */
  readonly syscall: string;
  /** The ioctl request name, when the syscall was an ioctl. */
  readonly ioctl?: string;
  /** The file involved, when known. */
  readonly path?: string;

  constructor(fields: VfioErrorFields) {
    const [name, text] = errnoName(fields.errno);
    const code = fields.code ?? name;
    let message = fields.message;
    if (message === undefined) {
      message = `${code}: ${text}, ${fields.ioctl ?? fields.syscall}`;
      if (fields.path) message += ` '${fields.path}'`;
      const hint = hintFor({ ...fields, code });
      if (hint) message += ` (${hint})`;
    }
    super(message);
    this.code = code;
    this.errno = fields.errno;
    this.syscall = fields.syscall;
    if (fields.ioctl !== undefined) this.ioctl = fields.ioctl;
    if (fields.path !== undefined) this.path = fields.path;
  }
}
Object.defineProperty(VfioError.prototype, 'name', { value: 'VfioError', configurable: true, writable: true });

/** Codes of {@link VfioStateError}. */
export type VfioStateCode =
  | 'ERR_VFIO_NOT_BOUND'
  | 'ERR_VFIO_ALREADY_BOUND'
  | 'ERR_VFIO_CLOSED'
  | 'ERR_VFIO_BUFFER_MAPPED'
  | 'ERR_VFIO_BUSY'
  | 'ERR_VFIO_NOT_MAPPED'
  | 'ERR_VFIO_MEMORY_OFF'
  | 'ERR_VFIO_NOT_MASKABLE';

/**
 * A call the kernel would refuse in the device's (or resource's) current state, caught before
 * any syscall. `errno` is what the kernel would have returned.
 */
export class VfioStateError extends VfioError {
  declare readonly code: VfioStateCode;
  constructor(code: VfioStateCode, errno: number, syscall: string, message: string, extra: { ioctl?: string; path?: string } = {}) {
    super({ errno, syscall, code, message: `${code}: ${message}`, ...extra });
  }
}
Object.defineProperty(VfioStateError.prototype, 'name', { value: 'VfioStateError', configurable: true, writable: true });

type Where = { ioctl?: string; path?: string };

/** ERR_VFIO_CLOSED: a resource used after close() (or destroy()). */
export function closedError(message: string, syscall = 'ioctl', extra: Where = {}): VfioStateError {
  return new VfioStateError('ERR_VFIO_CLOSED', EBADF, syscall, message, extra);
}

/** ERR_VFIO_NOT_BOUND: a call the kernel refuses with EINVAL on a cdev fd before bind. */
export function notBoundError(message: string, syscall = 'ioctl', extra: Where = {}): VfioStateError {
  return new VfioStateError('ERR_VFIO_NOT_BOUND', EINVAL, syscall, message, extra);
}

/** ERR_VFIO_ALREADY_BOUND: bind() on a bound fd (the kernel's EINVAL). */
export function alreadyBoundError(message: string, extra: Where = {}): VfioStateError {
  return new VfioStateError('ERR_VFIO_ALREADY_BOUND', EINVAL, 'ioctl', message, extra);
}

/** ERR_VFIO_BUSY: something else owns what the call needs. */
export function busyError(message: string, syscall = 'ioctl', extra: Where = {}): VfioStateError {
  return new VfioStateError('ERR_VFIO_BUSY', EBUSY, syscall, message, extra);
}

/** ERR_VFIO_BUFFER_MAPPED: freeing a DmaBuffer that a DMA mapping still pins. */
export function bufferMappedError(message: string): VfioStateError {
  return new VfioStateError('ERR_VFIO_BUFFER_MAPPED', EBUSY, 'munmap', message);
}

/** ERR_VFIO_NOT_MAPPED: asking the IOVA of memory that is not mapped there. */
export function notMappedError(message: string): VfioStateError {
  return new VfioStateError('ERR_VFIO_NOT_MAPPED', ENOENT, 'ioctl', message);
}

/** ERR_VFIO_NOT_MASKABLE: mask/unmask of an index the kernel cannot mask (its ENOTTY/EINVAL). */
export function notMaskableError(message: string): VfioStateError {
  return new VfioStateError('ERR_VFIO_NOT_MASKABLE', EINVAL, 'ioctl', message, { ioctl: 'VFIO_DEVICE_SET_IRQS' });
}

/** ERR_VFIO_MEMORY_OFF: a BAR access while the library has the device's memory off. */
export function memoryOffError(message: string): VfioStateError {
  return new VfioStateError('ERR_VFIO_MEMORY_OFF', EIO, 'mmap', message);
}

/** Error factory handed to the native addon: it throws these for failed syscalls. */
export function makeNativeError(errno: number, syscall: string, ioctl?: string, path?: string): VfioError {
  return new VfioError({ errno: -errno, syscall, ...(ioctl ? { ioctl } : {}), ...(path ? { path } : {}) });
}

/** Negative errnos the state checks report (what the kernel would return), from the OS's own table. */
export const EINVAL = -os.errno.EINVAL;
/** @see EINVAL */
export const EBADF = -os.errno.EBADF;
/** @see EINVAL */
export const EBUSY = -os.errno.EBUSY;
/** @see EINVAL */
export const ENOENT = -os.errno.ENOENT;
/** @see EINVAL */
export const EIO = -os.errno.EIO;
/** @see EINVAL */
export const EINTR = -os.errno.EINTR;
/** @see EINVAL */
export const ETIMEDOUT = -os.errno.ETIMEDOUT;
/** @see EINVAL */
export const ENODEV = -os.errno.ENODEV;
/** @see EINVAL */
export const ENOSPC = -os.errno.ENOSPC;
/** @see EINVAL */
export const ECANCELED = -os.errno.ECANCELED;
