import { describe, optionsObject, toIndex, toPath, toU64 } from './args';
import { flags as C } from './constants';
import { closedError, notBoundError } from './errors';
import { IoAddressSpace } from './ioas';
import { native, type NativeHandle } from './native';

export { IoAddressSpace, bufferSpan, notDmaBuffer } from './ioas';
export type { DmaMemory, IovaRange, MapFileOptions, MapOptions } from './ioas';

/** IOMMU_GET_HW_INFO result. */
export interface HwInfo {
  /** `IOMMU_HW_INFO_TYPE_*`: 0 none, 1 Intel VT-d, 2 ARM SMMUv3. */
  type: number;
  /** `IOMMU_HW_CAP_*` bits: 1 dirty tracking, 2 PASID exec, 4 PASID priv. */
  capabilities: bigint;
  /** Vendor data (struct iommu_hw_info_vtd for VT-d). */
  data: Uint8Array;
  maxPasidLog2?: number;
}

/** Names of {@link Iommufd.getOption} / {@link Iommufd.setOption}. */
export type IommufdOptionName = 'rlimitMode' | 'hugePages';

/** Something a device can be bound to: has an iommufd fd. */
interface DeviceLike {
  readonly devId: number | null;
}

const OPTION_IDS: Record<IommufdOptionName, number> = {
  rlimitMode: C.IOMMU_OPTION_RLIMIT_MODE,
  hugePages: C.IOMMU_OPTION_HUGE_PAGES,
};

/** An iommufd context (`/dev/iommu`): owns IOAS and HWPT objects. */
export class Iommufd {
  #handle: NativeHandle | null;
  readonly path: string | null;
  readonly #ioases = new Set<IoAddressSpace>();
  readonly #hwpts = new Set<Hwpt>();

  private constructor(handle: NativeHandle, path: string | null) {
    this.#handle = handle;
    this.path = path;
  }

  /** Open an iommufd, `/dev/iommu` by default. */
  static open(path = '/dev/iommu'): Iommufd {
    return new Iommufd(native.iommufdOpen(toPath(path, 'path')), path);
  }

  /** Whether `value` is an Iommufd made by this library (a Proxy or look-alike is not). */
  static isIommufd(value: unknown): value is Iommufd {
    return typeof value === 'object' && value !== null && #handle in value;
  }

  /** Wrap an iommufd fd opened elsewhere; `own` (default false) closes it on close(). */
  static fromFd(fd: number, options?: { own?: boolean }): Iommufd {
    toIndex(fd, 'fd', 0x7fffffff);
    return new Iommufd(native.iommufdFromFd(fd, optionsObject(options, 'options').own === true), null);
  }

  /** The file descriptor. */
  get fd(): number {
    return native.iommufdFd(this._native());
  }

  get closed(): boolean {
    return this.#handle === null;
  }

