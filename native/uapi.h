// The project's own definitions of the VFIO and iommufd uAPI it uses.
//
// The build machine's linux-libc-dev (6.1) has no iommufd.h and no cdev structs, so every
// layout and request number is written out here and pinned by static_asserts. The lab tests
// check them against a real kernel. Field names follow include/uapi/linux/{vfio,iommufd}.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vfio {

// Every ioctl the addon issues, once: its name, its number (all VFIO and iommufd requests are
// _IO(';', nr), with no size or direction bits) and its argument struct as the kernel names it.
// The addon exports the names and numbers to JS (native.ioctls); lib/ never restates them.
#define VFIO_IOCTLS(X)                                                  \
  X(VFIO_GET_API_VERSION, 100, void)                                    \
  X(VFIO_CHECK_EXTENSION, 101, void)                                    \
  X(VFIO_SET_IOMMU, 102, void)                                          \
  X(VFIO_GROUP_GET_STATUS, 103, vfio_group_status)                      \
  X(VFIO_GROUP_SET_CONTAINER, 104, int32_t)                             \
  X(VFIO_GROUP_UNSET_CONTAINER, 105, void)                              \
  X(VFIO_GROUP_GET_DEVICE_FD, 106, char)                                \
  X(VFIO_DEVICE_GET_INFO, 107, vfio_device_info)                        \
  X(VFIO_DEVICE_GET_REGION_INFO, 108, vfio_region_info)                 \
  X(VFIO_DEVICE_GET_IRQ_INFO, 109, vfio_irq_info)                       \
  X(VFIO_DEVICE_SET_IRQS, 110, vfio_irq_set)                            \
  X(VFIO_DEVICE_RESET, 111, void)                                       \
  X(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 112, vfio_pci_hot_reset_info)   \
  X(VFIO_DEVICE_PCI_HOT_RESET, 113, vfio_pci_hot_reset)                 \
  X(VFIO_DEVICE_IOEVENTFD, 116, vfio_device_ioeventfd)                  \
  X(VFIO_DEVICE_FEATURE, 117, vfio_device_feature)                      \
  X(VFIO_DEVICE_BIND_IOMMUFD, 118, vfio_device_bind_iommufd)            \
  X(VFIO_DEVICE_ATTACH_IOMMUFD_PT, 119, vfio_device_attach_iommufd_pt)  \
  X(VFIO_DEVICE_DETACH_IOMMUFD_PT, 120, vfio_device_detach_iommufd_pt)  \
  X(VFIO_IOMMU_GET_INFO, 112, vfio_iommu_type1_info)                    \
  X(VFIO_IOMMU_MAP_DMA, 113, vfio_iommu_type1_dma_map)                  \
  X(VFIO_IOMMU_UNMAP_DMA, 114, vfio_iommu_type1_dma_unmap)              \
  X(IOMMU_DESTROY, 0x80, iommu_destroy)                                 \
  X(IOMMU_IOAS_ALLOC, 0x81, iommu_ioas_alloc)                           \
  X(IOMMU_IOAS_ALLOW_IOVAS, 0x82, iommu_ioas_allow_iovas)               \
  X(IOMMU_IOAS_COPY, 0x83, iommu_ioas_copy)                             \
  X(IOMMU_IOAS_IOVA_RANGES, 0x84, iommu_ioas_iova_ranges)               \
  X(IOMMU_IOAS_MAP, 0x85, iommu_ioas_map)                               \
  X(IOMMU_IOAS_UNMAP, 0x86, iommu_ioas_unmap)                           \
  X(IOMMU_OPTION, 0x87, iommu_option)                                   \
  X(IOMMU_VFIO_IOAS, 0x88, iommu_vfio_ioas)                             \
  X(IOMMU_HWPT_ALLOC, 0x89, iommu_hwpt_alloc)                           \
  X(IOMMU_GET_HW_INFO, 0x8a, iommu_hw_info)                             \
  X(IOMMU_HWPT_SET_DIRTY_TRACKING, 0x8b, iommu_hwpt_set_dirty_tracking) \
  X(IOMMU_HWPT_GET_DIRTY_BITMAP, 0x8c, iommu_hwpt_get_dirty_bitmap)     \
  X(IOMMU_HWPT_INVALIDATE, 0x8d, iommu_hwpt_invalidate)                 \
  X(IOMMU_FAULT_QUEUE_ALLOC, 0x8e, iommu_fault_alloc)                   \
  X(IOMMU_IOAS_MAP_FILE, 0x8f, iommu_ioas_map_file)                     \
  X(IOMMU_VIOMMU_ALLOC, 0x90, iommu_viommu_alloc)                       \
  X(IOMMU_VDEVICE_ALLOC, 0x91, iommu_vdevice_alloc)                     \
  X(IOMMU_IOAS_CHANGE_PROCESS, 0x92, iommu_ioas_change_process)         \
  X(IOMMU_VEVENTQ_ALLOC, 0x93, iommu_veventq_alloc)                     \
  X(IOMMU_HW_QUEUE_ALLOC, 0x94, iommu_hw_queue_alloc)                   \
  X(IOMMU_IOAS_NOIOMMU_GET_PA, 0x95, iommu_ioas_noiommu_get_pa)

