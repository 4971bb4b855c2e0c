import { describe, optionsObject, toIndex, toU64 } from './args';
import { constants as C } from './constants';
import { VfioDevice } from './device';
import { DmaBuffer } from './dma-buffer';
import { EBADF, VfioStateError } from './errors';
import { native, type NativeHandle } from './native';
import { normalizeBdf } from './sysfs';

function closed(what: string): VfioStateError {
  return new VfioStateError('ERR_VFIO_CLOSED', EBADF, 'ioctl', `the ${what} is closed`);
}

/** A legacy VFIO container (`/dev/vfio/vfio`), type1 IOMMU. */
export class VfioContainer {
  #h: NativeHandle | null;
  readonly #mapped = new Map<bigint, { length: bigint; memory: unknown }>();

  private constructor(h: NativeHandle) {
    this.#h = h;
  }

  /** Open the container device. */
  static open(path = '/dev/vfio/vfio'): VfioContainer {
    if (typeof path !== 'string') throw new TypeError(`path must be a string, got ${describe(path)}`);
    return new VfioContainer(native.fdOpen(path));
  }

  /** @internal */
  _native(): NativeHandle {
    if (!this.#h) throw closed('container');
    return this.#h;
  }

  get fd(): number {
    return native.fdNumber(this._native());
  }

  /** VFIO_CHECK_EXTENSION. */
  checkExtension(extension: number): boolean {
    return native.containerCall(this._native(), 'check', toIndex(extension, 'extension', 0xffffffff)) > 0;
  }

  /** VFIO_SET_IOMMU (after a group joined): `VFIO_TYPE1v2_IOMMU` by default. */
  setIommu(type: number = C.VFIO_TYPE1v2_IOMMU): void {
    native.containerCall(this._native(), 'set', toIndex(type, 'type', 0xffffffff));
  }

  /** VFIO_IOMMU_MAP_DMA at a fixed IOVA. */
  map(memory: DmaBuffer | ArrayBuffer | ArrayBufferView, options: { iova: bigint | number; readable?: boolean; writable?: boolean }): bigint {
    const opts = optionsObject(options, 'options');
    const iova = toU64(opts.iova, 'options.iova');
    const flags = (opts.readable !== false ? C.VFIO_DMA_MAP_FLAG_READ : 0) | (opts.writable !== false ? C.VFIO_DMA_MAP_FLAG_WRITE : 0);
    const bytes = memory instanceof DmaBuffer ? memory.buffer : memory;
    if (!(bytes instanceof ArrayBuffer) && !ArrayBuffer.isView(bytes)) {
      throw new TypeError(`memory must be a DmaBuffer, an ArrayBuffer or a TypedArray, got ${describe(memory)}`);
    }
    native.type1Map(this._native(), bytes, 0, bytes.byteLength, iova, flags);
    this.#mapped.set(iova, { length: BigInt(bytes.byteLength), memory });
    if (memory instanceof DmaBuffer) memory._mapCount++;
    return iova;
  }

  /** VFIO_IOMMU_UNMAP_DMA; returns the bytes unmapped. */
  unmap(iova: bigint | number, length: bigint | number): number {
    const start = toU64(iova, 'iova');
    const len = toU64(length, 'length');
    const done = native.type1Unmap(this._native(), start, len);
    for (const [at, m] of this.#mapped) {
      if (at >= start && at + m.length <= start + len) {
        this.#mapped.delete(at);
        if (m.memory instanceof DmaBuffer) m.memory._mapCount--;
      }
    }
    return Number(done);
  }

  close(): void {
    if (!this.#h) return;
    native.fdClose(this.#h);
    this.#h = null;
    for (const m of this.#mapped.values()) if (m.memory instanceof DmaBuffer) m.memory._mapCount--;
    this.#mapped.clear();
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

  /** Open `/dev/vfio/<groupId>`. */
  static open(groupId: number): VfioGroup {
    toIndex(groupId, 'groupId', 0x7fffffff);
    return new VfioGroup(groupId, native.fdOpen(`/dev/vfio/${groupId}`));
  }

  #native(): NativeHandle {
    if (!this.#h) throw closed('group');
    return this.#h;
  }

  get fd(): number {
    return native.fdNumber(this.#native());
  }

  /** VFIO_GROUP_GET_STATUS. */
  status(): { viable: boolean; containerSet: boolean } {
    const flags = native.groupStatus(this.#native());
    return { viable: (flags & C.VFIO_GROUP_FLAGS_VIABLE) !== 0, containerSet: (flags & C.VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0 };
  }

  /** VFIO_GROUP_SET_CONTAINER. */
  setContainer(container: VfioContainer): void {
    if (!(container instanceof VfioContainer)) throw new TypeError(`container must be a VfioContainer, got ${describe(container)}`);
    native.groupSetContainer(this.#native(), container.fd);
  }

  /** VFIO_GROUP_GET_DEVICE_FD: the device starts in state `'bound'`. */
  getDevice(bdf: string): VfioDevice {
    const name = normalizeBdf(bdf);
    return VfioDevice._fromGroupFd(native.groupGetDeviceFd(this.#native(), name), name);
  }

  close(): void {
    if (!this.#h) return;
    native.fdClose(this.#h);
    this.#h = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
