import { describe, optionsObject, toIndex, toPath, toU64Value, toUint } from './args';
import { constants as C } from './constants';
import { EBADF, EBUSY, EINVAL, EIO, VfioError, VfioStateError } from './errors';
import { Interrupts } from './interrupts';
import { Hwpt, IoAddressSpace, Iommufd } from './iommufd';
import { native, PAGE_SIZE, type NativeHandle } from './native';
import { cdevPathFor, isBdf, isMdevUuid } from './sysfs';

/** The device fd's state, mirroring the kernel: a cdev fd starts blocked until bound. */
export type DeviceState = 'blocked' | 'bound' | 'attached' | 'closed';

/** Options of {@link VfioDevice.open}. */
export interface DeviceOpenOptions {
  /**
   * Refuse calls the kernel would refuse in the current state with a VfioStateError before any
   * syscall (default true). With false, every call reaches the kernel and its errno comes back.
   */
  checks?: boolean;
}

/** Options of {@link VfioDevice.fromFd}. */
export interface DeviceFromFdOptions extends DeviceOpenOptions {
  /** Close the fd on close() (default false). */
  own?: boolean;
  /** The fd is already bound (a cdev bound elsewhere, or a group-path device fd). Default false. */
  bound?: boolean;
}

/** A capability from a VFIO info capability chain. */
export interface InfoCapability {
  id: number;
  version: number;
  /** The capability's bytes after its 8-byte header. */
  data: Uint8Array;
}

/** VFIO_DEVICE_GET_INFO. */
export interface DeviceInfo {
  flags: number;
  numRegions: number;
  numIrqs: number;
  /** VFIO_DEVICE_FLAGS_RESET: reset() is supported. */
  canReset: boolean;
  /** VFIO_DEVICE_FLAGS_PCI. */
  isPci: boolean;
  caps: InfoCapability[];
}

/** VFIO_DEVICE_GET_REGION_INFO. */
export interface RegionInfo {
  index: number;
  /** Size in bytes. */
  size: number;
  /** The region's offset in the device fd, for pread/pwrite/mmap. */
  offset: bigint;
  flags: number;
  readable: boolean;
  writable: boolean;
  mmappable: boolean;
  /** Only these parts may be mmapped (VFIO_REGION_INFO_CAP_SPARSE_MMAP). */
  sparseAreas?: Array<{ offset: number; size: number }>;
  /** VFIO_REGION_INFO_CAP_TYPE, for device-specific regions. */
  type?: { type: number; subtype: number };
  /** VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: the MSI-X table in this BAR may be mmapped. */
  msixMappable?: boolean;
}

/** VFIO_DEVICE_GET_IRQ_INFO. */
export interface IrqInfo {
  index: number;
  count: number;
  eventfd: boolean;
  maskable: boolean;
  automasked: boolean;
  noresize: boolean;
}

/** What the kernel answered to each call on a blocked cdev fd. */
export interface ProbeReport {
  ioctl: string;
  read: string;
  write: string;
  mmap: string;
}

/** A device that must reset together with this one (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO). */
export interface HotResetDevice {
  bdf: string;
  /** The devid in this iommufd (cdev form), or null if the device is not opened by it. */
  devId: number | null;
  /** The IOMMU group id (group form). */
  groupId: number | null;
}

/** VFIO_DEVICE_GET_PCI_HOT_RESET_INFO. */
export interface HotResetInfo {
  flags: number;
  /** All affected devices are owned by this iommufd (DEV_ID_OWNED). */
  owned: boolean;
  devices: HotResetDevice[];
}

/** Options of {@link VfioDevice.feature}. */
export interface FeatureOptions {
  get?: boolean;
  set?: boolean;
  probe?: boolean;
  /** Argument bytes; filled in by the kernel for GET. */
  data?: Uint8Array;
}

/** Interrupt index names accepted by {@link VfioDevice.enableIrq}. */
export type IrqIndexName = 'intx' | 'msi' | 'msix' | 'err' | 'req';

const IRQ_NAMES: Record<IrqIndexName, number> = { intx: 0, msi: 1, msix: 2, err: 3, req: 4 };
/** struct vfio_device_info, filled by deviceGetInfoInto (reused: info() allocates nothing else). */
const INFO_SCRATCH = new Uint32Array(6);
const U32 = 0xffffffff;

function closedError(syscall: string, ioctl?: string, path?: string): VfioStateError {
  return new VfioStateError('ERR_VFIO_CLOSED', EBADF, syscall, 'the device is closed', {
    ...(ioctl ? { ioctl } : {}),
    ...(path ? { path } : {}),
  });
}

