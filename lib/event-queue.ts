// iommufd event queues: a fault queue (IOMMU_FAULT_QUEUE_ALLOC; I/O page faults of the HWPTs
// allocated with it, answered with respond()) and a vIOMMU's event queue (IOMMU_VEVENTQ_ALLOC).
// Both are fds the kernel fills with records; the addon watches them on the env's loop
// (native/event_queue.cc) and these classes decode the records and emit them.
import { EventEmitter } from 'node:events';
import { describe, toIndex } from './args';
import { flags as C } from './constants';
import { closedError } from './errors';
import { native, type NativeHandle } from './native';

/** An I/O page fault, decoded from struct iommu_hwpt_pgfault. */
export interface IommuFault {
  /** `IOMMU_PGFAULT_FLAGS_*`. */
  flags: number;
  /** The iommufd device id of the device that faulted. */
  devId: number;
  /** The PASID, meaningful when `pasidValid`. */
  pasid: number;
  pasidValid: boolean;
  /** Page request group index. */
  grpid: number;
  /** `IOMMU_PGFAULT_PERM_*`: read, write, exec, priv. */
  perm: number;
  /** The faulting IOVA. */
  addr: bigint;
  /** How many bytes the device hinted it will access (0 when no hint). */
  length: number;
  /** Pass to respond(); the kernel expects one response per group, for its last fault. */
  cookie: number;
  /** Whether this is the last fault of its group (the one to respond to). */
  lastPage: boolean;
}

/** One virtual IOMMU event: struct iommufd_vevent_header and the type's data. */
export interface IommuVevent {
  /** `IOMMU_VEVENTQ_FLAG_*`. */
  flags: number;
  /** Sequence number, 0..2^31-1 and wrapping; a gap means events were lost. */
  sequence: number;
  /** The queue overflowed here: events were lost (`data` is empty). */
  lostEvents: boolean;
  /** The type's event record (32 bytes for ARM SMMUv3). */
  data: Uint8Array;
}

/** What a fault queue's response says: retry the access, or give up on it. */
export type FaultResponse = 'success' | 'invalid' | number;

const FAULT_SIZE = 40;
const FAULT_READ_BATCH = 64;
const VEVENT_HEADER = 8;

/** Shared lifetime, reading, polling and ref-counting of the two queue kinds (records of type T). */
abstract class IommuEventQueue<T> extends EventEmitter {
  /** The iommufd object id (IOMMU_DESTROY takes it; a HWPT's faultQueue names it). */
  readonly id: number;
  #handle: NativeHandle | null;
  #ref = true;
  #polling = false;
  readonly #destroy: (id: number) => void;
  readonly #event: string;

  /** Where reads land; sized by the subclass for a batch of its records. */
  readonly #buffer: Uint8Array;

