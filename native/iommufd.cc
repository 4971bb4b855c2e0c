// An iommufd (/dev/iommu): IOAS allocation, DMA map/unmap, IOVA ranges, options, HW info,
// HWPTs (allocation, dirty tracking, invalidation), vIOMMUs, vDEVICEs, fault and event queues. Each function is one
// ioctl; object lifetimes are tracked in lib/iommufd.ts.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common.h"

namespace vfio {

namespace {

using Iommufd = FdHandle;

Iommufd* Ictx(const Napi::CallbackInfo& info) { return OpenFdArg(info, 0, Kind::Iommufd, "iommufd"); }

// Every iommufd ioctl's struct starts with its own size.
template <Ioctl I>
void Run(const Napi::CallbackInfo& info, Iommufd* h, typename IoctlArg<I>::type* arg) {
  arg->size = sizeof(*arg);
  Call<I>(info.Env(), h, arg);
}

Napi::Value IoasAllocCall(const Napi::CallbackInfo& info) {
  iommu_ioas_alloc a{};
  Run<Ioctl::IOMMU_IOAS_ALLOC>(info, Ictx(info), &a);
  return Napi::Number::New(info.Env(), a.out_ioas_id);
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_destroy d{};
  d.id = ArgU32(info, 1, "id");
  Run<Ioctl::IOMMU_DESTROY>(info, h, &d);
  return Napi::Value();
}

// (h): IOMMU_IOAS_CHANGE_PROCESS, the pinned-page accounting of every mapping moves to this process.
Napi::Value ChangeProcess(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_ioas_change_process c{};
  Run<Ioctl::IOMMU_IOAS_CHANGE_PROCESS>(info, h, &c);
  return Napi::Value();
}

// (h, buffer; slots: 0 ioasId, 1 flags, 2 byteOffset, 3 length, 4-5 iova as a U64Pair) => the
// iova, left in native.results (LeaveU64). buffer: a DmaBuffer handle only. The device may DMA into
// mapped memory for as long as the mapping lives, so only memory whose lifetime the library
// controls is ever mapped. A hot call, so its arguments come through native.args (args.h).
Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  Slots in(env, h->addon->args);
  iommu_ioas_map m{};
  m.ioas_id = in.U32(0, "ioasId");
  m.flags = in.U32(1, "flags");
  uint64_t offset = in.Index(2, "byteOffset");
  uint64_t length = in.Index(3, "length");
  m.iova = in.U64Pair(4, "iova");
  void* base = nullptr;
  size_t total = 0;
  DmaBufferSpan(info, 1, &base, &total);
  if (offset > total || length > total - offset) ThrowRange(env, "byteOffset + length is outside the memory");
  m.user_va = reinterpret_cast<uintptr_t>(base) + offset;  // alignment: the kernel's rule (EINVAL)
  m.length = length;
  Run<Ioctl::IOMMU_IOAS_MAP>(info, h, &m);
  LeaveU64(h->addon->results, m.iova);
  return Napi::Value();
}

// (h, ioasId, flags, fd, start, length, iova) => iova
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_ioas_map_file m{};
  m.ioas_id = ArgU32(info, 1, "ioasId");
  m.flags = ArgU32(info, 2, "flags");
  m.fd = ArgI32(info, 3, "fd");
  m.start = ArgU64(info, 4, "start");
  m.length = ArgU64(info, 5, "length");
  m.iova = ArgU64(info, 6, "iova");
  Run<Ioctl::IOMMU_IOAS_MAP_FILE>(info, h, &m);
  return ToBigInt(info.Env(), m.iova);
}

// (h; slots: 0 ioasId, 1-2 iova and 3-4 length as U64Pairs) => bytes unmapped, left in
// native.results (LeaveU64). A hot call, so its arguments come through native.args (args.h).
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  Slots in(info.Env(), h->addon->args);
  iommu_ioas_unmap u{};
  u.ioas_id = in.U32(0, "ioasId");
  u.iova = in.U64Pair(1, "iova");
  u.length = in.U64Pair(3, "length");
  Run<Ioctl::IOMMU_IOAS_UNMAP>(info, h, &u);
  LeaveU64(h->addon->results, u.length);
  return Napi::Value();
}

