// Loads the C++ addon and types its raw surface. Internal: the public API is in the other
// modules. Each native function is one syscall (or a grow-and-retry pair) on a tagged handle.
import * as path from 'node:path';
import { makeNativeError } from './errors';

/** An opaque, type-tagged native handle. */
export interface NativeHandle {
  readonly __nativeHandle: unique symbol;
}

/** Raw bindings of the native addon (build/Release/vfio.node, or the package's prebuilt one). */
export interface NativeBinding {
  initialize(makeError: typeof makeNativeError): void;
  /** The ioctl table: request name -> number (native/uapi.h). */
  readonly ioctls: Readonly<Record<string, number>>;
  pageSize(): number;
  /** Does nothing: the cheapest call into the addon (npm run bench's floor row). */
  noop(): void;
  /** One getppid syscall: the floor for a call that enters the kernel (the bench's syscall row). */
  noopSyscall(): void;
  /** A device handle's check and nothing else: the floor for a call that takes a handle (the bench's). */
  noopHandle(h: NativeHandle): void;
  /** A live handle's key for the fast calls (native/fast_calls.h): a number the addon only compares. */
  handleKey(h: NativeHandle): number;
  /** This env's key for the fast-call module's install() (native/fast_calls.h). */
  fastCallEnvKey(): number;
  /** 64 bytes where the fixed-size info calls and the hot calls leave their results (per thread; read right after the call). */
  readonly results: ArrayBuffer;
  /** 64 bytes where the hot calls take their arguments (per thread; see {@link hot}). */
  readonly args: ArrayBuffer;

  deviceOpen(path: string): NativeHandle;
  deviceFromFd(fd: number, own: boolean, path?: string): NativeHandle;
  deviceClose(h: NativeHandle): void;
  deviceFd(h: NativeHandle): number;
  /** GET_INFO with the handle check only, no buffer or errno work (bench only): num_regions, or -1. */
  deviceBareGetInfo(h: NativeHandle): number;
  deviceBind(h: NativeHandle, iommufd: NativeHandle, token?: Uint8Array | null): number;
  deviceAttach(h: NativeHandle, ptId: number, pasid: number): number;
  deviceDetach(h: NativeHandle, pasid: number): void;
  deviceGetInfo(h: NativeHandle): Uint8Array;
  /** GET_INFO, the struct left in `results`; returns the argsz the kernel asks for. */
  deviceGetInfoInto(h: NativeHandle): number;
  deviceGetRegionInfo(h: NativeHandle, index: number): Uint8Array;
  /** GET_REGION_INFO (slot 0: index), the struct left in `results`; returns the argsz the kernel asks for. */
  deviceGetRegionInfoInto(h: NativeHandle): number;
  deviceIoctl(h: NativeHandle, request: number, arg: Uint8Array): number;
  iommufdIoctl(h: NativeHandle, request: number, arg: Uint8Array): number;
  iommufdChangeProcess(h: NativeHandle): void;
  iommufdHwQueueAlloc(h: NativeHandle, viommuId: number, type: number, index: number, iova: bigint, length: bigint): number;
  /** An mmap of the iommufd (a vIOMMU's region): a Mapping handle, as deviceMmap gives. */
  iommufdMmap(h: NativeHandle, offset: bigint, length: number): NativeHandle;
  /** GET_IRQ_INFO (slot 0: index), the struct left in `results`; returns its count. */
  deviceGetIrqInfo(h: NativeHandle): number;
  deviceSetIrqs(h: NativeHandle, flags: number, index: number, start: number, count: number,
    data?: Uint8Array | Int32Array | null): void;
  deviceReset(h: NativeHandle): void;
  deviceFeature(h: NativeHandle, flags: number, data: Uint8Array): number;
  deviceHotResetInfo(h: NativeHandle): Uint8Array;
  deviceHotReset(h: NativeHandle, groupFds: Int32Array): void;
  /** pread of 1, 2, 4 or 8 bytes (slot 0: offset), the value left in `results`. */
  deviceRead8(h: NativeHandle): void;
  deviceRead16(h: NativeHandle): void;
  deviceRead32(h: NativeHandle): void;
  deviceRead64(h: NativeHandle): void;
  /** pwrite of 1, 2, 4 or 8 bytes (slot 0: offset, slot 1: the value, a bigint for 8). */
  deviceWrite8(h: NativeHandle): void;
  deviceWrite16(h: NativeHandle): void;
  deviceWrite32(h: NativeHandle): void;
  deviceWrite64(h: NativeHandle): void;
  devicePreadInto(h: NativeHandle, offset: number, into: Uint8Array): number;
  devicePwrite(h: NativeHandle, offset: number, bytes: Uint8Array): number;
  deviceMmap(h: NativeHandle, offset: number, length: number, writable: boolean): NativeHandle;
  deviceIoeventfd(h: NativeHandle, offset: number, data: bigint, width: number, eventfd: NativeHandle | number | null): void;

