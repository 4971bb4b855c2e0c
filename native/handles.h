// Typed handles. Every resource is a Handle owned by a Napi::External; lib/ holds the External
// and passes it back. Unwrap accepts an External only if its pointer is one of this env's live
// handles (AddonData::live, looked up without dereferencing it) and the handle is of the
// expected kind, so no other object, and no handle of another kind, is ever reinterpreted as a
// resource. (A live External keeps its Handle alive: only its GC finalizer deletes it.) This is
// the check napi_type_tag_object gives, at a fraction of its cost per call.
#pragma once

#include <napi.h>

#include <string>

#include "addon.h"

namespace vfio {

// A native resource. Release() frees the OS resource and is idempotent; the destructor
// (GC finalizer or env teardown) calls it as a backstop.
// One kind per sort of handle.
enum class Kind { None, Device, Iommufd, DmaBuffer, Mapping, IrqWatcher, EventQueue, Group, Container };

struct Handle {
  explicit Handle(AddonData* a) : addon(a) { addon->live.insert(this); }
  virtual ~Handle() {
    if (addon) addon->live.erase(this);
  }
  virtual void Release() = 0;
  AddonData* addon;
  Kind kind = Kind::None;  // set once, by WrapHandle
};

bool HasKind(Napi::Env env, const Napi::Value& v, Kind kind);
// The live handle of `kind` among `addon`'s whose pointer is `data` (an External's), or null;
// `data` is compared, never dereferenced, unless it is one of them.
Handle* FindLive(AddonData* addon, void* data, Kind kind);
// A pointer as a number JS can hold (the fast calls' keys, fast_calls.h), and back: an exact
// integer below 2^53, else null (which no live handle is). The number is only ever compared.
double PointerKey(const void* p);
void* KeyPointer(double key);
// (handle) => its key for the fast calls (fast_calls.h), for any live handle of this env.
Napi::Value HandleKey(const Napi::CallbackInfo& info);
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
  handle->kind = kind;
  return Napi::External<T>::New(env, handle, FinalizeHandle<T>);
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
