// Plain fds for the legacy path and for tests: a group (/dev/vfio/N) or container
// (/dev/vfio/vfio), opened and closed here so errors carry errno and path like the rest.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common.h"
#include "uapi.h"

namespace vfio {

namespace {

struct Fd : Handle {
  Fd(AddonData* a, int f, std::string p) : Handle(a), fd(f), path(std::move(p)) {}
  ~Fd() override { Release(); }
  void Release() override {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  int fd;
  std::string path;
};

Fd* Get(const Napi::CallbackInfo& info) {
  auto* f = Unwrap<Fd>(info[0], Kind::Fd, "fd");
  if (f->fd < 0) ThrowErrno(info.Env(), EBADF, "ioctl", nullptr, f->path);
  return f;
}

Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "open", nullptr, path);
  }
  return WrapHandle(info.Env(), new Fd(GetAddon(info.Env()), fd, path), Kind::Fd);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Unwrap<Fd>(info[0], Kind::Fd, "fd")->Release();
  return Napi::Value();
}

Napi::Value Number(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Get(info)->fd); }

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

// (container, vaddrSource, byteOffset, length, iova, flags) type1 MAP_DMA
Napi::Value Type1Map(const Napi::CallbackInfo& info) {
  Fd* f = Get(info);
  Bytes b = ArgBytes(info, 1, "memory");
  uint64_t off = ArgU64(info, 2, "byteOffset");
  uint64_t len = ArgU64(info, 3, "length");
  if (off > b.length || len > b.length - off) ThrowRange(info.Env(), "byteOffset + length is outside the memory");
  Type1DmaMap m{sizeof(Type1DmaMap), ArgU32(info, 5, "flags"), reinterpret_cast<uintptr_t>(b.data) + off,
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
  auto fn = [&](const char* name, Napi::Function::Callback cb) {
    exports.Set(name, Napi::Function::New(env, cb, name));
  };
  fn("fdOpen", Open);
  fn("fdClose", Close);
  fn("fdNumber", Number);
  fn("groupStatus", GroupStatusCall);
  fn("groupSetContainer", SetContainer);
  fn("groupGetDeviceFd", GetDeviceFd);
  fn("containerCall", ContainerCall);
  fn("type1Map", Type1Map);
  fn("type1Unmap", Type1Unmap);
}

}  // namespace vfio
