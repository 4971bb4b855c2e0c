// Shared pieces of the addon: per-env data, type-tagged handles, errors, argument checks.
//
// Every resource is a Handle owned by a type-tagged Napi::External. The TypeScript layer
// holds the External and passes it back; Unwrap checks the tag, so a wrong object can never
// be reinterpreted as another resource. No static mutable state: everything hangs off
// AddonData, which is per env (main thread or worker).
#pragma once

#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace vfio {

struct Handle;

struct AddonData {
  // (errno, syscall, ioctl?, path?) => VfioError, supplied by lib/errors.ts at load time.
  Napi::FunctionReference makeError;
  // A no-op JS function: calling it fails once the thread is told to stop (worker.terminate(),
  // process.exit()), which is how a blocking wait notices that it must return.
  Napi::FunctionReference probe;
  // Every live handle, released by the env cleanup hook if JS never closed it.
  std::set<Handle*> live;
  // Set while the env tears down: no JS handles may be touched then.
  bool tearingDown = false;
  // uv handles closed but whose close callback has not run yet. The env's async cleanup hook
  // finishes only when this is 0, so no close callback can run after the addon is unloaded.
  int pendingCloses = 0;
  napi_async_cleanup_hook_handle cleanupHook = nullptr;
  void CloseDone();
};

// Close a uv_poll_t allocated with new; it is freed in the close callback, which is counted in
// AddonData::pendingCloses so that env teardown waits for it.
void ClosePoll(AddonData* addon, uv_poll_t* poll);

// Whether JS can still run on this thread (false once a worker is terminated or the process
// exits while native code blocks).
bool CanRunJs(Napi::Env env);

AddonData* GetAddon(Napi::Env env);

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

// Type tags, one per kind of handle.
enum class Kind { Device, Iommufd, DmaBuffer, Mapping, IrqWatcher, Fd };

template <typename T>
Napi::External<T> WrapHandle(Napi::Env env, T* handle, Kind kind);
Handle* UnwrapAny(const Napi::Value& v, Kind kind, const char* what);
template <typename T>
T* Unwrap(const Napi::Value& v, Kind kind, const char* what) {
  return static_cast<T*>(UnwrapAny(v, kind, what));
}
bool HasKind(Napi::Env env, const Napi::Value& v, Kind kind);

// Throw the JS VfioError for a failed syscall. `err` is the positive errno.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const char* ioctl = nullptr,
                             const std::string& path = std::string());
[[noreturn]] void ThrowType(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowClosed(Napi::Env env, const char* what);

// Argument checks. They throw TypeError/RangeError naming the argument.
double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* name);
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name);  // number or bigint
// A string for a syscall: a NUL byte inside it is a TypeError (it would silently truncate).
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);

// Bytes of an ArrayBuffer or any ArrayBufferView (never detached).
struct Bytes {
  uint8_t* data;
  size_t length;
};
Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name);

// Device memory or RAM mapped with mmap, shared by a Mapping (BAR) or a DmaBuffer handle.
// ArrayBuffers handed out over it are external; Release() detaches them all before munmap,
// so JS can never touch unmapped memory. An ArrayBuffer keeps the memory alive until it is
// collected (its finalizer holds a reference), so GC order cannot free it early.
struct MemoryBlock {
  void* addr = nullptr;
  size_t length = 0;
  int refs = 1;  // the owning handle + one per live ArrayBuffer
  bool unmapped = false;
  // Device memory the library has made inaccessible (memory decode off, D3, low power): the
  // ArrayBuffers over it are detached and native accessors refuse, so no access can SIGBUS.
  bool suspended = false;
  void Unmap();
  void Unref();
};

struct MemoryHandle : Handle {
  MemoryHandle(AddonData* a, void* addr, size_t length);
  ~MemoryHandle() override;
  void Release() override;
  // Detach every ArrayBuffer handed out (they are rebuilt after Resume by asking again).
  void DetachViews();
  Napi::ArrayBuffer ArrayBuffer(Napi::Env env);
  bool released() const { return block->unmapped; }
  MemoryBlock* block;
  std::vector<Napi::Reference<Napi::ArrayBuffer>> views;
};

Napi::Value ToBigInt(Napi::Env env, uint64_t v);

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

// The FdHandle of `kind` in info[0]; throws EBADF once it is closed.
FdHandle* OpenFdArg(const Napi::CallbackInfo& info, Kind kind, const char* what);

// The entry points every fd kind shares, with the kind baked in:
//   open(path) => handle, fromFd(fd, own, path?) => handle, close(handle), fd(handle) => number
Napi::Value FdOpen(const Napi::CallbackInfo& info, Kind kind);
Napi::Value FdFromFd(const Napi::CallbackInfo& info, Kind kind);
Napi::Value FdClose(const Napi::CallbackInfo& info, Kind kind, const char* what);
Napi::Value FdNumber(const Napi::CallbackInfo& info, Kind kind, const char* what);
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
  return FdClose(info, K, "fd");
}
template <Kind K>
Napi::Value FdNumberAs(const Napi::CallbackInfo& info) {
  return FdNumber(info, K, "fd");
}

// exports[name] = a JS function calling cb.
void Export(Napi::Env env, Napi::Object exports, const char* name, Napi::Function::Callback cb);

Napi::Object InitModule(Napi::Env env, Napi::Object exports);
void InitDevice(Napi::Env env, Napi::Object exports);
void InitIommufd(Napi::Env env, Napi::Object exports);
void InitDmaBuffer(Napi::Env env, Napi::Object exports);
void InitMapping(Napi::Env env, Napi::Object exports);
void InitIrqWatcher(Napi::Env env, Napi::Object exports);
void InitGroup(Napi::Env env, Napi::Object exports);

// Finalizer shared by all handle Externals.
template <typename T>
void FinalizeHandle(Napi::Env, T* handle) {
  delete handle;
}

const napi_type_tag* TagFor(Kind kind);

template <typename T>
Napi::External<T> WrapHandle(Napi::Env env, T* handle, Kind kind) {
  auto ext = Napi::External<T>::New(env, handle, FinalizeHandle<T>);
  napi_status s = napi_type_tag_object(env, ext, TagFor(kind));
  if (s != napi_ok) {
    throw Napi::Error::New(env, "vfio: could not tag a native handle");
  }
  return ext;
}

}  // namespace vfio
