// Type tags, unwrapping, and the fd handle every fd-backed kernel object shares.
#include "handles.h"

#include <fcntl.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"

namespace vfio {

namespace {

// Random 128-bit tags, one per Kind (napi_type_tag_object).
const napi_type_tag kTags[] = {
    {0x6a1b3c2d4e5f6071ULL, 0x8293a4b5c6d7e8f9ULL},  // Device
    {0x0f1e2d3c4b5a6978ULL, 0x8796a5b4c3d2e1f0ULL},  // Iommufd
    {0x13579bdf2468ace0ULL, 0xfdb97531eca86420ULL},  // DmaBuffer
    {0x2b4d6f8091a3c5e7ULL, 0x7e5c3a1908f6d4b2ULL},  // Mapping
    {0x5a5aa5a5c3c33c3cULL, 0x9696696912122121ULL},  // IrqWatcher
    {0x71c2d3e4f5061728ULL, 0x394a5b6c7d8e9fa0ULL},  // Group
    {0x4e6f2a1c9d8b7a65ULL, 0x0c1d2e3f40516273ULL},  // Container
};

}  // namespace

const napi_type_tag* TagFor(Kind kind) { return &kTags[static_cast<int>(kind)]; }

bool HasKind(Napi::Env env, const Napi::Value& v, Kind kind) {
  // Only Externals carry our tags. Checking the type first matters: the tag check on null or
  // undefined would leave a pending JS exception behind.
  napi_valuetype type;
  if (v.IsEmpty() || napi_typeof(env, v, &type) != napi_ok || type != napi_external) return false;
  bool ok = false;
  return napi_check_object_type_tag(env, v, TagFor(kind), &ok) == napi_ok && ok;
}

Handle* UnwrapAny(const Napi::Value& v, Kind kind, const char* what) {
  Napi::Env env = v.Env();
  void* data = nullptr;
  if (!HasKind(env, v, kind) || napi_get_value_external(env, v, &data) != napi_ok) {
    ThrowType(env, std::string("expected a native ") + what + " handle");
  }
  return static_cast<Handle*>(data);
}

void FdHandle::Release() {
  if (fd >= 0 && own) close(fd);
  fd = -1;
}

FdHandle* OpenFdArg(const Napi::CallbackInfo& info, size_t i, Kind kind, const char* what) {
  auto* h = Unwrap<FdHandle>(info[i], kind, what);
  if (h->fd < 0) ThrowErrno(info.Env(), EBADF, "ioctl", nullptr, h->path);
  return h;
}

Napi::Value NewFdHandle(Napi::Env env, int fd, Kind kind, std::string path) {
  return WrapHandle(env, new FdHandle(GetAddon(env), fd, true, std::move(path)), kind);
}

Napi::Value FdOpen(const Napi::CallbackInfo& info, Kind kind) {
  std::string path = ArgString(info, 0, "path");
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "open", nullptr, path);
  }
  return NewFdHandle(info.Env(), fd, kind, path);
}

Napi::Value FdFromFd(const Napi::CallbackInfo& info, Kind kind) {
  int32_t fd = ArgI32(info, 0, "fd");
  if (fd < 0) ThrowRange(info.Env(), "fd must be a non-negative integer");
  if (fcntl(fd, F_GETFD) < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "fcntl");
  }
  std::string path = info[2].IsString() ? ArgString(info, 2, "path") : std::string();
  return WrapHandle(info.Env(), new FdHandle(GetAddon(info.Env()), fd, info[1].ToBoolean(), path), kind);
}

Napi::Value FdClose(const Napi::CallbackInfo& info, Kind kind) {
  Unwrap<FdHandle>(info[0], kind, "fd")->Release();
  return Napi::Value();
}

Napi::Value FdNumber(const Napi::CallbackInfo& info, Kind kind) {
  return Napi::Number::New(info.Env(), Unwrap<FdHandle>(info[0], kind, "fd")->fd);
}

}  // namespace vfio
