import { MAX_U64, describe, optionsObject, rangeOption, toIndex, toPath, toU64 } from './args';
import { flags as C } from './constants';
import { VfioDevice } from './device';
import { DmaBuffer } from './dma-buffer';
import { decodeType1Info, type IovaRange, type Type1Info } from './decoders';
import { DmaLedger } from './dma-ledger';
import { ENOSPC, VfioError, closedError, notMappedError, type VfioStateError } from './errors';
import { bufferSpan, checkAligned, notDmaBuffer } from './ioas';
import { MappedRegion } from './region';
import { native, pageSize, type NativeHandle } from './native';
import { isMdevUuid, normalizeBdf } from './sysfs';

function closed(what: string): VfioStateError {
  return closedError(`the ${what} is closed`);
}

/** A legacy VFIO container (`/dev/vfio/vfio`), type1 IOMMU. */
export class VfioContainer {
  #h: NativeHandle | null;
  /** The pinned ranges: holds each mapped DmaBuffer (and keeps it from being freed). */
  readonly #ledger = new DmaLedger();

  private constructor(h: NativeHandle) {
    this.#h = h;
  }

  /** Open the container device. */
  static open(path = '/dev/vfio/vfio'): VfioContainer {
    return new VfioContainer(native.containerOpen(toPath(path, 'path')));
  }

  /** Whether `value` is a VfioContainer made by this library (a Proxy or look-alike is not). */
  static isContainer(value: unknown): value is VfioContainer {
    return typeof value === 'object' && value !== null && #ledger in value;
  }

  /** @internal */
  _native(): NativeHandle {
    if (!this.#h) throw closed('container');
    return this.#h;
  }

  get fd(): number {
    return native.containerFd(this._native());
  }

  /** VFIO_GET_API_VERSION (0 for the current API). */
  apiVersion(): number {
    return native.containerApiVersion(this._native());
  }

  /** VFIO_CHECK_EXTENSION. */
  checkExtension(extension: number): boolean {
    return native.containerCheckExtension(this._native(), toIndex(extension, 'extension', 0xffffffff)) > 0;
  }

  /** VFIO_SET_IOMMU (after a group joined): `VFIO_TYPE1v2_IOMMU` by default. */
  setIommu(type: number = C.VFIO_TYPE1v2_IOMMU): void {
    native.containerSetIommu(this._native(), toIndex(type, 'type', 0xffffffff));
  }

  /** VFIO_IOMMU_GET_INFO (after setIommu): the IOMMU page sizes and the usable IOVA ranges. */
  info(): Type1Info {
    return decodeType1Info(native.containerGetInfo(this._native()));
  }

  /** The IOVA ranges the container's IOMMU accepts (from info()). */
  iovaRanges(): IovaRange[] {
    return this.info().iovaRanges;
  }

  /**
   * VFIO_IOMMU_MAP_DMA of a DmaBuffer (or its `offset`/`length` part) and return its IOVA.
   * Without `iova`, the lowest free IOVA inside iovaRanges(), aligned to the smallest IOMMU page,
   * is chosen (space freed by unmap is used again). The buffer cannot be freed while mapped.
   * A MappedRegion (a BAR's mmap) maps that BAR for peer-to-peer DMA by the container's devices;
   * it cannot be closed while mapped.
   */
  map(buffer: DmaBuffer | MappedRegion, options?: { iova?: bigint | number; offset?: number; length?: number; readable?: boolean;
    writable?: boolean }): bigint {
    const h = this._native();
    const opts = optionsObject(options, 'options');
    const flags = (opts.readable !== false ? C.VFIO_DMA_MAP_FLAG_READ : 0) | (opts.writable !== false ? C.VFIO_DMA_MAP_FLAG_WRITE : 0);
    if (buffer instanceof MappedRegion) return this.#mapBar(h, buffer, opts, flags);
    // type1 wants iova, address and size aligned to its smallest IOMMU page (EINVAL otherwise).
    const span = bufferSpan(buffer, opts.offset, opts.length, pageSize(), 'VFIO_IOMMU_MAP_DMA');
    const iova = opts.iova === undefined ? this.#allocate(BigInt(span.length)) : toU64(opts.iova, 'options.iova');
    native.type1Map(h, span.buffer._native(), span.offset, span.length, iova, flags);
    this.#ledger.add(iova, BigInt(span.length), span.buffer, span.offset);
    return iova;
  }

  /**
   * A BAR's mmap as DMA memory (peer-to-peer: another device in the container DMAs to that BAR).
   * The MappedRegion cannot be closed while mapped here.
   */
  #mapBar(h: NativeHandle, bar: MappedRegion, opts: { iova?: bigint | number; offset?: number; length?: number },
    flags: number): bigint {
    const { offset, length } = rangeOption(opts.offset, opts.length, bar.size, 'the BAR');
    checkAligned(offset, length, pageSize(), 'VFIO_IOMMU_MAP_DMA');
    const at = bar._span(offset, length);
    const iova = opts.iova === undefined ? this.#allocate(BigInt(length)) : toU64(opts.iova, 'options.iova');
    native.type1Map(h, at.handle, at.offset, length, iova, flags);
    this.#ledger.add(iova, BigInt(length), bar, offset);
    return iova;
  }