  /** @internal */
  _native(): NativeHandle {
    if (!this.#handle) throw closedError('the iommufd is closed');
    return this.#handle;
  }

  /** Allocate a new I/O address space (IOMMU_IOAS_ALLOC). */
  allocIoas(): IoAddressSpace {
    const id = native.ioasAlloc(this._native());
    const ioas = new IoAddressSpace(this, id);
    this.#ioases.add(ioas);
    return ioas;
  }

  /** @internal */
  _forget(object: IoAddressSpace | Hwpt): void {
    if (Hwpt.isHwpt(object)) this.#hwpts.delete(object);
    else this.#ioases.delete(object);
  }

  /** IOMMU_GET_HW_INFO for a bound device. */
  hwInfo(device: DeviceLike): HwInfo {
    const devId = boundDevId(device);
    const r = native.iommufdHwInfo(this._native(), devId);
    const out: HwInfo = { type: r.type, capabilities: r.capabilities, data: r.data };
    if (r.maxPasidLog2) out.maxPasidLog2 = r.maxPasidLog2;
    return out;
  }

  /** IOMMU_HWPT_ALLOC: a page table for `device` on top of an IOAS (or a parent HWPT). */
  allocHwpt(device: DeviceLike, ioasOrId: IoAddressSpace | Hwpt | number, options?: { flags?: number }): Hwpt {
    const devId = boundDevId(device);
    const ptId = objectId(ioasOrId, 'ioasOrId');
    const flags = toIndex(optionsObject(options, 'options').flags ?? 0, 'options.flags', 0xffffffff);
    const hwpt = new Hwpt(this, native.iommufdHwptAlloc(this._native(), flags, devId, ptId));
    this.#hwpts.add(hwpt);
    return hwpt;
  }

  /** IOMMU_OPTION get: `'rlimitMode'` (0 per-user, 1 per-process) or `'hugePages'` (per IOAS). */
  getOption(name: IommufdOptionName, objectIdArg: IoAddressSpace | number = 0): bigint {
    const id = optionId(name);
    return native.iommufdOption(this._native(), C.IOMMU_OPTION_OP_GET, id, objectId(objectIdArg, 'objectId'), 0n);
  }

  /** IOMMU_OPTION set. */
  setOption(name: IommufdOptionName, value: bigint | number | boolean, objectIdArg: IoAddressSpace | number = 0): void {
    const id = optionId(name);
    const v = typeof value === 'boolean' ? (value ? 1n : 0n) : toU64(value, 'value');
    native.iommufdOption(this._native(), C.IOMMU_OPTION_OP_SET, id, objectId(objectIdArg, 'objectId'), v);
  }

  /**
   * The raw escape hatch: ioctl `request` on the iommufd with `arg` (the struct, starting with
   * its own size), copied in and out by the kernel; returns the ioctl's result and throws
   * VfioError with the errno. For brand-new kernel features before the library types them (the
   * kernel's mock IOMMU test commands, say). Requests the library wraps are refused (use its
   * call); the size must lie within `arg`. Pointers inside the struct are the caller's to get right.
   */
  ioctl(request: number, arg: Uint8Array): number {
    const h = this._native();
    if (!(arg instanceof Uint8Array)) throw new TypeError(`arg must be a Uint8Array, got ${describe(arg)}`);
    return native.iommufdIoctl(h, toIndex(request, 'request', 0xffffffff), arg);
  }

  /** IOMMU_DESTROY of any object id. */
  destroy(id: number): void {
    native.iommufdDestroy(this._native(), toIndex(id, 'id', 0xffffffff));
  }

  /**
   * Close the fd. Its IOAS and HWPT objects become unusable here; the kernel releases them (and
   * unpins their memory) once no bound device holds the context. Idempotent.
   */
  close(): void {
    if (!this.#handle) return;
    for (const ioas of this.#ioases) ioas._drop();
    this.#ioases.clear();
    for (const hwpt of this.#hwpts) hwpt._drop();
    this.#hwpts.clear();
    native.iommufdClose(this.#handle);
    this.#handle = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function optionId(name: IommufdOptionName): number {
  const id = OPTION_IDS[name];
  if (id === undefined) throw new TypeError(`option must be 'rlimitMode' or 'hugePages', got ${describe(name)}`);
  return id;
}

function boundDevId(device: DeviceLike): number {
  if (!device || typeof device !== 'object' || !('devId' in device)) {
    throw new TypeError(`device must be a VfioDevice, got ${describe(device)}`);
  }
  if (device.devId === null) {
    throw notBoundError('the device is not bound to an iommufd');
  }
  return device.devId;
}

/**
 * What `device.attach(target)` attaches to, validated before the syscall: an IOAS or HWPT of the
 * device's own bound iommufd (`bound`), live, or an object id (a number) in that iommufd.
 */
export function attachTarget(target: unknown, bound: Iommufd | null, where: { ioctl: string; path?: string }):
  { id: number; ioas: IoAddressSpace | null } {
  const isIoas = IoAddressSpace.isIoas(target);
  if (!isIoas && !Hwpt.isHwpt(target)) {
    if (typeof target !== 'number') {
      throw new TypeError(`target must be an IoAddressSpace, a Hwpt or an object id, got ${describe(target)}`);
    }
    return { id: toIndex(target, 'target', 0xffffffff), ioas: null };
  }
  const what = isIoas ? 'IOAS' : 'HWPT';
  if (target.destroyed) {
    throw closedError(
      `the ${what} ${target.id} was destroyed (or its iommufd closed); its id may already name another object`, 'ioctl',
      where);
  }
  if (bound === null) {
    throw new TypeError(`target: this device was not bound through bind(), so an ${what} object cannot be checked ` +
      'against its iommufd; pass the object id as a number');
  }
  if (target.iommufd !== bound) {
    throw new TypeError(`target: the ${what} ${target.id} belongs to another iommufd than the one this device is bound to`);
  }
  return { id: target.id, ioas: isIoas ? target : null };
}

function objectId(value: IoAddressSpace | Hwpt | number, name: string): number {
  if (IoAddressSpace.isIoas(value) || Hwpt.isHwpt(value)) return value.id;
  return toIndex(value, name, 0xffffffff);
}

/** A hardware page table (IOMMU_HWPT_ALLOC). Attach it with `device.attach(hwpt)`. */
export class Hwpt {
  readonly id: number;
  /** The owning iommufd; null once destroyed or the iommufd is closed. */
  #ictx: Iommufd | null;

  /** @internal */
  constructor(ictx: Iommufd, id: number) {
    this.#ictx = ictx;
    this.id = id;
  }

  /** Whether `value` is a Hwpt made by this library (a Proxy or look-alike is not). */
  static isHwpt(value: unknown): value is Hwpt {
    return typeof value === 'object' && value !== null && #ictx in value;
  }

  /** The iommufd this HWPT lives in, or null once it was destroyed or the iommufd closed. */
  get iommufd(): Iommufd | null {
    return this.#ictx;
  }

  /** Whether destroy() ran or the iommufd was closed. */
  get destroyed(): boolean {
    return this.#ictx === null;
  }

  /** @internal The iommufd was closed. */
  _drop(): void {
    this.#ictx = null;
  }

  /** IOMMU_DESTROY; fails with EBUSY while a device is attached. Idempotent. */
  destroy(): void {
    if (!this.#ictx) return;
    this.#ictx.destroy(this.id);
    this.#ictx._forget(this);
    this.#ictx = null;
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}
