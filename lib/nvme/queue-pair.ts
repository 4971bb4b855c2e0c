// NvmeQueuePair: an I/O submission/completion queue pair with promise, polled and synchronous
// reads and writes; completions by its own MSI-X vector or by polling.
import { describe, toIndex } from '../args';
import { DmaBuffer } from '../dma-buffer';
import { closedError } from '../errors';
import type { Interrupts } from '../interrupts';
import type { NvmeController } from './controller';
import { QueuePair, queueBytes, type Command } from './queue';
import { ADMIN, NVM } from './spec';

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
  #ctrl: NvmeController | null;
  #q: QueuePair;
  #mem: DmaBuffer;
  #irqs: Interrupts | null = null;
  #pollScheduled = false;

  private constructor(ctrl: NvmeController, qid: number, q: QueuePair, mem: DmaBuffer) {
    this.#ctrl = ctrl;
    this.qid = qid;
    this.size = q.size;
    this.#q = q;
    this.#mem = mem;
  }

  /** @internal Use `controller.createQueuePair()`. */
  static _create(ctrl: NvmeController, qid: number, opts: QueuePairOptions): NvmeQueuePair {
    const size = toIndex(opts.size ?? 64, 'options.size', ctrl.maxQueueEntries);
    if (size < 2) throw new RangeError('options.size must be at least 2');
    const interrupts = opts.interrupts !== false;
    const { ioas, dstrd, timeoutMs } = ctrl._context();
    const mem = DmaBuffer.alloc(queueBytes(size));
    let iova: bigint | null = null;
    let cqCreated = false;
    try {
      iova = ioas.map(mem);
      const q = new QueuePair(mem, 0, iova, ctrl.bar, qid, size, dstrd, timeoutMs);
      const qp = new NvmeQueuePair(ctrl, qid, q, mem);
      if (interrupts) {
        qp.#irqs = ctrl.device.enableIrq('msix', { start: qid, count: 1 });
        qp.#irqs.on('interrupt', () => qp.#q.poll());
      }
      ctrl._admin(ADMIN.CREATE_CQ, [((size - 1) << 16) | qid, 1 | (interrupts ? 2 | (qid << 16) : 0)],
        { data: { iova: q.cqIova, length: 4096 } });
      cqCreated = true;
      ctrl._admin(ADMIN.CREATE_SQ, [((size - 1) << 16) | qid, (qid << 16) | 1], { data: { iova: q.sqIova, length: 4096 } });
      return qp;
    } catch (err) {
      if (cqCreated) ctrl._admin(ADMIN.DELETE_CQ, [qid]);
      if (iova !== null) ioas.unmap(iova, mem.size);
      mem.free();
      throw err;
    }
  }

  #controller(): NvmeController {
    if (!this.#ctrl) throw closedError(`NVMe queue pair ${this.qid} is closed`);
    return this.#ctrl;
  }

  /** The command for `blocks` blocks at `lba` of namespace `nsid`, to or from `buf` at `offset`. */
  #rw(opcode: number, nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset: number): Command {
    const ctrl = this.#controller();
    toIndex(nsid, 'nsid', 0xffffffff);
    const ns = ctrl.namespaces.find((n) => n.nsid === nsid);
    if (!ns) throw new RangeError(`nsid ${nsid} is not an active namespace of this controller`);
    const first = typeof lba === 'bigint' ? lba : BigInt(toIndex(lba, 'lba'));
    if (first < 0n) throw new RangeError('lba must not be negative');
    toIndex(blocks, 'blocks', 65536);
    if (blocks === 0) throw new RangeError('blocks must be at least 1');
    if (first + BigInt(blocks) > ns.blockCount) {
      throw new RangeError(`lba ${first} + ${blocks} blocks is past the end of namespace ${nsid} (${ns.blockCount} blocks)`);
    }
    if (!DmaBuffer.isDmaBuffer(buf)) throw new TypeError(`buf must be a DmaBuffer, got ${describe(buf)}`);
    toIndex(offset, 'offset');
    if (offset % 4) throw new RangeError('offset must be a multiple of 4 (PRP entries are dword-aligned)');
    const length = blocks * ns.blockSize;
    if (offset + length > buf.size) throw new RangeError(`buf is too small: ${offset} + ${length} bytes > ${buf.size}`);
    if (length > ctrl.maxTransfer) throw new RangeError(`${length} bytes is more than the controller's MDTS (${ctrl.maxTransfer})`);
    const iova = ctrl._iovaOf(buf, offset);
    return {
      opcode, nsid, data: { iova, length },
      cdw: [Number(first & 0xffffffffn), Number(first >> 32n), blocks - 1],
    };
  }

  #async(cmd: Command): Promise<void> {
    const p = this.#q.submit(cmd);
    if (!this.#irqs) this.#schedulePoll();
    return p.then(() => undefined);
  }

  /** Without interrupts: poll on the event loop while commands are outstanding. */
  #schedulePoll(): void {
    if (this.#pollScheduled) return;
    this.#pollScheduled = true;
    setImmediate(() => {
      this.#pollScheduled = false;
      if (!this.#ctrl) return;
      this.#q.poll();
      if (this.#q.outstanding) this.#schedulePoll();
    });
  }

  /** Read `blocks` blocks from `lba` into `buf` at `offset`. */
  read(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset = 0): Promise<void> {
    try {
      return this.#async(this.#rw(NVM.READ, nsid, lba, blocks, buf, offset));
    } catch (err) {
      return rejected(err);
    }
  }

  /** Write `blocks` blocks at `lba` from `buf` at `offset`. */
  write(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset = 0): Promise<void> {
    try {
      return this.#async(this.#rw(NVM.WRITE, nsid, lba, blocks, buf, offset));
    } catch (err) {
      return rejected(err);
    }
  }

  /** Flush namespace `nsid`. */
  flush(nsid: number): Promise<void> {
    try {
      this.#controller();
      return this.#async({ opcode: NVM.FLUSH, nsid: toIndex(nsid, 'nsid', 0xffffffff) });
    } catch (err) {
      return rejected(err);
    }
  }

  /** read(), completed by polling before it returns. */
  readSync(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset = 0): void {
    this.#q.run(this.#rw(NVM.READ, nsid, lba, blocks, buf, offset));
  }

  /** write(), completed by polling before it returns. */
  writeSync(nsid: number, lba: bigint | number, blocks: number, buf: DmaBuffer, offset = 0): void {
    this.#q.run(this.#rw(NVM.WRITE, nsid, lba, blocks, buf, offset));
  }

  /** Reap completions now, without waiting; returns how many (for hot polling loops). */
  poll(): number {
    this.#controller();
    return this.#q.poll();
  }

  /** Commands submitted and not completed yet. */
  get outstanding(): number {
    return this.#q.outstanding;
  }

  /** Delete the queues (outstanding commands reject), release the memory and the vector. Idempotent. */
  close(): void {
    const ctrl = this.#ctrl;
    if (!ctrl) return;
    this.#ctrl = null;
    try {
      ctrl._admin(ADMIN.DELETE_SQ, [this.qid]);
      ctrl._admin(ADMIN.DELETE_CQ, [this.qid]);
    } finally {
      this.#q.failAll(closedError(`NVMe queue pair ${this.qid} was closed`));
      this.#irqs?.disable();
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
