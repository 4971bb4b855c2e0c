// An iommufd (/dev/iommu): IOAS allocation, DMA map/unmap, IOVA ranges, options, HW info,
// HWPT allocation. Each function is one ioctl; object lifetimes are tracked in lib/iommufd.ts.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common.h"
#include "uapi.h"

namespace vfio {

void DmaBufferSpan(const Napi::CallbackInfo& info, size_t i, void** addr, size_t* length);

namespace {

using Iommufd = FdHandle;

Iommufd* Ictx(const Napi::CallbackInfo& info) { return OpenFdArg(info, Kind::Iommufd, "iommufd"); }

template <typename T>
void Call(const Napi::CallbackInfo& info, Iommufd* h, unsigned long req, const char* name, T* arg) {
  arg->size = sizeof(T);
  if (ioctl(h->fd, req, arg) < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "ioctl", name, h->path);
  }
}

Napi::Value IoasAllocCall(const Napi::CallbackInfo& info) {
  IoasAlloc a{};
  Call(info, Ictx(info), IOMMU_IOAS_ALLOC, "IOMMU_IOAS_ALLOC", &a);
  return Napi::Number::New(info.Env(), a.out_ioas_id);
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  IommuDestroy d{};
  d.id = ArgU32(info, 1, "id");
  Call(info, h, IOMMU_DESTROY, "IOMMU_DESTROY", &d);
  return Napi::Value();
}

// (h, ioasId, flags, buffer, byteOffset, length, iova) => iova (bigint)
// buffer: a DmaBuffer handle only. The device may DMA into mapped memory for as long as the
// mapping lives, so only memory whose lifetime the library controls is ever mapped.
Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  IoasMap m{};
  m.ioas_id = ArgU32(info, 1, "ioasId");
  m.flags = ArgU32(info, 2, "flags");
  void* base = nullptr;
  size_t total = 0;
  DmaBufferSpan(info, 3, &base, &total);
  uint64_t offset = ArgU64(info, 4, "byteOffset");
  uint64_t length = ArgU64(info, 5, "length");
  if (offset > total || length > total - offset) ThrowRange(env, "byteOffset + length is outside the memory");
  m.user_va = reinterpret_cast<uintptr_t>(base) + offset;
  if (m.user_va % static_cast<uintptr_t>(sysconf(_SC_PAGESIZE))) ThrowRange(env, "byteOffset must be page-aligned");
  m.length = length;
  m.iova = ArgU64(info, 6, "iova");
  Call(info, h, IOMMU_IOAS_MAP, "IOMMU_IOAS_MAP", &m);
  return ToBigInt(env, m.iova);
}

// (h, ioasId, flags, fd, start, length, iova) => iova
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  IoasMapFile m{};
  m.ioas_id = ArgU32(info, 1, "ioasId");
  m.flags = ArgU32(info, 2, "flags");
  m.fd = ArgI32(info, 3, "fd");
  m.start = ArgU64(info, 4, "start");
  m.length = ArgU64(info, 5, "length");
  m.iova = ArgU64(info, 6, "iova");
  Call(info, h, IOMMU_IOAS_MAP_FILE, "IOMMU_IOAS_MAP_FILE", &m);
  return ToBigInt(info.Env(), m.iova);
}

// (h, ioasId, iova, length) => bytes unmapped (a number: no mapping total reaches 2^53)
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  IoasUnmap u{};
  u.ioas_id = ArgU32(info, 1, "ioasId");
  u.iova = ArgU64(info, 2, "iova");
  u.length = ArgU64(info, 3, "length");
  Call(info, h, IOMMU_IOAS_UNMAP, "IOMMU_IOAS_UNMAP", &u);
  return Napi::Number::New(info.Env(), static_cast<double>(u.length));
}

// (h, ioasId) => { ranges: BigUint64Array [start, last, ...], alignment: bigint }
Napi::Value IovaRanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  uint32_t ioas = ArgU32(info, 1, "ioasId");
  std::vector<IovaRange> ranges(8);
  IoasIovaRanges r{};
  for (int attempt = 0; attempt < 4; attempt++) {
    r = IoasIovaRanges{};
    r.size = sizeof(r);
    r.ioas_id = ioas;
    r.num_iovas = static_cast<uint32_t>(ranges.size());
    r.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
    if (ioctl(h->fd, IOMMU_IOAS_IOVA_RANGES, &r) == 0) break;
    int err = errno;
    if (err != EMSGSIZE) ThrowErrno(env, err, "ioctl", "IOMMU_IOAS_IOVA_RANGES", h->path);
    ranges.resize(r.num_iovas);
  }
  auto out = Napi::Object::New(env);
  auto arr = Napi::BigUint64Array::New(env, r.num_iovas * 2);
  for (uint32_t i = 0; i < r.num_iovas; i++) {
    arr[2 * i] = ranges[i].start;
    arr[2 * i + 1] = ranges[i].last;
  }
  out.Set("ranges", arr);
  out.Set("alignment", ToBigInt(env, r.out_iova_alignment));
  return out;
}

