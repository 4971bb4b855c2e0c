// VFIO_DEVICE_IOEVENTFD: the kernel writes a fixed value to a device register each time an
// eventfd is signalled, without a syscall into the device per write (a doorbell that another
// process, a VM or another device's interrupt can ring).
import { describe, optionsObject, toIndex, toU64 } from './args';
import type { RegionInfo } from './decoders';
import { closedError } from './errors';
import { native, type NativeHandle } from './native';

/** Options of `device.ioeventfd()`. */
export interface IoEventFdOptions {
  /** The value written (default 0); a bigint or a safe integer, and it must fit the width. */
  data?: number | bigint;
}

/** What an IoEventFd needs from its device. */
export interface IoEventFdOwner {
  /** @internal */
  _handle(syscall: string, ioctl?: string): NativeHandle;
  /** @internal */
  _forget(child: object): void;
}

const IOCTL = 'VFIO_DEVICE_IOEVENTFD';

/** An eventfd whose every signal makes the kernel write `data` at `offset` of a region. */
export class IoEventFd {
  readonly regionIndex: number;
  /** Offset in the region. */
  readonly offset: number;
  readonly width: 1 | 2 | 4 | 8;
  readonly data: bigint;
  #owner: IoEventFdOwner;
  #eventfd: NativeHandle | null;
  /** The offset in the device fd. */
  #at: number;

  /** @internal Use `device.ioeventfd()`. */
  constructor(owner: IoEventFdOwner, region: RegionInfo, offset: unknown, width: unknown, options?: IoEventFdOptions) {
    const off = toIndex(offset, 'offset');
    if (width !== 1 && width !== 2 && width !== 4 && width !== 8) {
      throw new RangeError(`width must be 1, 2, 4 or 8, got ${describe(width)}`);
    }
    if (off + width > region.size) throw new RangeError(`offset ${off} + ${width} is outside region ${region.index} (size ${region.size})`);
    if (off % width !== 0) throw new RangeError(`offset ${off} is not aligned to the width ${width}`);
    const data = toU64(optionsObject(options, 'options').data ?? 0, 'options.data');
    if (width < 8 && data >> BigInt(8 * width) !== 0n) throw new RangeError(`options.data ${data} does not fit ${width} bytes`);
    this.regionIndex = region.index;
    this.offset = off;
    this.width = width;
    this.data = data;
    this.#owner = owner;
    this.#at = Number(region.offset) + off;
    const h = owner._handle('ioctl', IOCTL);
    this.#eventfd = native.irqCreate(() => {});
    try {
      native.deviceIoeventfd(h, this.#at, data, width, this.#eventfd);
    } catch (err) {
      native.irqClose(this.#eventfd);
      this.#eventfd = null;
      throw err;
    }
  }

  get closed(): boolean {
    return this.#eventfd === null;
  }

  /** Ring it: the kernel performs the write. */
  signal(): void {
    if (!this.#eventfd) throw closedError('the ioeventfd is closed', 'write');
    native.irqSignal(this.#eventfd);
  }

  /** Remove it from the device and close the eventfd. Idempotent. */
  close(): void {
    if (!this.#eventfd) return;
    try {
      native.deviceIoeventfd(this.#owner._handle('ioctl', IOCTL), this.#at, this.data, this.width, null);
    } finally {
      this._dispose();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal Close the eventfd without telling the device (it is closing). */
  _dispose(): void {
    if (!this.#eventfd) return;
    native.irqClose(this.#eventfd);
    this.#eventfd = null;
    this.#owner._forget(this);
  }
}
