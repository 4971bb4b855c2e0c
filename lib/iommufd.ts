import { describe, optionsObject, toIndex, toPath, toU64 } from './args';
import { flags as C } from './constants';
import { VfioError, VfioUnsupportedError, closedError, kernelBefore, needsKernelError, notBoundError, withKernel } from './errors';
import { FaultQueue, VEVENT_DATA_SIZE, VeventQueue } from './event-queue';
import { IoAddressSpace } from './ioas';
import { native, results, type NativeHandle } from './native';
import { MappedRegion } from './region';

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

/** A device bound to an iommufd (a VfioDevice), or its iommufd device id as a number (mock devices have only that). */
export type IommufdDevice = { readonly devId: number | null } | number;

/** Options of {@link Iommufd.allocHwpt}. */
export interface HwptOptions {
  /** Raw `IOMMU_HWPT_ALLOC_*` flags, or'ed with the named ones below. */
  flags?: number;
  /** A parent for nested HWPTs (IOMMU_HWPT_ALLOC_NEST_PARENT). */
  nestParent?: boolean;
  /** Dirty tracking enforced on attach (IOMMU_HWPT_ALLOC_DIRTY_TRACKING). */
  dirtyTracking?: boolean;
  /** Usable with PASIDs (IOMMU_HWPT_ALLOC_PASID). */
  pasid?: boolean;
  /** `IOMMU_HWPT_DATA_*` of `data`: a nested (user-managed) HWPT's driver data. */
  dataType?: number;
  /** The driver data, copied by the kernel. */
  data?: ArrayBufferView;
  /** Page faults of this HWPT go to this queue (IOMMU_HWPT_FAULT_ID_VALID, Linux 6.11+). */
  faultQueue?: FaultQueue;
}

/** Options of {@link Iommufd.hwInfo}. */
export interface HwInfoOptions {
  /** Ask for this `IOMMU_HW_INFO_TYPE_*` of data (IOMMU_HW_INFO_FLAG_INPUT_TYPE, Linux 6.17+). */
  dataType?: number;
}

/** Options of {@link Hwpt.getDirtyBitmap}. */
export interface DirtyBitmapOptions {
  /** Clear the dirty bits read (default true); false reads them only (NO_CLEAR). */
  clear?: boolean;
  /** Write into this bitmap instead of a new one (one bit per page, 64 per element); the words covering the range are overwritten, the rest left as they are. */
  into?: BigUint64Array;
}

/** An object of an iommufd that its close() must let go of. */
interface Owned {
  _drop(): void;
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
  /** vIOMMUs, vDEVICEs and event queues. */
  readonly #others = new Set<Owned>();

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