// (h, ioasId, iova, length) => [physical address, physically contiguous bytes from it]
Napi::Value NoiommuGetPa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  iommu_ioas_noiommu_get_pa p{};
  p.ioas_id = ArgU32(info, 1, "ioasId");
  p.iova = ArgU64(info, 2, "iova");
  p.length = ArgU64(info, 3, "length");
  Run<Ioctl::IOMMU_IOAS_NOIOMMU_GET_PA>(info, h, &p);
  auto out = Napi::Array::New(env, 2);
  out.Set(0u, ToBigInt(env, p.out_phys));
  out.Set(1u, ToBigInt(env, p.length));
  return out;
}

// IOMMU_IOAS_IOVA_RANGES with the ranges array right after the struct in one buffer; on
// EMSGSIZE the kernel reports how many ranges there are in num_iovas.
void PrepareRanges(std::vector<uint8_t>& buf, uint32_t ioas) {
  iommu_ioas_iova_ranges r{};
  r.size = sizeof(r);
  r.ioas_id = ioas;
  r.num_iovas = static_cast<uint32_t>((buf.size() - sizeof(r)) / sizeof(iommu_iova_range));
  r.allowed_iovas = reinterpret_cast<uintptr_t>(buf.data() + sizeof(r));
  memcpy(buf.data(), &r, sizeof(r));
}

size_t RangesNeed(const std::vector<uint8_t>& buf) {
  iommu_ioas_iova_ranges r;
  memcpy(&r, buf.data(), sizeof(r));
  return sizeof(r) + r.num_iovas * sizeof(iommu_iova_range);
}

// (h, ioasId) => { ranges: BigUint64Array [start, last, ...], alignment: bigint }
Napi::Value IovaRanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  uint32_t ioas = ArgU32(info, 1, "ioasId");
  std::vector<uint8_t> buf =
      GrowAndRetry(env, h, Ioctl::IOMMU_IOAS_IOVA_RANGES, sizeof(iommu_ioas_iova_ranges) + 8 * sizeof(iommu_iova_range),
                   EMSGSIZE, PrepareRanges, ioas, RangesNeed);
  iommu_ioas_iova_ranges r;
  memcpy(&r, buf.data(), sizeof(r));
  auto out = Napi::Object::New(env);
  auto arr = Napi::BigUint64Array::New(env, r.num_iovas * 2);
  for (uint32_t i = 0; i < r.num_iovas; i++) {
    iommu_iova_range range;
    memcpy(&range, buf.data() + sizeof(r) + i * sizeof(range), sizeof(range));
    arr[2 * i] = range.start;
    arr[2 * i + 1] = range.last;
  }
  out.Set("ranges", arr);
  out.Set("alignment", ToBigInt(env, r.out_iova_alignment));
  return out;
}

// (h, ioasId, ranges: BigUint64Array [start, last, ...])
Napi::Value AllowIovas(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_ioas_allow_iovas a{};
  a.ioas_id = ArgU32(info, 1, "ioasId");
  Bytes b = ArgBytes(info, 2, "ranges");
  if (b.length % sizeof(iommu_iova_range)) ThrowRange(info.Env(), "ranges must hold start/last pairs");
  std::vector<iommu_iova_range> ranges(b.length / sizeof(iommu_iova_range));
  if (b.length) memcpy(ranges.data(), b.data, b.length);
  a.num_iovas = static_cast<uint32_t>(ranges.size());
  a.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
  Run<Ioctl::IOMMU_IOAS_ALLOW_IOVAS>(info, h, &a);
  return Napi::Value();
}

// (h, flags, dstIoas, srcIoas, length, dstIova, srcIova) => dstIova
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_ioas_copy c{};
  c.flags = ArgU32(info, 1, "flags");
  c.dst_ioas_id = ArgU32(info, 2, "dstIoasId");
  c.src_ioas_id = ArgU32(info, 3, "srcIoasId");
  c.length = ArgU64(info, 4, "length");
  c.dst_iova = ArgU64(info, 5, "dstIova");
  c.src_iova = ArgU64(info, 6, "srcIova");
  Run<Ioctl::IOMMU_IOAS_COPY>(info, h, &c);
  return ToBigInt(info.Env(), c.dst_iova);
}

