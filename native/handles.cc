// Unwrapping typed handles, and the fd handle every fd-backed kernel object shares.
#include "handles.h"

#include <fcntl.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"

namespace vfio {

namespace {

// The live handle of `kind` that v holds, or null.
Handle* Find(Napi::Env env, const Napi::Value& v, Kind kind) {
  // Only Externals can be ours (napi_get_value_external refuses anything else without throwing);
  // their pointer is compared against the live set before any use.
  void* data = nullptr;
  if (v.IsEmpty() || napi_get_value_external(env, v, &data) != napi_ok) return nullptr;
  return FindLive(GetAddon(env), data, kind);
}

}  // namespace

double PointerKey(const void* p) {
  auto n = reinterpret_cast<uintptr_t>(p);
  return n < (uint64_t{1} << 53) ? static_cast<double>(n) : -1;
}

void* KeyPointer(double key) {
  if (!(key >= 0 && key < 9007199254740992.0) || static_cast<double>(static_cast<uint64_t>(key)) != key) return nullptr;
  return reinterpret_cast<void*>(static_cast<uintptr_t>(key));
}

Napi::Value HandleKey(const Napi::CallbackInfo& info) {
  void* data = nullptr;
  AddonData* addon = GetAddon(info.Env());
  if (info[0].IsEmpty() || napi_get_value_external(info.Env(), info[0], &data) != napi_ok ||
      addon->live.find(static_cast<Handle*>(data)) == addon->live.end()) {
    ThrowType(info.Env(), "expected a native handle");
  }
  return Napi::Number::New(info.Env(), PointerKey(data));
}

Handle* FindLive(AddonData* addon, void* data, Kind kind) {
  auto* h = static_cast<Handle*>(data);
  if (addon == nullptr || addon->live.find(h) == addon->live.end() || h->kind != kind) return nullptr;
  return h;
}

bool HasKind(Napi::Env env, const Napi::Value& v, Kind kind) { return Find(env, v, kind) != nullptr; }

Handle* UnwrapAny(const Napi::Value& v, Kind kind, const char* what) {
  Napi::Env env = v.Env();
  Handle* h = Find(env, v, kind);
  if (h == nullptr) ThrowType(env, std::string("expected a native ") + what + " handle");
  return h;
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
