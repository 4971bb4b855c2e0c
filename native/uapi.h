// The project's own definitions of the VFIO and iommufd uAPI it uses.
//
// The build machine's linux-libc-dev (6.1) has no iommufd.h and no cdev structs, so every
// layout and request number is written out here and pinned by static_asserts. The lab tests
// check them against a real kernel. Field names follow include/uapi/linux/{vfio,iommufd}.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vfio {

// All VFIO and iommufd requests are _IO(';', nr): no size or direction bits.
constexpr unsigned long Io(unsigned nr) { return (0x3bUL << 8) | nr; }

// VFIO (nr = 100 + k)
constexpr unsigned long VFIO_GET_API_VERSION = Io(100);
constexpr unsigned long VFIO_CHECK_EXTENSION = Io(101);
constexpr unsigned long VFIO_SET_IOMMU = Io(102);
constexpr unsigned long VFIO_GROUP_GET_STATUS = Io(103);
constexpr unsigned long VFIO_GROUP_SET_CONTAINER = Io(104);
constexpr unsigned long VFIO_GROUP_UNSET_CONTAINER = Io(105);
constexpr unsigned long VFIO_GROUP_GET_DEVICE_FD = Io(106);
constexpr unsigned long VFIO_DEVICE_GET_INFO = Io(107);
constexpr unsigned long VFIO_DEVICE_GET_REGION_INFO = Io(108);
constexpr unsigned long VFIO_DEVICE_GET_IRQ_INFO = Io(109);
constexpr unsigned long VFIO_DEVICE_SET_IRQS = Io(110);
constexpr unsigned long VFIO_DEVICE_RESET = Io(111);
constexpr unsigned long VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = Io(112);
constexpr unsigned long VFIO_DEVICE_PCI_HOT_RESET = Io(113);
constexpr unsigned long VFIO_DEVICE_FEATURE = Io(117);
constexpr unsigned long VFIO_DEVICE_BIND_IOMMUFD = Io(118);
constexpr unsigned long VFIO_DEVICE_ATTACH_IOMMUFD_PT = Io(119);
constexpr unsigned long VFIO_DEVICE_DETACH_IOMMUFD_PT = Io(120);
// Container fd (same numbers as some device requests; the fd decides).
constexpr unsigned long VFIO_IOMMU_GET_INFO = Io(112);
constexpr unsigned long VFIO_IOMMU_MAP_DMA = Io(113);
constexpr unsigned long VFIO_IOMMU_UNMAP_DMA = Io(114);

// iommufd (nr = 0x80 + k)
constexpr unsigned long IOMMU_DESTROY = Io(0x80);
constexpr unsigned long IOMMU_IOAS_ALLOC = Io(0x81);
constexpr unsigned long IOMMU_IOAS_ALLOW_IOVAS = Io(0x82);
constexpr unsigned long IOMMU_IOAS_COPY = Io(0x83);
constexpr unsigned long IOMMU_IOAS_IOVA_RANGES = Io(0x84);
constexpr unsigned long IOMMU_IOAS_MAP = Io(0x85);
constexpr unsigned long IOMMU_IOAS_UNMAP = Io(0x86);
constexpr unsigned long IOMMU_OPTION = Io(0x87);
constexpr unsigned long IOMMU_HWPT_ALLOC = Io(0x89);
constexpr unsigned long IOMMU_GET_HW_INFO = Io(0x8a);
constexpr unsigned long IOMMU_IOAS_MAP_FILE = Io(0x8f);

