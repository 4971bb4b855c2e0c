import { constants as os, release } from 'node:os';
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
const NO_MAPPING_DRIVER = 'the container has no IOMMU driver that maps DMA: call setIommu() after a group joined; ' +
  'a noiommu container (VFIO_NOIOMMU_IOMMU) cannot map at all, its devices need physical addresses';

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
    EACCES: 'the device is an SR-IOV VF of a PF on vfio-pci (or such a PF with VFs in use): a VF token is needed, ' +
      "bind(iommufd, { vfToken }) (Linux 6.17+) or the group path's 'vf_token=' suffix, the UUID the PF's owner set with setVfToken()",
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
  VFIO_IOMMU_MAP_DMA: { ENOMEM: MEMLOCK, ENOTTY: NO_MAPPING_DRIVER },
  VFIO_IOMMU_UNMAP_DMA: { ENOTTY: NO_MAPPING_DRIVER },
  VFIO_IOMMU_GET_INFO: { ENOTTY: NO_MAPPING_DRIVER },
  IOMMU_IOAS_UNMAP: { ENOENT: 'nothing is mapped there, or the range does not cover whole mappings' },
  IOMMU_IOAS_NOIOMMU_GET_PA: {
    ENOENT: 'nothing is mapped at that IOVA',
    EOPNOTSUPP: 'no noiommu device is attached to this IOAS (with an IOMMU, give the device the IOVA itself), ' +
      'or the kernel lacks CONFIG_IOMMUFD_NOIOMMU',
    EPERM: 'physical addresses need CAP_SYS_RAWIO',
  },
  VFIO_DEVICE_RESET: { EINVAL: 'the device does not support reset (info().canReset is false)' },
  VFIO_GROUP_GET_DEVICE_FD: {
    EACCES: "the device is an SR-IOV VF of a PF on vfio-pci: add ' vf_token=<uuid>' (the UUID the PF's owner set with setVfToken())",
  },
};

/**
 * The Linux release that added each request the library wraps after 6.6 (a row of the addon's
 * ioctl table; a unit test checks the names). An ENOTTY from one of them on an older kernel is a
 * {@link VfioUnsupportedError} with code ERR_VFIO_NEEDS_KERNEL.
 */
export const IOCTL_SINCE: Readonly<Record<string, string>> = {
  IOMMU_HWPT_SET_DIRTY_TRACKING: '6.7',
  IOMMU_HWPT_GET_DIRTY_BITMAP: '6.7',
  IOMMU_HWPT_INVALIDATE: '6.8',
  IOMMU_FAULT_QUEUE_ALLOC: '6.11',
  IOMMU_IOAS_MAP_FILE: '6.13',
  IOMMU_VIOMMU_ALLOC: '6.13',
  IOMMU_VDEVICE_ALLOC: '6.13',
  IOMMU_IOAS_CHANGE_PROCESS: '6.13',
  IOMMU_VEVENTQ_ALLOC: '6.15',
  IOMMU_HW_QUEUE_ALLOC: '6.17',
  // Not in 6.12; the lab's 7.3 has it. Releases 7.0-7.2 were not checked, so this is the
  // earliest known to have it, not necessarily the first.
  IOMMU_IOAS_NOIOMMU_GET_PA: '7.3',
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
  [(e) => ['mmap', 'ftruncate', 'memfd_create'].includes(e.syscall) && e.code === 'ENOMEM' && !!e.path?.endsWith('/nr_hugepages'),
    'no free hugetlb pages of that size: reserve them in that file (as root: echo N > it), or with hugepagesz= ' +
      'hugepages= on the kernel command line'],
  [(e) => ['mmap', 'ftruncate', 'memfd_create'].includes(e.syscall) && e.code === 'EINVAL' && !!e.path?.endsWith('/nr_hugepages'),
    'this machine has no hugetlb pages of that size (no such pool: the CPU lacks them, e.g. no pdpe1gb for 1 GiB, ' +
      'or the kernel was built without them)'],
  [(e) => e.syscall === 'mmap' && e.code === 'EIO',
    "the device's memory is off (the thread that owns the device turned memory decode off, put it in D3 or low " +
      'power); the mapping works again once it is back on'],
  [(e) => e.syscall === 'open' && e.code === 'ENOENT' && !!e.path?.startsWith('/dev/vfio/noiommu-'),
    'no such noiommu group: the kernel makes /dev/vfio/noiommu-N only for a device without an IOMMU, bound to ' +
      'vfio-pci while vfio.enable_unsafe_noiommu_mode=1 (CONFIG_VFIO_NOIOMMU)'],
  [(e) => e.syscall === 'recvmsg' && e.code === 'EMSGSIZE',
    'the message carried more fds or bytes than options.maxFds / options.maxBytes allow; its fds were closed'],
  [(e) => e.syscall === 'recvmsg' && e.code === 'ETIMEDOUT', 'no message arrived within options.timeoutMs'],
  [(e) => e.syscall === 'open' && e.code === 'ENOENT' && e.path === '/dev/vfio/vfio',
    'no VFIO container device: the kernel lacks CONFIG_VFIO_CONTAINER (and iommufd\'s IOMMUFD_VFIO_CONTAINER); ' +
      "open iommufd's compat container instead, VfioContainer.open('/dev/iommu'), or use the cdev path"],
  [(e) => e.syscall === 'open' && e.code === 'ENOENT' && !!e.path && /^\/dev\/vfio\/\d+$/.test(e.path),
    'no such VFIO group: /dev/vfio/N appears once a device of IOMMU group N is bound to vfio-pci ' +
      '(vfio bind <bdf>; listPciDevices() shows each device\'s group)'],
  [(e) => e.syscall === 'open' && e.code === 'ENOENT' && !!e.path && e.path.startsWith('/dev/vfio/devices/'),
    'no such VFIO device cdev: bind the device to vfio-pci (vfio bind <bdf>) on a kernel with CONFIG_VFIO_DEVICE_CDEV'],
];

