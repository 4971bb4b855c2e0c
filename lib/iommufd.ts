import { MAX_U64, describe, optionsObject, toIndex, toPath, toU64, u64Arg } from './args';
import { constants as C } from './constants';
import { DmaBuffer } from './dma-buffer';
import { DmaLedger } from './dma-ledger';
import { EBADF, EINVAL, ENOENT, VfioStateError } from './errors';
import { native, PAGE_SIZE, type NativeHandle } from './native';

/** Memory that can be mapped for DMA: only a DmaBuffer, whose lifetime the library controls. */
export type DmaMemory = DmaBuffer;

/** Options of {@link IoAddressSpace.map}. */
export interface MapOptions {
  /** Fixed IOVA; without it the kernel chooses and the chosen IOVA is returned. */
  iova?: bigint | number;
  /** First byte of the buffer to map (page-aligned, default 0). */
  offset?: number;
  /** Bytes to map (page-aligned, default the rest of the buffer). */
  length?: number;
  readable?: boolean;
  writable?: boolean;
}

/** Options of {@link IoAddressSpace.mapFile}. */
export interface MapFileOptions {
  /** Fixed IOVA; without it the kernel chooses and the chosen IOVA is returned. */
  iova?: bigint | number;
  readable?: boolean;
  writable?: boolean;
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
    throw new VfioStateError('ERR_VFIO_NOT_BOUND', -22, 'ioctl', 'the device is not bound to an iommufd');
  }
  return device.devId;
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

function isAligned(v: number | bigint, align: number): boolean {
  return typeof v === 'number' ? v % align === 0 : v % BigInt(align) === 0n;
}

/** The TypeError for memory that is not a DmaBuffer. */
export function notDmaBuffer(name: string, value: unknown): TypeError {
  return new TypeError(
    `${name} must be a DmaBuffer (allocate one with DmaBuffer.alloc): a device must never DMA into memory ` +
      `the JS heap can free or move, such as an ArrayBuffer, Buffer or WebAssembly memory; got ${describe(value)}`,
  );
}

/**
 * The part of `buffer` that `offset`/`length` options select, checked: whole pages of a live
 * DmaBuffer, and a multiple of `align`.
 */
export function bufferSpan(buffer: unknown, offsetOpt: unknown, lengthOpt: unknown, align: number):
  { buffer: DmaBuffer; offset: number; length: number } {
  if (!DmaBuffer.isDmaBuffer(buffer)) throw notDmaBuffer('buffer', buffer);
  const offset = offsetOpt === undefined ? 0 : toIndex(offsetOpt, 'options.offset');
  if (offset >= buffer.size) throw new RangeError(`options.offset ${offset} is outside the buffer (size ${buffer.size})`);
  const length = lengthOpt === undefined ? buffer.size - offset : toIndex(lengthOpt, 'options.length');
  if (length === 0) throw new RangeError('options.length must not be 0');
  if (offset + length > buffer.size) {
    throw new RangeError(`options.offset ${offset} + options.length ${length} is outside the buffer (size ${buffer.size})`);
  }
  if (offset % PAGE_SIZE !== 0) throw new RangeError(`options.offset ${offset} must be a multiple of the page size ${PAGE_SIZE}`);
  if (length % align !== 0) {
    throw new RangeError(`the mapped length ${length} must be a multiple of the IOVA alignment ${align}`);
  }
  return { buffer, offset, length };
}

/** An I/O address space: DMA mappings from IOVA to library-owned memory. */
export class IoAddressSpace {
  readonly id: number;
  #ictx: Iommufd | null;
  /** The pinned ranges: holds each mapped DmaBuffer (and keeps it from being freed). */
  readonly #ledger = new DmaLedger();
  #alignment: bigint | null = null;

  /** @internal */
  constructor(ictx: Iommufd, id: number) {
    this.#ictx = ictx;
    this.id = id;
  }

  /** Whether `value` is an IoAddressSpace made by this library (a Proxy or look-alike is not). */
  static isIoas(value: unknown): value is IoAddressSpace {
    return typeof value === 'object' && value !== null && #ledger in value;
  }

