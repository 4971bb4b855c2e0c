import { EventEmitter } from 'node:events';
import { describe, optionsObject, toIndex, toPath } from './args';
import { flags as C } from './constants';
import {
  VfioError, VfioUnsupportedError, alreadyBoundError, busyError, closedError, kernelBefore, needsKernelError, notBoundError,
  withKernel, type VfioStateError,
} from './errors';
import {
  decodeDeviceInfo, decodeHotResetInfo, decodeIrqInfo, decodeRegionInfo, decodeRegionInfoWords, type DeviceInfo, type HotResetInfo, type IrqInfo,
  type RegionInfo,
} from './decoders';
import { Interrupts } from './interrupts';
import { IoEventFd, type IoEventFdOptions } from './ioeventfd';
import { IrqOwners, irqIndex, type IrqIndexName } from './irq-owners';
import { attachTarget, Iommufd, type Hwpt, type IoAddressSpace } from './iommufd';
import { hot, native, results, results64, type NativeHandle } from './native';
import { probeGate, type ProbeReport } from './probe';
import { PciConfig } from './pci-config';
import { BarMappings } from './bar-mappings';
import { MappedRegion, Region, type Live } from './region';
import { cdevPathFor, isBdf, isMdevUuid } from './sysfs';

export type { DeviceInfo, HotResetDevice, HotResetInfo, InfoCapability, IrqInfo, RegionInfo } from './decoders';
export { MappedRegion, Region } from './region';
export { PciConfig } from './pci-config';
export type { ProbeReport } from './probe';

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

/** Options of {@link VfioDevice.feature}. */
export interface FeatureOptions {
  get?: boolean;
  set?: boolean;
  probe?: boolean;
  /** Argument bytes; filled in by the kernel for GET. */
  data?: Uint8Array;
}

export type { IrqIndexName } from './irq-owners';

/** `device.lowPower`: the low-power device features. */
export interface LowPower {
  /** Let the device enter low power (D3); `{ wakeup: true }`: be told by a `'wakeup'` event when it wakes itself. */
  enter(options?: { wakeup?: boolean }): void;
  /** Bring the device out of low power. */
  exit(): void;
}
const U32 = 0xffffffff;

function deviceClosed(syscall: string, ioctl?: string, path?: string): VfioStateError {
  return closedError('the device is closed', syscall, { ...(ioctl ? { ioctl } : {}), ...(path ? { path } : {}) });
}

function uuidBytes(uuid: string): Uint8Array {
  if (typeof uuid !== 'string' || !isMdevUuid(uuid)) {
    throw new TypeError(`vfToken must be a UUID string, got ${describe(uuid)}`);
  }
  return Uint8Array.from(Buffer.from(uuid.replace(/-/g, ''), 'hex'));
}

/** A child resource the device closes with itself. */
interface Child {
  _dispose(): void;
}

/**
 * A VFIO device opened through its cdev (`/dev/vfio/devices/vfioN`). An EventEmitter: `'request'`
 * fires when the kernel asks for the device back (someone unbinds it from vfio-pci while it is
 * open; close it to let the unbind finish). The fd starts
 * `'blocked'`: until bind() succeeds the kernel answers EINVAL to everything else, and this
 * class refuses such calls up front with a VfioStateError (unless `checks: false`).
 */
export class VfioDevice extends EventEmitter {
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
  /** BAR mappings (held weakly) and why the device's memory is off. */
  readonly #bars = new BarMappings();
  /** Who owns which interrupt vectors. */
  readonly #irqs = new IrqOwners();
  /** The REQ index's interrupts while someone listens for 'request'. */
  #requests: Interrupts | null = null;
  /** The eventfd watcher of a low-power entry with wakeup, while the device sleeps. */
  #wakeup: NativeHandle | null = null;