static_assert(VFIO_DEVICE_GET_INFO == 0x3b6b, "VFIO_DEVICE_GET_INFO");
static_assert(VFIO_DEVICE_BIND_IOMMUFD == 0x3b76, "VFIO_DEVICE_BIND_IOMMUFD");
static_assert(VFIO_DEVICE_ATTACH_IOMMUFD_PT == 0x3b77, "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
static_assert(IOMMU_IOAS_ALLOC == 0x3b81, "IOMMU_IOAS_ALLOC");
static_assert(IOMMU_IOAS_MAP == 0x3b85, "IOMMU_IOAS_MAP");

struct DeviceInfo {
  uint32_t argsz, flags, num_regions, num_irqs, cap_offset, pad;
};
static_assert(sizeof(DeviceInfo) == 24, "vfio_device_info");
static_assert(offsetof(DeviceInfo, cap_offset) == 16, "vfio_device_info.cap_offset");

struct RegionInfo {
  uint32_t argsz, flags, index, cap_offset;
  uint64_t size, offset;
};
static_assert(sizeof(RegionInfo) == 32, "vfio_region_info");
static_assert(offsetof(RegionInfo, size) == 16, "vfio_region_info.size");
static_assert(offsetof(RegionInfo, offset) == 24, "vfio_region_info.offset");

struct IrqInfo {
  uint32_t argsz, flags, index, count;
};
static_assert(sizeof(IrqInfo) == 16, "vfio_irq_info");

struct IrqSet {
  uint32_t argsz, flags, index, start, count;
  // uint8_t data[] follows
};
static_assert(sizeof(IrqSet) == 20, "vfio_irq_set");

struct BindIommufd {
  uint32_t argsz, flags;
  int32_t iommufd;
  uint32_t out_devid;
  uint64_t token_uuid_ptr;  // 6.17+, read only with VFIO_DEVICE_BIND_FLAG_TOKEN
};
constexpr uint32_t kBindMinsz = 16;
static_assert(sizeof(BindIommufd) == 24, "vfio_device_bind_iommufd");
static_assert(offsetof(BindIommufd, out_devid) == 12, "vfio_device_bind_iommufd.out_devid");

struct AttachIommufdPt {
  uint32_t argsz, flags, pt_id, pasid;  // pasid: 6.15+
};
constexpr uint32_t kAttachMinsz = 12;
static_assert(sizeof(AttachIommufdPt) == 16, "vfio_device_attach_iommufd_pt");

struct DetachIommufdPt {
  uint32_t argsz, flags, pasid;  // pasid: 6.15+
};
constexpr uint32_t kDetachMinsz = 8;
static_assert(sizeof(DetachIommufdPt) == 12, "vfio_device_detach_iommufd_pt");

struct GroupStatus {
  uint32_t argsz, flags;
};
static_assert(sizeof(GroupStatus) == 8, "vfio_group_status");

struct DeviceFeature {
  uint32_t argsz, flags;
  // uint8_t data[] follows
};
static_assert(sizeof(DeviceFeature) == 8, "vfio_device_feature");

struct HotResetInfo {
  uint32_t argsz, flags, count;
  // PciDependentDevice devices[] follow
};
struct PciDependentDevice {
  int32_t group_id_or_devid;
  uint16_t segment;
  uint8_t bus, devfn;
};
static_assert(sizeof(HotResetInfo) == 12, "vfio_pci_hot_reset_info");
static_assert(sizeof(PciDependentDevice) == 8, "vfio_pci_dependent_device");

struct HotReset {
  uint32_t argsz, flags, count;
  // int32_t group_fds[] follow
};
static_assert(sizeof(HotReset) == 12, "vfio_pci_hot_reset");

struct Type1DmaMap {
  uint32_t argsz, flags;
  uint64_t vaddr, iova, size;
};
static_assert(sizeof(Type1DmaMap) == 32, "vfio_iommu_type1_dma_map");

struct Type1DmaUnmap {
  uint32_t argsz, flags;
  uint64_t iova, size;
};
static_assert(sizeof(Type1DmaUnmap) == 24, "vfio_iommu_type1_dma_unmap");

// iommufd
struct IommuDestroy {
  uint32_t size, id;
};
static_assert(sizeof(IommuDestroy) == 8, "iommu_destroy");

struct IoasAlloc {
  uint32_t size, flags, out_ioas_id;
};
static_assert(sizeof(IoasAlloc) == 12, "iommu_ioas_alloc");

struct IovaRange {
  uint64_t start, last;
};
static_assert(sizeof(IovaRange) == 16, "iommu_iova_range");

struct IoasAllowIovas {
  uint32_t size, ioas_id, num_iovas, reserved;
  uint64_t allowed_iovas;
};
static_assert(sizeof(IoasAllowIovas) == 24, "iommu_ioas_allow_iovas");

struct IoasCopy {
  uint32_t size, flags, dst_ioas_id, src_ioas_id;
  uint64_t length, dst_iova, src_iova;
};
static_assert(sizeof(IoasCopy) == 40, "iommu_ioas_copy");

struct IoasIovaRanges {
  uint32_t size, ioas_id, num_iovas, reserved;
  uint64_t allowed_iovas, out_iova_alignment;
};
static_assert(sizeof(IoasIovaRanges) == 32, "iommu_ioas_iova_ranges");

struct IoasMap {
  uint32_t size, flags, ioas_id, reserved;
  uint64_t user_va, length, iova;
};
static_assert(sizeof(IoasMap) == 40, "iommu_ioas_map");
static_assert(offsetof(IoasMap, iova) == 32, "iommu_ioas_map.iova");

struct IoasMapFile {
  uint32_t size, flags, ioas_id;
  int32_t fd;
  uint64_t start, length, iova;
};
static_assert(sizeof(IoasMapFile) == 40, "iommu_ioas_map_file");

struct IoasUnmap {
  uint32_t size, ioas_id;
  uint64_t iova, length;
};
static_assert(sizeof(IoasUnmap) == 24, "iommu_ioas_unmap");

struct IommuOption {
  uint32_t size, option_id;
  uint16_t op, reserved;
  uint32_t object_id;
  uint64_t val64;
};
static_assert(sizeof(IommuOption) == 24, "iommu_option");
static_assert(offsetof(IommuOption, val64) == 16, "iommu_option.val64");

struct HwptAlloc {
  uint32_t size, flags, dev_id, pt_id, out_hwpt_id, reserved, data_type, data_len;
  uint64_t data_uptr;
  uint32_t fault_id, reserved2;
};
static_assert(sizeof(HwptAlloc) == 48, "iommu_hwpt_alloc");
static_assert(offsetof(HwptAlloc, data_uptr) == 32, "iommu_hwpt_alloc.data_uptr");

struct HwInfo {
  uint32_t size, flags, dev_id, data_len;
  uint64_t data_uptr;
  uint32_t out_data_type;
  uint8_t out_max_pasid_log2;  // 6.15+; reserved (0) before
  uint8_t reserved[3];
  uint64_t out_capabilities;
};
static_assert(sizeof(HwInfo) == 40, "iommu_hw_info");
static_assert(offsetof(HwInfo, out_capabilities) == 32, "iommu_hw_info.out_capabilities");

}  // namespace vfio
