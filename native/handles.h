// Type-tagged handles. Every resource is a Handle owned by a Napi::External tagged with its
// kind (napi_type_tag_object); lib/ holds the External and passes it back, and Unwrap checks
// the tag, so a wrong object can never be reinterpreted as another resource.
#pragma once

#include <napi.h>

#include <string>

#include "addon.h"

namespace vfio {

// A native resource. Release() frees the OS resource and is idempotent; the destructor
// (GC finalizer or env teardown) calls it as a backstop.
struct Handle {
  explicit Handle(AddonData* a) : addon(a) { addon->live.insert(this); }
  virtual ~Handle() {
    if (addon) addon->live.erase(this);
  }
  virtual void Release() = 0;
  AddonData* addon;
};

// One type tag per kind of handle.
enum class Kind { Device, Iommufd, DmaBuffer, Mapping, IrqWatcher, Group, Container };

const napi_type_tag* TagFor(Kind kind);
bool HasKind(Napi::Env env, const Napi::Value& v, Kind kind);
Handle* UnwrapAny(const Napi::Value& v, Kind kind, const char* what);
template <typename T>
T* Unwrap(const Napi::Value& v, Kind kind, const char* what) {
  return static_cast<T*>(UnwrapAny(v, kind, what));
}

template <typename T>
void FinalizeHandle(Napi::Env, T* handle) {
  delete handle;
}

template <typename T>
Napi::External<T> WrapHandle(Napi::Env env, T* handle, Kind kind) {
  auto ext = Napi::External<T>::New(env, handle, FinalizeHandle<T>);
  if (napi_type_tag_object(env, ext, TagFor(kind)) != napi_ok) {
    throw Napi::Error::New(env, "vfio: could not tag a native handle");
  }
  return ext;
}

// A file descriptor held by a handle: the device, iommufd, group and container fds.
// `own` says whether Release() closes it (fromFd may borrow).
struct FdHandle : Handle {
  FdHandle(AddonData* a, int f, bool o, std::string p) : Handle(a), fd(f), own(o), path(std::move(p)) {}
  ~FdHandle() override { Release(); }
  void Release() override;
  int fd;
  bool own;
  std::string path;
};

// The open FdHandle of `kind` in info[i]; throws EBADF once it is closed.
FdHandle* OpenFdArg(const Napi::CallbackInfo& info, size_t i, Kind kind, const char* what);

// An FdHandle of `kind` around a new fd (owned).
Napi::Value NewFdHandle(Napi::Env env, int fd, Kind kind, std::string path);

// The entry points every fd kind shares, with the kind baked in:
//   open(path) => handle, fromFd(fd, own, path?) => handle, close(handle), fd(handle) => number
Napi::Value FdOpen(const Napi::CallbackInfo& info, Kind kind);
Napi::Value FdFromFd(const Napi::CallbackInfo& info, Kind kind);
Napi::Value FdClose(const Napi::CallbackInfo& info, Kind kind);
Napi::Value FdNumber(const Napi::CallbackInfo& info, Kind kind);
template <Kind K>
Napi::Value FdOpenAs(const Napi::CallbackInfo& info) {
  return FdOpen(info, K);
}
template <Kind K>
Napi::Value FdFromFdAs(const Napi::CallbackInfo& info) {
  return FdFromFd(info, K);
}
template <Kind K>
Napi::Value FdCloseAs(const Napi::CallbackInfo& info) {
  return FdClose(info, K);
}
template <Kind K>
Napi::Value FdNumberAs(const Napi::CallbackInfo& info) {
  return FdNumber(info, K);
}

}  // namespace vfio
