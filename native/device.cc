// A VFIO device fd (cdev /dev/vfio/devices/vfioN, or from VFIO_GROUP_GET_DEVICE_FD).
//
// Each function is one syscall (the info calls may retry once with a larger argsz).
// The state machine (blocked/bound/attached/closed) lives in lib/device.ts.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "common.h"

namespace vfio {

namespace {

using Device = FdHandle;

Device* Dev(const Napi::CallbackInfo& info) { return OpenFdArg(info, 0, Kind::Device, "device"); }

// A failed pread/pwrite/mmap: errno captured right here.
[[noreturn]] void Fail(const Napi::CallbackInfo& info, Device* d, const char* syscall) {
  int err = errno;
  ThrowErrno(info.Env(), err, syscall, nullptr, d->path);
}

// (dev, iommufd handle, token?: Uint8Array(16)) => devid
Napi::Value Bind(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  FdHandle* ictx = OpenFdArg(info, 1, Kind::Iommufd, "iommufd");
  vfio_device_bind_iommufd b{};
  b.argsz = kBindMinsz;
  b.iommufd = ictx->fd;
  uint8_t token[16];
  if (!info[2].IsUndefined() && !info[2].IsNull()) {
    Bytes t = ArgBytes(info, 2, "token");
    if (t.length != 16) ThrowRange(info.Env(), "token must be 16 bytes");
    memcpy(token, t.data, 16);
    b.argsz = sizeof(b);
    b.flags = 1;  // VFIO_DEVICE_BIND_FLAG_TOKEN
    b.token_uuid_ptr = reinterpret_cast<uintptr_t>(token);
  }
  Call<Ioctl::VFIO_DEVICE_BIND_IOMMUFD>(info.Env(), d, &b);
  return Napi::Number::New(info.Env(), b.out_devid);
}

// (dev, ptId, pasid: number, -1 for none) => ptId reported by the kernel
Napi::Value Attach(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  vfio_device_attach_iommufd_pt a{};
  a.argsz = kAttachMinsz;
  a.pt_id = ArgU32(info, 1, "ptId");
  int32_t pasid = ArgI32(info, 2, "pasid");
  if (pasid >= 0) {
    a.argsz = sizeof(a);
    a.flags = 1;  // VFIO_DEVICE_ATTACH_PASID
    a.pasid = static_cast<uint32_t>(pasid);
  }
  Call<Ioctl::VFIO_DEVICE_ATTACH_IOMMUFD_PT>(info.Env(), d, &a);
  return Napi::Number::New(info.Env(), a.pt_id);
}

Napi::Value Detach(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  vfio_device_detach_iommufd_pt a{};
  a.argsz = kDetachMinsz;
  int32_t pasid = ArgI32(info, 1, "pasid");
  if (pasid >= 0) {
    a.argsz = sizeof(a);
    a.flags = 1;  // VFIO_DEVICE_DETACH_PASID
    a.pasid = static_cast<uint32_t>(pasid);
  }
  Call<Ioctl::VFIO_DEVICE_DETACH_IOMMUFD_PT>(info.Env(), d, &a);
  return Napi::Value();
}

// GET_REGION_INFO takes its index at offset 8 of the argsz-grown struct.
void PrepareRegionInfo(std::vector<uint8_t>& buf, uint32_t index) {
  PrepareArgsz(buf, 0);
  memcpy(buf.data() + offsetof(vfio_region_info, index), &index, 4);
}

Napi::Value GetInfo(const Napi::CallbackInfo& info) {
  return ToUint8Array(info.Env(), GrowAndRetry(info.Env(), Dev(info), Ioctl::VFIO_DEVICE_GET_INFO,
                                               sizeof(vfio_device_info), 0, PrepareArgsz, 0, ArgszNeed));
}

// (dev) => argsz the kernel asks for; the struct is left in native.results. The fast path of
// info(): no buffer argument, no allocation; when the kernel reports capabilities (argsz > 24)
// lib/ calls deviceGetInfo.
Napi::Value GetInfoInto(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  vfio_device_info i{};
  i.argsz = sizeof(i);
  Call<Ioctl::VFIO_DEVICE_GET_INFO>(info.Env(), d, &i);
  static_assert(sizeof(i) <= sizeof(AddonData::results));
  memcpy(d->addon->results, &i, sizeof(i));
  return Napi::Number::New(info.Env(), i.argsz);
}

// GET_INFO into a stack struct, with the handle check but no buffer argument and no errno
// capture: the bench's split of info()'s time (bench only; num_regions, or -1).
Napi::Value BareGetInfo(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  vfio_device_info i{};
  i.argsz = sizeof(i);
  int r = ioctl(d->fd, Info(Ioctl::VFIO_DEVICE_GET_INFO).number, &i);
  return Napi::Number::New(info.Env(), r == 0 ? static_cast<double>(i.num_regions) : -1.0);
}

Napi::Value GetRegionInfo(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  uint32_t index = ArgU32(info, 1, "index");
  return ToUint8Array(info.Env(), GrowAndRetry(info.Env(), d, Ioctl::VFIO_DEVICE_GET_REGION_INFO,
                                               sizeof(vfio_region_info), 0, PrepareRegionInfo, index, ArgszNeed));
}

// (dev; slot 0: index) => argsz the kernel asks for; the struct is left in native.results. The
// fast path of regionInfo(); with capabilities (argsz > 32) lib/ calls deviceGetRegionInfo.
Napi::Value GetRegionInfoInto(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  vfio_region_info r{};
  r.argsz = sizeof(r);
  r.index = Slots(info.Env(), d->addon->args).U32(0, "index");
  Call<Ioctl::VFIO_DEVICE_GET_REGION_INFO>(info.Env(), d, &r);
  static_assert(sizeof(r) <= sizeof(AddonData::results));
  memcpy(d->addon->results, &r, sizeof(r));
  return Napi::Number::New(info.Env(), r.argsz);
}

// (dev; slot 0: index) => count; the whole struct vfio_irq_info is left in native.results.
Napi::Value GetIrqInfo(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  vfio_irq_info i{};
  i.argsz = sizeof(i);
  i.index = Slots(info.Env(), d->addon->args).U32(0, "index");
  Call<Ioctl::VFIO_DEVICE_GET_IRQ_INFO>(info.Env(), d, &i);
  static_assert(sizeof(i) <= sizeof(AddonData::results));
  memcpy(d->addon->results, &i, sizeof(i));
  return Napi::Number::New(info.Env(), i.count);
}

// (dev, flags, index, start, count, data?: Uint8Array | Int32Array)
Napi::Value SetIrqs(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  uint32_t flags = ArgU32(info, 1, "flags");
  uint32_t index = ArgU32(info, 2, "index");
  uint32_t start = ArgU32(info, 3, "start");
  uint32_t count = ArgU32(info, 4, "count");
  Bytes data{nullptr, 0};
  if (!info[5].IsUndefined() && !info[5].IsNull()) data = ArgBytes(info, 5, "data");
  if (data.length > 65536) ThrowRange(info.Env(), "data is too large");
  std::vector<uint8_t> buf(sizeof(vfio_irq_set) + data.length, 0);
  vfio_irq_set s{static_cast<uint32_t>(buf.size()), flags, index, start, count};
  memcpy(buf.data(), &s, sizeof(s));
  if (data.length) memcpy(buf.data() + sizeof(s), data.data, data.length);
  Call<Ioctl::VFIO_DEVICE_SET_IRQS>(info.Env(), d, reinterpret_cast<vfio_irq_set*>(buf.data()));
  return Napi::Value();
}

Napi::Value Reset(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  Call<Ioctl::VFIO_DEVICE_RESET>(info.Env(), d, nullptr);
  return Napi::Value();
}

// (dev, flags, data: Uint8Array) => ioctl result; the kernel may write into data (GET).
Napi::Value Feature(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  uint32_t flags = ArgU32(info, 1, "flags");
  Bytes data = ArgBytes(info, 2, "data");
  if (data.length > 65536) ThrowRange(info.Env(), "data is too large");
  std::vector<uint8_t> buf(sizeof(vfio_device_feature) + data.length, 0);
  vfio_device_feature f{static_cast<uint32_t>(buf.size()), flags};
  memcpy(buf.data(), &f, sizeof(f));
  memcpy(buf.data() + sizeof(f), data.data, data.length);
  int r = Call<Ioctl::VFIO_DEVICE_FEATURE>(info.Env(), d, reinterpret_cast<vfio_device_feature*>(buf.data()));
  memcpy(data.data, buf.data() + sizeof(f), data.length);
  return Napi::Number::New(info.Env(), r);
}

void PrepareHotResetInfo(std::vector<uint8_t>& buf, uint32_t) {
  vfio_pci_hot_reset_info h{static_cast<uint32_t>(buf.size()), 0, 0};
  memcpy(buf.data(), &h, sizeof(h));
}

// On ENOSPC the kernel reports how many devices there are in count.
size_t HotResetInfoNeed(const std::vector<uint8_t>& buf) {
  vfio_pci_hot_reset_info h;
  memcpy(&h, buf.data(), sizeof(h));
  return sizeof(vfio_pci_hot_reset_info) + h.count * sizeof(vfio_pci_dependent_device);
}

// (dev) => raw vfio_pci_hot_reset_info bytes (header + devices), grown until it fits.
Napi::Value HotResetInfoRaw(const Napi::CallbackInfo& info) {
  return ToUint8Array(info.Env(),
                      GrowAndRetry(info.Env(), Dev(info), Ioctl::VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
                                   sizeof(vfio_pci_hot_reset_info), ENOSPC, PrepareHotResetInfo, 0, HotResetInfoNeed));
}

// (dev, groupFds: Int32Array) — an empty array is the cdev form.
Napi::Value HotResetCall(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  Bytes fds = ArgBytes(info, 1, "groupFds");
  std::vector<uint8_t> buf(sizeof(vfio_pci_hot_reset) + fds.length, 0);
  vfio_pci_hot_reset h{static_cast<uint32_t>(buf.size()), 0, static_cast<uint32_t>(fds.length / 4)};
  memcpy(buf.data(), &h, sizeof(h));
  if (fds.length) memcpy(buf.data() + sizeof(h), fds.data, fds.length);
  Call<Ioctl::VFIO_DEVICE_PCI_HOT_RESET>(info.Env(), d, reinterpret_cast<vfio_pci_hot_reset*>(buf.data()));
  return Napi::Value();
}

// Exact-width pread/pwrite: one syscall of exactly `width` bytes, at the offset in slot 0 of
// native.args. A read leaves the value in native.results (a u32 or, for 8 bytes, a u64), a write
// takes it from slot 1 (a number, or a bigint for 8 bytes): nothing crosses but the handle.
template <typename T>
Napi::Value ReadWidth(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  off_t off = Slots(info.Env(), d->addon->args).Offset(0);
  T v;
  ssize_t n = pread(d->fd, &v, sizeof(T), off);
  if (n < 0) Fail(info, d, "pread");
  if (n != static_cast<ssize_t>(sizeof(T))) ThrowErrno(info.Env(), EIO, "pread", nullptr, d->path);
  if constexpr (sizeof(T) == 8) {
    memcpy(d->addon->results, &v, 8);
  } else {
    uint32_t w = v;
    memcpy(d->addon->results, &w, 4);
  }
  return Napi::Value();
}

template <typename T>
Napi::Value WriteWidth(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  Slots in(info.Env(), d->addon->args);
  off_t off = in.Offset(0);
  T v;
  if constexpr (sizeof(T) == 8) {
    v = in.U64(1);
  } else {
    uint32_t u = in.U32(1, "value");
    if (u > static_cast<uint32_t>(static_cast<T>(~T{0}))) ThrowRange(info.Env(), "value does not fit the access width");
    v = static_cast<T>(u);
  }
  ssize_t n = pwrite(d->fd, &v, sizeof(T), off);
  if (n < 0) Fail(info, d, "pwrite");
  if (n != static_cast<ssize_t>(sizeof(T))) ThrowErrno(info.Env(), EIO, "pwrite", nullptr, d->path);
  return Napi::Value();
}

// (dev, offset, bytes: Uint8Array) => bytes read (a short read is reported, not hidden)
Napi::Value PreadInto(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  off_t off = ArgOffset(info, 1);
  Bytes b = ArgBytes(info, 2, "buffer");
  ssize_t n = pread(d->fd, b.data, b.length, off);
  if (n < 0) Fail(info, d, "pread");
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

Napi::Value Pwrite(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  off_t off = ArgOffset(info, 1);
  Bytes b = ArgBytes(info, 2, "buffer");
  ssize_t n = pwrite(d->fd, b.data, b.length, off);
  if (n < 0) Fail(info, d, "pwrite");
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// (dev, offset in the fd, data, width: 1|2|4|8, eventfd handle | null to remove)
// VFIO_DEVICE_IOEVENTFD: the kernel writes `data` at `offset` whenever the eventfd is signalled.
Napi::Value Ioeventfd(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  vfio_device_ioeventfd e{};
  e.argsz = sizeof(e);
  e.offset = static_cast<uint64_t>(ArgOffset(info, 1));
  e.data = ArgU64(info, 2, "data");
  uint32_t width = ArgU32(info, 3, "width");
  if (width != 1 && width != 2 && width != 4 && width != 8) ThrowRange(info.Env(), "width must be 1, 2, 4 or 8");
  e.flags = width;  // VFIO_DEVICE_IOEVENTFD_8/16/32/64 are 1, 2, 4, 8: the width in bytes
  // null: remove; a watcher handle: the library's own eventfd; a number: an eventfd the caller owns.
  e.fd = info[4].IsNull() ? -1 : info[4].IsNumber() ? ArgI32(info, 4, "eventfd") : EventFdArg(info, 4);
  Call<Ioctl::VFIO_DEVICE_IOEVENTFD>(info.Env(), d, &e);
  return Napi::Value();
}

// (dev, offset, length, writable) => Mapping handle. MAP_SHARED, as VFIO requires.
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Device* d = Dev(info);
  off_t off = ArgOffset(info, 1);
  uint64_t length = ArgU64(info, 2, "length");
  if (length == 0 || length > (1ULL << 40)) ThrowRange(info.Env(), "length must be from 1 to 2^40");
  int prot = PROT_READ | (info[3].ToBoolean() ? PROT_WRITE : 0);
  void* p = mmap(nullptr, length, prot, MAP_SHARED, d->fd, off);
  if (p == MAP_FAILED) Fail(info, d, "mmap");
  return NewMapping(info.Env(), p, length);
}

}  // namespace

void InitDevice(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "deviceOpen", FdOpenAs<Kind::Device>);
  Export(env, exports, "deviceFromFd", FdFromFdAs<Kind::Device>);
  Export(env, exports, "deviceClose", FdCloseAs<Kind::Device>);
  Export(env, exports, "deviceFd", FdNumberAs<Kind::Device>);
  Export(env, exports, "deviceBind", Bind);
  Export(env, exports, "deviceAttach", Attach);
  Export(env, exports, "deviceDetach", Detach);
  Export(env, exports, "deviceGetInfo", GetInfo);
  Export(env, exports, "deviceGetInfoInto", GetInfoInto);
  Export(env, exports, "deviceBareGetInfo", BareGetInfo);
  Export(env, exports, "deviceGetRegionInfo", GetRegionInfo);
  Export(env, exports, "deviceGetRegionInfoInto", GetRegionInfoInto);
  Export(env, exports, "deviceGetIrqInfo", GetIrqInfo);
  Export(env, exports, "deviceSetIrqs", SetIrqs);
  Export(env, exports, "deviceReset", Reset);
  Export(env, exports, "deviceFeature", Feature);
  Export(env, exports, "deviceHotResetInfo", HotResetInfoRaw);
  Export(env, exports, "deviceHotReset", HotResetCall);
  Export(env, exports, "deviceRead8", ReadWidth<uint8_t>);
  Export(env, exports, "deviceRead16", ReadWidth<uint16_t>);
  Export(env, exports, "deviceRead32", ReadWidth<uint32_t>);
  Export(env, exports, "deviceRead64", ReadWidth<uint64_t>);
  Export(env, exports, "deviceWrite8", WriteWidth<uint8_t>);
  Export(env, exports, "deviceWrite16", WriteWidth<uint16_t>);
  Export(env, exports, "deviceWrite32", WriteWidth<uint32_t>);
  Export(env, exports, "deviceWrite64", WriteWidth<uint64_t>);
  Export(env, exports, "devicePreadInto", PreadInto);
  Export(env, exports, "devicePwrite", Pwrite);
  Export(env, exports, "deviceMmap", Mmap);
  Export(env, exports, "deviceIoeventfd", Ioeventfd);
  Export(env, exports, "deviceIoctl", [](const Napi::CallbackInfo& info) { return RawIoctl(info, Dev(info)); });
}

}  // namespace vfio
