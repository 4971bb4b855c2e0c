// Pure decoders of the kernel's answers: capability chains, region info with its capabilities,
// IRQ info and hot-reset info. Byte layouts as in include/uapi/linux/vfio.h; unit-tested on byte
// fixtures captured from the lab kernel (test/unit/decoders.test.mjs).
import { flags as C } from './constants';

/** A capability from a VFIO info capability chain. */
export interface InfoCapability {
  id: number;
  version: number;
  /** The capability's bytes after its 8-byte header. */
  data: Uint8Array;
}

/** VFIO_DEVICE_GET_INFO. */
export interface DeviceInfo {
  flags: number;
  numRegions: number;
  numIrqs: number;
  /** VFIO_DEVICE_FLAGS_RESET: reset() is supported. */
  canReset: boolean;
  /** VFIO_DEVICE_FLAGS_PCI. */
  isPci: boolean;
  caps: InfoCapability[];
}

/** VFIO_DEVICE_GET_REGION_INFO. */
export interface RegionInfo {
  index: number;
  /** Size in bytes. */
  size: number;
  /** The region's offset in the device fd, for pread/pwrite/mmap. */
  offset: bigint;
  flags: number;
  readable: boolean;
  writable: boolean;
  mmappable: boolean;
  /** Only these parts may be mmapped (VFIO_REGION_INFO_CAP_SPARSE_MMAP). */
  sparseAreas?: Array<{ offset: number; size: number }>;
  /** VFIO_REGION_INFO_CAP_TYPE, for device-specific regions. */
  type?: { type: number; subtype: number };
  /** VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: the MSI-X table in this BAR may be mmapped. */
  msixMappable?: boolean;
}

/** VFIO_DEVICE_GET_IRQ_INFO. */
export interface IrqInfo {
  index: number;
  count: number;
  eventfd: boolean;
  maskable: boolean;
  automasked: boolean;
  noresize: boolean;
}

/** A device that must reset together with this one (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO). */
export interface HotResetDevice {
  bdf: string;
  /** The devid in this iommufd (cdev form), or null if the device is not opened by it. */
  devId: number | null;
  /** The IOMMU group id (group form). */
  groupId: number | null;
}

/** VFIO_DEVICE_GET_PCI_HOT_RESET_INFO. */
export interface HotResetInfo {
  flags: number;
  /** All affected devices are owned by this iommufd (DEV_ID_OWNED). */
  owned: boolean;
  devices: HotResetDevice[];
}

/** The capability chain of an info struct, from its first capability's offset (0: none). */
export function parseCaps(raw: Uint8Array, first: number): InfoCapability[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const caps: InfoCapability[] = [];
  const seen = new Set<number>();
  let off = first;
  while (off !== 0 && off + 8 <= raw.length && !seen.has(off) && caps.length < 64) {
    seen.add(off);
    const id = view.getUint16(off, true);
    const version = view.getUint16(off + 2, true);
    const next = view.getUint32(off + 4, true);
    const end = next > off && next <= raw.length ? next : raw.length;
    caps.push({ id, version, data: raw.slice(off + 8, end) });
    off = next;
  }
  return caps;
}

function view(raw: Uint8Array): DataView {
  return new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
}

/**
 * struct vfio_device_info, as its six 32-bit words (argsz, flags, num_regions, num_irqs,
 * cap_offset, pad) and, when the kernel reported a capability chain, the whole larger struct.
 */
export function decodeDeviceInfo(words: Uint32Array, withCaps?: Uint8Array): DeviceInfo {
  const flags = words[1];
  return {
    flags,
    numRegions: words[2],
    numIrqs: words[3],
    canReset: (flags & C.VFIO_DEVICE_FLAGS_RESET) !== 0,
    isPci: (flags & C.VFIO_DEVICE_FLAGS_PCI) !== 0,
    caps: withCaps ? parseCaps(withCaps, view(withCaps).getUint32(16, true)) : [],
  };
}

/**
 * struct vfio_region_info as 8 words, without a capability chain (the fast path of regionInfo());
 * `w64` is the same memory as u64s (default: a new view of it).
 */
export function decodeRegionInfoWords(w: Uint32Array, index: number,
  w64: BigUint64Array = new BigUint64Array(w.buffer, w.byteOffset, 4)): RegionInfo {
  const flags = w[1];
  return {
    index,
    size: w[4] + w[5] * 2 ** 32,
    offset: w64[3], // a typed-array load: a quarter of BigInt(number)'s cost
    flags,
    readable: (flags & C.VFIO_REGION_INFO_FLAG_READ) !== 0,
    writable: (flags & C.VFIO_REGION_INFO_FLAG_WRITE) !== 0,
    mmappable: (flags & C.VFIO_REGION_INFO_FLAG_MMAP) !== 0,
  };
}