  mappingRead8(h: NativeHandle, offset: number): number;
  mappingRead16(h: NativeHandle, offset: number): number;
  mappingRead32(h: NativeHandle, offset: number): number;
  mappingRead64(h: NativeHandle, offset: number): bigint;
  /** One volatile store of 1, 2, 4 or 8 bytes (slot 0: offset, slot 1: the value, a bigint for 8). */
  mappingWrite8(h: NativeHandle): void;
  mappingWrite16(h: NativeHandle): void;
  mappingWrite32(h: NativeHandle): void;
  mappingWrite64(h: NativeHandle): void;
  mappingReadBlock(h: NativeHandle, offset: number, width: number,
    out: Uint8Array | Uint16Array | Uint32Array | BigUint64Array): void;
  mappingClose(h: NativeHandle): void;
  mappingArrayBuffer(h: NativeHandle): ArrayBuffer;
  mappingSetSuspended(h: NativeHandle, suspended: boolean): void;
  mappingShare(h: NativeHandle): bigint;
  mappingFromShared(id: bigint): NativeHandle;

  /** hugeShift: 0 for normal pages, else log2 of the hugetlb page size (21, 30); align: 0, or a power of two the address must be a multiple of. */
  dmaAlloc(size: number, hugeShift: number, memfd: boolean, align?: number): NativeHandle;
  dmaArrayBuffer(h: NativeHandle): ArrayBuffer;
  dmaFree(h: NativeHandle): void;
  dmaShare(h: NativeHandle): bigint;
  dmaFromShared(id: bigint): NativeHandle;
  dmaSize(h: NativeHandle): number;
  dmaAddress(h: NativeHandle): bigint;
  dmaFd(h: NativeHandle): number;

