// Ownership of interrupt vectors: which Interrupts set of a device owns which vectors.
import { describe, toIndex } from './args';
import { flags as C } from './constants';
import type { Interrupts } from './interrupts';
import { native, type NativeHandle } from './native';

/** Interrupt index names accepted by `device.enableIrq`. */
export type IrqIndexName = 'intx' | 'msi' | 'msix' | 'err' | 'req';

const IRQ_NAMES: Record<IrqIndexName, number> = { intx: 0, msi: 1, msix: 2, err: 3, req: 4 };

/** The VFIO IRQ index of a name or number. */
export function irqIndex(index: unknown): number {
  if (typeof index !== 'string') return toIndex(index, 'index', 0xffffffff);
  const idx = IRQ_NAMES[index as IrqIndexName];
  if (idx === undefined) throw new TypeError(`index must be a number or one of intx, msi, msix, err, req; got ${describe(index)}`);
  return idx;
}

/**
 * Which Interrupts set owns which vectors of each IRQ index of one device: every vector has at
 * most one owner. Also how many vectors the kernel enabled on each index that is on.
 */
export class IrqOwners {
  readonly #sets = new Map<number, Interrupts[]>();
  readonly #enabled = new Map<number, number>();

  /** The live sets of `index`. */
  of(index: number): Interrupts[] {
    return this.#sets.get(index) ?? [];
  }

  /** The set that owns any of vectors start..start+count-1 of `index`. */
  clash(index: number, start: number, count: number): Interrupts | undefined {
    return this.of(index).find((o) => start < o.start + o.count && o.start < start + count);
  }

  /** How many vectors of `index` the kernel has enabled (0 when it is off). */
  enabled(index: number): number {
    return this.#enabled.get(index) ?? 0;
  }

  add(irqs: Interrupts): void {
    this.#sets.set(irqs.index, [...this.of(irqs.index), irqs]);
    this.#enabled.set(irqs.index, Math.max(this.enabled(irqs.index), irqs.start + irqs.count));
  }

  remove(irqs: Interrupts): void {
    const rest = this.of(irqs.index).filter((o) => o !== irqs);
    if (rest.length) {
      this.#sets.set(irqs.index, rest);
    } else {
      this.#sets.delete(irqs.index);
      this.#enabled.delete(irqs.index);
    }
  }

  /**
   * Switch `index` off and on again with every owner's eventfds plus `fds` from `start`, for a
   * kernel that cannot add vectors to a live index (no dynamic MSI-X), as QEMU does. Interrupts
   * raised in between are lost.
   */
  reenable(device: NativeHandle, index: number, start: number, fds: Int32Array): void {
    const all = new Int32Array(Math.max(start + fds.length, this.enabled(index))).fill(-1);
    for (const o of this.of(index)) for (let v = o.start; v < o.start + o.count; v++) all[v] = o._fdOf(v);
    all.set(fds, start);
    native.deviceSetIrqs(device, C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 0, null);
    native.deviceSetIrqs(device, C.VFIO_IRQ_SET_DATA_EVENTFD | C.VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, all.length, all);
  }

  /** Whether sets other than `irqs` own vectors of its index. */
  shared(irqs: Interrupts): boolean {
    return this.of(irqs.index).some((o) => o !== irqs);
  }
}
