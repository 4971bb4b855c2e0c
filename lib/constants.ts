// VFIO and iommufd flags and indexes from include/uapi/linux/{vfio,iommufd}.h. The ioctl request
// numbers are not here: they live once, in the addon's ioctl table (native/uapi.h).
import { native } from './native';

/** Region and IRQ indexes and flag values (the library's own code reads these). */
export const flags = Object.freeze({
  VFIO_PCI_BAR0_REGION_INDEX: 0,
  VFIO_PCI_BAR1_REGION_INDEX: 1,
  VFIO_PCI_BAR2_REGION_INDEX: 2,
  VFIO_PCI_BAR3_REGION_INDEX: 3,
  VFIO_PCI_BAR4_REGION_INDEX: 4,
  VFIO_PCI_BAR5_REGION_INDEX: 5,
  VFIO_PCI_ROM_REGION_INDEX: 6,
  VFIO_PCI_CONFIG_REGION_INDEX: 7,
  VFIO_PCI_VGA_REGION_INDEX: 8,
  VFIO_PCI_NUM_REGIONS: 9,

  VFIO_PCI_INTX_IRQ_INDEX: 0,
  VFIO_PCI_MSI_IRQ_INDEX: 1,
  VFIO_PCI_MSIX_IRQ_INDEX: 2,
  VFIO_PCI_ERR_IRQ_INDEX: 3,
  VFIO_PCI_REQ_IRQ_INDEX: 4,
  VFIO_PCI_NUM_IRQS: 5,

  VFIO_DEVICE_FLAGS_RESET: 1 << 0,
  VFIO_DEVICE_FLAGS_PCI: 1 << 1,
  VFIO_DEVICE_FLAGS_PLATFORM: 1 << 2,
  VFIO_DEVICE_FLAGS_CAPS: 1 << 7,

  VFIO_REGION_INFO_FLAG_READ: 1 << 0,
  VFIO_REGION_INFO_FLAG_WRITE: 1 << 1,
  VFIO_REGION_INFO_FLAG_MMAP: 1 << 2,
  VFIO_REGION_INFO_FLAG_CAPS: 1 << 3,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP: 1,
  VFIO_REGION_INFO_CAP_TYPE: 2,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: 3,

  VFIO_IRQ_INFO_EVENTFD: 1 << 0,
  VFIO_IRQ_INFO_MASKABLE: 1 << 1,
  VFIO_IRQ_INFO_AUTOMASKED: 1 << 2,
  VFIO_IRQ_INFO_NORESIZE: 1 << 3,

  VFIO_IRQ_SET_DATA_NONE: 1 << 0,
  VFIO_IRQ_SET_DATA_BOOL: 1 << 1,
  VFIO_IRQ_SET_DATA_EVENTFD: 1 << 2,
  VFIO_IRQ_SET_ACTION_MASK: 1 << 3,
  VFIO_IRQ_SET_ACTION_UNMASK: 1 << 4,
  VFIO_IRQ_SET_ACTION_TRIGGER: 1 << 5,

  VFIO_DEVICE_FEATURE_MASK: 0xffff,
  VFIO_DEVICE_FEATURE_GET: 1 << 16,
  VFIO_DEVICE_FEATURE_SET: 1 << 17,
  VFIO_DEVICE_FEATURE_PROBE: 1 << 18,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN: 0,
  VFIO_DEVICE_FEATURE_MIGRATION: 1,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: 2,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: 3,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: 4,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT: 5,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START: 6,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: 7,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: 8,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: 9,
  VFIO_DEVICE_FEATURE_BUS_MASTER: 10,
  VFIO_DEVICE_FEATURE_DMA_BUF: 11,
  /** PCI config space: the COMMAND register, its Memory Space Enable bit, the PM capability id. */
  PCI_COMMAND: 0x04,
  PCI_COMMAND_MEMORY: 0x2,
  PCI_CAP_ID_PM: 0x01,
  /** PMCSR, at the PM capability + 4: bits 1:0 are the power state (3 = D3hot). */
  PCI_PM_CTRL: 4,
  PCI_PM_CTRL_STATE_MASK: 0x3,

  VFIO_PCI_HOT_RESET_FLAG_DEV_ID: 1 << 0,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED: 1 << 1,

  VFIO_GROUP_FLAGS_VIABLE: 1 << 0,
  VFIO_GROUP_FLAGS_CONTAINER_SET: 1 << 1,
  VFIO_TYPE1_IOMMU: 1,
  VFIO_TYPE1v2_IOMMU: 3,
  VFIO_NOIOMMU_IOMMU: 8,
  VFIO_IOMMU_INFO_PGSIZES: 1 << 0,
  VFIO_IOMMU_INFO_CAPS: 1 << 1,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: 1,
  VFIO_DMA_MAP_FLAG_READ: 1 << 0,
  VFIO_DMA_MAP_FLAG_WRITE: 1 << 1,
  VFIO_DMA_UNMAP_FLAG_ALL: 1 << 1,
  VFIO_UNMAP_ALL: 9,

  IOMMU_IOAS_MAP_FIXED_IOVA: 1 << 0,
  IOMMU_IOAS_MAP_WRITEABLE: 1 << 1,
  IOMMU_IOAS_MAP_READABLE: 1 << 2,
  IOMMU_OPTION_RLIMIT_MODE: 0,
  IOMMU_OPTION_HUGE_PAGES: 1,
  IOMMU_OPTION_OP_SET: 0,
  IOMMU_OPTION_OP_GET: 1,
  IOMMU_VFIO_IOAS_GET: 0,
  IOMMU_VFIO_IOAS_SET: 1,
  IOMMU_VFIO_IOAS_CLEAR: 2,
  IOMMU_HWPT_ALLOC_NEST_PARENT: 1 << 0,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING: 1 << 1,
  IOMMU_HWPT_FAULT_ID_VALID: 1 << 2,
  IOMMU_HWPT_ALLOC_PASID: 1 << 3,
  IOMMU_HWPT_DATA_NONE: 0,
  IOMMU_HWPT_DATA_VTD_S1: 1,
  IOMMU_HWPT_DATA_ARM_SMMUV3: 2,
  IOMMU_HWPT_DATA_AMD_GUEST: 3,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR: 1,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1: 0,
  IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3: 1,
  IOMMU_HW_INFO_TYPE_NONE: 0,
  IOMMU_HW_INFO_TYPE_DEFAULT: 0,
  IOMMU_HW_INFO_TYPE_INTEL_VTD: 1,
  IOMMU_HW_INFO_TYPE_ARM_SMMUV3: 2,
  IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV: 3,
  IOMMU_HW_INFO_TYPE_AMD: 4,
  IOMMU_HW_INFO_FLAG_INPUT_TYPE: 1 << 0,
  IOMMU_HW_CAP_DIRTY_TRACKING: 1 << 0,
  IOMMU_HW_CAP_PCI_PASID_EXEC: 1 << 1,
  IOMMU_HW_CAP_PCI_PASID_PRIV: 1 << 2,
  IOMMU_PGFAULT_FLAGS_PASID_VALID: 1 << 0,
  IOMMU_PGFAULT_FLAGS_LAST_PAGE: 1 << 1,
  IOMMU_PGFAULT_PERM_READ: 1 << 0,
  IOMMU_PGFAULT_PERM_WRITE: 1 << 1,
  IOMMU_PGFAULT_PERM_EXEC: 1 << 2,
  IOMMU_PGFAULT_PERM_PRIV: 1 << 3,
  IOMMUFD_PAGE_RESP_SUCCESS: 0,
  IOMMUFD_PAGE_RESP_INVALID: 1,
  IOMMU_VIOMMU_TYPE_DEFAULT: 0,
  IOMMU_VIOMMU_TYPE_ARM_SMMUV3: 1,
  IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV: 2,
  IOMMU_VEVENTQ_TYPE_DEFAULT: 0,
  IOMMU_VEVENTQ_TYPE_ARM_SMMUV3: 1,
  IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV: 2,
  IOMMU_HW_QUEUE_TYPE_DEFAULT: 0,
  IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV: 1,
  IOMMU_VEVENTQ_FLAG_LOST_EVENTS: 1 << 0,
});