function parseCaps(raw: Uint8Array, first: number): InfoCapability[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const caps: InfoCapability[] = [];
  const seen = new Set<number>();
  let off = first;
  while (off !== 0 && off + 8 <= raw.length && !seen.has(off) && caps.length < 64) {
    seen.add(off);
    const id = view.getUint16(off, true);
    const version = view.getUint16(off + 2, true);
    const next = view.getUint32(off + 4, true);
    const end = next > off && next <= raw.length ? next : raw.length;
    caps.push({ id, version, data: raw.slice(off + 8, end) });
    off = next;
  }
  return caps;
}

function uuidBytes(uuid: string): Uint8Array {
  if (typeof uuid !== 'string' || !isMdevUuid(uuid)) {
    throw new TypeError(`vfToken must be a UUID string, got ${describe(uuid)}`);
  }
  return Uint8Array.from(Buffer.from(uuid.replace(/-/g, ''), 'hex'));
}

/** The device's fd handle, shared with its regions so they see close() at once. */
interface Live {
  handle: NativeHandle | null;
  path: string | undefined;
}

/** A child resource the device closes with itself. */
interface Child {
  _dispose(): void;
}

/**
 * A VFIO device opened through its cdev (`/dev/vfio/devices/vfioN`). The fd starts
 * `'blocked'`: until bind() succeeds the kernel answers EINVAL to everything else, and this
 * class refuses such calls up front with a VfioStateError (unless `checks: false`).
 */
export class VfioDevice {
  /** The cdev path, when opened by path. */
  readonly path: string | null;
  /** Shared with this device's regions: `handle` becomes null at close(). */
  readonly #live: Live;
  #state: DeviceState;
  #checks: boolean;
  #fromGroup: boolean;
  #devId: number | null = null;
  #ptId: number | null = null;
  #iommufd: Iommufd | null = null;
  #ioas: IoAddressSpace | null = null;
  #info: DeviceInfo | null = null;
  #config: PciConfig | null = null;
  /** Interrupt sets: held strongly, since each owns vectors in the kernel until disabled. */
  #children = new Set<Child>();
  /**
   * BAR mappings, held weakly: one that user code drops is collected and unmapped by its
   * finalizer; close() unmaps the live ones (an mmap would keep the device open).
   */
  #maps = new Set<WeakRef<MappedRegion>>();
  /** The live interrupt sets of each IRQ index: every vector has at most one owner. */
  #irqSets = new Map<number, Interrupts[]>();
  /** How many vectors the kernel has enabled on each IRQ index that is on. */
  #irqEnabled = new Map<number, number>();
  /** Why the device's memory is off, when the library itself turned it off (key -> reason). */
  #memoryOff = new Map<string, string>();
  /** Offset of PMCSR in config space, null when there is no PM capability (undefined: not read yet). */
  #pmcsr: number | null | undefined = undefined;

  private constructor(handle: NativeHandle, path: string | null, state: DeviceState, checks: boolean, fromGroup: boolean) {
    this.#live = { handle, path: path ?? undefined };
    this.path = path;
    this.#state = state;
    this.#checks = checks;
    this.#fromGroup = fromGroup;
  }

  /** Open a device by PCI address (`'0000:00:03.0'`), mdev UUID, or cdev path. */
  static open(bdfOrPath: string, options?: DeviceOpenOptions): VfioDevice {
    toPath(bdfOrPath, 'bdfOrPath');
    const opts = optionsObject(options, 'options');
    const path = isBdf(bdfOrPath) || isMdevUuid(bdfOrPath) ? cdevPathFor(bdfOrPath) : bdfOrPath;
    return new VfioDevice(native.deviceOpen(path), path, 'blocked', opts.checks !== false, false);
  }

  /** Wrap a device fd opened elsewhere (fd passing from a privileged helper, for example). */
  static fromFd(fd: number, options?: DeviceFromFdOptions): VfioDevice {
    toIndex(fd, 'fd', 0x7fffffff);
    const opts = optionsObject(options, 'options');
    const h = native.deviceFromFd(fd, opts.own === true);
    return new VfioDevice(h, null, opts.bound ? 'bound' : 'blocked', opts.checks !== false, false);
  }

  /** @internal A device fd from VFIO_GROUP_GET_DEVICE_FD: never blocked, cannot bind. */
  static _fromGroupFd(fd: number, name: string): VfioDevice {
    return new VfioDevice(native.deviceFromFd(fd, true, name), null, 'bound', true, true);
  }

  /** `'blocked' | 'bound' | 'attached' | 'closed'`. */
  get state(): DeviceState {
    return this.#state;
  }

  /** The devid from bind(), or null before. */
  get devId(): number | null {
    return this.#devId;
  }

  /** The page table id from the last attach() (an auto HWPT for an IOAS on vfio-pci), or null. */
  get ptId(): number | null {
    return this.#ptId;
  }