  /** @internal */
  protected constructor(event: string, bufferSize: number, alloc: (callback: (errno: number) => void) => [number, NativeHandle],
    destroy: (id: number) => void) {
    super();
    this.#event = event;
    this.#buffer = new Uint8Array(bufferSize);
    const [id, handle] = alloc((errno) => this.#readable(errno));
    this.id = id;
    this.#handle = handle;
    this.#destroy = destroy;
    this.on('newListener', (name: string | symbol) => {
      if (name === this.#event) this.#update(this.listenerCount(this.#event) + 1);
    });
    this.on('removeListener', (name: string | symbol) => {
      if (name === this.#event) this.#update(this.listenerCount(this.#event));
    });
  }

  /** The queue's fd (for a caller's own poll loop; the library owns and closes it). */
  get fd(): number {
    return native.eventQueueFd(this._handle());
  }

  /** Whether close() ran (or the iommufd closed). */
  get closed(): boolean {
    return this.#handle === null;
  }

  /** @internal */
  protected _handle(): NativeHandle {
    if (!this.#handle) throw closedError(`the ${this.#event} queue ${this.id} is closed`, 'read');
    return this.#handle;
  }

  /** @internal Decode the `n` bytes of whole records in `bytes` into `out`. */
  protected abstract _decode(bytes: Uint8Array, n: number, out: T[]): void;

  /** The records waiting now (none when the queue is empty); a listener gets them instead. */
  read(): T[] {
    return this.#readAll(this._handle());
  }

  #readAll(h: NativeHandle): T[] {
    const out: T[] = [];
    for (;;) {
      const n = native.eventQueueRead(h, this.#buffer);
      if (n === 0) return out; // read until the kernel says the queue is empty
      this._decode(this.#buffer, n, out);
    }
  }

  #readable(errno: number): void {
    if (!this.#handle) return;
    if (errno) {
      if (this.listenerCount('error')) this.emit('error', new Error(`polling the ${this.#event} queue failed: errno ${errno}`));
      return;
    }
    for (const record of this.#readAll(this.#handle)) this.emit(this.#event, record);
  }

  #update(listeners: number): void {
    if (!this.#handle) return;
    const on = listeners > 0;
    if (on === this.#polling) return;
    if (on) {
      native.eventQueueStart(this.#handle);
      native.eventQueueRef(this.#handle, this.#ref);
    } else {
      native.eventQueueStop(this.#handle);
    }
    this.#polling = on;
  }

  /** Keep the process alive while listeners wait (the default). */
  ref(): this {
    this.#ref = true;
    if (this.#handle && this.#polling) native.eventQueueRef(this.#handle, true);
    return this;
  }

  /** Let the process exit even while listeners wait. */
  unref(): this {
    this.#ref = false;
    if (this.#handle && this.#polling) native.eventQueueRef(this.#handle, false);
    return this;
  }

  /** @internal The iommufd was closed: release the fd without IOMMU_DESTROY. */
  _drop(): void {
    if (!this.#handle) return;
    native.eventQueueClose(this.#handle);
    this.#handle = null;
    this.#polling = false;
  }

  /** Close the fd and destroy the object (EBUSY while a HWPT or vIOMMU still uses it). Idempotent. */
  close(): void {
    if (!this.#handle) return;
    this._drop();
    this.#destroy(this.id);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A fault queue (IOMMU_FAULT_QUEUE_ALLOC, Linux 6.11+): I/O page faults of the HWPTs allocated
 * with `{ faultQueue }` arrive as `'fault'` events (or from read()); answer each group's last
 * fault with respond(cookie, code). Polled, and the process kept alive, only while a `'fault'`
 * listener is attached.
 */
export class FaultQueue extends IommuEventQueue<IommuFault> {
  /** @internal */
  constructor(alloc: (callback: (errno: number) => void) => [number, NativeHandle], destroy: (id: number) => void) {
    super('fault', FAULT_SIZE * FAULT_READ_BATCH, alloc, destroy);
  }

  /** Whether `value` is a FaultQueue made by this library. */
  static isFaultQueue(value: unknown): value is FaultQueue {
    return value instanceof FaultQueue;
  }

  /** @internal */
  protected _decode(bytes: Uint8Array, n: number, out: IommuFault[]): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, n);
    for (let at = 0; at + FAULT_SIZE <= n; at += FAULT_SIZE) out.push(decodeFault(view, at));
  }

  /** Answer the fault group of `cookie`: `'success'` (retry the access) or `'invalid'`. */
  respond(cookie: number, code: FaultResponse = 'success'): void {
    const h = this._handle();
    toIndex(cookie, 'cookie', 0xffffffff);
    let value: number;
    if (code === 'success') value = C.IOMMUFD_PAGE_RESP_SUCCESS;
    else if (code === 'invalid') value = C.IOMMUFD_PAGE_RESP_INVALID;
    else if (typeof code === 'number') value = toIndex(code, 'code', 0xffffffff);
    else throw new TypeError(`code must be 'success', 'invalid' or a number, got ${describe(code)}`);
    const response = new Uint32Array([cookie, value]);
    native.eventQueueWrite(h, new Uint8Array(response.buffer));
  }
}

function decodeFault(v: DataView, at: number): IommuFault {
  const flags = v.getUint32(at, true);
  return {
    flags,
    devId: v.getUint32(at + 4, true),
    pasid: v.getUint32(at + 8, true),
    pasidValid: (flags & C.IOMMU_PGFAULT_FLAGS_PASID_VALID) !== 0,
    grpid: v.getUint32(at + 12, true),
    perm: v.getUint32(at + 16, true),
    addr: v.getBigUint64(at + 24, true),
    length: v.getUint32(at + 32, true),
    cookie: v.getUint32(at + 36, true),
    lastPage: (flags & C.IOMMU_PGFAULT_FLAGS_LAST_PAGE) !== 0,
  };
}

/** The size of one event's data by vEVENTQ type (the kernel's structs; a caller may say otherwise). */
export const VEVENT_DATA_SIZE: Readonly<Record<number, number>> = {
  [C.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3]: 32,
  [C.IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV]: 16,
};

/**
 * A vIOMMU's event queue (IOMMU_VEVENTQ_ALLOC, Linux 6.15+): events the IOMMU reports for the
 * vIOMMU's devices arrive as `'event'` events (or from read()), each with its sequence number.
 */
export class VeventQueue extends IommuEventQueue<IommuVevent> {
  /** The queue's type (`IOMMU_VEVENTQ_TYPE_*`). */
  readonly type: number;
  /** Bytes of data per event. */
  readonly dataSize: number;

  /** @internal */
  constructor(type: number, dataSize: number, depth: number,
    alloc: (callback: (errno: number) => void) => [number, NativeHandle], destroy: (id: number) => void) {
    super('event', (VEVENT_HEADER + dataSize) * Math.min(depth + 1, 256), alloc, destroy);
    this.type = type;
    this.dataSize = dataSize;
  }

  /** @internal */
  protected _decode(bytes: Uint8Array, n: number, out: IommuVevent[]): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, n);
    let at = 0;
    while (at + VEVENT_HEADER <= n) {
      const flags = view.getUint32(at, true);
      const lostEvents = (flags & C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS) !== 0;
      const size = lostEvents ? 0 : Math.min(this.dataSize, n - at - VEVENT_HEADER);
      out.push({
        flags, sequence: view.getUint32(at + 4, true), lostEvents,
        data: bytes.slice(at + VEVENT_HEADER, at + VEVENT_HEADER + size),
      });
      at += VEVENT_HEADER + size;
    }
  }
}
