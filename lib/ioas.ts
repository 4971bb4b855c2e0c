// An I/O address space (IOMMU_IOAS_ALLOC): DMA mappings from IOVA to library-owned memory,
// recorded in a ledger of pinned ranges.
import { MAX_U64, describe, optionsObject, rangeOption, toIndex, toU64, u64Arg } from './args';
import { flags as C } from './constants';
import { DmaBuffer } from './dma-buffer';
import { DmaLedger } from './dma-ledger';
import { EFAULT, EINVAL, VfioError, closedError, notMappedError } from './errors';
import { MappedRegion } from './region';
import type { IovaRange } from './decoders';
import type { Iommufd } from './iommufd';
import { hot, native, type NativeHandle } from './native';

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

export type { IovaRange } from './decoders';

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
 * The part of `buffer` that `offset`/`length` options select, checked: inside a live DmaBuffer,
 * and offset and length multiples of `align` (else the kernel's EINVAL for `ioctl`).
 */
export function bufferSpan(buffer: unknown, offsetOpt: unknown, lengthOpt: unknown, align: number, ioctl: string):
  { buffer: DmaBuffer; offset: number; length: number } {
  if (!DmaBuffer.isDmaBuffer(buffer)) throw notDmaBuffer('buffer', buffer);
  const { offset, length } = rangeOption(offsetOpt, lengthOpt, buffer.size, 'the buffer');
  checkAligned(offset, length, align, ioctl);
  return { buffer, offset, length };
}

/** The kernel's EINVAL, before the syscall, for an offset or length that is not a multiple of `align`. */
export function checkAligned(offset: number, length: number, align: number, ioctl: string): void {
  if (offset % align !== 0) throw alignmentError(ioctl, `options.offset ${offset}`, align);
  if (length % align !== 0) throw alignmentError(ioctl, `the mapped length ${length}`, align);
}

/**
 * What the kernel answers to an IOVA, address or length off the IOMMU's alignment (EINVAL),
 * refused before the syscall with the same errno.
 */
export function alignmentError(ioctl: string, what: string, align: number | bigint): VfioError {
  return new VfioError({ errno: EINVAL, syscall: 'ioctl', ioctl, code: 'EINVAL',
    message: `EINVAL: ${what} must be a multiple of the IOVA alignment ${align} (the kernel refuses it with EINVAL), ${ioctl}` });
}

/** An I/O address space: DMA mappings from IOVA to library-owned memory. */
export class IoAddressSpace {
  readonly id: number;
  #ictx: Iommufd | null;
  /** The pinned ranges: holds each mapped DmaBuffer (and keeps it from being freed). */
  readonly #ledger = new DmaLedger();
  #alignment: bigint | null = null;
  /** The same as a number (0: not read yet), for the map path's checks. */
  #alignmentN = 0;

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
    if (!this.#ictx) throw closedError('the IOAS is destroyed (or its iommufd closed)');
    return this.#ictx._native();
  }

  /** @internal The attached devices changed: re-read the alignment next time. */
  _invalidate(): void {
    this.#alignment = null;
    this.#alignmentN = 0;
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
    this.#alignmentN = 0;
    const out: IovaRange[] = [];
    for (let i = 0; i < r.ranges.length; i += 2) out.push({ start: r.ranges[i], last: r.ranges[i + 1] });
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
    // The kernel's rule: iova, the address and the length aligned to the IOAS's IOVA alignment
    // (1 with no device attached: byte-granular; the IOMMU page size once one is).
    if (buffer instanceof MappedRegion) {
      throw new VfioError({ errno: EFAULT, syscall: 'ioctl', ioctl: 'IOMMU_IOAS_MAP', code: 'EFAULT',
        message: 'EFAULT: an IOAS cannot map a BAR from its mmap (the kernel refuses with EFAULT), IOMMU_IOAS_MAP; ' +
          'for peer-to-peer DMA export it as a dma-buf, region.exportDmabuf(), and map that with ioas.mapFile(fd, ...)' });
    }
    const align = this.#alignmentN || (this.#alignmentN = Number(this.iovaAlignment));
    const span = bufferSpan(buffer, opts.offset, opts.length, align, 'IOMMU_IOAS_MAP');
    const fixed = opts.iova; // read once: a getter could answer differently the second time
    let iova: number | bigint = 0;
    if (fixed !== undefined) {
      iova = u64Arg(fixed, 'options.iova');
      if (!isAligned(iova, align)) throw alignmentError('IOMMU_IOAS_MAP', `options.iova 0x${iova.toString(16)}`, align);
      flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA;
    }
    const got = hot.ioasMap(h, this.id, flags, span.buffer._native(), span.offset, span.length, iova);
    this.#ledger.add(got, span.length, span.buffer, span.offset);
    // A fixed IOVA is where the kernel mapped it: then the caller's own bigint, when it gave one.
    return typeof got === 'bigint' ? got : typeof fixed === 'bigint' ? fixed : BigInt(got);
  }

  /** @internal Changes whenever a mapping here goes away (see DmaLedger.generation). */
  get _generation(): number {
    return this.#ledger.generation;
  }

  /** The IOVA of byte `offset` of a DmaBuffer mapped here. */
  iovaOf(buffer: DmaBuffer, offset = 0): bigint {
    this.#native();
    if (!DmaBuffer.isDmaBuffer(buffer)) throw notDmaBuffer('buffer', buffer);
    toIndex(offset, 'offset');
    const iova = this.#ledger.iovaOf(buffer, offset);
    if (iova === undefined) {
      throw notMappedError(
        `byte ${offset} of the DmaBuffer is not mapped in IOAS ${this.id}`);
    }
    return iova;
  }

  /** Map a range of a file (memfd) for DMA (IOMMU_IOAS_MAP_FILE, Linux 6.13+). */
  mapFile(fd: number, options: MapFileOptions): bigint {
    toIndex(fd, 'fd', 0x7fffffff);
    const opts = optionsObject(options, 'options');
    const start = toU64(opts.start, 'options.start');
    const length = toU64(opts.length, 'options.length');
    const [iova, flags] = optionalIova(opts.iova, 'options.iova', mapFlags(opts));
    const got = native.ioasMapFile(this.#native(), this.id, flags, fd, start, length, iova);
    this.#ledger.add(got, length, null, 0);
    return got;
  }

  /** Unmap whole mappings inside [iova, iova + length); returns the bytes unmapped. */
  unmap(iova: bigint | number, length: bigint | number): number {
    const h = this.#native();
    const start = u64Arg(iova, 'iova');
    const len = u64Arg(length, 'length');
    // No checks of our own: the kernel's answers are the rule (length 0: EINVAL; a range that
    // does not cover whole mappings, unaligned ones included: ENOENT; iova 0 and length 2^64-1:
    // unmap everything).
    const done = hot.ioasUnmap(h, this.id, start, len);
    if (start === 0 && len === MAX_U64) {
      this.#ledger.clear();
      return done;
    }
    if (!this.#ledger.takeExact(start, len)) {
      const first = BigInt(start);
      const last = first + BigInt(len) - 1n;
      this.#ledger.take(first, last > MAX_U64 ? MAX_U64 : last);
    }
    return done;
  }

  /** Unmap everything; returns the bytes unmapped. */
  unmapAll(): number {
    const done = hot.ioasUnmap(this.#native(), this.id, 0, MAX_U64);
    this.#ledger.clear();
    return done;
  }

  /**
   * For a noiommu device (no IOMMU translates its DMA, so it must be given physical addresses):
   * the physical address behind `iova` and how many bytes from there are physically contiguous,
   * at most `maxLength` (IOMMU_IOAS_NOIOMMU_GET_PA, Linux 7.3 with CONFIG_IOMMUFD_NOIOMMU; needs
   * CAP_SYS_RAWIO). The IOAS must have a noiommu device attached, and `iova` must be mapped; the
   * address stays valid while the mapping does (the pages are pinned until unmap).
   */
  physicalAddress(iova: bigint | number, maxLength: bigint | number = MAX_U64): PhysicalRange {
    const h = this.#native();
    const start = toU64(iova, 'iova');
    const max = toU64(maxLength, 'maxLength');
    if (max === 0n) throw new RangeError('maxLength must be at least 1');
    const [address, length] = native.ioasNoiommuGetPa(h, this.id, start, max);
    return { address, length };
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
      throw closedError(
        'src must be a live IOAS of the same iommufd (IOMMU_IOAS_COPY works inside one iommufd)', 'ioctl',
        { ioctl: 'IOMMU_IOAS_COPY' });
    }
    const opts = optionsObject(options, 'options');
    const srcIova = toU64(opts.srcIova, 'options.srcIova');
    const length = toU64(opts.length, 'options.length');
    const [dst, flags] = optionalIova(opts.dstIova, 'options.dstIova', mapFlags(opts));
    const got = native.ioasCopy(h, flags, this.id, src.id, length, dst, srcIova);
    const source = src.#ledger.entryAt(srcIova);
    const offset = source ? source.offset + Number(srcIova - BigInt(source.iova)) : 0;
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

/** A physically contiguous run of memory behind an IOVA (IoAddressSpace.physicalAddress). */
export interface PhysicalRange {
  /** The physical address: what a device with no IOMMU must be given. */
  address: bigint;
  /** How many bytes from `address` are physically contiguous (and mapped at consecutive IOVAs). */
  length: bigint;
}

/** An optional fixed IOVA: `[iova, flags | FIXED_IOVA]`, or `[0n, flags]` (the kernel chooses). */
function optionalIova(value: unknown, name: string, flags: number): [bigint, number] {
  if (value === undefined) return [0n, flags];
  return [toU64(value, name), flags | C.IOMMU_IOAS_MAP_FIXED_IOVA];
}

function mapFlags(opts: { readable?: boolean; writable?: boolean }): number {
  let value = 0;
  if (opts.readable !== false) value |= C.IOMMU_IOAS_MAP_READABLE;
  if (opts.writable !== false) value |= C.IOMMU_IOAS_MAP_WRITEABLE;
  if (value === 0) throw new RangeError('a mapping must be readable, writable or both');
  return value;
}