/** struct vfio_region_info of region `index`, with its sparse-mmap, type and MSI-X caps. */
export function decodeRegionInfo(raw: Uint8Array, index: number): RegionInfo {
  const v = view(raw);
  const flags = v.getUint32(4, true);
  const info: RegionInfo = {
    index,
    size: Number(v.getBigUint64(16, true)),
    offset: v.getBigUint64(24, true),
    flags,
    readable: (flags & C.VFIO_REGION_INFO_FLAG_READ) !== 0,
    writable: (flags & C.VFIO_REGION_INFO_FLAG_WRITE) !== 0,
    mmappable: (flags & C.VFIO_REGION_INFO_FLAG_MMAP) !== 0,
  };
  if (!(flags & C.VFIO_REGION_INFO_FLAG_CAPS)) return info;
  for (const cap of parseCaps(raw, v.getUint32(12, true))) {
    const d = view(cap.data);
    if (cap.id === C.VFIO_REGION_INFO_CAP_SPARSE_MMAP && d.byteLength >= 8) {
      const n = d.getUint32(0, true);
      info.sparseAreas = [];
      for (let i = 0; i < n && 8 + 16 * (i + 1) <= d.byteLength; i++) {
        info.sparseAreas.push({
          offset: Number(d.getBigUint64(8 + 16 * i, true)),
          size: Number(d.getBigUint64(16 + 16 * i, true)),
        });
      }
    } else if (cap.id === C.VFIO_REGION_INFO_CAP_TYPE && d.byteLength >= 8) {
      info.type = { type: d.getUint32(0, true), subtype: d.getUint32(4, true) };
    } else if (cap.id === C.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
      info.msixMappable = true;
    }
  }
  return info;
}

/** struct vfio_irq_info's flags and count for IRQ index `index`. */
export function decodeIrqInfo(index: number, flags: number, count: number): IrqInfo {
  return {
    index,
    count,
    eventfd: (flags & C.VFIO_IRQ_INFO_EVENTFD) !== 0,
    maskable: (flags & C.VFIO_IRQ_INFO_MASKABLE) !== 0,
    automasked: (flags & C.VFIO_IRQ_INFO_AUTOMASKED) !== 0,
    noresize: (flags & C.VFIO_IRQ_INFO_NORESIZE) !== 0,
  };
}

/** struct vfio_pci_hot_reset_info followed by its vfio_pci_dependent_device entries. */
export function decodeHotResetInfo(raw: Uint8Array): HotResetInfo {
  const v = view(raw);
  const flags = v.getUint32(4, true);
  const count = v.getUint32(8, true);
  const byDevId = (flags & C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID) !== 0;
  const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  const devices: HotResetDevice[] = [];
  for (let i = 0; i < count && 12 + 8 * (i + 1) <= raw.length; i++) {
    const o = 12 + 8 * i;
    const id = v.getInt32(o, true);
    const seg = v.getUint16(o + 4, true);
    const bus = v.getUint8(o + 6);
    const devfn = v.getUint8(o + 7);
    devices.push({
      bdf: `${hex(seg, 4)}:${hex(bus, 2)}:${hex(devfn >> 3, 2)}.${devfn & 7}`,
      devId: byDevId ? (id === -1 ? null : id) : null,
      groupId: byDevId ? null : id,
    });
  }
  return { flags, owned: (flags & C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED) !== 0, devices };
}

/** An inclusive IOVA range a container or IOAS accepts. */
export interface IovaRange {
  start: bigint;
  last: bigint;
}

/** VFIO_IOMMU_GET_INFO (type1): the IOMMU page sizes and the usable IOVA ranges. */
export interface Type1Info {
  flags: number;
  /** Bitmap of the IOMMU page sizes (bit n: 2^n bytes). */
  pageSizes: bigint;
  /** VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE; empty when the kernel gives none. */
  iovaRanges: IovaRange[];
}

/** struct vfio_iommu_type1_info with its capability chain. */
export function decodeType1Info(raw: Uint8Array): Type1Info {
  const v = view(raw);
  const flags = v.getUint32(4, true);
  const out: Type1Info = { flags, pageSizes: v.getBigUint64(8, true), iovaRanges: [] };
  if (!(flags & C.VFIO_IOMMU_INFO_CAPS) || raw.length <= 24) return out;
  for (const cap of parseCaps(raw, v.getUint32(16, true))) {
    if (cap.id !== C.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE || cap.data.length < 8) continue;
    const d = view(cap.data);
    const n = d.getUint32(0, true);
    for (let i = 0; i < n && 8 + 16 * (i + 1) <= cap.data.length; i++) {
      out.iovaRanges.push({ start: d.getBigUint64(8 + 16 * i, true), last: d.getBigUint64(16 + 16 * i, true) });
    }
  }
  return out;
}
