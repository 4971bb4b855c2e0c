import { MAX_SAFE_N, MAX_U64, describe, optionsObject, toIndex, toU64, u64Arg } from './args';
import { constants as C } from './constants';
import { DmaBuffer } from './dma-buffer';
import { EBADF, VfioStateError } from './errors';
import { native, PAGE_SIZE, type NativeHandle } from './native';

/** Memory that can be mapped for DMA: a DmaBuffer, or caller-owned ArrayBuffer memory. */
export type DmaMemory = DmaBuffer | ArrayBuffer | ArrayBufferView;

/** Options of {@link IoAddressSpace.map}. */
export interface MapOptions {
  /** Fixed IOVA; without it the kernel chooses and the chosen IOVA is returned. */
  iova?: bigint | number;
  readable?: boolean;
  writable?: boolean;
}

/** Options of {@link IoAddressSpace.mapFile}. */
export interface MapFileOptions extends MapOptions {
  start: bigint | number;
  length: bigint | number;
}

/** An inclusive IOVA range. */
export interface IovaRange {
  start: bigint;
  last: bigint;
}

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

function closedError(what: string): VfioStateError {
  return new VfioStateError('ERR_VFIO_CLOSED', EBADF, 'ioctl', `the ${what} is closed`);
}

/** An iommufd context (`/dev/iommu`): owns IOAS and HWPT objects. */
export class Iommufd {
  #handle: NativeHandle | null;
  readonly path: string | null;
  readonly #ioases = new Set<IoAddressSpace>();

  private constructor(handle: NativeHandle, path: string | null) {
    this.#handle = handle;
    this.path = path;
  }