function hintFor(e: VfioErrorFields & { code: string }): string | undefined {
  if (e.ioctl !== undefined) return IOCTL_HINTS[e.ioctl]?.[e.code];
  return SYSCALL_HINTS.find(([match]) => match(e))?.[1];
}

/**
 * Linux errnos that the VFIO and iommufd ioctls return and that Node's errno map lacks or names
 * after another use (95 is ENOTSUP "on socket" to Node; the kernel returns EOPNOTSUPP), by
 * number: [name, description]. Every other errno is named from Node's own map.
 */
export const LINUX_ERRNOS: Readonly<Record<number, readonly [string, string]>> = {
  62: ['ETIME', 'timer expired'],
  77: ['EBADFD', 'file descriptor in bad state'],
  95: ['EOPNOTSUPP', 'operation not supported'],
  512: ['ERESTARTSYS', 'interrupted system call, to be restarted (kernel-internal)'],
  515: ['ENOIOCTLCMD', 'no ioctl command (kernel-internal)'],
  524: ['ENOTSUPP', 'operation not supported (kernel-internal)'],
};

function errnoName(errno: number): [string, string] {
  const linux = LINUX_ERRNOS[-errno];
  if (linux) return [linux[0], linux[1]];
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
  /** IOMMU_HWPT_INVALIDATE: how many entries the kernel handled before the one that failed. */
  readonly handled?: number;

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

/** Codes of {@link VfioUnsupportedError}. */
export type VfioUnsupportedCode = 'ERR_VFIO_NEEDS_KERNEL' | 'ERR_VFIO_UNSUPPORTED';

/**
 * A call the running kernel or the IOMMU under the device cannot do: `ERR_VFIO_NEEDS_KERNEL`
 * when the feature is newer than the kernel (`needs` names the release that added it),
 * `ERR_VFIO_UNSUPPORTED` when the kernel has it but the IOMMU or device does not. `errno` is the
 * kernel's own answer (ENOTTY, EOPNOTSUPP, ...).
 */
export class VfioUnsupportedError extends VfioError {
  declare readonly code: VfioUnsupportedCode;
  /** The Linux release that added the feature (ERR_VFIO_NEEDS_KERNEL). */
  readonly needs?: string;
  /** The running kernel's release (`os.release()`). */
  readonly kernel: string;
  constructor(code: VfioUnsupportedCode, errno: number, message: string, extra: { ioctl?: string; needs?: string; syscall?: string } = {}) {
    const { needs, syscall = 'ioctl', ...where } = extra;
    super({ errno, syscall, code, message: `${code}: ${message}`, ...where });
    if (needs !== undefined) this.needs = needs;
    this.kernel = release();
  }
}
Object.defineProperty(VfioUnsupportedError.prototype, 'name', { value: 'VfioUnsupportedError', configurable: true, writable: true });

/** Whether the running kernel is older than `version` ('6.13'); false when its release does not parse. */
export function kernelBefore(version: string, running = release()): boolean {
  const have = /^(\d+)\.(\d+)/.exec(running);
  const want = /^(\d+)\.(\d+)$/.exec(version);
  if (!have || !want) return false;
  const [hMaj, hMin, wMaj, wMin] = [have[1], have[2], want[1], want[2]].map(Number);
  return hMaj < wMaj || (hMaj === wMaj && hMin < wMin);
}

/** ERR_VFIO_NEEDS_KERNEL for `what`, added in Linux `needs`, refused by this kernel with `errno`. */
export function needsKernelError(what: string, needs: string, errno: number, ioctl?: string): VfioUnsupportedError {
  const [name] = errnoName(errno);
  return new VfioUnsupportedError('ERR_VFIO_NEEDS_KERNEL', errno,
    `${what} needs Linux ${needs} or newer; this kernel is ${release()} (it answered ${name})`,
    { needs, ...(ioctl ? { ioctl } : {}) });
}

/**
 * Run `call`; a refusal with ENOTTY, EOPNOTSUPP or EINVAL (how older kernels answer unknown
 * requests, flags and fields) on a kernel older than `needs` becomes ERR_VFIO_NEEDS_KERNEL.
 */
export function withKernel<T>(what: string, needs: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    if (err instanceof VfioError && !(err instanceof VfioUnsupportedError) && kernelBefore(needs) &&
        (err.code === 'ENOTTY' || err.code === 'EOPNOTSUPP' || err.code === 'EINVAL')) {
      throw needsKernelError(what, needs, err.errno, err.ioctl);
    }
    throw err;
  }
}

/** Error factory handed to the native addon: it throws these for failed syscalls. */
export function makeNativeError(errno: number, syscall: string, ioctl?: string, path?: string): VfioError {
  const since = ioctl !== undefined ? IOCTL_SINCE[ioctl] : undefined;
  if (since !== undefined && errno === os.errno.ENOTTY) return needsKernelError(ioctl!, since, -errno, ioctl);
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
export const EFAULT = -os.errno.EFAULT;
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