// (h, op, optionId, objectId, value) => value (bigint)
Napi::Value Option(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_option o{};
  o.op = static_cast<uint16_t>(ArgU32(info, 1, "op"));
  o.option_id = ArgU32(info, 2, "optionId");
  o.object_id = ArgU32(info, 3, "objectId");
  o.val64 = ArgU64(info, 4, "value");
  Run<Ioctl::IOMMU_OPTION>(info, h, &o);
  return ToBigInt(info.Env(), o.val64);
}

// (h, op, ioasId) => the compat IOAS id (IOMMU_VFIO_IOAS_GET), else ioasId
Napi::Value VfioIoas(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_vfio_ioas v{};
  v.op = static_cast<uint16_t>(ArgU32(info, 1, "op"));
  v.ioas_id = ArgU32(info, 2, "ioasId");
  Run<Ioctl::IOMMU_VFIO_IOAS>(info, h, &v);
  return Napi::Number::New(info.Env(), v.ioas_id);
}

// (h, devId, flags, inDataType) => { type, capabilities: bigint, maxPasidLog2, data: Uint8Array }
// flags IOMMU_HW_INFO_FLAG_INPUT_TYPE (6.17+) asks for the data of type inDataType.
Napi::Value HwInfoCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  std::vector<uint8_t> data(256, 0);
  iommu_hw_info w{};
  w.dev_id = ArgU32(info, 1, "devId");
  w.flags = ArgU32(info, 2, "flags");
  w.out_data_type = ArgU32(info, 3, "inDataType");
  w.data_len = static_cast<uint32_t>(data.size());
  w.data_uptr = reinterpret_cast<uintptr_t>(data.data());
  Run<Ioctl::IOMMU_GET_HW_INFO>(info, h, &w);
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

// (h, flags, devId, ptId, dataType, data: Uint8Array | null, faultId) => hwpt id
Napi::Value HwptAllocCall(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_hwpt_alloc a{};
  a.flags = ArgU32(info, 1, "flags");
  a.dev_id = ArgU32(info, 2, "devId");
  a.pt_id = ArgU32(info, 3, "ptId");
  a.data_type = ArgU32(info, 4, "dataType");
  if (!info[5].IsNull() && !info[5].IsUndefined()) {
    Bytes d = ArgBytes(info, 5, "data");  // copied by the kernel during the call
    if (d.length > UINT32_MAX) ThrowRange(info.Env(), "data is too long");
    a.data_len = static_cast<uint32_t>(d.length);
    a.data_uptr = reinterpret_cast<uintptr_t>(d.data);
  }
  a.fault_id = ArgU32(info, 6, "faultId");
  Run<Ioctl::IOMMU_HWPT_ALLOC>(info, h, &a);
  return Napi::Number::New(info.Env(), a.out_hwpt_id);
}

// (h, hwptId, enable)
Napi::Value SetDirtyTracking(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_hwpt_set_dirty_tracking d{};
  d.hwpt_id = ArgU32(info, 1, "hwptId");
  d.flags = info[2].ToBoolean() ? 1 : 0;  // IOMMU_HWPT_DIRTY_TRACKING_ENABLE
  Run<Ioctl::IOMMU_HWPT_SET_DIRTY_TRACKING>(info, h, &d);
  return Napi::Value();
}

// (h, hwptId, flags, iova, length, pageSize, bitmap: BigUint64Array) — the kernel sets one bit
// per dirty page_size page of [iova, iova + length) into bitmap, which must hold them all.
Napi::Value GetDirtyBitmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  iommu_hwpt_get_dirty_bitmap g{};
  g.hwpt_id = ArgU32(info, 1, "hwptId");
  g.flags = ArgU32(info, 2, "flags");
  g.iova = ArgU64(info, 3, "iova");
  g.length = ArgU64(info, 4, "length");
  g.page_size = ArgU64(info, 5, "pageSize");
  Bytes bitmap = ArgBytes(info, 6, "bitmap");
  if (g.page_size == 0 || (g.page_size & (g.page_size - 1))) ThrowRange(env, "pageSize must be a power of two");
  // The kernel writes whole u64 words of the bitmap: one bit per page, rounded up to 64.
  uint64_t bits = g.length / g.page_size + (g.length % g.page_size ? 1 : 0);
  uint64_t need = (bits + 63) / 64 * 8;
  if (need > bitmap.length) ThrowRange(env, "bitmap holds fewer bits than length / pageSize");
  g.data = reinterpret_cast<uintptr_t>(bitmap.data);
  Run<Ioctl::IOMMU_HWPT_GET_DIRTY_BITMAP>(info, h, &g);
  return Napi::Value();
}

