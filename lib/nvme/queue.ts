// One NVMe submission/completion queue pair in library-owned DMA memory: command ids, the phase
// tag, doorbells, PRPs and PRP lists. Used for the admin queue and for I/O queue pairs.
import type { DmaBuffer } from '../dma-buffer';
import { ETIMEDOUT, VfioError } from '../errors';
import type { MappedRegion } from '../region';
import { CQE_SIZE, NvmeError, PAGE, REG, SQE_SIZE } from './spec';

/** The fields of a command the caller sets (dwords 0 and 2-15 of the 64-byte entry). */
export interface Command {
  opcode: number;
  nsid?: number;
  /** Data to transfer: `length` bytes at IOVA `iova` (PRPs are built for it). */
  data?: { iova: bigint; length: number };
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

interface Pending {
  opcode: number;
  deadline: number;
  /** Called from poll() (or the expiry) with the completion: synchronously, so run() can spin. */
  done(err: Error | null, dw0: number): void;
}

/** The memory a queue pair needs: SQ, CQ and one PRP-list page per command slot. */
export function queueBytes(size: number): number {
  const round = (n: number): number => Math.ceil(n / PAGE) * PAGE;
  return round(size * SQE_SIZE) + round(size * CQE_SIZE) + size * PAGE;
}

/** A queue pair; `mem` holds it at `offset` (layout of queueBytes), mapped at `iova`. */
export class QueuePair {
  readonly qid: number;
  readonly size: number;
  readonly sqIova: bigint;
  readonly cqIova: bigint;
  #mem: DmaBuffer;
  #sq: Uint32Array;
  #cq: Int32Array;
  #prp: BigUint64Array;
  #prpIova: bigint;
  #bar: MappedRegion;
  #sqDoorbell: number;
  #cqDoorbell: number;
  #tail = 0;
  #head = 0;
  #phase = 1;
  #free: number[];
  #pending = new Map<number, Pending>();
  #expired = new Set<number>();
  #timeoutMs: number;

  constructor(mem: DmaBuffer, offset: number, iova: bigint, bar: MappedRegion, qid: number, size: number,
    dstrd: number, timeoutMs: number) {
    const round = (n: number): number => Math.ceil(n / PAGE) * PAGE;
    this.qid = qid;
    this.size = size;
    this.#mem = mem;
    this.#bar = bar;
    this.#timeoutMs = timeoutMs;
    const cqOff = offset + round(size * SQE_SIZE);
    const prpOff = cqOff + round(size * CQE_SIZE);
    this.sqIova = iova;
    this.cqIova = iova + BigInt(cqOff - offset);
    this.#prpIova = iova + BigInt(prpOff - offset);
    this.#sq = new Uint32Array(mem.buffer, offset, (size * SQE_SIZE) / 4);
    this.#cq = new Int32Array(mem.buffer, cqOff, (size * CQE_SIZE) / 4);
    this.#prp = new BigUint64Array(mem.buffer, prpOff, (size * PAGE) / 8);
    const stride = 4 << dstrd;
    this.#sqDoorbell = REG.DOORBELLS + 2 * qid * stride;
    this.#cqDoorbell = this.#sqDoorbell + stride;
    // Command ids are slot numbers: one PRP-list page each.
    this.#free = Array.from({ length: size - 1 }, (_, i) => size - 2 - i);
  }

  /** Commands submitted and not completed yet. */
  get outstanding(): number {
    return this.#pending.size;
  }

