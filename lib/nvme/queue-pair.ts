// NvmeQueuePair: an I/O submission/completion queue pair with promise, polled and synchronous
// reads and writes; completions by its own MSI-X vector or by polling.
import { MAX_SAFE_N, describe, toIndex } from '../args';
import { DmaBuffer, type SharedDmaBuffer } from '../dma-buffer';
import { busyError, closedError } from '../errors';
import type { Interrupts } from '../interrupts';
import { MappedRegion, type SharedMappedRegion } from '../region';
import type { NvmeController, NvmeNamespace } from './controller';
import { QueuePair, queueBytes, type Command, type Done, type RingState } from './queue';
import { ADMIN, NVM } from './spec';

/** What {@link NvmeQueuePair.share} returns: post it to a worker, open it with fromShared(). */
export interface SharedNvmeQueuePair {
  readonly vfioNvmeQueuePair: {
    qid: number; size: number; dstrd: number; timeoutMs: number; ring: RingState;
    queue: SharedDmaBuffer; queueIova: bigint; bar: SharedMappedRegion;
    namespaces: NvmeNamespace[]; maxTransfer: number;
    buffers: Array<{ buffer: SharedDmaBuffer; iova: bigint }>;
  };
}

/** What I/O needs besides the queues: from the controller, or from a shared value in a worker. */
interface IoContext {
  namespaces: NvmeNamespace[];
  /** Per nsid: the block size and the block count (as a number: below 2^53 on any real device). */
  byNsid: Map<number, { blockSize: number; blocks: number }>;
  maxTransfer: number;
  /** The IOVA of byte `offset` of `buf` (a number). */
  iova(buf: DmaBuffer, offset: number): number;
}

function ioContext(namespaces: NvmeNamespace[], maxTransfer: number, iova: IoContext['iova']): IoContext {
  const byNsid = new Map(namespaces.map((n) => [n.nsid,
    { blockSize: n.blockSize, blocks: Number(n.blockCount > MAX_SAFE_N ? MAX_SAFE_N : n.blockCount) }]));
  return { namespaces, byNsid, maxTransfer, iova };
}

/** An argument error as a rejected promise (the async calls never throw synchronously). */
function rejected(err: unknown): Promise<never> {
  return Promise.reject(err instanceof Error ? err : new Error(String(err)));
}

/** Options of {@link NvmeController.createQueuePair}. */
export interface QueuePairOptions {
  /** Entries per queue (default 64; at most CAP.MQES + 1). */
  size?: number;
  /** Complete promises from the queue's own MSI-X vector (default true); false: poll. */
  interrupts?: boolean;
}

/** An I/O queue pair of a controller. */
export class NvmeQueuePair {
  readonly qid: number;
  readonly size: number;
  /** The owning controller (main side); null in a worker or once closed. */
  #ctrl: NvmeController | null;
  #io: IoContext | null;
  #q: QueuePair;
  #mem: DmaBuffer;
  #irqs: Interrupts | null = null;
  /** With interrupts: the timer that runs the expiry pass (polling runs it otherwise). */
  #expiryTimer: ReturnType<typeof setInterval> | null = null;
  #pollScheduled = false;
  #interrupts = false;
  /** Set once share() moved the queue pair to another thread. */
  #moved = false;
  /** Worker side: the shared BAR view and the buffers opened from the shared value. */
  #worker: { bar: MappedRegion; buffers: DmaBuffer[] } | null = null;

  private constructor(ctrl: NvmeController | null, io: IoContext, qid: number, q: QueuePair, mem: DmaBuffer) {
    this.#ctrl = ctrl;
    this.#io = io;
    this.qid = qid;
    this.size = q.size;
    this.#q = q;
    this.#mem = mem;
  }