// (h, hwptId, dataType, entryLen, entries: Uint8Array, count) => entries the kernel handled
Napi::Value Invalidate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  iommu_hwpt_invalidate v{};
  v.hwpt_id = ArgU32(info, 1, "hwptId");
  v.data_type = ArgU32(info, 2, "dataType");
  v.entry_len = ArgU32(info, 3, "entryLen");
  Bytes entries = ArgBytes(info, 4, "entries");
  v.entry_num = ArgU32(info, 5, "count");
  if (static_cast<uint64_t>(v.entry_len) * v.entry_num > entries.length) {
    ThrowRange(env, "entries holds fewer than count entries of entryLen bytes");
  }
  v.data_uptr = reinterpret_cast<uintptr_t>(entries.data);
  // The kernel reports how many entries it handled even when one fails: that count is left in
  // native.results on the way out, thrown or not, for lib/ to put on the error.
  struct LeaveCount {
    const uint32_t* count;
    uint8_t* results;
    ~LeaveCount() { memcpy(results, count, sizeof(*count)); }
  } leave{&v.entry_num, h->addon->results};
  Run<Ioctl::IOMMU_HWPT_INVALIDATE>(info, h, &v);
  return Napi::Number::New(env, v.entry_num);
}

// (h, callback(errno)) => [faultId, event queue handle]
Napi::Value FaultQueueAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  if (!info[1].IsFunction()) ThrowType(env, "callback must be a function");
  iommu_fault_alloc f{};
  Run<Ioctl::IOMMU_FAULT_QUEUE_ALLOC>(info, h, &f);
  auto out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, f.out_fault_id));
  out.Set(1u, AdoptEventQueue(env, static_cast<int>(f.out_fault_fd), info[1], "vfio:fault-queue"));
  return out;
}

// (h, type, devId, hwptId, data: Uint8Array | null) => viommu id
Napi::Value ViommuAlloc(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_viommu_alloc v{};
  v.type = ArgU32(info, 1, "type");
  v.dev_id = ArgU32(info, 2, "devId");
  v.hwpt_id = ArgU32(info, 3, "hwptId");
  if (!info[4].IsNull() && !info[4].IsUndefined()) {
    Bytes d = ArgBytes(info, 4, "data");  // in and out (the kernel may write outputs back)
    if (d.length > UINT32_MAX) ThrowRange(info.Env(), "data is too long");
    v.data_len = static_cast<uint32_t>(d.length);
    v.data_uptr = reinterpret_cast<uintptr_t>(d.data);
  }
  if (v.data_len) {
    Run<Ioctl::IOMMU_VIOMMU_ALLOC>(info, h, &v);
  } else {
    // Without data, the struct as 6.13-6.15 know it, so those kernels take the call too.
    v.size = kViommuAllocMinsz;
    Call<Ioctl::IOMMU_VIOMMU_ALLOC>(info.Env(), h, &v);
  }
  return Napi::Number::New(info.Env(), v.out_viommu_id);
}

// (h, viommuId, devId, virtId) => vdevice id
Napi::Value VdeviceAlloc(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_vdevice_alloc v{};
  v.viommu_id = ArgU32(info, 1, "viommuId");
  v.dev_id = ArgU32(info, 2, "devId");
  v.virt_id = ArgU64(info, 3, "virtId");
  Run<Ioctl::IOMMU_VDEVICE_ALLOC>(info, h, &v);
  return Napi::Number::New(info.Env(), v.out_vdevice_id);
}

