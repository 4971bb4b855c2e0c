// One region of a device: pread/pwrite access (Region) and an mmap of it (MappedRegion). Every
// access is of exactly the requested width.
import { constants as fsc } from 'node:fs';
import { describe, optionsObject, rangeOption, toIndex, toRegister, toRegister64 } from './args';
import { flags as C } from './constants';
import type { RegionInfo } from './decoders';
import type { VfioDevice } from './device';
import { EINVAL, VfioError, bufferMappedError, closedError, memoryOffError, withKernel } from './errors';

/** open(2) flags of an exported dma-buf: read-write, close-on-exec (Linux's O_CLOEXEC; fs.constants lacks it). */
const DMABUF_OPEN_FLAGS = fsc.O_RDWR | 0o2000000;
import { hot, native, pageSize, type NativeHandle } from './native';

/** The device's fd handle, shared with its regions so they see close() at once. */
export interface Live {
  handle: NativeHandle | null;
  path: string | undefined;
}

type Width = 1 | 2 | 4 | 8;

function checkAccess(offset: unknown, width: Width, size: number, what: string): number {
  const off = toIndex(offset, 'offset');
  if (off + width > size) {
    throw new RangeError(`offset ${off} + ${width} is outside ${what} (size ${size})`);
  }
  if (off % width !== 0) throw new RangeError(`offset ${off} is not aligned to the access width ${width}`);
  return off;
}

/** True when `offset` is a valid, aligned access of `width` inside `size` (the hot path). */
function fastOk(offset: unknown, width: number, size: number): offset is number {
  // typeof first: `>>>` on an object would run its valueOf (user code) before any check.
  return typeof offset === 'number' && offset >>> 0 === offset && (offset & (width - 1)) === 0 && offset + width <= size;
}

/** One region of a device, accessed with pread/pwrite of exactly the requested width. */
export class Region {
  readonly index: number;
  readonly size: number;
  /** The region's offset in the device fd. */
  readonly offset: bigint;
  readonly info: RegionInfo;
  #device: VfioDevice;
  #live: Live;
  #base: number;
  /** PCI config space: writes that switch the device's memory off or on are watched. */
  #watch: boolean;

