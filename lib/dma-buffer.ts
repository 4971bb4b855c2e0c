import { totalmem } from 'node:os';
import { describe, toIndex, optionsObject, toRegister, toRegister64 } from './args';
import { bufferMappedError, closedError } from './errors';
import { native, pageSize, type NativeHandle } from './native';

/** Options of {@link DmaBuffer.alloc}. */
export interface DmaBufferOptions {
  /**
   * Back the buffer with hugetlb pages: `true` or `'2M'` for 2 MiB pages, `'1G'` for 1 GiB pages
   * (both need pages reserved: /sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages).
   */
  hugePages?: boolean | '2M' | '1G';
  /**
   * Back the buffer with a memfd (`.fd`), for file-backed DMA: `ioas.mapFile(buf.fd, ...)`
   * (IOMMU_IOAS_MAP_FILE, Linux 6.13+) pins the file's pages, which stay the mapping's after free().
   */
  memfd?: boolean;
  /**
   * Place the buffer at an address that is a multiple of `align` bytes (a power of two up to
   * 1 GiB; default the page size). The kernel aligns the IOVAs it chooses no better than the
   * memory's address, so 2 MiB-aligned memory is what lets an IOMMU map it with 2 MiB pages.
   */
  align?: number;
}

/** Hugetlb page sizes by name, as log2 (what MAP_HUGE_SHIFT encodes). */
const HUGE_SHIFT = { '2M': 21, '1G': 30 } as const;

/** What {@link DmaBuffer.share} returns: post it to a worker, open it there with fromShared(). */
export interface SharedDmaBuffer {
  readonly vfioSharedDmaBuffer: bigint;
  readonly size: number;
  readonly hugePages: boolean;
}

/**
 * Page-aligned anonymous memory owned by the library, for DMA. `.buffer` and `.bytes` view it
 * without copying; `free()` unmaps it and detaches every ArrayBuffer handed out. It is the only
 * memory the library maps for DMA: its lifetime is the library's, so a device can never write
 * into memory that the JS heap has freed or moved.
 */
export class DmaBuffer {
  /** Size in bytes (the requested size rounded up to whole pages). */
  readonly size: number;
  readonly hugePages: boolean;
  #handle: NativeHandle | null;
  #buffer: ArrayBuffer | null = null;
  #bytes: Uint8Array | null = null;
  #u32: Uint32Array | null = null;
  #u64: BigUint64Array | null = null;
  /** How many IOAS/container mappings pin (a part of) this buffer: free() is refused while > 0. */
  #pins = 0;

  private constructor(handle: NativeHandle, size: number, hugePages: boolean) {
    this.#handle = handle;
    this.size = size;
    this.hugePages = hugePages;
  }

  /** Allocate `size` bytes (rounded up to the page size), zero-filled and resident. */
  static alloc(size: number, options?: DmaBufferOptions): DmaBuffer {
    toIndex(size, 'size');
    if (size === 0) throw new RangeError('size must be at least 1 byte');
    const opts = optionsObject(options, 'options');
    const hp = opts.hugePages;
    if (hp !== undefined && hp !== false && hp !== true && hp !== '2M' && hp !== '1G') {
      throw new TypeError(`options.hugePages must be a boolean, '2M' or '1G', got ${describe(hp)}`);
    }
    const shift = hp === '1G' ? HUGE_SHIFT['1G'] : hp ? HUGE_SHIFT['2M'] : 0;
    const huge = shift !== 0;
    const unit = huge ? 2 ** shift : pageSize();
    const rounded = Math.ceil(size / unit) * unit;
    // The memory is populated up front: refuse what cannot fit rather than be OOM-killed.
    if (rounded > totalmem()) {
      throw new RangeError(`size ${size} is more than this machine's memory (${totalmem()} bytes)`);
    }
    let align = 0;
    if (opts.align !== undefined) {
      align = toIndex(opts.align, 'options.align', 2 ** 30);
      if (align === 0 || (align & (align - 1)) !== 0) {
        throw new RangeError(`options.align must be a power of two from 1 to 2^30, got ${align}`);
      }
    }
    return new DmaBuffer(native.dmaAlloc(rounded, shift, opts.memfd === true, align), rounded, huge);
  }