// (h, viommuId, type, index, iova, length) => HW queue id
Napi::Value HwQueueAlloc(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  iommu_hw_queue_alloc q{};
  q.viommu_id = ArgU32(info, 1, "viommuId");
  q.type = ArgU32(info, 2, "type");
  q.index = ArgU32(info, 3, "index");
  q.nesting_parent_iova = ArgU64(info, 4, "iova");
  q.length = ArgU64(info, 5, "length");
  Run<Ioctl::IOMMU_HW_QUEUE_ALLOC>(info, h, &q);
  return Napi::Number::New(info.Env(), q.out_hw_queue_id);
}

// (h, offset, length) => Mapping handle: an mmap of the iommufd, a vIOMMU's MMIO region (its
// offset and length come from the driver data of IOMMU_VIOMMU_ALLOC). MAP_SHARED, read-write.
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Iommufd* h = Ictx(info);
  off_t off = ArgOffset(info, 1);
  uint64_t length = ArgU64(info, 2, "length");
  if (length == 0 || length > (1ULL << 40)) ThrowRange(info.Env(), "length must be from 1 to 2^40");
  void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, h->fd, off);
  if (p == MAP_FAILED) {
    int err = errno;
    ThrowErrno(info.Env(), err, "mmap", nullptr, h->path);
  }
  return NewMapping(info.Env(), p, length);
}

// (h, viommuId, type, depth, callback(errno)) => [veventqId, event queue handle]
Napi::Value VeventqAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* h = Ictx(info);
  iommu_veventq_alloc v{};
  v.viommu_id = ArgU32(info, 1, "viommuId");
  v.type = ArgU32(info, 2, "type");
  v.veventq_depth = ArgU32(info, 3, "depth");
  if (!info[4].IsFunction()) ThrowType(env, "callback must be a function");
  Run<Ioctl::IOMMU_VEVENTQ_ALLOC>(info, h, &v);
  auto out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, v.out_veventq_id));
  out.Set(1u, AdoptEventQueue(env, static_cast<int>(v.out_veventq_fd), info[4], "vfio:vevent-queue"));
  return out;
}

}  // namespace

void InitIommufd(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "iommufdOpen", FdOpenAs<Kind::Iommufd>);
  Export(env, exports, "iommufdFromFd", FdFromFdAs<Kind::Iommufd>);
  Export(env, exports, "iommufdClose", FdCloseAs<Kind::Iommufd>);
  Export(env, exports, "iommufdFd", FdNumberAs<Kind::Iommufd>);
  Export(env, exports, "ioasAlloc", IoasAllocCall);
  Export(env, exports, "iommufdIoctl", [](const Napi::CallbackInfo& info) { return RawIoctl(info, Ictx(info)); });
  Export(env, exports, "iommufdDestroy", Destroy);
  Export(env, exports, "iommufdChangeProcess", ChangeProcess);
  Export(env, exports, "ioasMap", Map);
  Export(env, exports, "ioasMapFile", MapFile);
  Export(env, exports, "ioasUnmap", Unmap);
  Export(env, exports, "ioasNoiommuGetPa", NoiommuGetPa);
  Export(env, exports, "ioasIovaRanges", IovaRanges);
  Export(env, exports, "ioasAllowIovas", AllowIovas);
  Export(env, exports, "ioasCopy", Copy);
  Export(env, exports, "iommufdOption", Option);
  Export(env, exports, "iommufdHwInfo", HwInfoCall);
  Export(env, exports, "iommufdVfioIoas", VfioIoas);
  Export(env, exports, "iommufdHwptAlloc", HwptAllocCall);
  Export(env, exports, "hwptSetDirtyTracking", SetDirtyTracking);
  Export(env, exports, "hwptGetDirtyBitmap", GetDirtyBitmap);
  Export(env, exports, "hwptInvalidate", Invalidate);
  Export(env, exports, "iommufdFaultQueueAlloc", FaultQueueAlloc);
  Export(env, exports, "iommufdViommuAlloc", ViommuAlloc);
  Export(env, exports, "iommufdVdeviceAlloc", VdeviceAlloc);
  Export(env, exports, "iommufdVeventqAlloc", VeventqAlloc);
  Export(env, exports, "iommufdHwQueueAlloc", HwQueueAlloc);
  Export(env, exports, "iommufdMmap", Mmap);
}

}  // namespace vfio
