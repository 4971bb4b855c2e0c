// Plain fds for the legacy path and for tests: a group (/dev/vfio/N) or container
// (/dev/vfio/vfio), opened and closed here so errors carry errno and path like the rest.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common.h"
#include "uapi.h"

namespace vfio {

void DmaBufferSpan(const Napi::CallbackInfo& info, size_t i, void** addr, size_t* length);

namespace {

using Fd = FdHandle;

Fd* Get(const Napi::CallbackInfo& info) { return OpenFdArg(info, Kind::Fd, "fd"); }

// (group) => flags (VIABLE=1, CONTAINER_SET=2)
Napi::Value GroupStatusCall(const Napi::CallbackInfo& info) {
  Fd* f = Get(info);
  GroupStatus s{sizeof(GroupStatus), 0};
  if (ioctl(f->fd, VFIO_GROUP_GET_STATUS, &s) < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "ioctl", "VFIO_GROUP_GET_STATUS", f->path);
  }
  return Napi::Number::New(info.Env(), s.flags);
}

// (group, containerOrIommufdFd: number)
Napi::Value SetContainer(const Napi::CallbackInfo& info) {
  Fd* f = Get(info);
  int32_t cfd = ArgI32(info, 1, "containerFd");
  if (ioctl(f->fd, VFIO_GROUP_SET_CONTAINER, &cfd) < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "ioctl", "VFIO_GROUP_SET_CONTAINER", f->path);
  }
  return Napi::Value();
}

// (group, name) => device fd (a plain number; lib/ wraps it with deviceFromFd, owned)
Napi::Value GetDeviceFd(const Napi::CallbackInfo& info) {
  Fd* f = Get(info);
  std::string name = ArgString(info, 1, "name");
  int fd = ioctl(f->fd, VFIO_GROUP_GET_DEVICE_FD, name.c_str());
  if (fd < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "ioctl", "VFIO_GROUP_GET_DEVICE_FD", f->path);
  }
  return Napi::Number::New(info.Env(), fd);
}

// (container, request: 'check' | 'set', arg) => ioctl result
Napi::Value ContainerCall(const Napi::CallbackInfo& info) {
  Fd* f = Get(info);
  std::string what = ArgString(info, 1, "request");
  unsigned long arg = ArgU32(info, 2, "arg");
  unsigned long req = what == "check" ? VFIO_CHECK_EXTENSION : what == "set" ? VFIO_SET_IOMMU : VFIO_GET_API_VERSION;
  const char* name = what == "check" ? "VFIO_CHECK_EXTENSION"
                     : what == "set" ? "VFIO_SET_IOMMU"
                                     : "VFIO_GET_API_VERSION";
  int r = ioctl(f->fd, req, arg);
  if (r < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "ioctl", name, f->path);
  }
  return Napi::Number::New(info.Env(), r);
}

// (container, buffer: DmaBuffer handle, byteOffset, length, iova, flags) type1 MAP_DMA
Napi::Value Type1Map(const Napi::CallbackInfo& info) {
  Fd* f = Get(info);
  void* base = nullptr;
  size_t total = 0;
  DmaBufferSpan(info, 1, &base, &total);
  uint64_t off = ArgU64(info, 2, "byteOffset");
  uint64_t len = ArgU64(info, 3, "length");
  if (off > total || len > total - off) ThrowRange(info.Env(), "byteOffset + length is outside the memory");
  Type1DmaMap m{sizeof(Type1DmaMap), ArgU32(info, 5, "flags"), reinterpret_cast<uintptr_t>(base) + off,
                ArgU64(info, 4, "iova"), len};
  if (ioctl(f->fd, VFIO_IOMMU_MAP_DMA, &m) < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "ioctl", "VFIO_IOMMU_MAP_DMA", f->path);
  }
  return Napi::Value();
}

Napi::Value Type1Unmap(const Napi::CallbackInfo& info) {
  Fd* f = Get(info);
  Type1DmaUnmap u{sizeof(Type1DmaUnmap), 0, ArgU64(info, 1, "iova"), ArgU64(info, 2, "length")};
  if (ioctl(f->fd, VFIO_IOMMU_UNMAP_DMA, &u) < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "ioctl", "VFIO_IOMMU_UNMAP_DMA", f->path);
  }
  return ToBigInt(info.Env(), u.size);
}

}  // namespace

void InitGroup(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "fdOpen", FdOpenAs<Kind::Fd>);
  Export(env, exports, "fdClose", FdCloseAs<Kind::Fd>);
  Export(env, exports, "fdNumber", FdNumberAs<Kind::Fd>);
  Export(env, exports, "groupStatus", GroupStatusCall);
  Export(env, exports, "groupSetContainer", SetContainer);
  Export(env, exports, "groupGetDeviceFd", GetDeviceFd);
  Export(env, exports, "containerCall", ContainerCall);
  Export(env, exports, "type1Map", Type1Map);
  Export(env, exports, "type1Unmap", Type1Unmap);
}

}  // namespace vfio