/** The named VFIO and iommufd flags and indexes (the keys of `constants` other than ioctl names). */
export type VfioFlags = typeof flags;

/**
 * VFIO and iommufd constants: region/IRQ indexes, flags, and the raw ioctl request numbers
 * (from the addon's ioctl table).
 */
export const constants: VfioFlags & Readonly<Record<string, number>> = withIoctls(flags);

/** `flags` and, read from the addon on first use (so importing this loads nothing), the ioctl numbers. */
function withIoctls(base: VfioFlags): VfioFlags & Readonly<Record<string, number>> {
  let table: Readonly<Record<string, number>> | null = null;
  const ioctls = (): Readonly<Record<string, number>> => (table ??= native.ioctls);
  // An extensible copy as the target (a frozen one could not report the ioctl keys), kept read-only by the traps.
  const target: typeof flags & Readonly<Record<string, number>> = { ...base };
  return new Proxy(target, {
    set: () => false,
    defineProperty: () => false,
    deleteProperty: () => false,
    get: (t, key) => (typeof key === 'string' && !(key in t) ? ioctls()[key] : Reflect.get(t, key)) as unknown,
    has: (t, key) => key in t || (typeof key === 'string' && key in ioctls()),
    ownKeys: (t) => [...Reflect.ownKeys(t), ...Object.keys(ioctls())],
    getOwnPropertyDescriptor: (t, key) => Reflect.getOwnPropertyDescriptor(t, key) ??
      (typeof key === 'string' && key in ioctls()
        ? { value: ioctls()[key], enumerable: true, configurable: true, writable: false } : undefined),
  });
}