  /** The iommufd this IOAS lives in, or null once destroyed or the iommufd closed. */
  get iommufd(): Iommufd | null {
    return this.#ictx;
  }

  /** Whether destroy() ran or the iommufd was closed. */
  get destroyed(): boolean {
    return this.#ictx === null;
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

  /**
   * Map a DmaBuffer (or the `offset`/`length` part of it) for DMA and return its IOVA. The buffer
   * cannot be freed while any part of it is mapped.
   */
  map(buffer: DmaBuffer, options?: MapOptions): bigint {
    const h = this.#native();
    const opts = options === undefined ? NO_OPTIONS : optionsObject(options, 'options');
    let flags = mapFlags(opts);
    const align = this.#requiredAlignment();
    const span = bufferSpan(buffer, opts.offset, opts.length, align);
    let iova: number | bigint = 0;
    if (opts.iova !== undefined) {
      iova = u64Arg(opts.iova, 'options.iova');
      if (!isAligned(iova, align)) {
        throw new RangeError(`options.iova 0x${iova.toString(16)} must be aligned to ${align}`);
      }
      flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA;
    }
    const got = native.ioasMap(h, this.id, flags, span.buffer._native(), span.offset, span.length, iova);
    this.#ledger.add(got, BigInt(span.length), span.buffer, span.offset);
    return got;
  }

  /** The IOVA of byte `offset` of a DmaBuffer mapped here. */
  iovaOf(buffer: DmaBuffer, offset = 0): bigint {
    this.#native();
    if (!DmaBuffer.isDmaBuffer(buffer)) throw notDmaBuffer('buffer', buffer);
    toIndex(offset, 'offset');
    const iova = this.#ledger.iovaOf(buffer, offset);
    if (iova === undefined) {
      throw new VfioStateError('ERR_VFIO_NOT_MAPPED', ENOENT, 'ioctl',
        `byte ${offset} of the DmaBuffer is not mapped in IOAS ${this.id}`);
    }
    return iova;
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
    this.#ledger.add(got, length, null, 0);
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
    if (!this.#ledger.takeExact(start, len)) {
      const first = BigInt(start);
      const last = first + BigInt(len) - 1n;
      this.#ledger.take(first, last > MAX_U64 ? MAX_U64 : last);
    }
    return done;
  }

  /** Unmap everything; returns the bytes unmapped. */
  unmapAll(): number {
    const done = native.ioasUnmap(this.#native(), this.id, 0, MAX_U64);
    this.#ledger.clear();
    return done;
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
    if (!IoAddressSpace.isIoas(src)) throw new TypeError(`src must be an IoAddressSpace, got ${describe(src)}`);
    const h = this.#native();
    if (src.iommufd !== this.#ictx) {
      throw new VfioStateError('ERR_VFIO_CLOSED', EINVAL, 'ioctl',
        'src must be a live IOAS of the same iommufd (IOMMU_IOAS_COPY works inside one iommufd)', { ioctl: 'IOMMU_IOAS_COPY' });
    }
    const opts = optionsObject(options, 'options');
    let flags = mapFlags(opts);
    const srcIova = toU64(opts.srcIova, 'options.srcIova');
    const length = toU64(opts.length, 'options.length');
    let dst = 0n;
    if (opts.dstIova !== undefined) {
      dst = toU64(opts.dstIova, 'options.dstIova');
      flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA;
    }
    const got = native.ioasCopy(h, flags, this.id, src.id, length, dst, srcIova);
    const source = src.#ledger.entryAt(srcIova);
    const offset = source ? source.offset + Number(srcIova - source.iova) : 0;
    this.#ledger.add(got, length, source?.buffer ?? null, offset);
    return got;
  }

  /** @internal The iommufd was closed: the kernel releases this IOAS and its pins with it. */
  _drop(): void {
    this.#ictx = null;
    this.#ledger.clear();
  }

  /** IOMMU_DESTROY of this IOAS (EBUSY while devices are attached). Idempotent. */
  destroy(): void {
    if (!this.#ictx) return;
    this.#ictx.destroy(this.id);
    this.#ledger.clear();
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