  iommufdOpen(path: string): NativeHandle;
  iommufdFromFd(fd: number, own: boolean): NativeHandle;
  iommufdClose(h: NativeHandle): void;
  iommufdFd(h: NativeHandle): number;
  ioasAlloc(h: NativeHandle): number;
  iommufdDestroy(h: NativeHandle, id: number): void;
  /** IOMMU_IOAS_MAP of a DmaBuffer (slots: ioasId, flags, byteOffset, length, iova as a bigint); the iova left in `results`. */
  ioasMap(h: NativeHandle, buffer: NativeHandle): void;
  ioasMapFile(h: NativeHandle, ioasId: number, flags: number, fd: number, start: bigint, length: bigint,
    iova: bigint): bigint;
  /** IOMMU_IOAS_UNMAP (slots: ioasId, iova and length as bigints); the bytes unmapped left in `results`. */
  ioasUnmap(h: NativeHandle): void;
  ioasNoiommuGetPa(h: NativeHandle, ioasId: number, iova: bigint, length: bigint): [bigint, bigint];
  ioasIovaRanges(h: NativeHandle, ioasId: number): { ranges: BigUint64Array; alignment: bigint };
  ioasAllowIovas(h: NativeHandle, ioasId: number, ranges: BigUint64Array): void;
  ioasCopy(h: NativeHandle, flags: number, dstIoasId: number, srcIoasId: number, length: bigint, dstIova: bigint,
    srcIova: bigint): bigint;
  iommufdOption(h: NativeHandle, op: number, optionId: number, objectId: number, value: bigint): bigint;
  iommufdVfioIoas(h: NativeHandle, op: number, ioasId: number): number;
  iommufdHwInfo(h: NativeHandle, devId: number, flags: number, inDataType: number): { type: number;
    capabilities: bigint; maxPasidLog2: number; data: Uint8Array };
  iommufdHwptAlloc(h: NativeHandle, flags: number, devId: number, ptId: number, dataType: number,
    data: Uint8Array | null, faultId: number): number;
  hwptSetDirtyTracking(h: NativeHandle, hwptId: number, enable: boolean): void;
  hwptGetDirtyBitmap(h: NativeHandle, hwptId: number, flags: number, iova: bigint, length: bigint, pageSize: number,
    bitmap: BigUint64Array): void;
  hwptInvalidate(h: NativeHandle, hwptId: number, dataType: number, entryLen: number, entries: Uint8Array,
    count: number): number;
  iommufdFaultQueueAlloc(h: NativeHandle, callback: (errno: number) => void): [number, NativeHandle];
  iommufdViommuAlloc(h: NativeHandle, type: number, devId: number, hwptId: number, data: Uint8Array | null): number;
  iommufdVdeviceAlloc(h: NativeHandle, viommuId: number, devId: number, virtId: bigint): number;
  iommufdVeventqAlloc(h: NativeHandle, viommuId: number, type: number, depth: number,
    callback: (errno: number) => void): [number, NativeHandle];

  eventQueueStart(h: NativeHandle): void;
  eventQueueStop(h: NativeHandle): void;
  eventQueueRef(h: NativeHandle, ref: boolean): void;
  /** Bytes read; 0 when the queue is empty. */
  eventQueueRead(h: NativeHandle, into: Uint8Array): number;
  eventQueueWrite(h: NativeHandle, bytes: Uint8Array): number;
  eventQueueFd(h: NativeHandle): number;
  eventQueueClose(h: NativeHandle): void;

  irqCreate(callback: (count: number, errno: number) => void): NativeHandle;
  irqFd(h: NativeHandle): number;
  irqStart(h: NativeHandle): void;
  irqStop(h: NativeHandle): void;
  irqRef(h: NativeHandle, ref: boolean): void;
  irqRead(h: NativeHandle): number;
  /** count > 0; 0 timeout; -1 a signal JS handles arrived; -2 the thread is stopping. */
  /** Block until the eventfd counts (slot 0: timeoutMs, -1 for none); the result (see {@link hot}) left in `results` as a float64. */
  irqWaitSync(h: NativeHandle): void;
  irqSignal(h: NativeHandle): void;
  irqClose(h: NativeHandle): void;

  groupOpen(path: string): NativeHandle;
  groupClose(h: NativeHandle): void;
  groupFd(h: NativeHandle): number;
  groupStatus(h: NativeHandle): number;
  groupSetContainer(h: NativeHandle, container: NativeHandle): void;
  groupUnsetContainer(h: NativeHandle): void;
  groupGetDevice(h: NativeHandle, name: string): NativeHandle;

  containerOpen(path: string): NativeHandle;
  containerClose(h: NativeHandle): void;
  containerFd(h: NativeHandle): number;
  containerApiVersion(h: NativeHandle): number;
  containerCheckExtension(h: NativeHandle, extension: number): number;
  containerSetIommu(h: NativeHandle, type: number): void;
  containerGetInfo(h: NativeHandle): Uint8Array;
  type1Map(h: NativeHandle, buffer: NativeHandle, byteOffset: number, length: number,
    iova: bigint, flags: number): void;
  type1Unmap(h: NativeHandle, iova: bigint, length: bigint, flags: number): bigint;

  socketPair(): [number, number];
  sendFds(socket: number, fds: Int32Array, data: Uint8Array): number;
  receiveFds(socket: number, maxFds: number, maxBytes: number, timeoutMs: number): [Int32Array, Uint8Array] | null;
}