  /** Submit a command; the promise settles when poll() reaps its completion (dword 0). */
  submit(cmd: Command): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#enqueue(cmd, (err, dw0) => (err ? reject(err) : resolve(dw0)));
    });
  }

  /** Submit and spin on poll() until that command completes (admin commands, *Sync calls). */
  run(cmd: Command): number {
    let out: { err: Error | null; dw0: number } | null = null;
    this.#enqueue(cmd, (err, dw0) => {
      out = { err, dw0 };
    });
    while (out === null) this.poll();
    const { err, dw0 } = out as { err: Error | null; dw0: number };
    if (err) throw err;
    return dw0;
  }

  #enqueue(cmd: Command, done: Pending['done']): void {
    const cid = this.#free.pop();
    if (cid === undefined) throw new RangeError(`queue ${this.qid} is full (${this.size - 1} outstanding)`);
    try {
      this.#write(cid, cmd);
    } catch (err) {
      this.#free.push(cid);
      throw err;
    }
    this.#pending.set(cid, { opcode: cmd.opcode, deadline: Date.now() + this.#timeoutMs, done });
    this.#ring();
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
    }
    if (cmd.data) {
      const [prp1, prp2] = this.#prps(cid, cmd.data.iova, cmd.data.length);
      sq[at + 6] = Number(prp1 & 0xffffffffn);
      sq[at + 7] = Number(prp1 >> 32n);
      sq[at + 8] = Number(prp2 & 0xffffffffn);
      sq[at + 9] = Number(prp2 >> 32n);
    }
    if (!cmd.raw) {
      const cdw = cmd.cdw ?? [];
      for (let i = 0; i < 6; i++) sq[at + 10 + i] = (cdw[i] ?? 0) >>> 0;
    }
    this.#tail = (this.#tail + 1) % this.size;
  }

  #ring(): void {
    // The doorbell is a native store after the barrier Linux's writel uses: the entry is visible first.
    this.#bar.write32(this.#sqDoorbell, this.#tail);
  }

  /** PRP1 and PRP2 for `length` bytes at `iova`: PRP2 is the second page or a PRP list. */
  #prps(cid: number, iova: bigint, length: number): [bigint, bigint] {
    const first = PAGE - Number(iova % BigInt(PAGE));
    if (length <= first) return [iova, 0n];
    const next = iova + BigInt(first);
    const rest = Math.ceil((length - first) / PAGE);
    if (rest === 1) return [iova, next];
    if (rest > PAGE / 8) throw new RangeError(`a transfer of ${length} bytes needs more than one PRP list page`);
    const base = cid * (PAGE / 8);
    for (let i = 0; i < rest; i++) this.#prp[base + i] = next + BigInt(i * PAGE);
    return [iova, this.#prpIova + BigInt(cid * PAGE)];
  }

  /** Reap every completion there is; returns how many. Expired commands reject with ETIMEDOUT. */
  poll(): number {
    let n = 0;
    for (;;) {
      const at = this.#head * (CQE_SIZE / 4);
      const dw3 = Atomics.load(this.#cq, at + 3);
      if (((dw3 >>> 16) & 1) !== this.#phase) break;
      const cid = dw3 & 0xffff;
      const status = dw3 >>> 17;
      const dw0 = this.#cq[at] >>> 0;
      this.#head = (this.#head + 1) % this.size;
      if (this.#head === 0) this.#phase ^= 1;
      n++;
      const p = this.#pending.get(cid);
      if (!p) {
        // A late completion of a command that timed out: its slot is free again.
        if (this.#expired.delete(cid)) this.#free.push(cid);
        continue;
      }
      this.#pending.delete(cid);
      this.#free.push(cid);
      p.done(status === 0 ? null : new NvmeError(status, p.opcode, this.qid), dw0);
    }
    if (n) this.#bar.write32(this.#cqDoorbell, this.#head);
    if (this.#pending.size) this.#expire();
    return n;
  }

  #expire(): void {
    const now = Date.now();
    let expired = false;
    for (const [cid, p] of this.#pending) {
      if (p.deadline > now) continue;
      // The slot stays taken until the controller completes it (reaped and ignored then).
      this.#pending.delete(cid);
      this.#expired.add(cid);
      expired = true;
      p.done(new VfioError({ errno: ETIMEDOUT, syscall: 'poll', code: 'ETIMEDOUT',
        message: `ETIMEDOUT: NVMe command 0x${p.opcode.toString(16)} on queue ${this.qid} did not complete within ${this.#timeoutMs} ms` }), 0);
    }
    if (expired) this.onTimeout?.();
  }

  /** Called once per command that times out (the owner then resets the controller). */
  onTimeout: (() => void) | null = null;

  /** Start over after a controller reset: empty rings, every command id free. */
  resetRing(): void {
    this.#tail = 0;
    this.#head = 0;
    this.#phase = 1;
    this.#cq.fill(0);
    this.#expired.clear();
    this.#free = Array.from({ length: this.size - 1 }, (_, i) => this.size - 2 - i);
  }

  /** The ring positions, to continue the queue pair elsewhere (nothing may be outstanding). */
  get ring(): RingState {
    return { tail: this.#tail, head: this.#head, phase: this.#phase };
  }

  /** Continue from ring positions taken in another thread. */
  set ring(r: RingState) {
    this.#tail = r.tail;
    this.#head = r.head;
    this.#phase = r.phase;
  }

  /** Reject every outstanding command (the controller is being reset or the queue deleted). */
  failAll(err: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.done(err, 0);
  }

  get memory(): DmaBuffer {
    return this.#mem;
  }
}