  /** @internal Use `device.region(index)`. */
  constructor(device: VfioDevice, live: Live, info: RegionInfo) {
    this.#device = device;
    this.#live = live;
    this.#watch = info.index === C.VFIO_PCI_CONFIG_REGION_INDEX;
    this.info = info;
    this.index = info.index;
    this.size = info.size;
    this.offset = info.offset;
    if (info.offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('region offset beyond 2^53');
    this.#base = Number(info.offset);
  }

  /** The fd handle and the absolute offset of a checked access (the slow path: throws). */
  #check(offset: unknown, width: Width, syscall: string): [NativeHandle, number] {
    const off = checkAccess(offset, width, this.size, `region ${this.index}`);
    return [this.#device._handle(syscall), this.#base + off];
  }

  /**
   * VFIO_DEVICE_FEATURE_DMA_BUF (Linux 6.19+): a dma-buf fd for [offset, offset + length) of this
   * BAR (default: all of it), for peer-to-peer DMA: `ioas.mapFile(fd, { start: 0, length })` maps
   * the BAR into an IOAS, so another device can DMA to it. The caller owns the fd (close it with
   * fs.closeSync; the kernel revokes it when the device is reset or closed).
   */
  exportDmabuf(options?: { offset?: number; length?: number }): number {
    const o = optionsObject(options, 'options');
    const { offset, length } = rangeOption(o.offset, o.length, this.size, `region ${this.index}`);
    // struct vfio_device_feature_dma_buf with one struct vfio_region_dma_range
    const data = new DataView(new ArrayBuffer(32));
    data.setUint32(0, this.index, true);
    data.setUint32(4, DMABUF_OPEN_FLAGS, true);
    data.setUint32(12, 1, true);
    data.setBigUint64(16, BigInt(offset), true);
    data.setBigUint64(24, BigInt(length), true);
    return withKernel('exportDmabuf (VFIO_DEVICE_FEATURE_DMA_BUF)', '6.19', () =>
      this.#device.feature(C.VFIO_DEVICE_FEATURE_DMA_BUF, { get: true, data: new Uint8Array(data.buffer) }));
  }

  read8(offset: number): number {
    const h = this.#live.handle;
    if (h !== null && fastOk(offset, 1, this.size)) return hot.read8(h, this.#base + offset);
    return hot.read8(...this.#check(offset, 1, 'pread'));
  }
  read16(offset: number): number {
    const h = this.#live.handle;
    if (h !== null && fastOk(offset, 2, this.size)) return hot.read16(h, this.#base + offset);
    return hot.read16(...this.#check(offset, 2, 'pread'));
  }
  read32(offset: number): number {
    const h = this.#live.handle;
    if (h !== null && fastOk(offset, 4, this.size)) return hot.read32(h, this.#base + offset);
    return hot.read32(...this.#check(offset, 4, 'pread'));
  }
  read64(offset: number): bigint {
    const h = this.#live.handle;
    if (h !== null && fastOk(offset, 8, this.size)) return hot.read64(h, this.#base + offset);
    return hot.read64(...this.#check(offset, 8, 'pread'));
  }
  /**
   * Run a config-space write, suspending this device's BAR mappings first when it turns the
   * device's memory off (COMMAND.MEMORY cleared, PMCSR to D3hot) and resuming them after it when
   * it turns it back on. `bytes` are the bytes written from `offset`.
   */
  #guarded(offset: number, bytes: ArrayLike<number>, write: () => void): void {
    if (!this.#watch) {
      write();
      return;
    }
    const dev = this.#device;
    const byteAt = (at: number | null): number | undefined =>
      at !== null && at >= offset && at < offset + bytes.length ? bytes[at - offset] : undefined;
    const cmd = byteAt(C.PCI_COMMAND);
    // Capabilities live at 0x40 and above: only such writes need the PM capability's offset.
    const pm = offset + bytes.length > 0x40 ? byteAt(dev.config.pmControlOffset()) : undefined;
    const d3 = (b: number): boolean => (b & C.PCI_PM_CTRL_STATE_MASK) === 3;
    const offCmd = cmd !== undefined && !(cmd & C.PCI_COMMAND_MEMORY) && dev._memoryOff('command',
      'memory decode is off (COMMAND.MEMORY was cleared through the library); set it again to use the BARs');
    const offPm = pm !== undefined && d3(pm) && dev._memoryOff('d3',
      'the device is in D3hot (PMCSR was written through the library); write D0 to PMCSR to use the BARs');
    try {
      write();
    } catch (err) {
      if (offCmd) dev._memoryOn('command');
      if (offPm) dev._memoryOn('d3');
      throw err;
    }
    if (cmd !== undefined && cmd & C.PCI_COMMAND_MEMORY) dev._memoryOn('command');
    if (pm !== undefined && !d3(pm)) dev._memoryOn('d3');
  }

  write8(offset: number, value: number): void {
    const [h, at] = this.#check(offset, 1, 'pwrite');
    const v = toRegister(value, 'value', 8);
    this.#guarded(at - this.#base, [v], () => hot.write8(h, at, v));
  }
  write16(offset: number, value: number): void {
    const [h, at] = this.#check(offset, 2, 'pwrite');
    const v = toRegister(value, 'value', 16);
    this.#guarded(at - this.#base, [v & 0xff, v >>> 8], () => hot.write16(h, at, v));
  }
  write32(offset: number, value: number): void {
    const h = this.#live.handle;
    if (h !== null && !this.#watch && fastOk(offset, 4, this.size) && typeof value === 'number' && value >>> 0 === value) {
      hot.write32(h, this.#base + offset, value);
      return;
    }
    const [hh, at] = this.#check(offset, 4, 'pwrite');
    const v = toRegister(value, 'value', 32);
    this.#guarded(at - this.#base, [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24],
      () => hot.write32(hh, at, v));
  }
  write64(offset: number, value: bigint | number): void {
    const [h, at] = this.#check(offset, 8, 'pwrite');
    const v = toRegister64(value, 'value');
    const bytes = Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
    this.#guarded(at - this.#base, bytes, () => hot.write64(h, at, v));
  }

  /** Read `length` bytes with one pread (the kernel splits it into aligned accesses). */
  read(offset: number, length: number): Uint8Array {
    const off = toIndex(offset, 'offset');
    toIndex(length, 'length');
    if (off + length > this.size) throw new RangeError(`offset ${off} + length ${length} is outside region ${this.index} (size ${this.size})`);
    const out = new Uint8Array(length);
    const n = native.devicePreadInto(this.#device._handle('pread'), this.#base + off, out);
    return n === length ? out : out.subarray(0, n);
  }

  /** Write bytes with one pwrite; returns the number written. */
  write(offset: number, bytes: Uint8Array): number {
    const off = toIndex(offset, 'offset');
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`bytes must be a Uint8Array, got ${describe(bytes)}`);
    if (off + bytes.length > this.size) {
      throw new RangeError(`offset ${off} + length ${bytes.length} is outside region ${this.index} (size ${this.size})`);
    }
    const h = this.#device._handle('pwrite');
    let n = 0;
    this.#guarded(off, bytes, () => {
      n = native.devicePwrite(h, this.#base + off, bytes);
    });
    return n;
  }

  /** mmap the region (or its sparse areas). Fails clearly for a region that cannot be mmapped. */
  map(): MappedRegion {
    const h = this.#device._handle('mmap');
    if (!this.info.mmappable && this.#device.checks) {
      throw new VfioError({
        errno: EINVAL, syscall: 'mmap', code: 'ERR_VFIO_NOT_MMAPPABLE',
        ...(this.#device.path ? { path: this.#device.path } : {}),
        message: `ERR_VFIO_NOT_MMAPPABLE: region ${this.index} cannot be mmapped (its driver does not set ` +
          'VFIO_REGION_INFO_FLAG_MMAP); use read*/write*, which go through pread/pwrite',
      });
    }
    const areas = this.info.sparseAreas ?? [{ offset: 0, size: this.size }];
    const mapped: MappedArea[] = [];
    try {
      for (const a of areas) {
        if (a.size === 0) continue;
        const len = Math.ceil(a.size / pageSize()) * pageSize();
        mapped.push(newArea(a.offset, a.size, native.deviceMmap(h, this.#base + a.offset, len, this.info.writable)));
      }
    } catch (err) {
      for (const m of mapped) native.mappingClose(m.handle);
      throw err;
    }
    const region = new MappedRegion(this.index, this.size, mapped, this.#device);
    this.#device._adopt(region);
    return region;
  }
}

/** What {@link MappedRegion.share} returns. */
export interface SharedMappedRegion {
  readonly vfioSharedMappedRegion: number;
  readonly size: number;
  readonly areas: ReadonlyArray<{ readonly offset: number; readonly size: number; readonly id: bigint }>;
}

/** One mmapped area, with typed-array views over it used only for Atomics.load. */
interface MappedArea {
  offset: number;
  size: number;
  handle: NativeHandle;
  /** The handle's key for the fast-call MMIO writes (native.handleKey). */
  key: number;
  u8: Uint8Array | null;
  u16: Uint16Array | null;
  u32: Uint32Array | null;
  u64: BigUint64Array | null;
}

/**
 * Reads through Atomics.load on typed arrays are the fast path on x86, where a plain load from an
 * uncached BAR is ordered like Linux's readl. Elsewhere (arm64) every access goes through native
 * code, which adds the DMA barriers readl and writel use.
 */
const JS_READS = process.arch === 'x64' || process.arch === 'ia32';

function newArea(offset: number, size: number, handle: NativeHandle): MappedArea {
  let ab: ArrayBuffer | null = null;
  try {
    if (JS_READS) ab = native.mappingArrayBuffer(handle);
  } catch {
    // A runtime without external ArrayBuffers: every access goes through native code instead.
  }
  return {
    offset, size, handle, key: native.handleKey(handle),
    u8: ab && new Uint8Array(ab),
    u16: ab && new Uint16Array(ab),
    u32: ab && new Uint32Array(ab),
    u64: ab && new BigUint64Array(ab),
  };
}

/**
 * An mmapped region. Every access is one load or store of exactly that width: reads are
 * `Atomics.load` on a typed array of that width (a single access by the language's rules,
 * never split, merged or elided), writes are volatile stores in native code (Atomics.store
 * would be a locked exchange on x86, which also reads the register). There is no DataView over
 * device memory, and the views are never handed out.
 */
export class MappedRegion {
  readonly index: number;
  readonly size: number;
  #areas: MappedArea[] | null;
  /** The single area covering the whole region from offset 0, when there is one. */
  #whole: MappedArea | null;
  /** The owning device; null for a mapping opened in another thread with fromShared(). */
  #device: VfioDevice | null;
  /** Why the device's memory is off (the accessors refuse), or null. */
  #suspended: string | null = null;
  /** How many container DMA mappings pin (a part of) this BAR mapping: close() is refused while > 0. */
  #pins = 0;

  /** @internal */
  constructor(index: number, size: number, areas: MappedArea[], device: VfioDevice | null) {
    this.index = index;
    this.size = size;
    this.#areas = areas;
    this.#whole = MappedRegion.#wholeOf(areas, size);
    this.#device = device;
  }

  /**
   * A value to post to a worker, where MappedRegion.fromShared() opens the same mapping (to ring
   * doorbells from a driver thread). The mmap stays, and with it the device file, until every
   * thread closed its MappedRegion.
   */
  share(): SharedMappedRegion {
    if (!this.#areas) throw closedError(`the mapping of region ${this.index} is closed`, 'mmap');
    return Object.freeze({
      vfioSharedMappedRegion: this.index,
      size: this.size,
      areas: this.#areas.map((a) => Object.freeze({ offset: a.offset, size: a.size, id: native.mappingShare(a.handle) })),
    });
  }

  /**
   * The same BAR mapping in this thread: native accesses under a lock that the owning thread takes
   * before the device's memory goes off, so none can fault (they throw EIO while it is off).
   */
  static fromShared(value: SharedMappedRegion): MappedRegion {
    if (typeof value !== 'object' || value === null || typeof value.vfioSharedMappedRegion !== 'number' ||
      !Array.isArray(value.areas)) {
      throw new TypeError(`value must be what MappedRegion.share() returned, got ${describe(value)}`);
    }
    const shared: SharedMappedRegion['areas'] = value.areas;
    if (!shared.every((a) => typeof a?.id === 'bigint' && Number.isSafeInteger(a.offset) && Number.isSafeInteger(a.size))) {
      throw new TypeError('value.areas must be what MappedRegion.share() returned');
    }
    const areas: MappedArea[] = [];
    try {
      for (const a of shared) {
        let handle: NativeHandle;
        try {
          handle = native.mappingFromShared(a.id);
        } catch {
          throw closedError('the shared mapping was closed in every thread that had it', 'mmap');
        }
        areas.push({ offset: a.offset, size: a.size, handle, key: native.handleKey(handle), u8: null, u16: null, u32: null, u64: null });
      }
    } catch (err) {
      for (const a of areas) native.mappingClose(a.handle);
      throw err;
    }
    return new MappedRegion(value.vfioSharedMappedRegion, value.size, areas, null);
  }

  static #wholeOf(areas: MappedArea[], size: number): MappedArea | null {
    const first = areas[0];
    return areas.length === 1 && first && first.offset === 0 && first.size === size && first.u32 ? first : null;
  }

  /**
   * @internal The device's memory goes off: detach the views and refuse every access (an access
   * would raise SIGBUS). The mmap stays and works again after _resume().
   */
  _suspend(reason: string): void {
    this.#suspended = reason;
    if (!this.#areas) return;
    this.#whole = null;
    this.#areas = this.#areas.map((a) => {
      native.mappingSetSuspended(a.handle, true);
      return { ...a, u8: null, u16: null, u32: null, u64: null };
    });
  }

  /** @internal The device's memory is on again. */
  _resume(): void {
    if (this.#suspended === null) return;
    this.#suspended = null;
    if (!this.#areas) return;
    this.#areas = this.#areas.map((a) => {
      native.mappingSetSuspended(a.handle, false);
      return newArea(a.offset, a.size, a.handle);
    });
    this.#whole = MappedRegion.#wholeOf(this.#areas, this.size);
  }

  /** The mmapped parts, as offsets in the region. */
  get areas(): Array<{ offset: number; size: number }> {
    return (this.#areas ?? []).map(({ offset, size }) => ({ offset, size }));
  }

  get closed(): boolean {
    return this.#areas === null;
  }

  /** The area and the offset in it of a checked access (the slow path: throws). */
  #at(offset: unknown, width: Width): [MappedArea, number] {
    if (!this.#areas) {
      throw closedError(`the mapping of region ${this.index} is closed`, 'mmap');
    }
    if (this.#suspended !== null) {
      throw memoryOffError(
        `region ${this.index} cannot be accessed while the device's memory is off: ${this.#suspended}`);
    }
    const off = checkAccess(offset, width, this.size, `region ${this.index}`);
    for (const a of this.#areas) {
      if (off >= a.offset && off + width <= a.offset + a.size) return [a, off - a.offset];
    }
    throw new RangeError(`offset ${off} of region ${this.index} is not in an mmapped (sparse) area`);
  }

  read8(offset: number): number {
    const w = this.#whole;
    if (w !== null && fastOk(offset, 1, this.size)) return Atomics.load(w.u8!, offset);
    const [a, o] = this.#at(offset, 1);
    return a.u8 ? Atomics.load(a.u8, o) : native.mappingRead8(a.handle, o);
  }
  read16(offset: number): number {
    const w = this.#whole;
    if (w !== null && fastOk(offset, 2, this.size)) return Atomics.load(w.u16!, offset >>> 1);
    const [a, o] = this.#at(offset, 2);
    return a.u16 ? Atomics.load(a.u16, o >>> 1) : native.mappingRead16(a.handle, o);
  }
  read32(offset: number): number {
    const w = this.#whole;
    if (w !== null && fastOk(offset, 4, this.size)) return Atomics.load(w.u32!, offset >>> 2);
    const [a, o] = this.#at(offset, 4);
    return a.u32 ? Atomics.load(a.u32, o >>> 2) : native.mappingRead32(a.handle, o);
  }
  read64(offset: number): bigint {
    const w = this.#whole;
    if (w !== null && fastOk(offset, 8, this.size)) return Atomics.load(w.u64!, offset >>> 3);
    const [a, o] = this.#at(offset, 8);
    return a.u64 ? Atomics.load(a.u64, o >>> 3) : native.mappingRead64(a.handle, o);
  }
  /**
   * Batch read: fill `out` with consecutive registers from `offset`, one exact-width access per
   * element (the element size of `out` is the width), in one native call. Returns `out`.
   */
  readInto<T extends Uint8Array | Uint16Array | Uint32Array | BigUint64Array>(offset: number, out: T): T {
    if (!(out instanceof Uint8Array || out instanceof Uint16Array || out instanceof Uint32Array ||
      out instanceof BigUint64Array)) {
      throw new TypeError(`out must be a Uint8Array, Uint16Array, Uint32Array or BigUint64Array, got ${describe(out)}`);
    }
    const width = out.BYTES_PER_ELEMENT as Width;
    if (out.length === 0) return out;
    const [a, o] = this.#at(offset, width);
    if (o + out.byteLength > a.size) {
      throw new RangeError(`offset ${offset} + ${out.byteLength} bytes is outside the mapped area of region ${this.index}`);
    }
    native.mappingReadBlock(a.handle, o, width, out);
    return out;
  }

  write8(offset: number, value: number): void {
    const [a, o] = this.#at(offset, 1);
    hot.mmioWrite8(a.handle, a.key, o, toRegister(value, 'value', 8));
  }
  write16(offset: number, value: number): void {
    const [a, o] = this.#at(offset, 2);
    hot.mmioWrite16(a.handle, a.key, o, toRegister(value, 'value', 16));
  }
  write32(offset: number, value: number): void {
    const w = this.#whole;
    if (w !== null && fastOk(offset, 4, this.size) && typeof value === 'number' && value >>> 0 === value) {
      hot.mmioWrite32(w.handle, w.key, offset, value);
      return;
    }
    const [a, o] = this.#at(offset, 4);
    hot.mmioWrite32(a.handle, a.key, o, toRegister(value, 'value', 32));
  }
  write64(offset: number, value: bigint | number): void {
    const [a, o] = this.#at(offset, 8);
    hot.mmioWrite64(a.handle, o, toRegister64(value, 'value'));
  }

  /** munmap. Idempotent. */
  /** Unmap it (refused while a container maps it for peer-to-peer DMA: unmap that first). Idempotent. */
  close(): void {
    if (this.#pins > 0) {
      throw bufferMappedError(`the BAR mapping of region ${this.index} is mapped for DMA in a container ` +
        `(${this.#pins} mapping(s)); unmap it there first, or close the container`);
    }
    this._dispose();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal A container mapping pins this BAR mapping. */
  _pin(): void {
    this.#pins++;
  }

  /** @internal A container mapping of it is gone. */
  _unpin(): void {
    if (this.#pins > 0) this.#pins--;
  }

  /**
   * @internal The mmap handle and the offset in it of [offset, offset + length), which must lie
   * inside one mmapped area (for VFIO_IOMMU_MAP_DMA of the BAR).
   */
  _span(offset: number, length: number): { handle: NativeHandle; offset: number } {
    if (!this.#areas) throw closedError(`region ${this.index}'s mapping is closed`, 'mmap');
    const a = this.#areas.find((x) => offset >= x.offset && offset + length <= x.offset + x.size);
    if (!a) throw new RangeError(`[${offset}, ${offset + length}) is not inside one mmapped area of region ${this.index}`);
    return { handle: a.handle, offset: offset - a.offset };
  }

  /** @internal */
  _dispose(): void {
    if (!this.#areas) return;
    for (const a of this.#areas) native.mappingClose(a.handle);
    this.#areas = null;
    this.#whole = null;
    this.#device?._forget(this);
  }
}