function load(): { binding: NativeBinding; file: string } {
  const root = path.resolve(__dirname, '..');
  const candidates = [
    process.env.VFIO_NATIVE_PATH,
    path.join(root, 'build', 'Release', 'vfio.node'),
    path.join(root, 'build', 'Debug', 'vfio.node'),
    // The package's prebuilt addon (N-API, so any Node version the package supports).
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'vfio.napi.node'),
  ].filter((p): p is string => !!p);
  const errors: string[] = [];
  for (const file of candidates) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return { binding: require(file) as NativeBinding, file };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== 'MODULE_NOT_FOUND') errors.push(`${file}: ${e.message}`);
    }
  }
  const why = errors.length ? `\n  ${errors.join('\n  ')}` : '';
  const platform = process.platform === 'linux' ? '' : ' VFIO exists only on Linux.';
  throw new Error(
    `vfio: could not load the native addon (tried ${candidates.join(', ')}).${platform}${why}\n` +
      `Possible fix: rebuild it with 'npm rebuild vfio' (needs python3, make, g++ and the Node headers).`,
  );
}

let loaded: NativeBinding | null = null;

/** The addon, loaded (and given the library's error factory) on first use. */
function binding(): NativeBinding {
  if (loaded === null) {
    const { binding: b, file } = load();
    b.initialize(makeNativeError);
    loaded = b;
    native = b; // every module reads this live binding: later calls go straight to the addon
    results = new Uint32Array(b.results);
    results64 = new BigUint64Array(b.results);
    resultsF64 = new Float64Array(b.results);
    argsF64 = new Float64Array(b.args);
    argsU64 = new BigUint64Array(b.args);
    installFastCalls(b, file, path.join(path.dirname(file), 'vfio_fast.node'));
  }
  return loaded;
}

/**
 * The addon. It loads on first use, so what needs no syscall on a VFIO fd (the sysfs helpers,
 * `vfio list`) works where it cannot load; the first property read loads it (or throws the one
 * error saying why) and replaces this stand-in.
 */
export let native: NativeBinding = new Proxy({} as NativeBinding, {
  get: (_target, key) => Reflect.get(binding(), key) as unknown,
  set: (_target, key, value) => Reflect.set(binding(), key, value),
  has: (_target, key) => Reflect.has(binding(), key),
});

/**
 * `native.results` as 32-bit words: where deviceGetInfoInto, deviceGetRegionInfoInto and
 * deviceGetIrqInfo leave their struct. Set when the addon loads (a live binding); read it right
 * after the call, before any other.
 */
export let results = new Uint32Array(0);
/** `native.results` as u64s (the same memory as {@link results}). */
export let results64 = new BigUint64Array(0);
let resultsF64 = new Float64Array(0);
let argsF64 = new Float64Array(0);
let argsU64 = new BigUint64Array(0);

/** A u64 argument in slots i and i + 1 (native/args.h, Slots::U64Pair): a number when it is one. */
function putU64(i: number, v: number | bigint): void {
  if (typeof v === 'number') {
    argsF64[i] = v >= 0 ? v : -2; // never the bigint marker: a negative number stays an error
  } else {
    argsF64[i] = -1;
    argsU64[i + 1] = v;
  }
}

/** A u64 result (native/args.h, LeaveU64): a number when it is a safe integer, else a bigint. */
function takeU64(): number | bigint {
  const n = resultsF64[1];
  return n >= 0 ? n : results64[0];
}

type MmioWrite = (h: NativeHandle, offset: number, value: number) => void;
const napiWrite8: MmioWrite = (h, offset, value) => {
  argsF64[0] = offset;
  argsF64[1] = value;
  native.mappingWrite8(h);
};
const napiWrite16: MmioWrite = (h, offset, value) => {
  argsF64[0] = offset;
  argsF64[1] = value;
  native.mappingWrite16(h);
};
const napiWrite32: MmioWrite = (h, offset, value) => {
  argsF64[0] = offset;
  argsF64[1] = value;
  native.mappingWrite32(h);
};

const napiIrqRead = (h: NativeHandle): number => native.irqRead(h);

