// NvmeController: bring-up, admin commands, namespaces and I/O queue pairs over the core API.
import { describe, optionsObject, toIndex } from '../args';
import { VfioDevice } from '../device';
import { DmaBuffer } from '../dma-buffer';
import { ECANCELED, VfioError, busyError, closedError } from '../errors';
import type { IoAddressSpace } from '../ioas';
import { Iommufd } from '../iommufd';
import type { MappedRegion } from '../region';
import { NvmeQueuePair, type QueuePairOptions } from './queue-pair';
import { QueuePair, queueBytes } from './queue';
import { ADMIN, CC, CSTS, PAGE, REG } from './spec';

/** Options of {@link NvmeController.open}. */
export interface NvmeOpenOptions {
  /** Admin queue entries (default 32). */
  adminQueueSize?: number;
  /** Per-command timeout in ms (default 5000). */
  timeoutMs?: number;
}

/** Identify Controller, decoded (the whole 4 KiB in `raw`). */
export interface NvmeIdentity {
  vid: number;
  ssvid: number;
  serial: string;
  model: string;
  firmware: string;
  /** Maximum data transfer size, as a power of two of the minimum page size (0: no limit). */
  mdts: number;
  /** Number of namespaces. */
  nn: number;
  raw: Uint8Array;
}

/** An active namespace. */
export interface NvmeNamespace {
  nsid: number;
  blockCount: bigint;
  blockSize: number;
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1').replace(/\0/g, '').trim();

/**
 * A controller driven from JS: open() brings it up (disable, admin queue, enable, identify), and
 * close() shuts it down normally (CC.SHN) and releases everything.
 */
export class NvmeController {
  readonly device: VfioDevice;
  readonly bar: MappedRegion;
  /** The controller's maximum queue entries (CAP.MQES + 1). */
  readonly maxQueueEntries: number;
  #own: { iommufd: Iommufd; ioas: IoAddressSpace } | null;
  #ioas: IoAddressSpace;
  #dstrd: number;
  #timeoutMs: number;
  #admin: QueuePair | null;
  #adminMem: DmaBuffer;
  #scratch: DmaBuffer;
  #scratchIova: bigint;
  /** IOVA (as a number) of each buffer mapped for I/O, valid while the IOAS generation holds. */
  #iovaCache = new Map<DmaBuffer, number>();
  #iovaGeneration = -1;
  #identity: NvmeIdentity;
  #namespaces: NvmeNamespace[];
  #queues = new Set<NvmeQueuePair>();
  /** Buffers mapped for I/O on first use. */
  #mapped = new Set<DmaBuffer>();
  #nextQid = 1;
  #readyMs: number;
  #resetQueued = false;