// One enumerator per table row, in table order.
enum class Ioctl {
#define VFIO_IOCTL_ENUM(name, nr, arg) name,
  VFIO_IOCTLS(VFIO_IOCTL_ENUM)
#undef VFIO_IOCTL_ENUM
};

struct IoctlInfo {
  const char* name;
  unsigned long number;
};

constexpr unsigned long IoctlNumber(unsigned nr) { return (0x3bUL << 8) | nr; }

// The table's rows, indexed by Ioctl.
constexpr IoctlInfo kIoctls[] = {
#define VFIO_IOCTL_ROW(name, nr, arg) {#name, IoctlNumber(nr)},
    VFIO_IOCTLS(VFIO_IOCTL_ROW)
#undef VFIO_IOCTL_ROW
};

constexpr const IoctlInfo& Info(Ioctl i) { return kIoctls[static_cast<int>(i)]; }

static_assert(Info(Ioctl::VFIO_DEVICE_GET_INFO).number == 0x3b6b, "VFIO_DEVICE_GET_INFO");
static_assert(Info(Ioctl::VFIO_DEVICE_BIND_IOMMUFD).number == 0x3b76, "VFIO_DEVICE_BIND_IOMMUFD");
static_assert(Info(Ioctl::VFIO_DEVICE_ATTACH_IOMMUFD_PT).number == 0x3b77, "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
static_assert(Info(Ioctl::IOMMU_IOAS_ALLOC).number == 0x3b81, "IOMMU_IOAS_ALLOC");
static_assert(Info(Ioctl::IOMMU_IOAS_MAP).number == 0x3b85, "IOMMU_IOAS_MAP");

struct vfio_device_info {
  uint32_t argsz, flags, num_regions, num_irqs, cap_offset, pad;
};
static_assert(sizeof(vfio_device_info) == 24, "vfio_device_info");
static_assert(offsetof(vfio_device_info, cap_offset) == 16, "vfio_device_info.cap_offset");

struct vfio_region_info {
  uint32_t argsz, flags, index, cap_offset;
  uint64_t size, offset;
};
static_assert(sizeof(vfio_region_info) == 32, "vfio_region_info");
static_assert(offsetof(vfio_region_info, size) == 16, "vfio_region_info.size");
static_assert(offsetof(vfio_region_info, offset) == 24, "vfio_region_info.offset");

struct vfio_irq_info {
  uint32_t argsz, flags, index, count;
};
static_assert(sizeof(vfio_irq_info) == 16, "vfio_irq_info");

struct vfio_irq_set {
  uint32_t argsz, flags, index, start, count;
  // uint8_t data[] follows
};
static_assert(sizeof(vfio_irq_set) == 20, "vfio_irq_set");

struct vfio_device_bind_iommufd {
  uint32_t argsz, flags;
  int32_t iommufd;
  uint32_t out_devid;
  uint64_t token_uuid_ptr;  // 6.17+, read only with VFIO_DEVICE_BIND_FLAG_TOKEN
};
constexpr uint32_t kBindMinsz = 16;
static_assert(sizeof(vfio_device_bind_iommufd) == 24, "vfio_device_bind_iommufd");
static_assert(offsetof(vfio_device_bind_iommufd, out_devid) == 12, "vfio_device_bind_iommufd.out_devid");

struct vfio_device_attach_iommufd_pt {
  uint32_t argsz, flags, pt_id, pasid;  // pasid: 6.15+
};
constexpr uint32_t kAttachMinsz = 12;
static_assert(sizeof(vfio_device_attach_iommufd_pt) == 16, "vfio_device_attach_iommufd_pt");

struct vfio_device_detach_iommufd_pt {
  uint32_t argsz, flags, pasid;  // pasid: 6.15+
};
constexpr uint32_t kDetachMinsz = 8;
static_assert(sizeof(vfio_device_detach_iommufd_pt) == 12, "vfio_device_detach_iommufd_pt");

struct vfio_group_status {
  uint32_t argsz, flags;
};
static_assert(sizeof(vfio_group_status) == 8, "vfio_group_status");

struct vfio_device_feature {
  uint32_t argsz, flags;
  // uint8_t data[] follows
};
static_assert(sizeof(vfio_device_feature) == 8, "vfio_device_feature");

struct vfio_pci_hot_reset_info {
  uint32_t argsz, flags, count;
  // vfio_pci_dependent_device devices[] follow
};
struct vfio_pci_dependent_device {
  int32_t group_id_or_devid;
  uint16_t segment;
  uint8_t bus, devfn;
};
static_assert(sizeof(vfio_pci_hot_reset_info) == 12, "vfio_pci_hot_reset_info");
static_assert(sizeof(vfio_pci_dependent_device) == 8, "vfio_pci_dependent_device");

struct vfio_pci_hot_reset {
  uint32_t argsz, flags, count;
  // int32_t group_fds[] follow
};
static_assert(sizeof(vfio_pci_hot_reset) == 12, "vfio_pci_hot_reset");

struct vfio_iommu_type1_info {
  uint32_t argsz, flags;
  uint64_t iova_pgsizes;
  uint32_t cap_offset, pad;
};
static_assert(sizeof(vfio_iommu_type1_info) == 24, "vfio_iommu_type1_info");

struct vfio_iommu_type1_dma_map {
  uint32_t argsz, flags;
  uint64_t vaddr, iova, size;
};
static_assert(sizeof(vfio_iommu_type1_dma_map) == 32, "vfio_iommu_type1_dma_map");

struct vfio_iommu_type1_dma_unmap {
  uint32_t argsz, flags;
  uint64_t iova, size;
};
static_assert(sizeof(vfio_iommu_type1_dma_unmap) == 24, "vfio_iommu_type1_dma_unmap");

// iommufd
struct iommu_destroy {
  uint32_t size, id;
};
static_assert(sizeof(iommu_destroy) == 8, "iommu_destroy");

struct iommu_ioas_alloc {
  uint32_t size, flags, out_ioas_id;
};
static_assert(sizeof(iommu_ioas_alloc) == 12, "iommu_ioas_alloc");

struct iommu_iova_range {
  uint64_t start, last;
};
static_assert(sizeof(iommu_iova_range) == 16, "iommu_iova_range");

struct iommu_ioas_allow_iovas {
  uint32_t size, ioas_id, num_iovas, reserved;
  uint64_t allowed_iovas;
};
static_assert(sizeof(iommu_ioas_allow_iovas) == 24, "iommu_ioas_allow_iovas");

struct iommu_ioas_copy {
  uint32_t size, flags, dst_ioas_id, src_ioas_id;
  uint64_t length, dst_iova, src_iova;
};
static_assert(sizeof(iommu_ioas_copy) == 40, "iommu_ioas_copy");

struct iommu_ioas_iova_ranges {
  uint32_t size, ioas_id, num_iovas, reserved;
  uint64_t allowed_iovas, out_iova_alignment;
};
static_assert(sizeof(iommu_ioas_iova_ranges) == 32, "iommu_ioas_iova_ranges");

struct iommu_ioas_map {
  uint32_t size, flags, ioas_id, reserved;
  uint64_t user_va, length, iova;
};
static_assert(sizeof(iommu_ioas_map) == 40, "iommu_ioas_map");
static_assert(offsetof(iommu_ioas_map, iova) == 32, "iommu_ioas_map.iova");

struct iommu_ioas_map_file {
  uint32_t size, flags, ioas_id;
  int32_t fd;
  uint64_t start, length, iova;
};
static_assert(sizeof(iommu_ioas_map_file) == 40, "iommu_ioas_map_file");

struct iommu_ioas_change_process {
  uint32_t size, reserved;
};
static_assert(sizeof(iommu_ioas_change_process) == 8, "iommu_ioas_change_process");

struct iommu_ioas_unmap {
  uint32_t size, ioas_id;
  uint64_t iova, length;
};
static_assert(sizeof(iommu_ioas_unmap) == 24, "iommu_ioas_unmap");

struct iommu_option {
  uint32_t size, option_id;
  uint16_t op, reserved;
  uint32_t object_id;
  uint64_t val64;
};
static_assert(sizeof(iommu_option) == 24, "iommu_option");
static_assert(offsetof(iommu_option, val64) == 16, "iommu_option.val64");

struct iommu_vfio_ioas {
  uint32_t size, ioas_id;
  uint16_t op, reserved;
};
static_assert(sizeof(iommu_vfio_ioas) == 12, "iommu_vfio_ioas");

// 7.3+ with CONFIG_IOMMUFD_NOIOMMU: the physical address behind an IOVA of an IOAS a noiommu
// device is attached to (the IOAS's page table is then software only).
struct iommu_ioas_noiommu_get_pa {
  uint32_t size, flags, ioas_id, reserved;
  uint64_t iova, length, out_phys;
};
static_assert(sizeof(iommu_ioas_noiommu_get_pa) == 40, "iommu_ioas_noiommu_get_pa");
static_assert(offsetof(iommu_ioas_noiommu_get_pa, out_phys) == 32, "iommu_ioas_noiommu_get_pa.out_phys");

struct iommu_hwpt_alloc {
  uint32_t size, flags, dev_id, pt_id, out_hwpt_id, reserved, data_type, data_len;
  uint64_t data_uptr;
  uint32_t fault_id, reserved2;
};
static_assert(sizeof(iommu_hwpt_alloc) == 48, "iommu_hwpt_alloc");
static_assert(offsetof(iommu_hwpt_alloc, data_uptr) == 32, "iommu_hwpt_alloc.data_uptr");

struct iommu_hw_info {
  uint32_t size, flags, dev_id, data_len;
  uint64_t data_uptr;
  uint32_t out_data_type;      // in_data_type with IOMMU_HW_INFO_FLAG_INPUT_TYPE (6.17+)
  uint8_t out_max_pasid_log2;  // 6.15+; reserved (0) before
  uint8_t reserved[3];
  uint64_t out_capabilities;
};
static_assert(sizeof(iommu_hw_info) == 40, "iommu_hw_info");
static_assert(offsetof(iommu_hw_info, out_capabilities) == 32, "iommu_hw_info.out_capabilities");

struct iommu_hwpt_set_dirty_tracking {
  uint32_t size, flags, hwpt_id, reserved;
};
static_assert(sizeof(iommu_hwpt_set_dirty_tracking) == 16, "iommu_hwpt_set_dirty_tracking");

struct iommu_hwpt_get_dirty_bitmap {
  uint32_t size, hwpt_id, flags, reserved;
  uint64_t iova, length, page_size, data;
};
static_assert(sizeof(iommu_hwpt_get_dirty_bitmap) == 48, "iommu_hwpt_get_dirty_bitmap");

struct iommu_hwpt_invalidate {
  uint32_t size, hwpt_id;
  uint64_t data_uptr;
  uint32_t data_type, entry_len, entry_num, reserved;
};
static_assert(sizeof(iommu_hwpt_invalidate) == 32, "iommu_hwpt_invalidate");

struct iommu_fault_alloc {
  uint32_t size, flags, out_fault_id, out_fault_fd;
};
static_assert(sizeof(iommu_fault_alloc) == 16, "iommu_fault_alloc");

struct iommu_viommu_alloc {
  uint32_t size, flags, type, dev_id, hwpt_id, out_viommu_id, data_len, reserved;  // data: 6.16+
  uint64_t data_uptr;
};
constexpr uint32_t kViommuAllocMinsz = 24;
static_assert(sizeof(iommu_viommu_alloc) == 40, "iommu_viommu_alloc");

struct iommu_vdevice_alloc {
  uint32_t size, viommu_id, dev_id, out_vdevice_id;
  uint64_t virt_id;
};
static_assert(sizeof(iommu_vdevice_alloc) == 24, "iommu_vdevice_alloc");

struct iommu_hw_queue_alloc {
  uint32_t size, flags, viommu_id, type, index, out_hw_queue_id;
  uint64_t nesting_parent_iova, length;
};
static_assert(sizeof(iommu_hw_queue_alloc) == 40, "iommu_hw_queue_alloc");

struct iommu_veventq_alloc {
  uint32_t size, flags, viommu_id, type, veventq_depth, out_veventq_id, out_veventq_fd, reserved;
};
static_assert(sizeof(iommu_veventq_alloc) == 32, "iommu_veventq_alloc");

struct vfio_device_ioeventfd {
  uint32_t argsz, flags;
  uint64_t offset, data;
  int32_t fd, reserved;
};
static_assert(sizeof(vfio_device_ioeventfd) == 32, "vfio_device_ioeventfd");

}  // namespace vfio