/** The N-API calls behind the fast calls (tests and the bench compare the two). */
export const napiCalls = Object.freeze({ write8: napiWrite8, write16: napiWrite16, write32: napiWrite32, irqRead: napiIrqRead });

/**
 * The hot calls (pread/pwrite of one register, MMIO writes, region and IRQ info, IOAS map and
 * unmap, waitSync), with their arguments passed through `native.args` instead of as napi_values, whose
 * conversion under emulation costs more than the syscall (bench/README.md): the one place that
 * knows each call's slots (native/args.h, Slots; slot i is 8 bytes at 8*i, a float64 for a
 * number, a uint64 for a bigint). Each writes its slots and calls at once, so no other call can
 * come between; the handle, which always comes from the addon, means the views are set. The
 * native side checks every slot as it checks positional arguments: callers check first, for
 * errors that name the argument. Written out one per call rather than generated from a table:
 * each is then its own monomorphic call site that V8 inlines into the caller.
 */
export const hot = {
  regionInfo(h: NativeHandle, index: number): number {
    argsF64[0] = index;
    return native.deviceGetRegionInfoInto(h);
  },
  irqInfo(h: NativeHandle, index: number): number {
    argsF64[0] = index;
    return native.deviceGetIrqInfo(h);
  },
  read8(h: NativeHandle, offset: number): number {
    argsF64[0] = offset;
    native.deviceRead8(h);
    return results[0];
  },
  read16(h: NativeHandle, offset: number): number {
    argsF64[0] = offset;
    native.deviceRead16(h);
    return results[0];
  },
  read32(h: NativeHandle, offset: number): number {
    argsF64[0] = offset;
    native.deviceRead32(h);
    return results[0];
  },
  read64(h: NativeHandle, offset: number): bigint {
    argsF64[0] = offset;
    native.deviceRead64(h);
    return results64[0];
  },
  write8(h: NativeHandle, offset: number, value: number): void {
    argsF64[0] = offset;
    argsF64[1] = value;
    native.deviceWrite8(h);
  },
  write16(h: NativeHandle, offset: number, value: number): void {
    argsF64[0] = offset;
    argsF64[1] = value;
    native.deviceWrite16(h);
  },
  write32(h: NativeHandle, offset: number, value: number): void {
    argsF64[0] = offset;
    argsF64[1] = value;
    native.deviceWrite32(h);
  },
  write64(h: NativeHandle, offset: number, value: bigint): void {
    argsF64[0] = offset;
    argsU64[1] = value;
    native.deviceWrite64(h);
  },
  /**
   * One MMIO store: `key` is the mapping's {@link NativeBinding.handleKey}. The N-API calls
   * (which take no key) unless the fast-call module replaced these at load ({@link fastCalls}).
   */
  mmioWrite8(h: NativeHandle, key: number, offset: number, value: number): void {
    napiWrite8(h, offset, value);
  },
  mmioWrite16(h: NativeHandle, key: number, offset: number, value: number): void {
    napiWrite16(h, offset, value);
  },
  mmioWrite32(h: NativeHandle, key: number, offset: number, value: number): void {
    napiWrite32(h, offset, value);
  },
  /** A non-blocking read of an interrupt watcher's eventfd (`key`: its handleKey): the count, 0 if none. */
  irqRead(h: NativeHandle, key: number): number {
    void key; // the fast call's; the N-API call takes the handle
    return napiIrqRead(h);
  },
  mmioWrite64(h: NativeHandle, offset: number, value: bigint): void {
    argsF64[0] = offset;
    argsU64[1] = value;
    native.mappingWrite64(h);
  },
  /** The IOVA as the ledger keeps it: a number when it is a safe integer. */
  ioasMap(h: NativeHandle, ioasId: number, flags: number, buffer: NativeHandle, byteOffset: number, length: number,
    iova: number | bigint): number | bigint {
    argsF64[0] = ioasId;
    argsF64[1] = flags;
    argsF64[2] = byteOffset;
    argsF64[3] = length;
    putU64(4, iova);
    native.ioasMap(h, buffer);
    return takeU64();
  },
  /**
   * Block in poll(2) until the eventfd counts: the count (> 0); 0 on timeout; -1 when a signal
   * that the event loop watches arrived; -2 when the thread is stopping.
   */
  irqWaitSync(h: NativeHandle, timeoutMs: number): number {
    argsF64[0] = timeoutMs;
    native.irqWaitSync(h);
    return resultsF64[0];
  },
  /** Returns the bytes unmapped (a number: no mapping total reaches 2^53). */
  ioasUnmap(h: NativeHandle, ioasId: number, iova: number | bigint, length: number | bigint): number {
    argsF64[0] = ioasId;
    putU64(1, iova);
    putU64(3, length);
    native.ioasUnmap(h);
    return Number(takeU64());
  },
};