  static #contextOf(ctrl: NvmeController): IoContext {
    return ioContext(ctrl.namespaces, ctrl.maxTransfer, (b, o) => ctrl._iova(b, o));
  }

  /** @internal Use `controller.createQueuePair()`. */
  static _create(ctrl: NvmeController, qid: number, opts: QueuePairOptions): NvmeQueuePair {
    const size = toIndex(opts.size ?? 64, 'options.size', ctrl.maxQueueEntries);
    if (size < 2) throw new RangeError('options.size must be at least 2');
    const interrupts = opts.interrupts !== false;
    const { ioas, dstrd, timeoutMs } = ctrl._context();
    const mem = DmaBuffer.alloc(queueBytes(size));
    let iova: bigint | null = null;
    let qp: NvmeQueuePair | null = null;
    try {
      iova = ioas.map(mem);
      const q = new QueuePair(mem, 0, iova, ctrl.bar, qid, size, dstrd, timeoutMs);
      const made = new NvmeQueuePair(ctrl, NvmeQueuePair.#contextOf(ctrl), qid, q, mem);
      qp = made;
      made.#interrupts = interrupts;
      q.onTimeout = () => ctrl._timedOut();
      if (interrupts) {
        made.#irqs = ctrl.device.enableIrq('msix', { start: qid, count: 1 });
        made.#irqs.on('interrupt', () => made.#pollSafely());
        const period = Math.max(10, Math.min(timeoutMs / 4, 1000));
        made.#expiryTimer = setInterval(() => made.#q.expire(), period).unref();
      }
      made.#createQueues(ctrl);
      return made;
    } catch (err) {
      if (qp) {
        qp.#irqs?.disable();
        qp.#stopExpiryTimer();
      }
      if (iova !== null) ioas.unmap(iova, mem.size);
      mem.free();
      throw err;
    }
  }

  /** Create the CQ (its own MSI-X vector when interrupts) and the SQ in the controller. */
  #createQueues(ctrl: NvmeController): void {
    const { qid, size } = this;
    ctrl._admin(ADMIN.CREATE_CQ, [((size - 1) << 16) | qid, 1 | (this.#interrupts ? 2 | (qid << 16) : 0)],
      { data: { iova: Number(this.#q.cqIova), length: 4096 } });
    try {
      ctrl._admin(ADMIN.CREATE_SQ, [((size - 1) << 16) | qid, (qid << 16) | 1], { data: { iova: Number(this.#q.sqIova), length: 4096 } });
    } catch (err) {
      ctrl._admin(ADMIN.DELETE_CQ, [qid]);
      throw err;
    }
  }

  #stopExpiryTimer(): void {
    if (this.#expiryTimer) clearInterval(this.#expiryTimer);
    this.#expiryTimer = null;
  }

  /** @internal The controller is resetting: reject every outstanding command. */
  _fail(err: Error): void {
    this.#q.failAll(err);
  }

  /** @internal The controller came back from a reset: the queues again, empty. */
  _recreate(): void {
    if (!this.#ctrl) return;
    this.#q.resetRing();
    this.#createQueues(this.#ctrl);
  }

  /** @internal Whether share() moved it to another thread. */
  get _moved(): boolean {
    return this.#moved;
  }

  #context(): IoContext {
    if (!this.#io) throw closedError(`NVMe queue pair ${this.qid} is closed`);
    if (this.#moved) throw busyError(`NVMe queue pair ${this.qid} was moved to another thread with share()`);
    return this.#io;
  }

  /** Check a read or write and return its length in bytes; throws before anything is submitted. */
  #checkRw(io: IoContext, nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset: number): number {
    const ns = io.byNsid.get(nsid);
    if (ns === undefined) {
      toIndex(nsid, 'nsid', 0xffffffff);
      throw new RangeError(`nsid ${nsid} is not an active namespace of this controller`);
    }
    let first: number;
    if (typeof lba === 'bigint') {
      if (lba < 0n) throw new RangeError('lba must not be negative');
      first = lba > MAX_SAFE_N ? Number.MAX_SAFE_INTEGER : Number(lba);
    } else {
      first = toIndex(lba, 'lba');
    }
    toIndex(blocks, 'blocks', 65536);
    if (blocks === 0) throw new RangeError('blocks must be at least 1');
    if (first + blocks > ns.blocks) {
      throw new RangeError(`lba ${lba} + ${blocks} blocks is past the end of namespace ${nsid} (${ns.blocks} blocks)`);
    }
    if (!DmaBuffer.isDmaBuffer(buf)) throw new TypeError(`buf must be a DmaBuffer, got ${describe(buf)}`);
    toIndex(offset, 'offset');
    if (offset % 4) throw new RangeError('offset must be a multiple of 4 (PRP entries are dword-aligned)');
    const length = blocks * ns.blockSize;
    if (offset + length > buf.size) throw new RangeError(`buf is too small: ${offset} + ${length} bytes > ${buf.size}`);
    if (length > io.maxTransfer) throw new RangeError(`${length} bytes is more than the controller's MDTS (${io.maxTransfer})`);
    return length;
  }

  #submitIo(opcode: number, nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset: number): Promise<void> {
    const io = this.#context();
    const length = this.#checkRw(io, nsid, lba, blocks, buf, offset);
    const p = this.#q.submitRw(opcode, nsid, Number(lba), blocks, io.iova(buf, offset), length);
    if (!this.#irqs) this.#schedulePoll();
    return p;
  }

  #ioSync(opcode: number, nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset: number): void {
    const io = this.#context();
    const length = this.#checkRw(io, nsid, lba, blocks, buf, offset);
    const first = Number(lba);
    this.#q.run({ opcode, nsid, data: { iova: io.iova(buf, offset), length },
      cdw: [first % 2 ** 32, Math.floor(first / 2 ** 32), blocks - 1] });
  }

  /** poll() from the event loop: a doorbell that cannot be written fails the commands, not the process. */
  #pollSafely(): void {
    try {
      this.#q.poll();
    } catch (err) {
      this.#q.abandon(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Without interrupts: poll on the event loop while commands are outstanding. */
  #schedulePoll(): void {
    if (this.#pollScheduled) return;
    this.#pollScheduled = true;
    setImmediate(() => {
      this.#pollScheduled = false;
      if (!this.#io || this.#moved) return;
      this.#pollSafely();
      if (this.#q.outstanding) this.#schedulePoll();
    });
  }

  #submitIoCallback(opcode: number, nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset: number,
    done: unknown): void {
    if (typeof done !== 'function') throw new TypeError(`callback must be a function, got ${describe(done)}`);
    const io = this.#context();
    const length = this.#checkRw(io, nsid, lba, blocks, buf, offset);
    this.#q.submitRw(opcode, nsid, Number(lba), blocks, io.iova(buf, offset), length, done as Done);
    if (!this.#irqs) this.#schedulePoll();
  }

  /**
   * Read `blocks` blocks from `lba` into `buf` at `offset`. With `callback`, no promise is made:
   * bad arguments throw, and the completion calls `callback(err | null)` from poll() (or the
   * queue's interrupt); the allocation-free form for hot loops, as SPDK's callbacks are.
   */
  read(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset?: number): Promise<void>;
  read(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset: number, callback: Done): void;
  read(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset = 0, callback?: Done): Promise<void> | void {
    if (callback !== undefined) return this.#submitIoCallback(NVM.READ, nsid, lba, blocks, buf, offset, callback);
    try {
      return this.#submitIo(NVM.READ, nsid, lba, blocks, buf, offset);
    } catch (err) {
      return rejected(err);
    }
  }

  /** Write `blocks` blocks at `lba` from `buf` at `offset`; `callback` as for read(). */
  write(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset?: number): Promise<void>;
  write(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset: number, callback: Done): void;
  write(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset = 0, callback?: Done): Promise<void> | void {
    if (callback !== undefined) return this.#submitIoCallback(NVM.WRITE, nsid, lba, blocks, buf, offset, callback);
    try {
      return this.#submitIo(NVM.WRITE, nsid, lba, blocks, buf, offset);
    } catch (err) {
      return rejected(err);
    }
  }

  /** Flush namespace `nsid`. */
  flush(nsid: number): Promise<void> {
    try {
      this.#context();
      const p = this.#q.submit({ opcode: NVM.FLUSH, nsid: toIndex(nsid, 'nsid', 0xffffffff) });
      if (!this.#irqs) this.#schedulePoll();
      return p.then(() => undefined);
    } catch (err) {
      return rejected(err);
    }
  }

  /** read(), completed by polling before it returns. */
  readSync(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset = 0): void {
    this.#ioSync(NVM.READ, nsid, lba, blocks, buf, offset);
  }

  /** write(), completed by polling before it returns. */
  writeSync(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset = 0): void {
    this.#ioSync(NVM.WRITE, nsid, lba, blocks, buf, offset);
  }

  /** Reap completions now, without waiting; returns how many (for hot polling loops). */
  poll(): number {
    this.#context();
    return this.#q.poll();
  }

  /**
   * A raw 64-byte command (`command`, as the spec lays it out): the library fills in the command
   * id and, with `data`, the PRPs for `length` bytes of `buffer` at `offset`. Resolves with
   * completion dword 0.
   */
  submit(command: Uint8Array, data?: { buffer: DmaBuffer; offset?: number; length: number }): Promise<number> {
    try {
      const io = this.#context();
      if (!(command instanceof Uint8Array) || command.length !== 64) {
        throw new TypeError(`command must be a 64-byte Uint8Array, got ${describe(command)}`);
      }
      const raw = new Uint32Array(16);
      new Uint8Array(raw.buffer).set(command);
      const cmd: Command = { opcode: raw[0] & 0xff, raw };
      if (data !== undefined) {
        if (!DmaBuffer.isDmaBuffer(data?.buffer)) throw new TypeError(`data.buffer must be a DmaBuffer, got ${describe(data?.buffer)}`);
        const offset = toIndex(data.offset ?? 0, 'data.offset');
        const length = toIndex(data.length, 'data.length');
        if (length === 0 || offset % 4) throw new RangeError('data.length must be > 0 and data.offset a multiple of 4');
        if (offset + length > data.buffer.size) throw new RangeError('data.offset + data.length is outside the buffer');
        if (length > io.maxTransfer) throw new RangeError(`${length} bytes is more than the controller's MDTS (${io.maxTransfer})`);
        cmd.data = { iova: io.iova(data.buffer, offset), length };
      }
      const p = this.#q.submit(cmd);
      if (!this.#irqs) this.#schedulePoll();
      return p;
    } catch (err) {
      return rejected(err);
    }
  }

  /**
   * Move this queue pair to another thread: post the value, then `NvmeQueuePair.fromShared()`
   * there submits and reaps (polling). `buffers` are the DmaBuffers the worker will transfer to or
   * from; they are mapped here. This side refuses I/O from now on; close() here (after the
   * worker is done) deletes the queues.
   */
  share(options?: { buffers?: DmaBuffer[] }): SharedNvmeQueuePair {
    this.#context();
    const ctrl = this.#ctrl;
    if (!ctrl) throw new TypeError('only the thread that created the queue pair can share it');
    if (this.#q.outstanding) throw busyError(`NVMe queue pair ${this.qid} has commands outstanding`);
    const buffers = options?.buffers ?? [];
    if (!Array.isArray(buffers) || !buffers.every((b) => DmaBuffer.isDmaBuffer(b))) {
      throw new TypeError('options.buffers must be an array of DmaBuffers');
    }
    const { dstrd, timeoutMs } = ctrl._context();
    const value: SharedNvmeQueuePair = Object.freeze({
      vfioNvmeQueuePair: {
        qid: this.qid, size: this.size, dstrd, timeoutMs, ring: this.#q.ring,
        queue: this.#mem.share(), queueIova: this.#q.sqIova, bar: ctrl.bar.share(),
        namespaces: ctrl.namespaces, maxTransfer: ctrl.maxTransfer,
        buffers: buffers.map((b) => ({ buffer: b.share(), iova: ctrl._iovaOf(b, 0) })),
      },
    });
    this.#moved = true;
    this.#irqs?.disable();
    this.#irqs = null;
    this.#stopExpiryTimer();
    return value;
  }

  /** The queue pair share() moved here, driven by polling in this thread. */
  static fromShared(value: SharedNvmeQueuePair): NvmeQueuePair {
    const v = (value as Partial<SharedNvmeQueuePair> | null)?.vfioNvmeQueuePair;
    if (typeof v !== 'object' || v === null || typeof v.qid !== 'number') {
      throw new TypeError(`value must be what NvmeQueuePair.share() returned, got ${describe(value)}`);
    }
    const mem = DmaBuffer.fromShared(v.queue);
    const bar = MappedRegion.fromShared(v.bar);
    const buffers = v.buffers.map((b) => ({ buffer: DmaBuffer.fromShared(b.buffer), iova: b.iova }));
    const q = new QueuePair(mem, 0, v.queueIova, bar, v.qid, v.size, v.dstrd, v.timeoutMs);
    q.ring = v.ring;
    const bases = new Map(buffers.map((b) => [b.buffer, Number(b.iova)]));
    const iova = (buf: DmaBuffer, offset: number): number => {
      const base = bases.get(buf);
      if (base === undefined) throw new RangeError('buf is not one of the buffers shared with this queue pair (qp.buffers)');
      return base + offset;
    };
    const qp = new NvmeQueuePair(null, ioContext(v.namespaces, v.maxTransfer, iova), v.qid, q, mem);
    qp.#worker = { bar, buffers: buffers.map((b) => b.buffer) };
    return qp;
  }

  /** In a worker: the buffers shared with this queue pair, in share()'s order. */
  get buffers(): DmaBuffer[] {
    return [...(this.#worker?.buffers ?? [])];
  }

  /** Commands submitted and not completed yet. */
  get outstanding(): number {
    return this.#q.outstanding;
  }

  /** Delete the queues (outstanding commands reject), release the memory and the vector. Idempotent. */
  close(): void {
    if (this.#worker) {
      // Worker side: release this thread's views; the owner deletes the queues.
      if (!this.#io) return;
      this.#io = null;
      this.#q.failAll(closedError(`NVMe queue pair ${this.qid} was closed`));
      this.#worker.bar.close();
      for (const b of this.#worker.buffers) b.free();
      this.#mem.free();
      return;
    }
    const ctrl = this.#ctrl;
    if (!ctrl) return;
    this.#ctrl = null;
    this.#io = null;
    try {
      ctrl._admin(ADMIN.DELETE_SQ, [this.qid]);
      ctrl._admin(ADMIN.DELETE_CQ, [this.qid]);
    } finally {
      this.#q.failAll(closedError(`NVMe queue pair ${this.qid} was closed`));
      this.#irqs?.disable();
      this.#stopExpiryTimer();
      const { ioas } = ctrl._context();
      ioas.unmap(this.#q.sqIova, this.#mem.size);
      this.#mem.free();
      ctrl._forget(this);
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
