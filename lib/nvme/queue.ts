// One NVMe submission/completion queue pair in library-owned DMA memory: command ids, the phase
// tag, doorbells, PRPs and PRP lists. Used for the admin queue and for I/O queue pairs.
//
// The I/O path is the hot loop of a userspace driver, so it allocates nothing per command beyond
// the caller's promise: per-slot arrays instead of a map of closures, IOVAs as numbers (below
// 2^53 on every IOMMU), and command deadlines stamped lazily by a coarse expiry pass. Doorbells
// are batched as SPDK's delay_cmd_submit does: commands submitted in one turn of JS (say, by the
// continuations of the completions one poll() reaped) are announced by one SQ tail write, and
// the CQ head follows in the same flush, queued as a microtask; poll() and the synchronous calls
// flush at once, so a caller that spins without yielding never waits on an unwritten doorbell.
import type { DmaBuffer } from '../dma-buffer';
import { ETIMEDOUT, VfioError } from '../errors';
import type { MappedRegion } from '../region';
import { CQE_SIZE, NvmeError, PAGE, REG, SQE_SIZE } from './spec';

/** The fields of a command the caller sets (dwords 0 and 2-15 of the 64-byte entry). */
export interface Command {
  opcode: number;
  nsid?: number;
  /** Data to transfer: `length` bytes at IOVA `iova` (PRPs are built for it). */
  data?: { iova: number; length: number };
  /** Command dwords 10-15. */
  cdw?: [number?, number?, number?, number?, number?, number?];
  /** A whole raw command (16 dwords): its command id, and PRPs when `data` is given, are filled in. */
  raw?: Uint32Array;
}

/** Where a queue pair's ring positions are (to move it to another thread). */
export interface RingState {
  tail: number;
  head: number;
  phase: number;
}

type Resolve = (dw0: number | undefined) => void;
type Reject = (err: Error) => void;
/** Completion callback of the callback-style calls: null on success. */
export type Done = (err: Error | null) => void;

/** Marks a slot whose #reject holds a Done callback instead of a promise's functions. */
const CALLBACK: Resolve = () => undefined;

/**
 * Call a completion callback. An exception it throws is the caller's bug and must not break the
 * queue's bookkeeping half way: it is rethrown on its own, as an event listener's would be.
 */
function settle(fn: Reject | Done, err: Error | null): void {
  try {
    (fn as Done)(err);
  } catch (e) {
    process.nextTick(() => {
      throw e;
    });
  }
}

/** The memory a queue pair needs: SQ, CQ and one PRP-list page per command slot. */
export function queueBytes(size: number): number {
  const round = (n: number): number => Math.ceil(n / PAGE) * PAGE;
  return round(size * SQE_SIZE) + round(size * CQE_SIZE) + size * PAGE;
}

const TWO32 = 2 ** 32;
/** How many poll() calls between two looks at the clock for expired commands. */
const POLLS_PER_CLOCK_CHECK = 64;

