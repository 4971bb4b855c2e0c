// A legacy VFIO container (/dev/vfio/vfio) with the type1 IOMMU: extensions, the IOMMU type,
// and DMA maps of DmaBuffers (only memory whose lifetime the library controls).
#include "common.h"

namespace vfio {

namespace {

using Container = FdHandle;

Container* Get(const Napi::CallbackInfo& info) { return OpenFdArg(info, 0, Kind::Container, "container"); }

Napi::Value ApiVersion(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Call<Ioctl::VFIO_GET_API_VERSION>(info.Env(), Get(info), nullptr));
}

// (container, extension) => VFIO_CHECK_EXTENSION's result
Napi::Value CheckExtension(const Napi::CallbackInfo& info) {
  Container* c = Get(info);
  uint32_t ext = ArgU32(info, 1, "extension");
  return Napi::Number::New(info.Env(), CallIoctlValue(info.Env(), c, Ioctl::VFIO_CHECK_EXTENSION, ext));
}

// (container, type)
Napi::Value SetIommu(const Napi::CallbackInfo& info) {
  Container* c = Get(info);
  uint32_t type = ArgU32(info, 1, "type");
  CallIoctlValue(info.Env(), c, Ioctl::VFIO_SET_IOMMU, type);
  return Napi::Value();
}

// (container) => raw vfio_iommu_type1_info with its capability chain (IOVA ranges, ...)
Napi::Value GetInfo(const Napi::CallbackInfo& info) {
  return ToUint8Array(info.Env(), GrowAndRetry(info.Env(), Get(info), Ioctl::VFIO_IOMMU_GET_INFO,
                                               sizeof(vfio_iommu_type1_info), 0, PrepareArgsz, 0, ArgszNeed));
}

// (container, buffer: DmaBuffer or BAR mapping handle, byteOffset, length, iova, flags) type1 MAP_DMA
Napi::Value Map(const Napi::CallbackInfo& info) {
  Container* c = Get(info);
  void* base = nullptr;
  size_t total = 0;
  // A DmaBuffer, or a BAR mapping (type1 maps an mmapped BAR for peer-to-peer DMA).
  if (HasKind(info.Env(), info[1], Kind::Mapping)) {
    MappingSpan(info, 1, &base, &total);
  } else {
    DmaBufferSpan(info, 1, &base, &total);
  }
  uint64_t off = ArgU64(info, 2, "byteOffset");
  uint64_t len = ArgU64(info, 3, "length");
  if (off > total || len > total - off) ThrowRange(info.Env(), "byteOffset + length is outside the memory");
  vfio_iommu_type1_dma_map m{sizeof(vfio_iommu_type1_dma_map), ArgU32(info, 5, "flags"),
                             reinterpret_cast<uintptr_t>(base) + off, ArgU64(info, 4, "iova"), len};
  Call<Ioctl::VFIO_IOMMU_MAP_DMA>(info.Env(), c, &m);
  return Napi::Value();
}

// (h, iova, length, flags) => bytes unmapped
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Container* c = Get(info);
  // flags: VFIO_DMA_UNMAP_FLAG_ALL (iova and length 0) unmaps everything (type1v2, 5.13+).
  vfio_iommu_type1_dma_unmap u{sizeof(vfio_iommu_type1_dma_unmap), ArgU32(info, 3, "flags"), ArgU64(info, 1, "iova"),
                               ArgU64(info, 2, "length")};
  Call<Ioctl::VFIO_IOMMU_UNMAP_DMA>(info.Env(), c, &u);
  return ToBigInt(info.Env(), u.size);
}

}  // namespace

void InitContainer(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "containerOpen", FdOpenAs<Kind::Container>);
  Export(env, exports, "containerClose", FdCloseAs<Kind::Container>);
  Export(env, exports, "containerFd", FdNumberAs<Kind::Container>);
  Export(env, exports, "containerApiVersion", ApiVersion);
  Export(env, exports, "containerCheckExtension", CheckExtension);
  Export(env, exports, "containerSetIommu", SetIommu);
  Export(env, exports, "containerGetInfo", GetInfo);
  Export(env, exports, "type1Map", Map);
  Export(env, exports, "type1Unmap", Unmap);
}

}  // namespace vfio