let pageSizeCache = 0;

/** The system page size (from the addon: sysconf(_SC_PAGESIZE)). */
export function pageSize(): number {
  if (pageSizeCache === 0) pageSizeCache = binding().pageSize();
  return pageSizeCache;
}

/** What vfio_fast.node (native/fast_calls.cc) exports, and what its install() returns. */
interface FastCallModule {
  install(addonPath: string, envKey: number, fallbacks: [MmioWrite, MmioWrite, MmioWrite, (h: NativeHandle) => number]): FastCalls;
}
type KeyedMmioWrite = (h: NativeHandle, key: number, offset: number, value: number) => void;
interface FastCalls {
  mmioWrite8: KeyedMmioWrite;
  mmioWrite16: KeyedMmioWrite;
  mmioWrite32: KeyedMmioWrite;
  irqRead: (h: NativeHandle, key: number) => number;
  slowCalls(): number;
}

/** Whether this thread's MMIO writes and eventfd reads are V8 fast API calls, and if not, why. */
export interface FastCallStatus {
  /** True when `MappedRegion.write8/16/32` and `Interrupts.drain` go through vfio_fast.node once V8 optimizes the caller. */
  readonly active: boolean;
  /** Why not, when not active. */
  readonly why: string | null;
  /** Calls the module's slow callback took (interpreted callers and fallbacks); 0 when not active. */
  slowCalls(): number;
}

let fastCallStatus: FastCallStatus = { active: false, why: 'the addon is not loaded yet', slowCalls: () => 0 };

/**
 * The MMIO writes and the eventfd read as V8 fast API calls where vfio_fast.node was built and loads (it is built only
 * against a v8-fast-api-calls.h for exactly this V8: scripts/v8-fast-calls.js); the N-API calls
 * stay behind them for interpreted callers and for everything the fast path does not write
 * (bad input, a closed or suspended mapping), so errors are the same either way.
 * VFIO_FAST_CALLS=0 keeps the N-API calls.
 */
function installFastCalls(b: NativeBinding, addonFile: string, file: string): void {
  const off = (why: string): void => {
    fastCallStatus = { active: false, why, slowCalls: () => 0 };
  };
  if (process.env.VFIO_FAST_CALLS === '0') return off('VFIO_FAST_CALLS=0');
  let mod: FastCallModule;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(file) as FastCallModule;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return off(e.code === 'MODULE_NOT_FOUND'
      ? `${file} was not built (no v8-fast-api-calls.h for this V8 at build time: node scripts/v8-fast-calls.js says why)`
      : `${file} does not load: ${e.message}`);
  }
  let fast: FastCalls;
  try {
    fast = mod.install(addonFile, b.fastCallEnvKey(), [napiWrite8, napiWrite16, napiWrite32, napiIrqRead]);
  } catch (err) {
    return off(`${file} did not install: ${(err as Error).message}`);
  }
  hot.mmioWrite8 = fast.mmioWrite8;
  hot.mmioWrite16 = fast.mmioWrite16;
  hot.mmioWrite32 = fast.mmioWrite32;
  hot.irqRead = fast.irqRead;
  fastCallStatus = { active: true, why: null, slowCalls: () => fast.slowCalls() };
}

/** This thread's {@link FastCallStatus} (loads the addon). */
export function fastCalls(): FastCallStatus {
  binding();
  return fastCallStatus;
}