  private constructor(device: VfioDevice, ioas: IoAddressSpace, own: { iommufd: Iommufd; ioas: IoAddressSpace } | null,
    options: NvmeOpenOptions) {
    this.device = device;
    this.#ioas = ioas;
    this.#own = own;
    this.#timeoutMs = toIndex(options.timeoutMs ?? 5000, 'options.timeoutMs');
    const adminSize = toIndex(options.adminQueueSize ?? 32, 'options.adminQueueSize', 4096);
    if (adminSize < 2) throw new RangeError('options.adminQueueSize must be at least 2');
    device.config.enableBusMaster();
    this.bar = device.region(0).map();
    const cap = this.bar.read64(REG.CAP);
    this.maxQueueEntries = Number(cap & 0xffffn) + 1;
    this.#dstrd = Number((cap >> 32n) & 0xfn);
    const readyMs = Math.max(500, Number((cap >> 24n) & 0xffn) * 500);
    this.#readyMs = readyMs;
    if (adminSize > this.maxQueueEntries) throw new RangeError(`options.adminQueueSize exceeds CAP.MQES+1 (${this.maxQueueEntries})`);
    // Disable, set up the admin queue pair, enable.
    this.bar.write32(REG.CC, 0);
    this.#waitReady(false, readyMs);
    this.#adminMem = DmaBuffer.alloc(queueBytes(adminSize));
    const adminIova = ioas.map(this.#adminMem);
    this.#scratch = DmaBuffer.alloc(PAGE);
    this.#scratchIova = ioas.map(this.#scratch);
    const admin = new QueuePair(this.#adminMem, 0, adminIova, this.bar, 0, adminSize, this.#dstrd, this.#timeoutMs);
    this.bar.write32(REG.AQA, ((adminSize - 1) << 16) | (adminSize - 1));
    this.bar.write64(REG.ASQ, admin.sqIova);
    this.bar.write64(REG.ACQ, admin.cqIova);
    this.bar.write32(REG.CC, CC.EN | CC.IOSQES | CC.IOCQES);
    this.#waitReady(true, readyMs);
    this.#admin = admin;
    this.#identity = this.#identify();
    this.#namespaces = this.#scanNamespaces();
  }

  /**
   * Bring up the controller at `bdfOrDevice`: a PCI address of a device bound to vfio-pci (the
   * controller then owns an iommufd and IOAS of its own), or a VfioDevice already bound and
   * attached to an IOAS through this library.
   */
  static open(bdfOrDevice: string | VfioDevice, options?: NvmeOpenOptions): NvmeController {
    const opts = optionsObject(options, 'options');
    if (bdfOrDevice instanceof VfioDevice) {
      const ioas = bdfOrDevice.ioas;
      if (!ioas) throw new TypeError('the VfioDevice must be bound and attached to an IoAddressSpace (device.attach(ioas))');
      return new NvmeController(bdfOrDevice, ioas, null, opts);
    }
    if (typeof bdfOrDevice !== 'string') throw new TypeError(`bdfOrDevice must be a PCI address or a VfioDevice, got ${describe(bdfOrDevice)}`);
    const iommufd = Iommufd.open();
    let dev: VfioDevice | null = null;
    try {
      dev = VfioDevice.open(bdfOrDevice);
      dev.bind(iommufd);
      const ioas = iommufd.allocIoas();
      dev.attach(ioas);
      return new NvmeController(dev, ioas, { iommufd, ioas }, opts);
    } catch (err) {
      dev?.close();
      iommufd.close();
      throw err;
    }
  }

  #waitReady(ready: boolean, ms: number): void {
    const end = Date.now() + ms;
    for (;;) {
      const csts = this.bar.read32(REG.CSTS);
      if (csts & CSTS.CFS) throw new Error('nvme: the controller reports a fatal status (CSTS.CFS)');
      if (((csts & CSTS.RDY) !== 0) === ready) return;
      if (Date.now() > end) throw new Error(`nvme: CSTS.RDY did not become ${ready ? 1 : 0} within ${ms} ms (CAP.TO)`);
    }
  }

  #adminQueue(): QueuePair {
    if (!this.#admin) throw closedError('the NVMe controller is closed');
    return this.#admin;
  }

  /**
   * Reset the controller (disable, then enable with fresh queues): every outstanding command of
   * every queue pair rejects with ECANCELED, and the I/O queue pairs are created again. A command
   * that times out triggers this by itself. Refused while a queue pair is moved to a worker.
   */
  reset(): void {
    const admin = this.#adminQueue();
    if ([...this.#queues].some((qp) => qp._moved)) throw busyError('a queue pair was moved to a worker with share()');
    const cancelled = new VfioError({ errno: ECANCELED, syscall: 'ioctl', code: 'ECANCELED',
      message: 'ECANCELED: the NVMe controller was reset before the command completed' });
    for (const qp of this.#queues) qp._fail(cancelled);
    admin.failAll(cancelled);
    this.bar.write32(REG.CC, 0);
    this.#waitReady(false, this.#readyMs);
    admin.resetRing();
    this.bar.write32(REG.AQA, ((admin.size - 1) << 16) | (admin.size - 1));
    this.bar.write64(REG.ASQ, admin.sqIova);
    this.bar.write64(REG.ACQ, admin.cqIova);
    this.bar.write32(REG.CC, CC.EN | CC.IOSQES | CC.IOCQES);
    this.#waitReady(true, this.#readyMs);
    for (const qp of this.#queues) qp._recreate();
  }

  /** @internal A command timed out: reset on the next turn of the event loop (once). */
  _timedOut(): void {
    if (this.#resetQueued) return;
    this.#resetQueued = true;
    setImmediate(() => {
      this.#resetQueued = false;
      if (this.#admin) this.reset();
    });
  }

  /** @internal Run an admin command synchronously; returns completion dword 0. */
  _admin(opcode: number, cdw: number[], options: { nsid?: number; data?: { iova: number; length: number } } = {}): number {
    return this.#adminQueue().run({ opcode, cdw: cdw as [number?], ...options });
  }

  /** Read `length` bytes of a data-in admin command into a copy (through the scratch page). */
  #adminIn(opcode: number, cdw: number[], length: number, nsid?: number): Uint8Array {
    this._admin(opcode, cdw, { ...(nsid !== undefined ? { nsid } : {}), data: { iova: Number(this.#scratchIova), length } });
    return this.#scratch.bytes.slice(0, length);
  }

  #identify(): NvmeIdentity {
    const raw = this.#adminIn(ADMIN.IDENTIFY, [1], PAGE);
    const v = new DataView(raw.buffer);
    return {
      vid: v.getUint16(0, true),
      ssvid: v.getUint16(2, true),
      serial: text(raw.subarray(4, 24)),
      model: text(raw.subarray(24, 64)),
      firmware: text(raw.subarray(64, 72)),
      mdts: raw[77],
      nn: v.getUint32(516, true),
      raw,
    };
  }

  #scanNamespaces(): NvmeNamespace[] {
    const out: NvmeNamespace[] = [];
    for (let nsid = 1; nsid <= Math.min(this.#identity.nn, 1024); nsid++) {
      const raw = this.#adminIn(ADMIN.IDENTIFY, [0], PAGE, nsid);
      const v = new DataView(raw.buffer);
      const blockCount = v.getBigUint64(0, true);
      if (blockCount === 0n) continue;
      const lbaf = raw[26] & 0xf;
      out.push({ nsid, blockCount, blockSize: 2 ** raw[128 + 4 * lbaf + 2] });
    }
    return out;
  }

  /** Identify Controller, as read at open(). */
  identify(): NvmeIdentity {
    this.#adminQueue();
    return this.#identity;
  }

  /** The active namespaces. */
  get namespaces(): NvmeNamespace[] {
    return this.#namespaces.map((n) => ({ ...n }));
  }

  /** The largest transfer in bytes (MDTS; 2 MiB when the controller sets no limit). */
  get maxTransfer(): number {
    const mdts = this.#identity.mdts;
    return mdts ? Math.min(PAGE * 2 ** mdts, 2 << 20) : 2 << 20;
  }

  /** Get Log Page `lid`: `length` bytes (at most 4096 here). */
  getLogPage(lid: number, length: number, options?: { nsid?: number }): Uint8Array {
    toIndex(lid, 'lid', 0xff);
    toIndex(length, 'length', PAGE);
    if (length === 0 || length % 4) throw new RangeError('length must be a non-zero multiple of 4');
    const nsid = toIndex(optionsObject(options, 'options').nsid ?? 0xffffffff, 'options.nsid', 0xffffffff);
    return this.#adminIn(ADMIN.GET_LOG_PAGE, [lid | (((length / 4 - 1) & 0xffff) << 16)], length, nsid);
  }

  /** The SMART / health log (log page 2), decoded. */
  smart(): { criticalWarning: number; temperatureK: number; availableSpare: number; percentageUsed: number;
    dataUnitsRead: bigint; dataUnitsWritten: bigint; powerCycles: bigint; powerOnHours: bigint; raw: Uint8Array } {
    const raw = this.getLogPage(2, 512);
    const v = new DataView(raw.buffer);
    const u128lo = (o: number): bigint => v.getBigUint64(o, true);
    return {
      criticalWarning: raw[0], temperatureK: v.getUint16(1, true), availableSpare: raw[3], percentageUsed: raw[5],
      dataUnitsRead: u128lo(32), dataUnitsWritten: u128lo(48), powerCycles: u128lo(112), powerOnHours: u128lo(128), raw,
    };
  }

  /** Get Features `fid`: completion dword 0. */
  getFeature(fid: number, options?: { cdw11?: number }): number {
    toIndex(fid, 'fid', 0xff);
    return this._admin(ADMIN.GET_FEATURES, [fid, toIndex(optionsObject(options, 'options').cdw11 ?? 0, 'options.cdw11', 0xffffffff)]);
  }

  /** Set Features `fid` to `value` (dword 11); returns completion dword 0. */
  setFeature(fid: number, value: number): number {
    toIndex(fid, 'fid', 0xff);
    return this._admin(ADMIN.SET_FEATURES, [fid, toIndex(value, 'value', 0xffffffff)]);
  }

  /** Create an I/O queue pair (its own MSI-X vector when `interrupts`). */
  createQueuePair(options?: QueuePairOptions): NvmeQueuePair {
    this.#adminQueue();
    const qid = this.#nextQid++;
    const qp = NvmeQueuePair._create(this, qid, optionsObject(options, 'options'));
    this.#queues.add(qp);
    return qp;
  }

  /** @internal */
  _forget(qp: NvmeQueuePair): void {
    this.#queues.delete(qp);
  }

  /** @internal The IOVA of byte `offset` of `buf`, mapping the whole buffer on first use. */
  _iovaOf(buf: DmaBuffer, offset: number): bigint {
    if (!this.#mapped.has(buf)) {
      this.#ioas.map(buf);
      this.#mapped.add(buf);
    }
    return this.#ioas.iovaOf(buf, offset);
  }

  /**
   * @internal The IOVA of byte `offset` of `buf` as a number (the I/O hot path): cached per
   * buffer, and looked up again in the IOAS's ledger whenever a mapping there went away.
   */
  _iova(buf: DmaBuffer, offset: number): number {
    const generation = this.#ioas._generation;
    if (generation !== this.#iovaGeneration) {
      this.#iovaCache.clear();
      this.#iovaGeneration = generation;
    }
    let base = this.#iovaCache.get(buf);
    if (base === undefined) {
      base = Number(this._iovaOf(buf, 0));
      if (base + buf.size > Number.MAX_SAFE_INTEGER) throw new RangeError('the buffer is mapped above 2^53');
      this.#iovaCache.set(buf, base);
    }
    return base + offset;
  }

  /** Unmap a buffer used for I/O (buffers stay mapped from their first I/O until this or close()). */
  release(buf: DmaBuffer): void {
    if (!this.#mapped.delete(buf)) return;
    this.#ioas.unmap(this.#ioas.iovaOf(buf), buf.size);
  }

  /** @internal What a queue pair needs from its controller. */
  _context(): { ioas: IoAddressSpace; dstrd: number; timeoutMs: number } {
    return { ioas: this.#ioas, dstrd: this.#dstrd, timeoutMs: this.#timeoutMs };
  }

  /** Normal shutdown (CC.SHN, wait for SHST complete), then release everything. Idempotent. */
  close(): void {
    if (!this.#admin) return;
    try {
      for (const qp of [...this.#queues]) qp.close();
      this.bar.write32(REG.CC, this.bar.read32(REG.CC) | CC.SHN_NORMAL);
      const end = Date.now() + 5000;
      while ((this.bar.read32(REG.CSTS) & CSTS.SHST_MASK) !== CSTS.SHST_COMPLETE && Date.now() < end);
    } finally {
      this.#admin.failAll(closedError('the NVMe controller was closed'));
      this.#admin = null;
      this.bar.close();
      try {
        for (const buf of [...this.#mapped]) this.release(buf);
        this.#ioas.unmap(this.#ioas.iovaOf(this.#adminMem), this.#adminMem.size);
        this.#ioas.unmap(this.#scratchIova, PAGE);
      } catch {
        // The IOAS went with its iommufd already.
      }
      this.#adminMem.free();
      this.#scratch.free();
      if (this.#own) {
        this.device.close();
        this.#own.ioas.destroy();
        this.#own.iommufd.close();
      }
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