  /** Open an iommufd, `/dev/iommu` by default. */
  static open(path = '/dev/iommu'): Iommufd {
    if (typeof path !== 'string') throw new TypeError(`path must be a string, got ${describe(path)}`);
    return new Iommufd(native.iommufdOpen(path), path);
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
    if (!this.#handle) throw closedError('iommufd');
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
  _forget(ioas: IoAddressSpace): void {
    this.#ioases.delete(ioas);
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
    return new Hwpt(this, native.iommufdHwptAlloc(this._native(), flags, devId, ptId));
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

  /** IOMMU_DESTROY of any object id. */
  destroy(id: number): void {
    native.iommufdDestroy(this._native(), toIndex(id, 'id', 0xffffffff));
  }

  /** Close the fd. Objects live on in the kernel while bound devices hold the context. Idempotent. */
  close(): void {
    if (!this.#handle) return;
    for (const ioas of this.#ioases) ioas._drop();
    this.#ioases.clear();
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
    throw new VfioStateError('ERR_VFIO_NOT_BOUND', -22, 'ioctl', 'the device is not bound to an iommufd');
  }
  return device.devId;
}

function objectId(value: IoAddressSpace | Hwpt | number, name: string): number {
  if (value instanceof IoAddressSpace || value instanceof Hwpt) return value.id;
  return toIndex(value, name, 0xffffffff);
}

/** A hardware page table (IOMMU_HWPT_ALLOC). Attach it with `device.attach(hwpt)`. */
export class Hwpt {
  readonly id: number;
  #ictx: Iommufd;
  #destroyed = false;

  /** @internal */
  constructor(ictx: Iommufd, id: number) {
    this.#ictx = ictx;
    this.id = id;
  }

  /** IOMMU_DESTROY; fails with EBUSY while a device is attached. Idempotent. */
  destroy(): void {
    if (this.#destroyed || this.#ictx.closed) return;
    this.#ictx.destroy(this.id);
    this.#destroyed = true;
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

interface Mapping {
  length: number | bigint;
  memory: DmaMemory;
}

/** A bigint from the kernel as a map key: a number when it is safe. */
function keyOf(v: bigint): number | bigint {
  return v <= MAX_SAFE_N ? Number(v) : v;
}

function isAligned(v: number | bigint, align: number): boolean {
  return typeof v === 'number' ? v % align === 0 : v % BigInt(align) === 0n;
}

/** An I/O address space: DMA mappings from IOVA to process memory. */
export class IoAddressSpace {
  readonly id: number;
  #ictx: Iommufd | null;
  /** iova -> mapping: holds the memory alive while it is mapped. */
  readonly #mappings = new Map<number | bigint, Mapping>();
  #alignment: bigint | null = null;

  /** @internal */
  constructor(ictx: Iommufd, id: number) {
    this.#ictx = ictx;
    this.id = id;
  }

  #native(): NativeHandle {
    if (!this.#ictx) throw closedError('IOAS');
    return this.#ictx._native();
  }

  /** @internal The attached devices changed: re-read the alignment next time. */
  _invalidate(): void {
    this.#alignment = null;
  }

  /** The IOVA alignment the kernel requires (IOMMU_IOAS_IOVA_RANGES out_iova_alignment). */
  get iovaAlignment(): bigint {
    if (this.#alignment === null) this.#alignment = native.ioasIovaRanges(this.#native(), this.id).alignment;
    return this.#alignment;
  }

  /** The usable IOVA ranges, as the kernel reports them. */
  iovaRanges(): IovaRange[] {
    const r = native.ioasIovaRanges(this.#native(), this.id);
    this.#alignment = r.alignment;
    const out: IovaRange[] = [];
    for (let i = 0; i < r.ranges.length; i += 2) out.push({ start: r.ranges[i]!, last: r.ranges[i + 1]! });
    return out;
  }

  /** Map memory for DMA and return its IOVA. The IOAS keeps the memory alive until unmapped. */
  map(memory: DmaMemory, options?: MapOptions): bigint {
    const h = this.#native();
    const opts = options === undefined ? NO_OPTIONS : optionsObject(options, 'options');
    let flags = mapFlags(opts);
    const align = this.#requiredAlignment();
    let target: NativeHandle | ArrayBuffer | ArrayBufferView;
    let length: number;
    if (memory instanceof DmaBuffer) {
      target = memory._native();
      length = memory.size;
    } else if (memory instanceof ArrayBuffer || ArrayBuffer.isView(memory)) {
      target = memory;
      length = memory.byteLength;
      if (length === 0) throw new RangeError('memory must not be empty');
    } else {
      throw new TypeError(`memory must be a DmaBuffer, an ArrayBuffer or a TypedArray, got ${describe(memory)}`);
    }
    if (length % align !== 0) {
      throw new RangeError(`memory length ${length} must be a multiple of the IOVA alignment ${align}`);
    }
    let iova: number | bigint = 0;
    if (opts.iova !== undefined) {
      iova = u64Arg(opts.iova, 'options.iova');
      if (!isAligned(iova, align)) {
        throw new RangeError(`options.iova 0x${iova.toString(16)} must be aligned to ${align}`);
      }
      flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA;
    }
    const got = native.ioasMap(h, this.id, flags, target, 0, length, iova);
    this.#mappings.set(keyOf(got), { length, memory });
    if (memory instanceof DmaBuffer) memory._mapCount++;
    return got;
  }

  /** Map a range of a file (memfd) for DMA (IOMMU_IOAS_MAP_FILE, Linux 6.13+). */
  mapFile(fd: number, options: MapFileOptions): bigint {
    toIndex(fd, 'fd', 0x7fffffff);
    const opts = optionsObject(options, 'options');
    let flags = mapFlags(opts);
    const start = toU64(opts.start, 'options.start');
    const length = toU64(opts.length, 'options.length');
    let iova = 0n;
    if (opts.iova !== undefined) {
      iova = toU64(opts.iova, 'options.iova');
      flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA;
    }
    const got = native.ioasMapFile(this.#native(), this.id, flags, fd, start, length, iova);
    this.#mappings.set(keyOf(got), { length, memory: new Uint8Array(0) });
    return got;
  }

  /** Unmap whole mappings inside [iova, iova + length); returns the bytes unmapped. */
  unmap(iova: bigint | number, length: bigint | number): number {
    const h = this.#native();
    const start = u64Arg(iova, 'iova');
    const len = u64Arg(length, 'length');
    if (len === 0) throw new RangeError('length must not be 0');
    if (!isAligned(start, PAGE_SIZE) || !isAligned(len, PAGE_SIZE)) {
      throw new RangeError(`iova and length must be multiples of the page size ${PAGE_SIZE}`);
    }
    const done = native.ioasUnmap(h, this.id, start, len);
    const exact = this.#mappings.get(start);
    if (exact !== undefined && exact.length === len) {
      this.#forget(start, exact);
    } else {
      this.#release(BigInt(start), BigInt(start) + BigInt(len) - 1n);
    }
    return done;
  }

  /** Unmap everything; returns the bytes unmapped. */
  unmapAll(): number {
    const done = native.ioasUnmap(this.#native(), this.id, 0, MAX_U64);
    this.#release(0n, MAX_U64);
    return done;
  }

  #forget(key: number | bigint, m: Mapping): void {
    this.#mappings.delete(key);
    if (m.memory instanceof DmaBuffer) m.memory._mapCount--;
  }

  #release(first: bigint, last: bigint): void {
    for (const [key, m] of this.#mappings) {
      const at = BigInt(key);
      if (at >= first && at + BigInt(m.length) - 1n <= last) this.#forget(key, m);
    }
  }

  #requiredAlignment(): number {
    const k = Number(this.iovaAlignment);
    return k > PAGE_SIZE ? k : PAGE_SIZE;
  }

  /** Restrict the IOVAs the kernel may choose (IOMMU_IOAS_ALLOW_IOVAS); [] clears. */
  allowIovas(ranges: IovaRange[]): void {
    if (!Array.isArray(ranges)) throw new TypeError(`ranges must be an array, got ${describe(ranges)}`);
    const arr = new BigUint64Array(ranges.length * 2);
    ranges.forEach((r, i) => {
      arr[2 * i] = toU64(r?.start, `ranges[${i}].start`);
      arr[2 * i + 1] = toU64(r?.last, `ranges[${i}].last`);
    });
    native.ioasAllowIovas(this.#native(), this.id, arr);
  }

  /** Share a mapping of another IOAS of the same iommufd here (IOMMU_IOAS_COPY). */
  copyFrom(src: IoAddressSpace, options: { srcIova: bigint | number; dstIova?: bigint | number; length: bigint | number;
    readable?: boolean; writable?: boolean }): bigint {
    if (!(src instanceof IoAddressSpace)) throw new TypeError(`src must be an IoAddressSpace, got ${describe(src)}`);
    const opts = optionsObject(options, 'options');
    let flags = mapFlags(opts);
    const srcIova = toU64(opts.srcIova, 'options.srcIova');
    const length = toU64(opts.length, 'options.length');
    let dst = 0n;
    if (opts.dstIova !== undefined) {
      dst = toU64(opts.dstIova, 'options.dstIova');
      flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA;
    }
    const got = native.ioasCopy(this.#native(), flags, this.id, src.id, length, dst, srcIova);
    const source = src._mappingAt(srcIova);
    this.#mappings.set(keyOf(got), { length, memory: source ?? new Uint8Array(0) });
    if (source instanceof DmaBuffer) source._mapCount++;
    return got;
  }

  /** @internal */
  _mappingAt(iova: bigint): DmaMemory | undefined {
    for (const [key, m] of this.#mappings) {
      const start = BigInt(key);
      if (iova >= start && iova < start + BigInt(m.length)) return m.memory;
    }
    return undefined;
  }

  /** @internal The iommufd was closed. */
  _drop(): void {
    this.#ictx = null;
  }

  /** IOMMU_DESTROY of this IOAS (EBUSY while devices are attached). Idempotent. */
  destroy(): void {
    if (!this.#ictx) return;
    if (!this.#ictx.closed) this.#ictx.destroy(this.id);
    for (const [iova, m] of this.#mappings) this.#forget(iova, m);
    this.#ictx._forget(this);
    this.#ictx = null;
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

const NO_OPTIONS: MapOptions = Object.freeze({});

function mapFlags(opts: { readable?: boolean; writable?: boolean }): number {
  let value = 0;
  if (opts.readable !== false) value |= C.IOMMU_IOAS_MAP_READABLE;
  if (opts.writable !== false) value |= C.IOMMU_IOAS_MAP_WRITEABLE;
  if (value === 0) throw new RangeError('a mapping must be readable, writable or both');
  return value;
}
