// PCI config space (VFIO region 7) with typed accessors and the capability lists.
import { flags as C } from './constants';
import type { Region } from './region';

/** PCI config space (VFIO region 7). */
export class PciConfig {
  readonly region: Region;
  /** PMCSR's offset, null without a PM capability (undefined: not read yet). */
  #pmcsr: number | null | undefined = undefined;

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

  /** The offset of PMCSR (the PM capability's control register), or null when there is none. */
  pmControlOffset(): number | null {
    if (this.#pmcsr === undefined) {
      const pm = this.capabilities().find((c) => c.id === C.PCI_CAP_ID_PM);
      this.#pmcsr = pm ? pm.offset + C.PCI_PM_CTRL : null;
    }
    return this.#pmcsr;
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
