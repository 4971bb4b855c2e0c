// The record of which parts of which DmaBuffers are pinned for DMA, one ledger per address space
// (an IOAS or a legacy container). Each entry pins its buffer: DmaBuffer.free() is refused while
// any ledger anywhere holds a part of it, and a ledger that is cleared (unmap, destroy, close)
// releases its pins.
import { MAX_SAFE_N } from './args';

/** What a mapping can be backed by: memory the library owns, which a mapping pins (a DmaBuffer, or a BAR's MappedRegion in a container). */
export interface Pinnable {
  _pin(): void;
  _unpin(): void;
}

/**
 * One mapping: `length` bytes at `iova`, backed by `buffer` from `offset` (null: a file). IOVAs
 * and lengths are kept as numbers while they are safe integers (nearly always): the map and unmap
 * paths then do no bigint work, which V8 does in builtins rather than inline.
 */
export interface LedgerEntry {
  readonly iova: number | bigint;
  readonly length: number | bigint;
  readonly buffer: Pinnable | null;
  readonly offset: number;
}

/** A u64 as the ledger keeps it: a number when it is a safe integer, else a bigint. */
export function u64Key(v: number | bigint): number | bigint {
  return typeof v === 'number' || v > MAX_SAFE_N ? v : Number(v);
}

/** The pinned ranges of one address space. */
export class DmaLedger {
  readonly #entries = new Map<number | bigint, LedgerEntry>();
  #generation = 0;

  /** Changes whenever a mapping goes away: an IOVA cached under one generation is valid while it lasts. */
  get generation(): number {
    return this.#generation;
  }

  /** Number of live mappings. */
  get size(): number {
    return this.#entries.size;
  }

  /** Record a mapping the kernel just made, and pin its buffer. */
  add(iova: number | bigint, length: number | bigint, buffer: Pinnable | null, offset: number): void {
    const key = u64Key(iova);
    this.#entries.set(key, { iova: key, length: u64Key(length), buffer, offset });
    buffer?._pin();
  }

  /** Forget the mapping at exactly `iova` of exactly `length` bytes; false if there is none. */
  takeExact(iova: number | bigint, length: number | bigint): boolean {
    const key = u64Key(iova);
    const e = this.#entries.get(key);
    if (e === undefined || e.length !== u64Key(length)) return false;
    this.#entries.delete(key);
    this.#generation++;
    e.buffer?._unpin();
    return true;
  }

  /** Forget every mapping that lies wholly inside [first, last] (what the kernel unmaps). */
  take(first: bigint, last: bigint): void {
    for (const [key, e] of this.#entries) {
      const iova = BigInt(e.iova);
      if (iova >= first && iova + BigInt(e.length) - 1n <= last) {
        this.#entries.delete(key);
        this.#generation++;
        e.buffer?._unpin();
      }
    }
  }

  /** Forget everything: the address space is gone, and the kernel unpinned it all. */
  clear(): void {
    for (const e of this.#entries.values()) e.buffer?._unpin();
    this.#entries.clear();
    this.#generation++;
  }

  /** The mapping that contains `iova`. */
  entryAt(iova: bigint): LedgerEntry | undefined {
    for (const e of this.#entries.values()) {
      const start = BigInt(e.iova);
      if (iova >= start && iova < start + BigInt(e.length)) return e;
    }
    return undefined;
  }

  /**
   * The lowest IOVA, aligned to `align` and above 0, where `length` bytes fit inside one of
   * `ranges` without touching a mapping here; undefined when none does. Space that unmaps free
   * is found again.
   */
  findFree(ranges: ReadonlyArray<{ start: bigint; last: bigint }>, length: bigint, align: bigint): bigint | undefined {
    const taken = [...this.#entries.values()].map((e) => ({ iova: BigInt(e.iova), length: BigInt(e.length) }))
      .sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
    const up = (v: bigint): bigint => ((v + align - 1n) / align) * align;
    for (const r of ranges) {
      let at = up(r.start > 0n ? r.start : align);
      for (const e of taken) {
        if (at + length - 1n > r.last) break;
        if (e.iova + e.length <= at) continue;
        if (e.iova > at + length - 1n) break;
        at = up(e.iova + e.length);
      }
      if (at + length - 1n <= r.last) return at;
    }
    return undefined;
  }

  /** The IOVA of byte `offset` of `buffer`, if a mapping here covers it. */
  iovaOf(buffer: Pinnable, offset: number): bigint | undefined {
    for (const e of this.#entries.values()) {
      if (e.buffer === buffer && offset >= e.offset && offset < e.offset + Number(e.length)) {
        return BigInt(e.iova) + BigInt(offset - e.offset);
      }
    }
    return undefined;
  }
}