  /** The memfd behind a `{ memfd: true }` buffer (owned by the buffer, closed with it), else null. */
  get fd(): number | null {
    const fd = native.dmaFd(this.#live());
    return fd >= 0 ? fd : null;
  }

  /**
   * The same memory in this thread: `value` comes from `buf.share()` in another thread (through
   * postMessage). The memory lives until every thread has freed its DmaBuffer over it; free()
   * here detaches only this thread's views. Its IOVAs are wherever a thread mapped it.
   */
  static fromShared(value: SharedDmaBuffer): DmaBuffer {
    if (typeof value !== 'object' || value === null || typeof value.vfioSharedDmaBuffer !== 'bigint') {
      throw new TypeError(`value must be what DmaBuffer.share() returned, got ${describe(value)}`);
    }
    let h: NativeHandle;
    try {
      h = native.dmaFromShared(value.vfioSharedDmaBuffer);
    } catch {
      throw closedError('the shared DmaBuffer was freed in every thread that had it (or was never shared)', 'mmap');
    }
    return new DmaBuffer(h, native.dmaSize(h), value.hugePages === true);
  }

  /** A value to post to a worker, where DmaBuffer.fromShared() opens the same memory. */
  share(): SharedDmaBuffer {
    return Object.freeze({ vfioSharedDmaBuffer: native.dmaShare(this.#live()), size: this.size, hugePages: this.hugePages });
  }

  /** Whether `value` is a DmaBuffer made by this library (a Proxy or look-alike is not). */
  static isDmaBuffer(value: unknown): value is DmaBuffer {
    return typeof value === 'object' && value !== null && #handle in value;
  }

  /** How many DMA mappings (in any IOAS or container) currently pin a part of this buffer. */
  get mappings(): number {
    return this.#pins;
  }

  /** @internal A mapping now pins this buffer. */
  _pin(): void {
    this.#pins++;
  }

  /** @internal A mapping that pinned this buffer is gone. */
  _unpin(): void {
    if (this.#pins > 0) this.#pins--;
  }

  /** Whether free() was called. */
  get freed(): boolean {
    return this.#handle === null;
  }

  /**
   * The memory's address in this process, for the user pointers of a raw ioctl's struct
   * (`iommufd.ioctl()`, `dev.ioctl()`). Valid until free(); the library never frees memory that a
   * DMA mapping pins, but a raw ioctl that keeps the pointer is the caller's to account for.
   */
  get address(): bigint {
    return native.dmaAddress(this.#live());
  }

  /** The memory as an ArrayBuffer (no copy). Detached by free(). */
  get buffer(): ArrayBuffer {
    if (!this.#buffer) this.#buffer = native.dmaArrayBuffer(this.#live());
    return this.#buffer;
  }

  /** The memory as a Uint8Array (no copy). Detached by free(). */
  get bytes(): Uint8Array {
    if (!this.#bytes) this.#bytes = new Uint8Array(this.buffer);
    return this.#bytes;
  }

  /** The index of an aligned, in-range access of `width` bytes at `offset`. */
  #index(offset: unknown, width: 4 | 8): number {
    const off = toIndex(offset, 'offset');
    if (off + width > this.size) throw new RangeError(`offset ${off} + ${width} is outside the buffer (size ${this.size})`);
    if (off % width !== 0) throw new RangeError(`offset ${off} is not aligned to the access width ${width}`);
    return off / width;
  }

  /**
   * Read 4 bytes at `offset` as one access of exactly that width, for polling a completion word a
   * device writes. It is an `Atomics.load`: the JIT can neither hoist it out of a loop nor merge
   * or split it, so every call reads the memory again.
   */
  load32(offset: number): number {
    const i = this.#index(offset, 4);
    this.#u32 ??= new Uint32Array(this.buffer);
    return Atomics.load(this.#u32, i);
  }

  /** Read 8 bytes at `offset` as one access (see load32). */
  load64(offset: number): bigint {
    const i = this.#index(offset, 8);
    this.#u64 ??= new BigUint64Array(this.buffer);
    return Atomics.load(this.#u64, i);
  }

  /**
   * Write 4 bytes at `offset` as one access (an `Atomics.store`: never merged or elided, and
   * ordered before every later access, doorbell writes included). Values from -2^31 to 2^32-1.
   */
  store32(offset: number, value: number): void {
    const i = this.#index(offset, 4);
    const v = toRegister(value, 'value', 32);
    this.#u32 ??= new Uint32Array(this.buffer);
    Atomics.store(this.#u32, i, v);
  }

  /** Write 8 bytes at `offset` as one access (see store32); a bigint or a safe integer. */
  store64(offset: number, value: bigint | number): void {
    const i = this.#index(offset, 8);
    const v = toRegister64(value, 'value');
    this.#u64 ??= new BigUint64Array(this.buffer);
    Atomics.store(this.#u64, i, v);
  }

  /** @internal The native handle, for IOMMU_IOAS_MAP. */
  _native(): NativeHandle {
    return this.#live();
  }

  #live(): NativeHandle {
    if (!this.#handle) throw closedError('the DmaBuffer was freed', 'mmap');
    return this.#handle;
  }

  /** Unmap the memory. Refused while the buffer is mapped in an IOAS; idempotent. */
  free(): void {
    if (!this.#handle) return;
    if (this.#pins > 0) {
      throw bufferMappedError(
        `the DmaBuffer is still mapped for DMA (${this.#pins} mapping(s)); unmap it first, or destroy the ` +
          'IOAS or close the iommufd or container that maps it',
      );
    }
    native.dmaFree(this.#handle);
    this.#handle = null;
    this.#buffer = null;
    this.#bytes = null;
    this.#u32 = null;
    this.#u64 = null;
  }

  /** Same as free(). */
  close(): void {
    this.free();
  }

  [Symbol.dispose](): void {
    this.free();
  }
}