  #allocate(length: bigint): bigint {
    const info = this.info();
    const page = info.pageSizes & -info.pageSizes;
    const align = page > 0n ? page : BigInt(pageSize());
    const ranges = info.iovaRanges.length ? info.iovaRanges : [{ start: 0n, last: MAX_U64 }];
    const iova = this.#ledger.findFree(ranges, length, align);
    if (iova === undefined) {
      throw new VfioError({ errno: ENOSPC, syscall: 'ioctl', ioctl: 'VFIO_IOMMU_MAP_DMA',
        message: `ENOSPC: no free IOVA range of ${length} bytes is left in the container` });
    }
    return iova;
  }

  /** The IOVA of byte `offset` of a DmaBuffer mapped here. */
  iovaOf(buffer: DmaBuffer, offset = 0): bigint {
    this._native();
    if (!DmaBuffer.isDmaBuffer(buffer)) throw notDmaBuffer('buffer', buffer);
    toIndex(offset, 'offset');
    const iova = this.#ledger.iovaOf(buffer, offset);
    if (iova === undefined) throw notMappedError(`byte ${offset} of the DmaBuffer is not mapped in this container`);
    return iova;
  }

  /** VFIO_IOMMU_UNMAP_DMA; returns the bytes unmapped. */
  unmap(iova: bigint | number, length: bigint | number): number {
    const start = toU64(iova, 'iova');
    const len = toU64(length, 'length');
    const done = native.type1Unmap(this._native(), start, len, 0);
    if (len > 0n) {
      const last = start + len - 1n;
      this.#ledger.take(start, last > MAX_U64 ? MAX_U64 : last);
    }
    return Number(done);
  }

  /**
   * Unmap every mapping of the container in one VFIO_IOMMU_UNMAP_DMA (VFIO_DMA_UNMAP_FLAG_ALL;
   * type1v2 on Linux 5.13+, `checkExtension(VFIO_UNMAP_ALL)`); returns the bytes unmapped. The
   * buffers it pinned can be freed again.
   */
  unmapAll(): number {
    const done = native.type1Unmap(this._native(), 0n, 0n, C.VFIO_DMA_UNMAP_FLAG_ALL);
    this.#ledger.clear();
    return Number(done);
  }

  /** Close the container: the kernel unmaps and unpins everything it mapped. Idempotent. */
  close(): void {
    if (!this.#h) return;
    native.containerClose(this.#h);
    this.#h = null;
    this.#ledger.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A legacy VFIO group (`/dev/vfio/<group>`). Device fds from it are never blocked. */
export class VfioGroup {
  readonly id: number;
  #h: NativeHandle | null;

  private constructor(id: number, h: NativeHandle) {
    this.id = id;
    this.#h = h;
  }

  /**
   * Open `/dev/vfio/<groupId>`, or with `{ noiommu: true }` `/dev/vfio/noiommu-<groupId>`: the
   * group the kernel makes for a device without an IOMMU when vfio's enable_unsafe_noiommu_mode
   * is on (no DMA isolation at all; the kernel wants CAP_SYS_RAWIO, and a container set to
   * VFIO_NOIOMMU_IOMMU).
   */
  static open(groupId: number, options?: { noiommu?: boolean }): VfioGroup {
    toIndex(groupId, 'groupId', 0x7fffffff);
    const noiommu = optionsObject(options, 'options').noiommu === true;
    return new VfioGroup(groupId, native.groupOpen(`/dev/vfio/${noiommu ? 'noiommu-' : ''}${groupId}`));
  }

  #native(): NativeHandle {
    if (!this.#h) throw closed('group');
    return this.#h;
  }

  get fd(): number {
    return native.groupFd(this.#native());
  }

  /** VFIO_GROUP_GET_STATUS. */
  status(): { viable: boolean; containerSet: boolean } {
    const flags = native.groupStatus(this.#native());
    return { viable: (flags & C.VFIO_GROUP_FLAGS_VIABLE) !== 0, containerSet: (flags & C.VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0 };
  }

  /** VFIO_GROUP_SET_CONTAINER. */
  setContainer(container: VfioContainer): void {
    if (!VfioContainer.isContainer(container)) throw new TypeError(`container must be a VfioContainer, got ${describe(container)}`);
    native.groupSetContainer(this.#native(), container._native());
  }

  /** VFIO_GROUP_UNSET_CONTAINER. */
  unsetContainer(): void {
    native.groupUnsetContainer(this.#native());
  }

  /**
   * VFIO_GROUP_GET_DEVICE_FD: the device named `name`, a PCI address or an mdev UUID, with the
   * kernel's optional ` vf_token=<uuid>` suffix for a VF of a vfio-pci PF (or `{ vfToken }`). The
   * device starts in state `'bound'`.
   */
  getDevice(name: string, options?: { vfToken?: string }): VfioDevice {
    if (typeof name !== 'string') throw new TypeError(`name must be a PCI address or an mdev UUID, got ${describe(name)}`);
    const [device, ...rest] = name.trim().split(/\s+/);
    let token = optionsObject(options, 'options').vfToken;
    for (const part of rest) {
      const m = /^vf_token=(.*)$/.exec(part);
      if (!m || token !== undefined) throw new TypeError(`name: '${part}' is not one vf_token=<uuid> suffix`);
      token = m[1];
    }
    const id = isMdevUuid(device) ? device.toLowerCase() : normalizeBdf(device);
    if (token !== undefined && (typeof token !== 'string' || !isMdevUuid(token))) {
      throw new TypeError(`the VF token must be a UUID, got ${describe(token)}`);
    }
    const full = token === undefined ? id : `${id} vf_token=${token.toLowerCase()}`;
    return VfioDevice._fromGroupHandle(native.groupGetDevice(this.#native(), full));
  }

  close(): void {
    if (!this.#h) return;
    native.groupClose(this.#h);
    this.#h = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