/** A queue pair; `mem` holds it at `offset` (layout of queueBytes), mapped at `iova`. */
export class QueuePair {
  readonly qid: number;
  readonly size: number;
  readonly sqIova: bigint;
  readonly cqIova: bigint;
  #mem: DmaBuffer;
  #sq: Uint32Array;
  #cq: Int32Array;
  #prp: Uint32Array;
  #prpIova: number;
  #bar: MappedRegion;
  #sqDoorbell: number;
  #cqDoorbell: number;
  #tail = 0;
  #head = 0;
  #phase = 1;
  /** Free command ids (slot numbers: one PRP-list page each). */
  #free: number[] = [];
  /** Per slot: the pending command's callbacks (null: free or expired), opcode, deadline. */
  #resolve: Array<Resolve | null>;
  #reject: Array<Reject | null>;
  /** Per slot: resolve with dword 0 (raw and admin commands) or with nothing (I/O). */
  #wantsDw0: Uint8Array;
  #opcode: Uint8Array;
  /** Per slot: when the command expires (ms since the epoch); 0 until an expiry pass stamps it. */
  #deadline: Float64Array;
  /** Per slot: timed out, so the slot stays taken until the controller completes it. */
  #expired: Uint8Array;
  #outstanding = 0;
  #timeoutMs: number;
  #pollsToClockCheck = POLLS_PER_CLOCK_CHECK;
  #nextExpiryPass = 0;
  /** Entries submitted, completions reaped, whose doorbells are not written yet; a flush queued. */
  #sqDirty = false;
  #cqDirty = false;
  #flushQueued = false;
  /** The SQ tail the controller was last told (entries past it were never seen by it). */
  #announcedTail = 0;
  readonly #flushLater = (): void => {
    this.#flushQueued = false;
    try {
      this.flush();
    } catch (err) {
      this.abandon(err instanceof Error ? err : new Error(String(err)));
    }
  };

  constructor(mem: DmaBuffer, offset: number, iova: bigint, bar: MappedRegion, qid: number, size: number,
    dstrd: number, timeoutMs: number) {
    const round = (n: number): number => Math.ceil(n / PAGE) * PAGE;
    if (iova + BigInt(mem.size) > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('queue memory must be mapped below 2^53');
    this.qid = qid;
    this.size = size;
    this.#mem = mem;
    this.#bar = bar;
    this.#timeoutMs = timeoutMs;
    const cqOff = offset + round(size * SQE_SIZE);
    const prpOff = cqOff + round(size * CQE_SIZE);
    this.sqIova = iova;
    this.cqIova = iova + BigInt(cqOff - offset);
    this.#prpIova = Number(iova) + (prpOff - offset);
    this.#sq = new Uint32Array(mem.buffer, offset, (size * SQE_SIZE) / 4);
    this.#cq = new Int32Array(mem.buffer, cqOff, (size * CQE_SIZE) / 4);
    this.#prp = new Uint32Array(mem.buffer, prpOff, (size * PAGE) / 4);
    const stride = 4 << dstrd;
    this.#sqDoorbell = REG.DOORBELLS + 2 * qid * stride;
    this.#cqDoorbell = this.#sqDoorbell + stride;
    this.#resolve = new Array<Resolve | null>(size).fill(null);
    this.#reject = new Array<Reject | null>(size).fill(null);
    this.#wantsDw0 = new Uint8Array(size);
    this.#opcode = new Uint8Array(size);
    this.#deadline = new Float64Array(size);
    this.#expired = new Uint8Array(size);
    this.#freeAll();
  }

  #freeAll(): void {
    this.#free = Array.from({ length: this.size - 1 }, (_, i) => this.size - 2 - i);
  }

  /** Commands submitted and not completed yet. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** Submit a command; the promise settles when poll() reaps its completion (dword 0). */
  submit(cmd: Command): Promise<number> {
    const cid = this.#takeAndWrite(cmd);
    return this.#pend(cid, cmd.opcode, true) as Promise<number>;
  }

  /**
   * The I/O hot path: a read or write of `length` bytes at IOVA `iova`, `blocks` blocks from LBA
   * `lba` (a number below 2^53), without a Command object. Resolves with nothing.
   */
  submitRw(opcode: number, nsid: number, lba: number, blocks: number, iova: number, length: number): Promise<void>;
  /** The same with a completion callback instead of a promise (no allocation at all). */
  submitRw(opcode: number, nsid: number, lba: number, blocks: number, iova: number, length: number, done: Done): void;
  submitRw(opcode: number, nsid: number, lba: number, blocks: number, iova: number, length: number,
    done?: Done): Promise<void> | void {
    const cid = this.#take();
    const sq = this.#sq;
    const at = this.#tail * (SQE_SIZE / 4);
    try {
      this.#prps(cid, iova, length, at);
    } catch (err) {
      this.#free.push(cid);
      throw err;
    }
    sq[at] = opcode | (cid << 16);
    sq[at + 1] = nsid;
    sq[at + 2] = 0;
    sq[at + 3] = 0;
    sq[at + 4] = 0;
    sq[at + 5] = 0;
    sq[at + 10] = lba % TWO32;
    sq[at + 11] = Math.floor(lba / TWO32);
    sq[at + 12] = blocks - 1;
    sq[at + 13] = 0;
    sq[at + 14] = 0;
    sq[at + 15] = 0;
    this.#tail = this.#tail + 1 === this.size ? 0 : this.#tail + 1;
    if (done === undefined) return this.#pend(cid, opcode, false) as Promise<void>;
    this.#resolve[cid] = CALLBACK;
    this.#reject[cid] = done;
    this.#started(cid, opcode);
  }

  /** Submit and spin on poll() until that command completes (admin commands, *Sync calls). */
  run(cmd: Command): number {
    const cid = this.#takeAndWrite(cmd);
    let out: { err: Error | null; dw0: number } | null = null;
    this.#resolve[cid] = (dw0) => {
      out = { err: null, dw0: dw0 ?? 0 };
    };
    this.#reject[cid] = (err) => {
      out = { err, dw0: 0 };
    };
    this.#wantsDw0[cid] = 1;
    this.#started(cid, cmd.opcode);
    // Spinning without returning to the event loop: doorbells are written at once.
    try {
      this.flush();
    } catch (err) {
      this.abandon(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
    while (out === null) this.#poll(true);
    const { err, dw0 } = out as { err: Error | null; dw0: number };
    if (err) throw err;
    return dw0;
  }

  /** A free slot with `cmd` written at the tail (the slot is freed again if writing fails). */
  #takeAndWrite(cmd: Command): number {
    const cid = this.#take();
    try {
      this.#write(cid, cmd);
    } catch (err) {
      this.#free.push(cid);
      throw err;
    }
    return cid;
  }

  #take(): number {
    const cid = this.#free.pop();
    if (cid === undefined) throw new RangeError(`queue ${this.qid} is full (${this.size - 1} outstanding)`);
    return cid;
  }

  #pend(cid: number, opcode: number, wantsDw0: boolean): Promise<number | undefined> {
    const p = new Promise<number | undefined>((resolve, reject) => {
      this.#resolve[cid] = resolve;
      this.#reject[cid] = reject;
    });
    this.#wantsDw0[cid] = wantsDw0 ? 1 : 0;
    this.#started(cid, opcode);
    return p;
  }

  /** The command in slot `cid` is in the SQ: count it; its doorbell goes with the next flush. */
  #started(cid: number, opcode: number): void {
    this.#opcode[cid] = opcode;
    this.#deadline[cid] = 0;
    this.#outstanding++;
    this.#sqDirty = true;
    this.#queueFlush();
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(this.#flushLater);
  }

  /** Write the doorbells that are due now: the SQ tail, then the CQ head. */
  flush(): void {
    // Native stores after the barrier Linux's writel uses: the entries are visible first.
    if (this.#sqDirty) {
      this.#bar.write32(this.#sqDoorbell, this.#tail);
      this.#sqDirty = false;
      this.#announcedTail = this.#tail;
    }
    if (this.#cqDirty) {
      this.#bar.write32(this.#cqDoorbell, this.#head);
      this.#cqDirty = false;
    }
  }

  /**
   * A doorbell could not be written (the BAR was closed, or the device's memory turned off):
   * drop the entries the controller was never told of, so no later doorbell can start them, and
   * reject every outstanding command with `err`. Commands the controller did see keep their slot
   * until they complete.
   */
  abandon(err: Error): void {
    const unannounced = new Set<number>();
    for (let pos = this.#announcedTail; pos !== this.#tail; pos = (pos + 1) % this.size) {
      unannounced.add(this.#sq[pos * (SQE_SIZE / 4)] >>> 16);
    }
    this.#tail = this.#announcedTail;
    this.#sqDirty = false;
    this.#failEach(err, (cid) => {
      if (unannounced.has(cid)) this.#free.push(cid);
      else this.#expired[cid] = 1;
    });
  }

  #write(cid: number, cmd: Command): void {
    const sq = this.#sq;
    const at = this.#tail * (SQE_SIZE / 4);
    if (cmd.raw) {
      sq.set(cmd.raw, at);
      sq[at] = (cmd.raw[0] & 0xffff) | (cid << 16);
    } else {
      sq.fill(0, at, at + SQE_SIZE / 4);
      sq[at] = (cmd.opcode & 0xff) | (cid << 16);
      sq[at + 1] = cmd.nsid ?? 0;
      const cdw = cmd.cdw ?? [];
      for (let i = 0; i < 6; i++) sq[at + 10 + i] = (cdw[i] ?? 0) >>> 0;
    }
    if (cmd.data) this.#prps(cid, cmd.data.iova, cmd.data.length, at);
    this.#tail = (this.#tail + 1) % this.size;
  }

  /** PRP1 and PRP2 into the entry at `at` for `length` bytes at `iova`: PRP2 is the second page or a PRP list. */
  #prps(cid: number, iova: number, length: number, at: number): void {
    const sq = this.#sq;
    const first = PAGE - (iova % PAGE);
    let prp2 = 0;
    if (length > first) {
      const next = iova + first;
      const rest = Math.ceil((length - first) / PAGE);
      if (rest === 1) {
        prp2 = next;
      } else {
        if (rest > PAGE / 8) throw new RangeError(`a transfer of ${length} bytes needs more than one PRP list page`);
        const base = cid * (PAGE / 4);
        for (let i = 0; i < rest; i++) {
          const e = next + i * PAGE;
          this.#prp[base + 2 * i] = e % TWO32;
          this.#prp[base + 2 * i + 1] = Math.floor(e / TWO32);
        }
        prp2 = this.#prpIova + cid * PAGE;
      }
    }
    sq[at + 6] = iova % TWO32;
    sq[at + 7] = Math.floor(iova / TWO32);
    sq[at + 8] = prp2 % TWO32;
    sq[at + 9] = Math.floor(prp2 / TWO32);
  }

  /** Reap every completion there is; returns how many. Expired commands reject with ETIMEDOUT. */
  poll(): number {
    return this.#poll(false);
  }

  #poll(sync: boolean): number {
    // A command submitted in this same turn would otherwise wait for the flush: announce it now.
    if (this.#sqDirty) this.flush();
    let n = 0;
    const cq = this.#cq;
    for (;;) {
      const at = this.#head * (CQE_SIZE / 4);
      const dw3 = Atomics.load(cq, at + 3);
      if (((dw3 >>> 16) & 1) !== this.#phase) break;
      const cid = dw3 & 0xffff;
      const status = dw3 >>> 17;
      const dw0 = cq[at] >>> 0;
      if (++this.#head === this.size) {
        this.#head = 0;
        this.#phase ^= 1;
      }
      n++;
      if (cid >= this.size) continue;
      const resolve = this.#resolve[cid];
      const reject = this.#reject[cid];
      if (resolve === null || reject === null) {
        // A late completion of a command that timed out: its slot is free again.
        if (this.#expired[cid]) {
          this.#expired[cid] = 0;
          this.#free.push(cid);
        }
        continue;
      }
      this.#resolve[cid] = null;
      this.#reject[cid] = null;
      this.#outstanding--;
      this.#free.push(cid);
      if (resolve === CALLBACK) settle(reject, status === 0 ? null : new NvmeError(status, this.#opcode[cid], this.qid));
      else if (status === 0) resolve(this.#wantsDw0[cid] ? dw0 : undefined);
      else reject(new NvmeError(status, this.#opcode[cid], this.qid));
    }
    if (n) {
      this.#cqDirty = true;
      // After the continuations of what was just resolved, which may submit the next commands.
      if (sync) this.flush();
      else this.#queueFlush();
    } else if (this.#cqDirty) {
      this.flush();
    }
    if (this.#outstanding && --this.#pollsToClockCheck <= 0) this.expire();
    return n;
  }

  /**
   * The expiry pass: stamp the deadline of commands seen for the first time, reject those past it
   * with ETIMEDOUT. poll() runs it every few dozen calls once its interval has passed; a queue
   * completed by interrupts also runs it from a timer.
   */
  expire(): void {
    this.#pollsToClockCheck = POLLS_PER_CLOCK_CHECK;
    if (!this.#outstanding) return;
    const now = Date.now();
    if (now < this.#nextExpiryPass) return;
    this.#nextExpiryPass = now + Math.max(1, Math.min(this.#timeoutMs / 8, 100));
    let expired = false;
    for (let cid = 0; cid < this.size; cid++) {
      const reject = this.#reject[cid];
      if (reject === null) continue;
      if (this.#deadline[cid] === 0) {
        this.#deadline[cid] = now + this.#timeoutMs;
        continue;
      }
      if (this.#deadline[cid] > now) continue;
      // The slot stays taken until the controller completes it (reaped and ignored then).
      this.#resolve[cid] = null;
      this.#reject[cid] = null;
      this.#expired[cid] = 1;
      this.#outstanding--;
      expired = true;
      const opcode = this.#opcode[cid];
      settle(reject, new VfioError({ errno: ETIMEDOUT, syscall: 'poll', code: 'ETIMEDOUT',
        message: `ETIMEDOUT: NVMe command 0x${opcode.toString(16)} on queue ${this.qid} did not complete within ${this.#timeoutMs} ms` }));
    }
    if (expired) this.onTimeout?.();
  }

  /** Called once per expiry pass that timed a command out (the owner then resets the controller). */
  onTimeout: (() => void) | null = null;

  /** Start over after a controller reset: empty rings, every command id free. */
  resetRing(): void {
    this.#tail = 0;
    this.#announcedTail = 0;
    this.#head = 0;
    this.#phase = 1;
    this.#cq.fill(0);
    this.#expired.fill(0);
    this.#sqDirty = false;
    this.#cqDirty = false;
    this.#freeAll();
  }

  /** The ring positions, to continue the queue pair elsewhere (nothing may be outstanding); flushes the doorbells first. */
  get ring(): RingState {
    this.flush();
    return { tail: this.#tail, head: this.#head, phase: this.#phase };
  }

  /** Continue from ring positions taken in another thread. */
  set ring(r: RingState) {
    this.#tail = r.tail;
    this.#announcedTail = r.tail;
    this.#head = r.head;
    this.#phase = r.phase;
  }

  /** Reject every outstanding command (the controller is being reset or the queue deleted). */
  failAll(err: Error): void {
    this.#failEach(err);
  }

  /** Take every outstanding command off its slot (`slot(cid)` says what becomes of the slot), then reject them all. */
  #failEach(err: Error, slot?: (cid: number) => void): void {
    const rejects: Reject[] = [];
    for (let cid = 0; cid < this.size; cid++) {
      const reject = this.#reject[cid];
      if (reject === null) continue;
      this.#resolve[cid] = null;
      this.#reject[cid] = null;
      slot?.(cid);
      rejects.push(reject);
    }
    this.#outstanding = 0;
    for (const reject of rejects) settle(reject, err);
  }

  get memory(): DmaBuffer {
    return this.#mem;
  }
}
