// VFIO_DEVICE_IOEVENTFD: the kernel writes a fixed value to a device register each time an
// eventfd is signalled, without a syscall into the device per write (a doorbell that another
// process, a VM or another device's interrupt can ring).
import { describe, optionsObject, toIndex, toU64 } from './args';
import type { RegionInfo } from './decoders';
import { writeSync } from 'node:fs';
import { closedError } from './errors';
import { Interrupts } from './interrupts';
import { native, type NativeHandle } from './native';

/** Options of `device.ioeventfd()`. */
export interface IoEventFdOptions {
  /** The value written (default 0); a bigint or a safe integer, and it must fit the width. */
  data?: number | bigint;
  /**
   * Ring it with an eventfd of your own instead of a new one: an fd number (yours to close), or
   * an `Interrupts` (its `vector`, default the first): then another device's interrupt makes the
   * kernel write the register, with no JS in between (the interrupt is consumed by the write).
   */
  eventfd?: number | Interrupts;
  /** With an `Interrupts` as `eventfd`: which of its vectors. */
  vector?: number;
}

/** What an IoEventFd needs from its device. */
export interface IoEventFdOwner {
  /** @internal */
  _handle(syscall: string, ioctl?: string): NativeHandle;
  /** @internal */
  _forget(child: object): void;
}

const IOCTL = 'VFIO_DEVICE_IOEVENTFD';
/** An eventfd write of 1 (a u64). */
const ONE = new Uint8Array(new BigUint64Array([1n]).buffer);

/** An eventfd whose every signal makes the kernel write `data` at `offset` of a region. */
export class IoEventFd {
  readonly regionIndex: number;
  /** Offset in the region. */
  readonly offset: number;
  readonly width: 1 | 2 | 4 | 8;
  readonly data: bigint;
  #owner: IoEventFdOwner;
  /** The library's own eventfd, or the caller's fd number; null once closed. */
  #eventfd: NativeHandle | number | null;
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
    const opts = optionsObject(options, 'options');
    const data = toU64(opts.data ?? 0, 'options.data');
    let external: number | null = null;
    if (opts.eventfd instanceof Interrupts) {
      const irqs = opts.eventfd;
      const vector = opts.vector === undefined ? irqs.start : toIndex(opts.vector, 'options.vector');
      if (vector < irqs.start || vector >= irqs.start + irqs.count) {
        throw new RangeError(`options.vector ${vector} is not one of the Interrupts' vectors ${irqs.start}..${irqs.start + irqs.count - 1}`);
      }
      if (irqs.closed) throw closedError('options.eventfd: the Interrupts are disabled', 'ioctl', { ioctl: IOCTL });
      external = irqs._fdOf(vector);
    } else if (opts.eventfd !== undefined) {
      external = toIndex(opts.eventfd, 'options.eventfd', 0x7fffffff);
    }
    if (width < 8 && data >> BigInt(8 * width) !== 0n) throw new RangeError(`options.data ${data} does not fit ${width} bytes`);
    this.regionIndex = region.index;
    this.offset = off;
    this.width = width;
    this.data = data;
    this.#owner = owner;
    this.#at = Number(region.offset) + off;
    const h = owner._handle('ioctl', IOCTL);
    if (external !== null) {
      native.deviceIoeventfd(h, this.#at, data, width, external);
      this.#eventfd = external;
      return;
    }
    const own = native.irqCreate(() => {});
    try {
      native.deviceIoeventfd(h, this.#at, data, width, own);
    } catch (err) {
      native.irqClose(own);
      throw err;
    }
    this.#eventfd = own;
  }

  /** Whether close() ran (or the device closed). */
  get closed(): boolean {
    return this.#eventfd === null;
  }

  /** Ring it: the kernel performs the write. */
  signal(): void {
    const fd = this.#eventfd;
    if (fd === null) throw closedError('the ioeventfd is closed', 'write');
    if (typeof fd === 'number') writeSync(fd, ONE);
    else native.irqSignal(fd);
  }

  /** Remove it from the device and close the eventfd. Idempotent. */
  close(): void {
    if (this.#eventfd === null) return;
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
    if (this.#eventfd === null) return;
    if (typeof this.#eventfd !== 'number') native.irqClose(this.#eventfd); // a caller's fd stays theirs
    this.#eventfd = null;
    this.#owner._forget(this);
  }
}