  /**
   * The IOAS `id` of this iommufd that the library did not allocate here: one made by another
   * process that passed the fd (`receiveFds`), or the compat container's (`vfioIoas`). The
   * kernel confirms it is an IOAS (IOMMU_IOAS_IOVA_RANGES: ENOENT otherwise). Its mappings made
   * elsewhere are not in this object's ledger: unmap them by IOVA.
   */
  ioasFromId(id: number): IoAddressSpace {
    const h = this._native();
    toIndex(id, 'id', 0xffffffff);
    for (const ioas of this.#ioases) if (ioas.id === id) return ioas;
    native.ioasIovaRanges(h, id);
    const ioas = new IoAddressSpace(this, id);
    this.#ioases.add(ioas);
    return ioas;
  }

  /**
   * mmap `length` bytes of the iommufd at `offset` (Linux 6.17+): a vIOMMU's MMIO region, whose
   * offset and length the driver data of `allocViommu` reports (NVIDIA's CMDQV VINTF page, the
   * mock's test page). Accessed like a BAR, through exact-width volatile accessors. The vIOMMU
   * cannot be destroyed while mapped (EBUSY); ENXIO for an offset or length it does not have.
   */
  mmap(offset: bigint | number, length: number): MappedRegion {
    const h = this._native();
    const off = toU64(offset, 'offset');
    toIndex(length, 'length', 2 ** 40);
    if (length === 0) throw new RangeError('length must be at least 1');
    let handle: NativeHandle;
    try {
      handle = native.iommufdMmap(h, off, length);
    } catch (err) {
      // Before 6.17 an iommufd has no mmap at all: the VFS answers ENODEV.
      if (err instanceof VfioError && err.code === 'ENODEV' && kernelBefore('6.17')) {
        throw needsKernelError('iommufd.mmap()', '6.17', err.errno);
      }
      throw err;
    }
    return new MappedRegion(-1, length, [{ offset: 0, size: length, handle, key: native.handleKey(handle), u8: null, u16: null, u32: null, u64: null }], null);
  }

  /** @internal */
  _forget(object: IoAddressSpace | Hwpt | Owned): void {
    if (Hwpt.isHwpt(object)) this.#hwpts.delete(object);
    else if (IoAddressSpace.isIoas(object)) this.#ioases.delete(object);
    else this.#others.delete(object);
  }

  /** @internal */
  _own<T extends Owned>(object: T): T {
    this.#others.add(object);
    return object;
  }

  /**
   * IOMMU_VFIO_IOAS: which IOAS the VFIO compat container of this iommufd uses (an iommufd opened
   * as a container, `VfioContainer.open('/dev/iommu')`, maps into it). `'get'` returns its id
   * (ENODEV when there is none yet), `'set'` makes `ioas` the compat IOAS, `'clear'` forgets it.
   */
  vfioIoas(options: { op: 'get' } | { op: 'set'; ioas: IoAddressSpace | number } | { op: 'clear' }): number | undefined {
    const h = this._native();
    const o = optionsObject(options, 'options') as { op?: unknown; ioas?: IoAddressSpace | number };
    if (o.op === 'get') return native.iommufdVfioIoas(h, C.IOMMU_VFIO_IOAS_GET, 0);
    if (o.op === 'clear') {
      native.iommufdVfioIoas(h, C.IOMMU_VFIO_IOAS_CLEAR, 0);
      return undefined;
    }
    if (o.op !== 'set') throw new TypeError(`options.op must be 'get', 'set' or 'clear', got ${describe(o.op)}`);
    if (o.ioas === undefined) throw new TypeError("options.ioas is required with op 'set'");
    native.iommufdVfioIoas(h, C.IOMMU_VFIO_IOAS_SET, objectId(o.ioas, 'options.ioas'));
    return undefined;
  }

  /**
   * IOMMU_GET_HW_INFO for a bound device (or a device id): the IOMMU's type, capabilities
   * (`IOMMU_HW_CAP_*`) and vendor data; `{ dataType }` asks for one type of data (Linux 6.17+).
   */
  hwInfo(device: IommufdDevice, options?: HwInfoOptions): HwInfo {
    const devId = boundDevId(device);
    const o = optionsObject(options, 'options');
    const h = this._native();
    const typed = o.dataType !== undefined;
    const dataType = typed ? toIndex(o.dataType, 'options.dataType', 0xffffffff) : 0;
    const call = () => native.iommufdHwInfo(h, devId, typed ? C.IOMMU_HW_INFO_FLAG_INPUT_TYPE : 0, dataType);
    const r = typed ? withKernel('hwInfo({ dataType })', '6.17', call) : call();
    const out: HwInfo = { type: r.type, capabilities: r.capabilities, data: r.data };
    if (r.maxPasidLog2) out.maxPasidLog2 = r.maxPasidLog2;
    return out;
  }

  /**
   * IOMMU_HWPT_ALLOC: a page table for `device` on top of an IOAS (a kernel-managed HWPT), or on
   * a nest-parent HWPT or vIOMMU with `{ dataType, data }` (a nested, user-managed one).
   */
  allocHwpt(device: IommufdDevice, parent: IoAddressSpace | Hwpt | Viommu | number, options?: HwptOptions): Hwpt {
    const devId = boundDevId(device);
    const ptId = objectId(parent, 'parent');
    const o = optionsObject(options, 'options');
    let flags = toIndex(o.flags ?? 0, 'options.flags', 0xffffffff);
    if (o.nestParent) flags |= C.IOMMU_HWPT_ALLOC_NEST_PARENT;
    if (o.dirtyTracking) flags |= C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
    if (o.pasid) flags |= C.IOMMU_HWPT_ALLOC_PASID;
    let faultId = 0;
    if (o.faultQueue !== undefined) {
      if (!FaultQueue.isFaultQueue(o.faultQueue)) {
        throw new TypeError(`options.faultQueue must be a FaultQueue, got ${describe(o.faultQueue)}`);
      }
      if (o.faultQueue.closed) throw closedError(`options.faultQueue: the fault queue ${o.faultQueue.id} is closed`);
      faultId = o.faultQueue.id;
      flags |= C.IOMMU_HWPT_FAULT_ID_VALID;
    }
    flags >>>= 0; // `|` made bit 31 a sign bit: back to a u32
    const data = o.data === undefined ? null : viewBytes(o.data, 'options.data');
    if (data !== null && o.dataType === undefined) throw new TypeError('options.dataType is required with options.data');
    const dataType = toIndex(o.dataType ?? C.IOMMU_HWPT_DATA_NONE, 'options.dataType', 0xffffffff);
    const h = this._native();
    const call = () => native.iommufdHwptAlloc(h, flags, devId, ptId, dataType, data, faultId);
    let id: number;
    try {
      if (faultId) id = withKernel('allocHwpt({ faultQueue })', '6.11', call);
      else if (Viommu.isViommu(parent)) id = withKernel('allocHwpt() on a vIOMMU', '6.13', call);
      else id = call();
    } catch (err) {
      // A kernel-managed HWPT with a feature the IOMMU lacks: EOPNOTSUPP (VT-d without SSADS or
      // nesting support, for instance).
      const feature = o.dirtyTracking ? 'dirty tracking' : o.nestParent ? 'nesting' : o.pasid ? 'PASID domains' : null;
      if (feature && data === null && err instanceof VfioError && err.code === 'EOPNOTSUPP') {
        throw new VfioUnsupportedError('ERR_VFIO_UNSUPPORTED', err.errno,
          `the IOMMU under device ${devId} does not support ${feature} (IOMMU_HWPT_ALLOC answered EOPNOTSUPP; ` +
          'hwInfo(device).capabilities lists what it has)', { ioctl: 'IOMMU_HWPT_ALLOC' });
      }
      throw err;
    }
    const hwpt = new Hwpt(this, id);
    this.#hwpts.add(hwpt);
    return hwpt;
  }

  /**
   * IOMMU_VIOMMU_ALLOC (Linux 6.13+): a virtual IOMMU of `type` (`IOMMU_VIOMMU_TYPE_*`) for the
   * IOMMU behind `device`, on a nest-parent HWPT; `{ data }` is the type's driver data (in and out).
   */
  allocViommu(device: IommufdDevice, parent: Hwpt | number, type: number, options?: { data?: ArrayBufferView }): Viommu {
    const devId = boundDevId(device);
    if (!Hwpt.isHwpt(parent) && typeof parent !== 'number') {
      throw new TypeError(`parent must be a nest-parent Hwpt or its id, got ${describe(parent)}`);
    }
    const hwptId = objectId(parent, 'parent');
    const t = toIndex(type, 'type', 0xffffffff);
    const o = optionsObject(options, 'options');
    const data = o.data === undefined ? null : viewBytes(o.data, 'options.data');
    const id = native.iommufdViommuAlloc(this._native(), t, devId, hwptId, data);
    return this._own(new Viommu(this, id, t));
  }

  /**
   * IOMMU_FAULT_QUEUE_ALLOC (Linux 6.11+): a queue for the I/O page faults of the HWPTs
   * allocated with `{ faultQueue }`. An EventEmitter of `'fault'` events; respond(cookie, code).
   */
  allocFaultQueue(): FaultQueue {
    const h = this._native();
    const queue = new FaultQueue((callback) => native.iommufdFaultQueueAlloc(h, callback),
      (id) => { this._forget(queue); this.destroy(id); });
    return this._own(queue);
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
    const target = objectId(objectIdArg, 'objectId');
    try {
      native.iommufdOption(this._native(), C.IOMMU_OPTION_OP_SET, id, target, v);
    } finally {
      // hugePages sets the IOAS's IOVA alignment (off: PAGE_SIZE): its map checks re-read it.
      this.#invalidateAlignments();
    }
  }

  /** Every IOAS here re-reads its IOVA alignment before its next map (something may have changed it). */
  #invalidateAlignments(): void {
    for (const ioas of this.#ioases) ioas._invalidate();
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
    try {
      return native.iommufdIoctl(h, toIndex(request, 'request', 0xffffffff), arg);
    } finally {
      // A raw ioctl may attach devices (the mock's test commands do): alignments are re-read.
      this.#invalidateAlignments();
    }
  }

  /**
   * IOMMU_IOAS_CHANGE_PROCESS (Linux 6.13+): charge the pinned memory of every mapping in this
   * iommufd to the calling process instead of the one that mapped it, for a process that took
   * the fd over (live update, an fd passed with `sendFds`). Every mapping must come from
   * `ioas.mapFile()` (EINVAL otherwise); on failure nothing changes.
   */
  changeProcess(): void {
    native.iommufdChangeProcess(this._native());
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
    for (const other of this.#others) other._drop();
    this.#others.clear();
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

function boundDevId(device: IommufdDevice): number {
  if (typeof device === 'number') return toIndex(device, 'device', 0xffffffff);
  if (!device || typeof device !== 'object' || !('devId' in device)) {
    throw new TypeError(`device must be a bound VfioDevice or an iommufd device id, got ${describe(device)}`);
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

function objectId(value: IoAddressSpace | Hwpt | Viommu | number, name: string): number {
  if (IoAddressSpace.isIoas(value) || Hwpt.isHwpt(value) || Viommu.isViommu(value)) {
    if (value.destroyed) throw closedError(`${name}: object ${value.id} was destroyed (or its iommufd closed)`);
    return value.id;
  }
  if (typeof value !== 'number') throw new TypeError(`${name} must be an iommufd object or its id, got ${describe(value)}`);
  return toIndex(value, name, 0xffffffff);
}

/** The bytes of an ArrayBufferView (a copy the kernel reads during the call). */
function viewBytes(value: unknown, name: string): Uint8Array {
  if (!ArrayBuffer.isView(value)) throw new TypeError(`${name} must be a TypedArray or DataView, got ${describe(value)}`);
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * IOMMU_HWPT_INVALIDATE of a nested HWPT or a vIOMMU: `entries` are driver-specific requests of
 * `dataType`, all of one length (an empty list asks whether the type is supported). Returns how
 * many the kernel handled.
 */
function invalidate(ictx: Iommufd, id: number, dataType: number, entries: readonly ArrayBufferView[]): number {
  const h = ictx._native();
  const type = toIndex(dataType, 'dataType', 0xffffffff);
  if (!Array.isArray(entries)) throw new TypeError(`entries must be an array of TypedArrays, got ${describe(entries)}`);
  const views = entries.map((e, i) => viewBytes(e, `entries[${i}]`));
  const entryLen = views.length ? views[0].byteLength : 0;
  if (views.some((v) => v.byteLength !== entryLen)) throw new RangeError('entries must all have the same byteLength');
  const packed = new Uint8Array(entryLen * views.length);
  views.forEach((v, i) => packed.set(v, i * entryLen));
  try {
    return native.hwptInvalidate(h, id, type, entryLen, packed, views.length);
  } catch (err) {
    // The entries before the failing one were handled: `handled` says how many (retry from there).
    if (err instanceof VfioError) Object.defineProperty(err, 'handled', { value: results[0], enumerable: true });
    throw err;
  }
}

/**
 * What every iommufd object the library wraps (HWPT, vIOMMU, vDEVICE) shares: its id, its
 * iommufd while it lives, and IOMMU_DESTROY.
 */
export abstract class IommufdObject {
  readonly id: number;
  #ictx: Iommufd | null;
  readonly #what: string;

  /** @internal */
  protected constructor(ictx: Iommufd, id: number, what: string) {
    this.#ictx = ictx;
    this.id = id;
    this.#what = what;
  }

  /** Whether `value` is an object of this library's making (a Proxy or look-alike is not). */
  protected static isObject(value: unknown): value is IommufdObject {
    return typeof value === 'object' && value !== null && #ictx in value;
  }

  /** The iommufd the object lives in, or null once it was destroyed or the iommufd closed. */
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

  /** @internal The iommufd, or ERR_VFIO_CLOSED. */
  protected _live(): Iommufd {
    if (!this.#ictx) throw closedError(`the ${this.#what} ${this.id} was destroyed (or its iommufd closed)`);
    return this.#ictx;
  }

  /** IOMMU_DESTROY (EBUSY while something uses the object). Idempotent. */
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

/** A hardware page table (IOMMU_HWPT_ALLOC). Attach it with `device.attach(hwpt)`. */
export class Hwpt extends IommufdObject {
  /** @internal */
  constructor(ictx: Iommufd, id: number) {
    super(ictx, id, 'HWPT');
  }

  /** Whether `value` is a Hwpt made by this library (a Proxy or look-alike is not). */
  static isHwpt(value: unknown): value is Hwpt {
    return IommufdObject.isObject(value) && value instanceof Hwpt;
  }

  /** IOMMU_HWPT_SET_DIRTY_TRACKING: start or stop dirty tracking (the HWPT needs `{ dirtyTracking }`). */
  setDirtyTracking(on: boolean): void {
    const ictx = this._live();
    if (typeof on !== 'boolean') throw new TypeError(`on must be a boolean, got ${describe(on)}`);
    native.hwptSetDirtyTracking(ictx._native(), this.id, on);
  }

  /**
   * IOMMU_HWPT_GET_DIRTY_BITMAP: which `pageSize` pages of [iova, iova + length) the device
   * wrote since the last read. Bit i (element i >> 6, bit i & 63) is the page at
   * iova + i * pageSize. The bits read are cleared unless `{ clear: false }`.
   */
  getDirtyBitmap(iova: bigint | number, length: bigint | number, pageSize: number, options?: DirtyBitmapOptions): BigUint64Array {
    const ictx = this._live();
    const o = optionsObject(options, 'options');
    const start = toU64(iova, 'iova');
    const len = toU64(length, 'length');
    const page = toIndex(pageSize, 'pageSize', 2 ** 52);
    if (page === 0 || (page & (page - 1)) !== 0) throw new RangeError(`pageSize must be a power of two, got ${page}`);
    if (len === 0n) throw new RangeError('length must not be 0');
    const pages = (len + BigInt(page) - 1n) / BigInt(page);
    if (pages > 2n ** 28n) {
      throw new RangeError(`length / pageSize is ${pages} pages; at most 2^28 per call (a 32 MiB bitmap): split the range`);
    }
    const words = Number((pages + 63n) / 64n);
    let bitmap = o.into;
    if (bitmap === undefined) bitmap = new BigUint64Array(words);
    else if (!(bitmap instanceof BigUint64Array)) throw new TypeError(`options.into must be a BigUint64Array, got ${describe(bitmap)}`);
    else if (bitmap.length < words) throw new RangeError(`options.into holds ${bitmap.length} words; ${words} are needed`);
    else bitmap.fill(0n, 0, words);
    const flags = o.clear === false ? C.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR : 0;
    native.hwptGetDirtyBitmap(ictx._native(), this.id, flags, start, len, page, bitmap);
    return bitmap;
  }

  /** IOMMU_HWPT_INVALIDATE of this nested HWPT's caches; returns how many entries the kernel handled. */
  invalidate(dataType: number, entries: readonly ArrayBufferView[]): number {
    return invalidate(this._live(), this.id, dataType, entries);
  }
}

/**
 * A virtual IOMMU (IOMMU_VIOMMU_ALLOC, Linux 6.13+): a slice of the physical IOMMU for one VM,
 * wrapping a nest-parent HWPT. Nested HWPTs can be allocated on it (`allocHwpt(dev, viommu,
 * { dataType, data })`), devices get virtual ids on it (allocVdevice), and it reports events
 * through an event queue (allocEventQueue).
 */
export class Viommu extends IommufdObject {
  /** `IOMMU_VIOMMU_TYPE_*`. */
  readonly type: number;

  /** @internal */
  constructor(ictx: Iommufd, id: number, type: number) {
    super(ictx, id, 'vIOMMU');
    this.type = type;
  }

  /** Whether `value` is a Viommu made by this library. */
  static isViommu(value: unknown): value is Viommu {
    return IommufdObject.isObject(value) && value instanceof Viommu;
  }

  /** IOMMU_VDEVICE_ALLOC: `device` appears on this vIOMMU with the virtual id `virtId` (a vSID, vRID, ...). */
  allocVdevice(device: IommufdDevice, virtId: bigint | number): Vdevice {
    const ictx = this._live();
    const devId = boundDevId(device);
    const virt = toU64(virtId, 'virtId');
    const id = native.iommufdVdeviceAlloc(ictx._native(), this.id, devId, virt);
    return ictx._own(new Vdevice(ictx, id, virt));
  }

  /**
   * IOMMU_VEVENTQ_ALLOC (Linux 6.15+): the vIOMMU's queue of events of `type`
   * (`IOMMU_VEVENTQ_TYPE_*`), at most `depth` waiting. `{ dataSize }` is the bytes of data per
   * event for a type the library does not know.
   */
  allocEventQueue(type: number, depth: number, options?: { dataSize?: number }): VeventQueue {
    const ictx = this._live();
    const t = toIndex(type, 'type', 0xffffffff);
    const d = toIndex(depth, 'depth', 0xffffffff);
    if (d === 0) throw new RangeError('depth must be at least 1');
    const o = optionsObject(options, 'options');
    const size = o.dataSize !== undefined ? toIndex(o.dataSize, 'options.dataSize', 4096) : VEVENT_DATA_SIZE[t];
    if (size === undefined) {
      throw new TypeError(`options.dataSize is required for event queue type ${t}, which the library does not know`);
    }
    const h = ictx._native();
    const queue = new VeventQueue(t, size, d, (callback) => native.iommufdVeventqAlloc(h, this.id, t, d, callback),
      (id) => { ictx._forget(queue); ictx.destroy(id); });
    return ictx._own(queue);
  }

  /**
   * IOMMU_HW_QUEUE_ALLOC (Linux 6.17+): let the hardware use the guest queue of `length` bytes at
   * `iova` (a nesting-parent IOVA, which must be mapped: ENOENT; it stays pinned, so its unmap is
   * EBUSY, until the queue is destroyed) as this vIOMMU's queue `index` of `type`
   * (`IOMMU_HW_QUEUE_TYPE_*`). Index 0 first; destroy in descending order.
   */
  allocHwQueue(type: number, index: number, iova: bigint | number, length: bigint | number): HwQueue {
    const ictx = this._live();
    const t = toIndex(type, 'type', 0xffffffff);
    const i = toIndex(index, 'index', 0xffffffff);
    const id = native.iommufdHwQueueAlloc(ictx._native(), this.id, t, i, toU64(iova, 'iova'), toU64(length, 'length'));
    return ictx._own(new HwQueue(ictx, id, t, i));
  }

  /**
   * IOMMU_HWPT_INVALIDATE through the vIOMMU (device caches, descriptor caches); returns entries
   * handled. When one fails the VfioError's `handled` says how many before it were.
   */
  invalidate(dataType: number, entries: readonly ArrayBufferView[]): number {
    return invalidate(this._live(), this.id, dataType, entries);
  }
}

/** A hardware-accelerated queue of a vIOMMU (IOMMU_HW_QUEUE_ALLOC). */
export class HwQueue extends IommufdObject {
  /** `IOMMU_HW_QUEUE_TYPE_*`. */
  readonly type: number;
  /** The queue's index among the vIOMMU's queues of its type. */
  readonly index: number;

  /** @internal */
  constructor(ictx: Iommufd, id: number, type: number, index: number) {
    super(ictx, id, 'HW queue');
    this.type = type;
    this.index = index;
  }
}

/** A device's virtual instance on a vIOMMU (IOMMU_VDEVICE_ALLOC). */
export class Vdevice extends IommufdObject {
  /** The virtual device id on the vIOMMU. */
  readonly virtId: bigint;

  /** @internal */
  constructor(ictx: Iommufd, id: number, virtId: bigint) {
    super(ictx, id, 'vDEVICE');
    this.virtId = virtId;
  }
}