  private constructor(handle: NativeHandle, path: string | null, state: DeviceState, checks: boolean, fromGroup: boolean) {
    super();
    this.on('newListener', (event: string | symbol) => {
      if (event === 'request') this.#watchRequests(true);
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'request' && this.listenerCount('request') === 0) this.#watchRequests(false);
    });
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
    const byName = isBdf(bdfOrPath) || isMdevUuid(bdfOrPath);
    if (!byName && !bdfOrPath.includes('/')) {
      throw new TypeError(`'${bdfOrPath}' is not a PCI address (DDDD:BB:DD.F, e.g. 0000:00:03.0), an mdev UUID or a path ` +
        'to a VFIO cdev (/dev/vfio/devices/vfioN)');
    }
    const path = byName ? cdevPathFor(bdfOrPath) : bdfOrPath;
    return new VfioDevice(native.deviceOpen(path), path, 'blocked', opts.checks !== false, false);
  }

  /** Wrap a device fd opened elsewhere (fd passing from a privileged helper, for example). */
  static fromFd(fd: number, options?: DeviceFromFdOptions): VfioDevice {
    toIndex(fd, 'fd', 0x7fffffff);
    const opts = optionsObject(options, 'options');
    const h = native.deviceFromFd(fd, opts.own === true);
    return new VfioDevice(h, null, opts.bound ? 'bound' : 'blocked', opts.checks !== false, false);
  }

  /** @internal A device from VFIO_GROUP_GET_DEVICE_FD: never blocked, cannot bind. */
  static _fromGroupHandle(handle: NativeHandle): VfioDevice {
    return new VfioDevice(handle, null, 'bound', true, true);
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
    if (!this.#live.handle) throw deviceClosed('fcntl', undefined, this.path ?? undefined);
    return native.deviceFd(this.#live.handle);
  }

  /** Whether state checks are on. */
  get checks(): boolean {
    return this.#checks;
  }

  /** @internal The native handle for a call that needs a bound fd. */
  _handle(syscall: string, ioctl?: string): NativeHandle {
    if (!this.#live.handle) throw deviceClosed(syscall, ioctl, this.path ?? undefined);
    if (this.#checks && this.#state === 'blocked') {
      throw notBoundError(
        `${ioctl ?? syscall} on a cdev fd that is not bound yet; call bind(iommufd) first ` +
          '(the kernel answers EINVAL to everything before VFIO_DEVICE_BIND_IOMMUFD)',
        syscall, { ...(ioctl ? { ioctl } : {}), ...(this.path ? { path: this.path } : {}) },
      );
    }
    return this.#live.handle;
  }

  /** @internal */
  _forget(child: object): void {
    this.#children.delete(child as Child);
    if (child instanceof MappedRegion) this.#bars.forget(child);
    if (child instanceof Interrupts) this.#irqs.remove(child);
  }

  /**
   * Route the REQ index (the kernel's release request) to 'request' events while someone listens
   * (unref'd: it never keeps the process alive). A blocked fd starts it at bind().
   */
  #watchRequests(on: boolean): void {
    if (on && !this.#requests && this.#live.handle && this.#state !== 'blocked') {
      this.#requests = this.enableIrq('req').unref();
      this.#requests.on('interrupt', (_vector: number, count: number) => this.emit('request', count));
    } else if (!on && this.#requests) {
      this.#requests.disable();
      this.#requests = null;
    }
  }

  /** @internal Whether sets other than `irqs` own vectors of its IRQ index. */
  _irqShared(irqs: Interrupts): boolean {
    return this.#irqs.shared(irqs);
  }

  /**
   * Why the device's memory (its BARs) is off, when the library turned it off: a config write
   * that cleared COMMAND.MEMORY, D3hot through the PM capability, or low-power entry. Null when on.
   * While off, the MappedRegions of this device throw ERR_VFIO_MEMORY_OFF instead of faulting.
   */
  get memoryOff(): string | null {
    return this.#bars.reason;
  }

  /** @internal The device's memory goes off (before the write or ioctl that does it). */
  _memoryOff(key: string, reason: string): boolean {
    return this.#bars.off(key, reason);
  }

  /** @internal The device's memory comes back on (after the write or ioctl that does it). */
  _memoryOn(key: string): void {
    this.#bars.on(key);
  }

  /** VFIO_DEVICE_BIND_IOMMUFD: bind to an iommufd and return the devid. There is no unbind. */
  bind(iommufd: Iommufd, options?: { vfToken?: string }): number {
    const ioctl = 'VFIO_DEVICE_BIND_IOMMUFD';
    if (!this.#live.handle) throw deviceClosed('ioctl', ioctl, this.path ?? undefined);
    if (!Iommufd.isIommufd(iommufd)) throw new TypeError(`iommufd must be an Iommufd, got ${describe(iommufd)}`);
    const opts = optionsObject(options, 'options');
    const token = opts.vfToken === undefined ? null : uuidBytes(opts.vfToken);
    if (this.#checks && this.#state !== 'blocked') {
      throw alreadyBoundError(
        this.#fromGroup
          ? 'a device fd from the group path is never blocked and cannot be bound to an iommufd'
          : 'the device is already bound; a bound fd stays bound until close()',
        { ioctl, ...(this.path ? { path: this.path } : {}) },
      );
    }
    const h = this.#live.handle;
    const devId = token === null ? native.deviceBind(h, iommufd._native(), null)
      : withKernel('bind({ vfToken })', '6.17', () => native.deviceBind(h, iommufd._native(), token));
    this.#devId = devId;
    this.#iommufd = iommufd;
    if (this.#state === 'blocked') this.#state = 'bound';
    if (this.listenerCount('request') > 0) this.#watchRequests(true);
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
    const { id, ioas } = attachTarget(target, this.#iommufd, { ioctl, ...(this.path ? { path: this.path } : {}) });
    const opts = optionsObject(options, 'options');
    const pasid = opts.pasid === undefined ? -1 : toIndex(opts.pasid, 'options.pasid', 0xfffff);
    const ptId = pasid < 0 ? native.deviceAttach(h, id, pasid)
      : this.#pasidCall('attach', ioctl, () => native.deviceAttach(h, id, pasid));
    if (pasid < 0) {
      this.#ioas?._invalidate();
      this.#ioas = ioas;
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
    if (pasid < 0) native.deviceDetach(h, pasid);
    else this.#pasidCall('detach', 'VFIO_DEVICE_DETACH_IOMMUFD_PT', () => native.deviceDetach(h, pasid));
    if (pasid < 0) {
      this.#ioas?._invalidate();
      this.#ioas = null;
      this.#ptId = null;
      if (this.#state === 'attached') this.#state = 'bound';
    }
  }

  /**
   * A PASID attach or detach: the kernel's refusal becomes ERR_VFIO_NEEDS_KERNEL before Linux
   * 6.15 (no PASID field), and ERR_VFIO_UNSUPPORTED when the device has no PASID capability.
   */
  #pasidCall<T>(what: string, ioctl: string, call: () => T): T {
    try {
      return call();
    } catch (err) {
      if (!(err instanceof VfioError) || !['EINVAL', 'EOPNOTSUPP', 'ENOTTY'].includes(err.code)) throw err;
      if (kernelBefore('6.15')) throw needsKernelError(`${what}({ pasid })`, '6.15', err.errno, ioctl);
      const PASID = 0x1b; // PCIe extended capability id
      if (!this.config.extendedCapabilities().some((c) => c.id === PASID)) {
        throw new VfioUnsupportedError('ERR_VFIO_UNSUPPORTED', err.errno,
          `${what}({ pasid }): the device has no PASID capability, so no PASID can be attached (the kernel answered ${err.code})`,
          { ioctl });
      }
      throw err;
    }
  }

  /**
   * On a blocked cdev fd, issue GET_INFO, pread, pwrite and mmap for real and report the errno
   * name the kernel returned for each (`'OK'` if one succeeded). Expected: all `'EINVAL'`.
   * The read and write are zero-length and the mmap is undone, so nothing reaches the device.
   */
  probeBlocked(): ProbeReport {
    if (!this.#live.handle) throw deviceClosed('ioctl', 'VFIO_DEVICE_GET_INFO', this.path ?? undefined);
    if (this.#state !== 'blocked') {
      throw alreadyBoundError('probeBlocked() needs a cdev fd that is not bound yet', this.path ? { path: this.path } : {});
    }
    return probeGate(this.#live.handle);
  }

  /**
   * The raw escape hatch: ioctl `request` on the device fd with `arg` (the struct, starting with
   * its argsz), copied in and out by the kernel; returns the ioctl's result. Behind the pre-bind
   * gate like every other call. Requests the library wraps are refused (use its call); argsz
   * must lie within `arg`. Pointers inside the struct are the caller's to get right.
   */
  ioctl(request: number, arg: Uint8Array): number {
    const h = this._handle('ioctl');
    if (!(arg instanceof Uint8Array)) throw new TypeError(`arg must be a Uint8Array, got ${describe(arg)}`);
    return native.deviceIoctl(h, toIndex(request, 'request', 0xffffffff), arg);
  }

  /** VFIO_DEVICE_GET_INFO. */
  info(): DeviceInfo {
    const h = this._handle('ioctl', 'VFIO_DEVICE_GET_INFO');
    // The struct is left in the addon's results (no buffer passed, nothing allocated).
    const argsz = native.deviceGetInfoInto(h);
    // A capability chain follows when the kernel asks for more: read the whole, larger struct.
    const withCaps = results[1] & C.VFIO_DEVICE_FLAGS_CAPS && argsz > 24 ? native.deviceGetInfo(h) : undefined;
    const info = decodeDeviceInfo(results, withCaps);
    this.#info = info;
    return info;
  }

  /** VFIO_DEVICE_GET_REGION_INFO, with its capability chain decoded. */
  regionInfo(index: number): RegionInfo {
    toIndex(index, 'index', U32);
    const h = this._handle('ioctl', 'VFIO_DEVICE_GET_REGION_INFO');
    const argsz = hot.regionInfo(h, index);
    // A capability chain follows when the kernel asks for more: read the whole, larger struct.
    if (results[1] & C.VFIO_REGION_INFO_FLAG_CAPS && argsz > 32) {
      return decodeRegionInfo(native.deviceGetRegionInfo(h, index), index);
    }
    return decodeRegionInfoWords(results, index, results64);
  }

  /** VFIO_DEVICE_GET_IRQ_INFO. */
  irqInfo(index: number): IrqInfo {
    toIndex(index, 'index', U32);
    const h = this._handle('ioctl', 'VFIO_DEVICE_GET_IRQ_INFO');
    // Some drivers (mtty) size their IRQ table from a previous GET_INFO.
    if (!this.#info) this.info();
    const count = hot.irqInfo(h, index);
    return decodeIrqInfo(index, results[1], count);
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
    const idx = irqIndex(index);
    const opts = optionsObject(options, 'options');
    const count = toIndex(opts.count ?? 1, 'options.count', 2048);
    const start = toIndex(opts.start ?? 0, 'options.start', 2048);
    if (count === 0) throw new RangeError('options.count must be at least 1 (use disable() to turn interrupts off)');
    if (start + count > 2048) throw new RangeError(`options.start + options.count must be at most 2048, got ${start + count}`);
    const ioctl = 'VFIO_DEVICE_SET_IRQS';
    this._handle('ioctl', ioctl);
    const owners = this.#irqs.of(idx);
    const clash = this.#irqs.clash(idx, start, count);
    if (clash) {
      throw busyError(
        `vectors ${start}..${start + count - 1} of IRQ index ${idx} overlap vectors ${clash.start}..` +
        `${clash.start + clash.count - 1}, which another Interrupts set owns; disable() that set first`, 'ioctl',
        { ioctl, ...(this.path ? { path: this.path } : {}) });
    }
    if (!this.#info && this.#state !== 'blocked') this.info();
    const enabled = this.#irqs.enabled(idx);
    // The kernel cannot add vectors to a live index without dynamic MSI-X: re-enable it whole.
    const arm = owners.length && start + count > enabled && this.#checks && this.irqInfo(idx).noresize
      ? (fds: Int32Array): void => this.#irqs.reenable(this._handle('ioctl', ioctl), idx, start, fds)
      : undefined;
    const maskable = this.#checks ? this.irqInfo(idx).maskable : null;
    const irqs = new Interrupts(this, idx, start, count, arm, maskable);
    this.#children.add(irqs);
    this.#irqs.add(irqs);
    return irqs;
  }

  /**
   * VFIO_DEVICE_IOEVENTFD: an eventfd whose every signal makes the kernel write `data` (`width`
   * bytes) at `offset` of region `regionIndex`. `close()` removes it.
   */
  ioeventfd(regionIndex: number, offset: number, width: 1 | 2 | 4 | 8, options?: IoEventFdOptions): IoEventFd {
    const region = this.regionInfo(regionIndex);
    const io = new IoEventFd(this, region, offset, width, options);
    this.#children.add(io);
    return io;
  }

  /** VFIO_DEVICE_RESET (see `info().canReset`). */
  reset(): void {
    native.deviceReset(this._handle('ioctl', 'VFIO_DEVICE_RESET'));
  }

  /** VFIO_DEVICE_GET_PCI_HOT_RESET_INFO. */
  hotResetInfo(): HotResetInfo {
    return decodeHotResetInfo(native.deviceHotResetInfo(this._handle('ioctl', 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO')));
  }

  /** VFIO_DEVICE_PCI_HOT_RESET, cdev form (ownership is checked through the iommufd). */
  hotReset(): void {
    native.deviceHotReset(this._handle('ioctl', 'VFIO_DEVICE_PCI_HOT_RESET'), new Int32Array(0));
  }

  /**
   * VFIO_DEVICE_FEATURE: probe, get or set feature `feature` (`options.data` is the feature's
   * struct, filled in place by a GET). Returns the ioctl's result: 0, or what the feature
   * returns (the fd of VFIO_DEVICE_FEATURE_DMA_BUF: the caller owns it).
   */
  feature(feature: number, options?: FeatureOptions): number {
    toIndex(feature, 'feature', C.VFIO_DEVICE_FEATURE_MASK);
    const opts = optionsObject(options, 'options');
    const data = opts.data ?? new Uint8Array(0);
    if (!(data instanceof Uint8Array)) throw new TypeError(`options.data must be a Uint8Array, got ${describe(data)}`);
    const flags = feature | (opts.get ? C.VFIO_DEVICE_FEATURE_GET : 0) | (opts.set ? C.VFIO_DEVICE_FEATURE_SET : 0) |
      (opts.probe || (!opts.get && !opts.set) ? C.VFIO_DEVICE_FEATURE_PROBE : 0);
    const h = this._handle('ioctl', 'VFIO_DEVICE_FEATURE');
    // Low power makes every BAR access fault: the mappings are suspended before the kernel zaps them.
    return this.#bars.aroundFeature(feature, opts.set === true && !opts.probe, () => native.deviceFeature(h, flags, data));
  }

  /**
   * Low power (VFIO_DEVICE_FEATURE_LOW_POWER_*): `enter()` lets the device go to D3, `exit()`
   * brings it back. While in low power the BAR mappings are suspended (accesses throw
   * ERR_VFIO_MEMORY_OFF, never SIGBUS). `enter({ wakeup: true })` also hands the kernel an
   * eventfd: when the device wakes itself (a PME), the device emits `'wakeup'` and its mappings
   * work again.
   */
  get lowPower(): LowPower {
    this._handle('ioctl', 'VFIO_DEVICE_FEATURE');
    return {
      enter: (options?: { wakeup?: boolean }) => {
        const wakeup = optionsObject(options, 'options').wakeup;
        if (wakeup !== undefined && typeof wakeup !== 'boolean') {
          throw new TypeError(`options.wakeup must be a boolean, got ${describe(wakeup)}`);
        }
        this.#closeWakeup();
        if (!wakeup) {
          this.feature(C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, { set: true });
          return;
        }
        const watcher = native.irqCreate((count: number) => {
          if (count <= 0 || this.#wakeup !== watcher) return;
          this.#closeWakeup();
          this.#bars.on('lowPower'); // the kernel left low power itself
          this.emit('wakeup');
        });
        try {
          // struct vfio_device_low_power_entry_with_wakeup { s32 wakeup_eventfd; u32 reserved; }
          const data = new Int32Array([native.irqFd(watcher), 0]);
          this.feature(C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, { set: true, data: new Uint8Array(data.buffer) });
          native.irqStart(watcher);
          native.irqRef(watcher, false);
          this.#wakeup = watcher;
        } catch (err) {
          native.irqClose(watcher);
          throw err;
        }
      },
      exit: () => {
        this.#closeWakeup();
        this.feature(C.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, { set: true });
      },
    };
  }

  #closeWakeup(): void {
    if (this.#wakeup) native.irqClose(this.#wakeup);
    this.#wakeup = null;
  }

  /**
   * VFIO_DEVICE_FEATURE_PCI_VF_TOKEN: set the VF token of this physical function (a UUID that
   * every user of its VFs must then present: `bind(iommufd, { vfToken })`, or the group path's
   * `vf_token=` suffix). Needs the PF bound to vfio-pci with SR-IOV.
   */
  setVfToken(uuid: string): void {
    this._handle('ioctl', 'VFIO_DEVICE_FEATURE');
    this.feature(C.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, { set: true, data: uuidBytes(uuid) });
  }

  /**
   * Whether the device supports feature `feature` (a VFIO_DEVICE_FEATURE probe of the given
   * direction, `set` by default); false when the kernel or device answers ENOTTY, EINVAL or
   * EOPNOTSUPP to the probe (how "not supported by this device" reads; migration and DMA logging
   * on a device without them, for instance).
   */
  supportsFeature(feature: number, direction: 'get' | 'set' = 'set'): boolean {
    this._handle('ioctl', 'VFIO_DEVICE_FEATURE');
    if (direction !== 'get' && direction !== 'set') throw new TypeError(`direction must be 'get' or 'set', got ${describe(direction)}`);
    try {
      this.feature(feature, { probe: true, [direction]: true });
      return true;
    } catch (err) {
      if (err instanceof VfioError && ['ENOTTY', 'EINVAL', 'EOPNOTSUPP'].includes(err.code)) return false;
      throw err;
    }
  }

  /** The IOAS this device is attached to through attach(), if any. */
  get ioas(): IoAddressSpace | null {
    return this.#ioas;
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
    this.#requests = null;
    this.#closeWakeup();
    for (const child of [...this.#children]) child._dispose();
    this.#children.clear();
    this.#bars.closeAll();
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
    this.#bars.add(map);
  }
}