  /** The file descriptor. */
  get fd(): number {
    if (!this.#live.handle) throw closedError('fcntl', undefined, this.path ?? undefined);
    return native.deviceFd(this.#live.handle);
  }

  /** Whether state checks are on. */
  get checks(): boolean {
    return this.#checks;
  }

  /** @internal The native handle for a call that needs a bound fd. */
  _handle(syscall: string, ioctl?: string): NativeHandle {
    if (!this.#live.handle) throw closedError(syscall, ioctl, this.path ?? undefined);
    if (this.#checks && this.#state === 'blocked') {
      throw new VfioStateError(
        'ERR_VFIO_NOT_BOUND',
        EINVAL,
        syscall,
        `${ioctl ?? syscall} on a cdev fd that is not bound yet; call bind(iommufd) first ` +
          '(the kernel answers EINVAL to everything before VFIO_DEVICE_BIND_IOMMUFD)',
        { ...(ioctl ? { ioctl } : {}), ...(this.path ? { path: this.path } : {}) },
      );
    }
    return this.#live.handle;
  }

  /** @internal */
  _forget(child: object): void {
    this.#children.delete(child as Child);
    for (const ref of this.#maps) if (ref.deref() === child || ref.deref() === undefined) this.#maps.delete(ref);
    if (child instanceof Interrupts) {
      const owners = this.#irqSets.get(child.index);
      if (!owners) return;
      const rest = owners.filter((o) => o !== child);
      if (rest.length) {
        this.#irqSets.set(child.index, rest);
      } else {
        this.#irqSets.delete(child.index);
        this.#irqEnabled.delete(child.index);
      }
    }
  }

  /** @internal Whether sets other than `irqs` own vectors of its IRQ index. */
  _irqShared(irqs: Interrupts): boolean {
    return (this.#irqSets.get(irqs.index) ?? []).some((o) => o !== irqs);
  }

  /**
   * Why the device's memory (its BARs) is off, when the library turned it off: a config write
   * that cleared COMMAND.MEMORY, D3hot through the PM capability, or low-power entry. Null when on.
   * While off, the MappedRegions of this device throw ERR_VFIO_MEMORY_OFF instead of faulting.
   */
  get memoryOff(): string | null {
    const reasons = [...this.#memoryOff.values()];
    return reasons.length ? reasons.join('; ') : null;
  }

  /** @internal The device's memory goes off (before the write or ioctl that does it). */
  _memoryOff(key: string, reason: string): boolean {
    if (this.#memoryOff.has(key)) return false;
    this.#memoryOff.set(key, reason);
    for (const map of this.#liveMaps()) map._suspend(this.memoryOff!);
    return true;
  }

  /** @internal The device's memory comes back on (after the write or ioctl that does it). */
  _memoryOn(key: string): void {
    if (!this.#memoryOff.delete(key)) return;
    const still = this.memoryOff;
    for (const map of this.#liveMaps()) {
      if (still) map._suspend(still);
      else map._resume();
    }
  }

  /** The BAR mappings not yet collected (dropping the collected ones' entries). */
  #liveMaps(): MappedRegion[] {
    const out: MappedRegion[] = [];
    for (const ref of this.#maps) {
      const m = ref.deref();
      if (m) out.push(m);
      else this.#maps.delete(ref);
    }
    return out;
  }

  /** @internal PMCSR's offset in config space, or null (read once from the capability list). */
  _pmcsrOffset(): number | null {
    if (this.#pmcsr === undefined) {
      const pm = this.config.capabilities().find((c) => c.id === C.PCI_CAP_ID_PM);
      this.#pmcsr = pm ? pm.offset + C.PCI_PM_CTRL : null;
    }
    return this.#pmcsr;
  }

  /** VFIO_DEVICE_BIND_IOMMUFD: bind to an iommufd and return the devid. There is no unbind. */
  bind(iommufd: Iommufd, options?: { vfToken?: string }): number {
    const ioctl = 'VFIO_DEVICE_BIND_IOMMUFD';
    if (!this.#live.handle) throw closedError('ioctl', ioctl, this.path ?? undefined);
    if (!Iommufd.isIommufd(iommufd)) throw new TypeError(`iommufd must be an Iommufd, got ${describe(iommufd)}`);
    const opts = optionsObject(options, 'options');
    const token = opts.vfToken === undefined ? null : uuidBytes(opts.vfToken);
    if (this.#checks && this.#state !== 'blocked') {
      throw new VfioStateError(
        'ERR_VFIO_ALREADY_BOUND',
        EINVAL,
        'ioctl',
        this.#fromGroup
          ? 'a device fd from the group path is never blocked and cannot be bound to an iommufd'
          : 'the device is already bound; a bound fd stays bound until close()',
        { ioctl, ...(this.path ? { path: this.path } : {}) },
      );
    }
    const fd = iommufd.fd;
    const devId = native.deviceBind(this.#live.handle, fd, token);
    this.#devId = devId;
    this.#iommufd = iommufd;
    if (this.#state === 'blocked') this.#state = 'bound';
    return devId;
  }

  /**
   * VFIO_DEVICE_ATTACH_IOMMUFD_PT: attach to an IOAS or HWPT (attaching again replaces).
   * Returns the page table id the kernel reports.
   */
  attach(target: IoAddressSpace | Hwpt | number, options?: { pasid?: number }): number {
    const ioctl = 'VFIO_DEVICE_ATTACH_IOMMUFD_PT';
    const h = this._handle('ioctl', ioctl);
    // Everything is validated before the syscall and recorded right after it, so that no argument
    // can leave the library's state different from the kernel's.
    const isIoas = IoAddressSpace.isIoas(target);
    let id: number;
    if (isIoas || Hwpt.isHwpt(target)) {
      const what = isIoas ? 'IOAS' : 'HWPT';
      if (target.destroyed) {
        throw new VfioStateError('ERR_VFIO_CLOSED', EINVAL, 'ioctl',
          `the ${what} ${target.id} was destroyed (or its iommufd closed); its id may already name another object`,
          { ioctl, ...(this.path ? { path: this.path } : {}) });
      }
      if (this.#iommufd === null) {
        throw new TypeError(`target: this device was not bound through bind(), so an ${what} object cannot be checked ` +
          'against its iommufd; pass the object id as a number');
      }
      if (target.iommufd !== this.#iommufd) {
        throw new TypeError(`target: the ${what} ${target.id} belongs to another iommufd than the one this device is bound to`);
      }
      id = target.id;
    } else if (typeof target === 'number') {
      id = toIndex(target, 'target', U32);
    } else {
      throw new TypeError(`target must be an IoAddressSpace, a Hwpt or an object id, got ${describe(target)}`);
    }
    const opts = optionsObject(options, 'options');
    const pasid = opts.pasid === undefined ? -1 : toIndex(opts.pasid, 'options.pasid', 0xfffff);
    const ptId = native.deviceAttach(h, id, pasid);
    if (pasid < 0) {
      this.#ioas?._invalidate();
      this.#ioas = isIoas ? target : null;
      this.#ioas?._invalidate();
      this.#ptId = ptId;
      if (this.#state === 'bound') this.#state = 'attached';
    }
    return ptId;
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT: DMA is blocked again. */
  detach(options?: { pasid?: number }): void {
    const h = this._handle('ioctl', 'VFIO_DEVICE_DETACH_IOMMUFD_PT');
    const opts = optionsObject(options, 'options');
    const pasid = opts.pasid === undefined ? -1 : toIndex(opts.pasid, 'options.pasid', 0xfffff);
    native.deviceDetach(h, pasid);
    if (pasid < 0) {
      this.#ioas?._invalidate();
      this.#ioas = null;
      this.#ptId = null;
      if (this.#state === 'attached') this.#state = 'bound';
    }
  }

  /**
   * On a blocked cdev fd, issue GET_INFO, pread, pwrite and mmap for real and report the errno
   * name the kernel returned for each (`'OK'` if one succeeded). Expected: all `'EINVAL'`.
   * The read and write are zero-length and the mmap is undone, so nothing reaches the device.
   */
  probeBlocked(): ProbeReport {
    if (!this.#live.handle) throw closedError('ioctl', 'VFIO_DEVICE_GET_INFO', this.path ?? undefined);
    if (this.#state !== 'blocked') {
      throw new VfioStateError('ERR_VFIO_ALREADY_BOUND', EINVAL, 'ioctl',
        'probeBlocked() needs a cdev fd that is not bound yet', this.path ? { path: this.path } : {});
    }
    const h = this.#live.handle;
    const answer = (fn: () => void): string => {
      try {
        fn();
        return 'OK';
      } catch (err) {
        if (err instanceof VfioError) return err.code;
        throw err;
      }
    };
    return {
      ioctl: answer(() => void native.deviceGetInfo(h)),
      read: answer(() => void native.devicePreadInto(h, 0, new Uint8Array(0))),
      write: answer(() => void native.devicePwrite(h, 0, new Uint8Array(0))),
      mmap: answer(() => native.mappingClose(native.deviceMmap(h, 0, PAGE_SIZE, false))),
    };
  }

  /** VFIO_DEVICE_GET_INFO. */
  info(): DeviceInfo {
    const h = this._handle('ioctl', 'VFIO_DEVICE_GET_INFO');
    const out = INFO_SCRATCH;
    const argsz = native.deviceGetInfoInto(h, out);
    const flags = out[1]!;
    let caps: InfoCapability[] = [];
    if (flags & C.VFIO_DEVICE_FLAGS_CAPS && argsz > 24) {
      // A capability chain follows: read the whole, larger struct.
      const raw = native.deviceGetInfo(h);
      const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      caps = parseCaps(raw, v.getUint32(16, true));
    }
    const info: DeviceInfo = {
      flags,
      numRegions: out[2]!,
      numIrqs: out[3]!,
      canReset: (flags & C.VFIO_DEVICE_FLAGS_RESET) !== 0,
      isPci: (flags & C.VFIO_DEVICE_FLAGS_PCI) !== 0,
      caps,
    };
    this.#info = info;
    return info;
  }

  /** VFIO_DEVICE_GET_REGION_INFO, with its capability chain decoded. */
  regionInfo(index: number): RegionInfo {
    toIndex(index, 'index', U32);
    const raw = native.deviceGetRegionInfo(this._handle('ioctl', 'VFIO_DEVICE_GET_REGION_INFO'), index);
    const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const flags = v.getUint32(4, true);
    const size = v.getBigUint64(16, true);
    const info: RegionInfo = {
      index,
      size: Number(size),
      offset: v.getBigUint64(24, true),
      flags,
      readable: (flags & C.VFIO_REGION_INFO_FLAG_READ) !== 0,
      writable: (flags & C.VFIO_REGION_INFO_FLAG_WRITE) !== 0,
      mmappable: (flags & C.VFIO_REGION_INFO_FLAG_MMAP) !== 0,
    };
    if (flags & C.VFIO_REGION_INFO_FLAG_CAPS) {
      for (const cap of parseCaps(raw, v.getUint32(12, true))) {
        const d = new DataView(cap.data.buffer, cap.data.byteOffset, cap.data.byteLength);
        if (cap.id === C.VFIO_REGION_INFO_CAP_SPARSE_MMAP && d.byteLength >= 8) {
          const n = d.getUint32(0, true);
          info.sparseAreas = [];
          for (let i = 0; i < n && 8 + 16 * (i + 1) <= d.byteLength; i++) {
            info.sparseAreas.push({
              offset: Number(d.getBigUint64(8 + 16 * i, true)),
              size: Number(d.getBigUint64(16 + 16 * i, true)),
            });
          }
        } else if (cap.id === C.VFIO_REGION_INFO_CAP_TYPE && d.byteLength >= 8) {
          info.type = { type: d.getUint32(0, true), subtype: d.getUint32(4, true) };
        } else if (cap.id === C.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
          info.msixMappable = true;
        }
      }
    }
    return info;
  }

  /** VFIO_DEVICE_GET_IRQ_INFO. */
  irqInfo(index: number): IrqInfo {
    toIndex(index, 'index', U32);
    const h = this._handle('ioctl', 'VFIO_DEVICE_GET_IRQ_INFO');
    // Some drivers (mtty) size their IRQ table from a previous GET_INFO.
    if (!this.#info) this.info();
    const [flags, count] = native.deviceGetIrqInfo(h, index);
    return {
      index,
      count,
      eventfd: (flags & C.VFIO_IRQ_INFO_EVENTFD) !== 0,
      maskable: (flags & C.VFIO_IRQ_INFO_MASKABLE) !== 0,
      automasked: (flags & C.VFIO_IRQ_INFO_AUTOMASKED) !== 0,
      noresize: (flags & C.VFIO_IRQ_INFO_NORESIZE) !== 0,
    };
  }

  /** Access one region through pread/pwrite (and mmap, via `.map()`). */
  region(index: number): Region {
    return new Region(this, this.#live, this.regionInfo(index));
  }

  /** PCI config space (region 7), with typed accessors. */
  get config(): PciConfig {
    if (!this.#config || this.#live.handle === null) {
      this.#config = new PciConfig(this.region(C.VFIO_PCI_CONFIG_REGION_INDEX));
    }
    return this.#config;
  }

  /** Route an IRQ index to eventfds watched on the event loop. */
  enableIrq(index: number | IrqIndexName, options?: { count?: number; start?: number }): Interrupts {
    let idx: number;
    if (typeof index === 'string') {
      idx = IRQ_NAMES[index as IrqIndexName];
      if (idx === undefined) throw new TypeError(`index must be a number or one of intx, msi, msix, err, req; got ${describe(index)}`);
    } else {
      idx = toIndex(index, 'index', U32);
    }
    const opts = optionsObject(options, 'options');
    const count = toIndex(opts.count ?? 1, 'options.count', 2048);
    const start = toIndex(opts.start ?? 0, 'options.start', 2048);
    if (count === 0) throw new RangeError('options.count must be at least 1 (use disable() to turn interrupts off)');
    if (start + count > 2048) throw new RangeError(`options.start + options.count must be at most 2048, got ${start + count}`);
    const ioctl = 'VFIO_DEVICE_SET_IRQS';
    this._handle('ioctl', ioctl);
    const owners = this.#irqSets.get(idx) ?? [];
    const clash = owners.find((o) => start < o.start + o.count && o.start < start + count);
    if (clash) {
      throw new VfioStateError('ERR_VFIO_BUSY', EBUSY, 'ioctl',
        `vectors ${start}..${start + count - 1} of IRQ index ${idx} overlap vectors ${clash.start}..` +
        `${clash.start + clash.count - 1}, which another Interrupts set owns; disable() that set first`,
        { ioctl, ...(this.path ? { path: this.path } : {}) });
    }
    if (!this.#info && this.#state !== 'blocked') this.info();
    const enabled = this.#irqEnabled.get(idx) ?? 0;
    let arm: ((fds: Int32Array) => void) | undefined;
    if (owners.length && start + count > enabled && this.#checks && this.irqInfo(idx).noresize) {
      // The kernel cannot add vectors to this live index (no dynamic MSI-X): switch it off and on
      // again with every owner's eventfds, as QEMU does. Interrupts raised in between are lost.
      arm = (fds) => {
        const all = new Int32Array(start + count > enabled ? start + count : enabled).fill(-1);
        for (const o of owners) for (let v = o.start; v < o.start + o.count; v++) all[v] = o._fdOf(v);
        all.set(fds, start);
        const h = this._handle('ioctl', ioctl);
        native.deviceSetIrqs(h, C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_ACTION_TRIGGER, idx, 0, 0, null);
        native.deviceSetIrqs(h, C.VFIO_IRQ_SET_DATA_EVENTFD | C.VFIO_IRQ_SET_ACTION_TRIGGER, idx, 0, all.length, all);
      };
    }
    const irqs = new Interrupts(this, idx, start, count, arm);
    this.#children.add(irqs);
    this.#irqSets.set(idx, [...owners, irqs]);
    this.#irqEnabled.set(idx, Math.max(enabled, start + count));
    return irqs;
  }

  /** VFIO_DEVICE_RESET (see `info().canReset`). */
  reset(): void {
    native.deviceReset(this._handle('ioctl', 'VFIO_DEVICE_RESET'));
  }

  /** VFIO_DEVICE_GET_PCI_HOT_RESET_INFO. */
  hotResetInfo(): HotResetInfo {
    const raw = native.deviceHotResetInfo(this._handle('ioctl', 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO'));
    const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const flags = v.getUint32(4, true);
    const count = v.getUint32(8, true);
    const byDevId = (flags & C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID) !== 0;
    const devices: HotResetDevice[] = [];
    for (let i = 0; i < count && 12 + 8 * (i + 1) <= raw.length; i++) {
      const o = 12 + 8 * i;
      const id = v.getInt32(o, true);
      const seg = v.getUint16(o + 4, true);
      const bus = v.getUint8(o + 6);
      const devfn = v.getUint8(o + 7);
      const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');
      devices.push({
        bdf: `${hex(seg, 4)}:${hex(bus, 2)}:${hex(devfn >> 3, 2)}.${devfn & 7}`,
        devId: byDevId ? (id === -1 ? null : id) : null,
        groupId: byDevId ? null : id,
      });
    }
    return { flags, owned: (flags & C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED) !== 0, devices };
  }

  /** VFIO_DEVICE_PCI_HOT_RESET, cdev form (ownership is checked through the iommufd). */
  hotReset(): void {
    native.deviceHotReset(this._handle('ioctl', 'VFIO_DEVICE_PCI_HOT_RESET'), new Int32Array(0));
  }

  /** VFIO_DEVICE_FEATURE: probe, get or set feature `feature`; returns the (GET-filled) data. */
  feature(feature: number, options?: FeatureOptions): Uint8Array {
    toIndex(feature, 'feature', C.VFIO_DEVICE_FEATURE_MASK);
    const opts = optionsObject(options, 'options');
    const data = opts.data ?? new Uint8Array(0);
    if (!(data instanceof Uint8Array)) throw new TypeError(`options.data must be a Uint8Array, got ${describe(data)}`);
    const flags = feature | (opts.get ? C.VFIO_DEVICE_FEATURE_GET : 0) | (opts.set ? C.VFIO_DEVICE_FEATURE_SET : 0) |
      (opts.probe || (!opts.get && !opts.set) ? C.VFIO_DEVICE_FEATURE_PROBE : 0);
    const h = this._handle('ioctl', 'VFIO_DEVICE_FEATURE');
    const realSet = opts.set === true && !opts.probe;
    const entry = realSet && (feature === C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY ||
      feature === C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP);
    // Low power makes every BAR access fault: the mappings are suspended before the kernel zaps them.
    const suspended = entry && this._memoryOff('lowPower',
      'the device is in low power (VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY); leave it with LOW_POWER_EXIT');
    try {
      native.deviceFeature(h, flags, data);
    } catch (err) {
      if (suspended) this._memoryOn('lowPower');
      throw err;
    }
    if (realSet && feature === C.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT) this._memoryOn('lowPower');
    return data;
  }

  /** The iommufd this device was bound to, if any. */
  get iommufd(): Iommufd | null {
    return this.#iommufd;
  }

  /**
   * Close the fd: the kernel disables IRQs, detaches and unbinds. Mapped regions and
   * interrupts of this device are closed too. Idempotent.
   */
  close(): void {
    if (!this.#live.handle) return;
    for (const child of [...this.#children, ...this.#liveMaps()]) child._dispose();
    this.#children.clear();
    this.#maps.clear();
    native.deviceClose(this.#live.handle);
    this.#live.handle = null;
    this.#state = 'closed';
    this.#ioas?._invalidate();
    this.#ioas = null;
    this.#config = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal */
  _adopt(map: MappedRegion): void {
    this.#liveMaps();
    this.#maps.add(new WeakRef(map));
  }
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

  read8(offset: number): number {
    const h = this.#live.handle;
    if (h !== null && fastOk(offset, 1, this.size)) return native.deviceRead8(h, this.#base + offset);
    return native.deviceRead8(...this.#check(offset, 1, 'pread'));
  }
  read16(offset: number): number {
    const h = this.#live.handle;
    if (h !== null && fastOk(offset, 2, this.size)) return native.deviceRead16(h, this.#base + offset);
    return native.deviceRead16(...this.#check(offset, 2, 'pread'));
  }
  read32(offset: number): number {
    const h = this.#live.handle;
    if (h !== null && fastOk(offset, 4, this.size)) return native.deviceRead32(h, this.#base + offset);
    return native.deviceRead32(...this.#check(offset, 4, 'pread'));
  }
  read64(offset: number): bigint {
    const h = this.#live.handle;
    if (h !== null && fastOk(offset, 8, this.size)) return native.deviceRead64(h, this.#base + offset);
    return native.deviceRead64(...this.#check(offset, 8, 'pread'));
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
    const pm = offset + bytes.length > 0x40 ? byteAt(dev._pmcsrOffset()) : undefined;
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
    const v = toUint(value, 'value', 8);
    this.#guarded(at - this.#base, [v], () => native.deviceWrite8(h, at, v));
  }
  write16(offset: number, value: number): void {
    const [h, at] = this.#check(offset, 2, 'pwrite');
    const v = toUint(value, 'value', 16);
    this.#guarded(at - this.#base, [v & 0xff, v >>> 8], () => native.deviceWrite16(h, at, v));
  }
  write32(offset: number, value: number): void {
    const h = this.#live.handle;
    if (h !== null && !this.#watch && fastOk(offset, 4, this.size) && typeof value === 'number' && value >>> 0 === value) {
      native.deviceWrite32(h, this.#base + offset, value);
      return;
    }
    const [hh, at] = this.#check(offset, 4, 'pwrite');
    const v = toUint(value, 'value', 32);
    this.#guarded(at - this.#base, [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24],
      () => native.deviceWrite32(hh, at, v));
  }
  write64(offset: number, value: bigint): void {
    const [h, at] = this.#check(offset, 8, 'pwrite');
    const v = toU64Value(value, 'value');
    const bytes = Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
    this.#guarded(at - this.#base, bytes, () => native.deviceWrite64(h, at, v));
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
        const len = Math.ceil(a.size / PAGE_SIZE) * PAGE_SIZE;
        mapped.push(newArea(a.offset, a.size, native.deviceMmap(h, this.#base + a.offset, len, this.info.writable)));
      }
    } catch (err) {
      for (const m of mapped) native.mappingClose(m.handle);
      throw err;
    }
    const region = new MappedRegion(this.index, this.size, mapped, this.#device);
    this.#device._adopt(region);
    const off = this.#device.memoryOff;
    if (off) region._suspend(off);
    return region;
  }
}

/** One mmapped area, with typed-array views over it used only for Atomics.load. */
interface MappedArea {
  offset: number;
  size: number;
  handle: NativeHandle;
  u8: Uint8Array | null;
  u16: Uint16Array | null;
  u32: Uint32Array | null;
  u64: BigUint64Array | null;
}

function newArea(offset: number, size: number, handle: NativeHandle): MappedArea {
  let ab: ArrayBuffer | null = null;
  try {
    ab = native.mappingArrayBuffer(handle);
  } catch {
    // A runtime without external ArrayBuffers: every access goes through native code instead.
  }
  return {
    offset, size, handle,
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
  #device: VfioDevice;
  /** Why the device's memory is off (the accessors refuse), or null. */
  #suspended: string | null = null;

  /** @internal */
  constructor(index: number, size: number, areas: MappedArea[], device: VfioDevice) {
    this.index = index;
    this.size = size;
    this.#areas = areas;
    this.#whole = MappedRegion.#wholeOf(areas, size);
    this.#device = device;
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
      throw new VfioStateError('ERR_VFIO_CLOSED', EBADF, 'mmap', `the mapping of region ${this.index} is closed`);
    }
    if (this.#suspended !== null) {
      throw new VfioStateError('ERR_VFIO_MEMORY_OFF', EIO, 'mmap',
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
    native.mappingWrite8(a.handle, o, toUint(value, 'value', 8));
  }
  write16(offset: number, value: number): void {
    const [a, o] = this.#at(offset, 2);
    native.mappingWrite16(a.handle, o, toUint(value, 'value', 16));
  }
  write32(offset: number, value: number): void {
    const w = this.#whole;
    if (w !== null && fastOk(offset, 4, this.size) && typeof value === 'number' && value >>> 0 === value) {
      native.mappingWrite32(w.handle, offset, value);
      return;
    }
    const [a, o] = this.#at(offset, 4);
    native.mappingWrite32(a.handle, o, toUint(value, 'value', 32));
  }
  write64(offset: number, value: bigint): void {
    const [a, o] = this.#at(offset, 8);
    native.mappingWrite64(a.handle, o, toU64Value(value, 'value'));
  }

  /** munmap. Idempotent. */
  close(): void {
    this._dispose();
  }

  [Symbol.dispose](): void {
    this._dispose();
  }

  /** @internal */
  _dispose(): void {
    if (!this.#areas) return;
    for (const a of this.#areas) native.mappingClose(a.handle);
    this.#areas = null;
    this.#whole = null;
    this.#device._forget(this);
  }
}

/** PCI config space (VFIO region 7). */
export class PciConfig {
  readonly region: Region;

  /** @internal */
  constructor(region: Region) {
    this.region = region;
  }

  read8(offset: number): number {
    return this.region.read8(offset);
  }
  read16(offset: number): number {
    return this.region.read16(offset);
  }
  read32(offset: number): number {
    return this.region.read32(offset);
  }
  write8(offset: number, value: number): void {
    this.region.write8(offset, value);
  }
  write16(offset: number, value: number): void {
    this.region.write16(offset, value);
  }
  write32(offset: number, value: number): void {
    this.region.write32(offset, value);
  }

  get vendorId(): number {
    return this.read16(0x00);
  }
  get deviceId(): number {
    return this.read16(0x02);
  }
  /** The COMMAND register. */
  get command(): number {
    return this.read16(0x04);
  }
  get status(): number {
    return this.read16(0x06);
  }

  /** Set Bus Master Enable (COMMAND bit 2): needed before the device can DMA or send MSIs. */
  enableBusMaster(): void {
    this.write16(0x04, this.command | 0x4);
  }

  /** The standard capability list: `{ id, offset }` (0x05 MSI, 0x10 PCIe, 0x11 MSI-X, ...). */
  capabilities(): Array<{ id: number; offset: number }> {
    const out: Array<{ id: number; offset: number }> = [];
    if (!(this.status & 0x10)) return out;
    let ptr = this.read8(0x34) & 0xfc;
    const seen = new Set<number>();
    while (ptr >= 0x40 && ptr + 2 <= Math.min(this.region.size, 256) && !seen.has(ptr)) {
      seen.add(ptr);
      out.push({ id: this.read8(ptr), offset: ptr });
      ptr = this.read8(ptr + 1) & 0xfc;
    }
    return out;
  }

  /** The PCIe extended capability list (config space beyond 256 bytes). */
  extendedCapabilities(): Array<{ id: number; version: number; offset: number }> {
    const out: Array<{ id: number; version: number; offset: number }> = [];
    if (this.region.size <= 0x100) return out;
    let ptr = 0x100;
    const seen = new Set<number>();
    while (ptr >= 0x100 && ptr + 4 <= this.region.size && !seen.has(ptr)) {
      seen.add(ptr);
      const header = this.read32(ptr);
      if (header === 0 || header === 0xffffffff) break;
      out.push({ id: header & 0xffff, version: (header >>> 16) & 0xf, offset: ptr });
      ptr = (header >>> 20) & 0xffc;
    }
    return out;
  }
}