// (h, ioasId, ranges: BigUint64Array [start, last, ...])
Napi::Value AllowIovas(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  IoasAllowIovas a{};
  a.ioas_id = ArgU32(info, 1, "ioasId");
  Bytes b = ArgBytes(info, 2, "ranges");
  if (b.length % sizeof(IovaRange)) ThrowRange(info.Env(), "ranges must hold start/last pairs");
  std::vector<IovaRange> ranges(b.length / sizeof(IovaRange));
  if (b.length) memcpy(ranges.data(), b.data, b.length);
  a.num_iovas = static_cast<uint32_t>(ranges.size());
  a.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
  Call(info, h, IOMMU_IOAS_ALLOW_IOVAS, "IOMMU_IOAS_ALLOW_IOVAS", &a);
  return Napi::Value();
}

// (h, flags, dstIoas, srcIoas, length, dstIova, srcIova) => dstIova
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  IoasCopy c{};
  c.flags = ArgU32(info, 1, "flags");
  c.dst_ioas_id = ArgU32(info, 2, "dstIoasId");
  c.src_ioas_id = ArgU32(info, 3, "srcIoasId");
  c.length = ArgU64(info, 4, "length");
  c.dst_iova = ArgU64(info, 5, "dstIova");
  c.src_iova = ArgU64(info, 6, "srcIova");
  Call(info, h, IOMMU_IOAS_COPY, "IOMMU_IOAS_COPY", &c);
  return ToBigInt(info.Env(), c.dst_iova);
}

// (h, op, optionId, objectId, value) => value (bigint)
Napi::Value Option(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  IommuOption o{};
  o.op = static_cast<uint16_t>(ArgU32(info, 1, "op"));
  o.option_id = ArgU32(info, 2, "optionId");
  o.object_id = ArgU32(info, 3, "objectId");
  o.val64 = ArgU64(info, 4, "value");
  Call(info, h, IOMMU_OPTION, "IOMMU_OPTION", &o);
  return ToBigInt(info.Env(), o.val64);
}

// (h, devId) => { type, capabilities: bigint, maxPasidLog2, data: Uint8Array }
Napi::Value HwInfoCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  std::vector<uint8_t> data(256, 0);
  HwInfo w{};
  w.dev_id = ArgU32(info, 1, "devId");
  w.data_len = static_cast<uint32_t>(data.size());
  w.data_uptr = reinterpret_cast<uintptr_t>(data.data());
  Call(info, h, IOMMU_GET_HW_INFO, "IOMMU_GET_HW_INFO", &w);
  auto out = Napi::Object::New(env);
  out.Set("type", Napi::Number::New(env, w.out_data_type));
  out.Set("capabilities", ToBigInt(env, w.out_capabilities));
  out.Set("maxPasidLog2", Napi::Number::New(env, w.out_max_pasid_log2));
  size_t n = w.data_len < data.size() ? w.data_len : data.size();
  auto bytes = Napi::Uint8Array::New(env, n);
  memcpy(bytes.Data(), data.data(), n);
  out.Set("data", bytes);
  return out;
}

// (h, flags, devId, ptId) => hwpt id
Napi::Value HwptAllocCall(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  HwptAlloc a{};
  a.flags = ArgU32(info, 1, "flags");
  a.dev_id = ArgU32(info, 2, "devId");
  a.pt_id = ArgU32(info, 3, "ptId");
  Call(info, h, IOMMU_HWPT_ALLOC, "IOMMU_HWPT_ALLOC", &a);
  return Napi::Number::New(info.Env(), a.out_hwpt_id);
}

}  // namespace

void InitIommufd(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "iommufdOpen", FdOpenAs<Kind::Iommufd>);
  Export(env, exports, "iommufdFromFd", FdFromFdAs<Kind::Iommufd>);
  Export(env, exports, "iommufdClose", FdCloseAs<Kind::Iommufd>);
  Export(env, exports, "iommufdFd", FdNumberAs<Kind::Iommufd>);
  Export(env, exports, "ioasAlloc", IoasAllocCall);
  Export(env, exports, "iommufdDestroy", Destroy);
  Export(env, exports, "ioasMap", Map);
  Export(env, exports, "ioasMapFile", MapFile);
  Export(env, exports, "ioasUnmap", Unmap);
  Export(env, exports, "ioasIovaRanges", IovaRanges);
  Export(env, exports, "ioasAllowIovas", AllowIovas);
  Export(env, exports, "ioasCopy", Copy);
  Export(env, exports, "iommufdOption", Option);
  Export(env, exports, "iommufdHwInfo", HwInfoCall);
  Export(env, exports, "iommufdHwptAlloc", HwptAllocCall);
}

}  // namespace vfio
