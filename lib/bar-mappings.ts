// A device's BAR mappings and the state of its memory (on, or off and why).
import { flags as C } from './constants';
import type { MappedRegion } from './region';

/**
 * A device's BAR mappings, held weakly (one that user code drops is collected and unmapped by its
 * finalizer), and why the device's memory is off when the library itself turned it off.
 */
export class BarMappings {
  readonly #maps = new Set<WeakRef<MappedRegion>>();
  /** key ('command', 'd3', 'lowPower') -> why. */
  readonly #off = new Map<string, string>();

  /** Why the memory is off, or null. */
  get reason(): string | null {
    return this.#off.size ? [...this.#off.values()].join('; ') : null;
  }

  add(map: MappedRegion): void {
    this.#live();
    this.#maps.add(new WeakRef(map));
    const why = this.reason;
    if (why) map._suspend(why);
  }

  forget(map: MappedRegion): void {
    for (const ref of this.#maps) if (ref.deref() === map || ref.deref() === undefined) this.#maps.delete(ref);
  }

  /** The memory goes off for `key`: suspend every mapping. False if it already was, for that key. */
  off(key: string, reason: string): boolean {
    if (this.#off.has(key)) return false;
    this.#off.set(key, reason);
    for (const map of this.#live()) map._suspend(this.reason!);
    return true;
  }

  /** `key` no longer keeps the memory off: resume the mappings once no other key does. */
  on(key: string): void {
    if (!this.#off.delete(key)) return;
    const still = this.reason;
    for (const map of this.#live()) {
      if (still) map._suspend(still);
      else map._resume();
    }
  }

  /**
   * Run a VFIO_DEVICE_FEATURE call: a low-power entry (SET) suspends the mappings first (undone if
   * the call fails), a low-power exit resumes them after.
   */
  aroundFeature<T>(feature: number, set: boolean, call: () => T): T {
    const entry = set && (feature === C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY ||
      feature === C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP);
    const suspended = entry && this.off('lowPower',
      'the device is in low power (VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY); leave it with LOW_POWER_EXIT');
    let result: T;
    try {
      result = call();
    } catch (err) {
      if (suspended) this.on('lowPower');
      throw err;
    }
    if (set && feature === C.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT) this.on('lowPower');
    return result;
  }

  /** Unmap every live mapping (the device is closing: an mmap would keep it open). */
  closeAll(): void {
    for (const map of this.#live()) map._dispose();
    this.#maps.clear();
  }

  /** The mappings not yet collected (dropping the collected ones' entries). */
  #live(): MappedRegion[] {
    const out: MappedRegion[] = [];
    for (const ref of this.#maps) {
      const m = ref.deref();
      if (m) out.push(m);
      else this.#maps.delete(ref);
    }
    return out;
  }
}
