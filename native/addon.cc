// Module entry: per-env data, the env cleanup hook, errors, argument checks, memory blocks.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "common.h"

namespace vfio {

namespace {

// Random 128-bit tags, one per kind of handle (napi_type_tag_object).
const napi_type_tag kTags[] = {
    {0x6a1b3c2d4e5f6071ULL, 0x8293a4b5c6d7e8f9ULL},  // Device
    {0x0f1e2d3c4b5a6978ULL, 0x8796a5b4c3d2e1f0ULL},  // Iommufd
    {0x13579bdf2468ace0ULL, 0xfdb97531eca86420ULL},  // DmaBuffer
    {0x2b4d6f8091a3c5e7ULL, 0x7e5c3a1908f6d4b2ULL},  // Mapping
    {0x5a5aa5a5c3c33c3cULL, 0x9696696912122121ULL},  // IrqWatcher
    {0x71c2d3e4f5061728ULL, 0x394a5b6c7d8e9fa0ULL},  // Fd
};

// The env is tearing down (main thread exit, worker end): release every resource JS left open.
// Asynchronous, so that Node keeps running the loop (and keeps this addon loaded) until the
// close callbacks of our uv handles have run; a worker that was the only thread to load the
// addon unloads it right after its env is gone.
void CleanupEnv(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* addon = static_cast<AddonData*>(arg);
  addon->tearingDown = true;
  addon->cleanupHook = hook;
  // Finalizers that run later must not touch addon.
  std::set<Handle*> live;
  live.swap(addon->live);
  for (Handle* h : live) {
    h->Release();
    h->addon = nullptr;
  }
  if (addon->pendingCloses == 0) {
    addon->cleanupHook = nullptr;
    napi_remove_async_cleanup_hook(hook);
  }
}

void Noop(const Napi::CallbackInfo&) {}

Napi::Value Initialize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) ThrowType(env, "initialize: makeError must be a function");
  GetAddon(env)->makeError = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

}  // namespace

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  auto* addon = new AddonData();
  env.SetInstanceData<AddonData>(addon);
  addon->probe = Napi::Persistent(Napi::Function::New(env, Noop, "probe"));
  if (napi_add_async_cleanup_hook(env, CleanupEnv, addon, nullptr) != napi_ok) {
    throw Napi::Error::New(env, "vfio: could not register the env cleanup hook");
  }
  exports.Set("initialize", Napi::Function::New(env, Initialize, "initialize"));
  InitDevice(env, exports);
  InitIommufd(env, exports);
  InitDmaBuffer(env, exports);
  InitMapping(env, exports);
  InitIrqWatcher(env, exports);
  InitGroup(env, exports);
  return exports;
}

AddonData* GetAddon(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

void AddonData::CloseDone() {
  if (--pendingCloses == 0 && cleanupHook) {
    napi_async_cleanup_hook_handle hook = cleanupHook;
    cleanupHook = nullptr;
    napi_remove_async_cleanup_hook(hook);
  }
}

void ClosePoll(AddonData* addon, uv_poll_t* poll) {
  poll->data = addon;
  addon->pendingCloses++;
  uv_close(reinterpret_cast<uv_handle_t*>(poll), [](uv_handle_t* h) {
    auto* a = static_cast<AddonData*>(h->data);
    delete reinterpret_cast<uv_poll_t*>(h);
    a->CloseDone();
  });
}

bool CanRunJs(Napi::Env env) {
  AddonData* addon = GetAddon(env);
  if (addon->tearingDown || addon->probe.IsEmpty()) return false;
  napi_value result;
  napi_status s = napi_call_function(env, env.Undefined(), addon->probe.Value(), 0, nullptr, &result);
  if (s == napi_ok) return true;
  // A failed call may leave an exception pending; the caller returns at once anyway.
  napi_value ignored;
  napi_get_and_clear_last_exception(env, &ignored);
  return false;
}

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

void ThrowErrno(Napi::Env env, int err, const char* syscall, const char* ioctl, const std::string& path) {
  AddonData* addon = GetAddon(env);
  if (addon->makeError.IsEmpty()) {
    throw Napi::Error::New(env, std::string(syscall) + " failed: " + strerror(err));
  }
  Napi::Value e = addon->makeError.Call({
      Napi::Number::New(env, err),
      Napi::String::New(env, syscall),
      ioctl ? Napi::String::New(env, ioctl) : env.Undefined(),
      path.empty() ? env.Undefined() : Napi::String::New(env, path),
  });
  throw Napi::Error(env, e);
}

void ThrowType(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

void ThrowRange(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

void ThrowClosed(Napi::Env env, const char* what) { ThrowErrno(env, EBADF, what); }

double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d;
  // One napi call: it fails with napi_number_expected for anything but a number.
  if (napi_get_value_double(info.Env(), info[i], &d) != napi_ok) {
    ThrowType(info.Env(), std::string(name) + " must be a number");
  }
  return d;
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = ArgNumber(info, i, name);
  if (!(d >= 0 && d <= 4294967295.0) || std::floor(d) != d) {
    ThrowRange(info.Env(), std::string(name) + " must be an integer from 0 to 2^32-1");
  }
  return static_cast<uint32_t>(d);
}

int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = ArgNumber(info, i, name);
  if (!(d >= -2147483648.0 && d <= 2147483647.0) || std::floor(d) != d) {
    ThrowRange(info.Env(), std::string(name) + " must be a 32-bit integer");
  }
  return static_cast<int32_t>(d);
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  double d;
  if (napi_get_value_double(env, info[i], &d) == napi_ok) {
    if (!(d >= 0 && d <= 9007199254740991.0) || std::floor(d) != d) {
      ThrowRange(env, std::string(name) + " must be a non-negative safe integer or a bigint");
    }
    return static_cast<uint64_t>(d);
  }
  uint64_t v;
  bool lossless = false;
  if (napi_get_value_bigint_uint64(env, info[i], &v, &lossless) == napi_ok) {
    if (!lossless) ThrowRange(env, std::string(name) + " must be from 0 to 2^64-1");
    return v;
  }
  ThrowType(env, std::string(name) + " must be a bigint or a number");
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) ThrowType(info.Env(), std::string(name) + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) ThrowType(info.Env(), std::string(name) + " must not contain a NUL byte");
  return s;
}

size_t ElementSize(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:
      return 8;
  }
}

Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  napi_value v = info[i];
  bool is = false;
  void* data = nullptr;
  napi_value abv = nullptr;
  size_t length = 0;
  // Typed arrays first (the common case): one call gives the data pointer and the length.
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count = 0, offset = 0;
    napi_get_typedarray_info(env, v, &type, &count, &data, &abv, &offset);
    length = count * ElementSize(type);
  } else if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    napi_get_arraybuffer_info(env, v, &data, &length);
    abv = v;
  } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    size_t offset = 0;
    napi_get_dataview_info(env, v, &length, &data, &abv, &offset);
  } else {
    ThrowType(env, std::string(name) + " must be an ArrayBuffer, a TypedArray or a DataView");
  }
  // A detached buffer reports no data; only then is the extra check worth a call.
  if (length == 0) {
    bool detached = false;
    if (napi_is_detached_arraybuffer(env, abv, &detached) == napi_ok && detached) {
      ThrowType(env, std::string(name) + " views a detached ArrayBuffer");
    }
  }
  return {static_cast<uint8_t*>(data), length};
}

Napi::Value ToBigInt(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

void Export(Napi::Env env, Napi::Object exports, const char* name, Napi::Function::Callback cb) {
  exports.Set(name, Napi::Function::New(env, cb, name));
}

void FdHandle::Release() {
  if (fd >= 0 && own) close(fd);
  fd = -1;
}

FdHandle* OpenFdArg(const Napi::CallbackInfo& info, Kind kind, const char* what) {
  auto* h = Unwrap<FdHandle>(info[0], kind, what);
  if (h->fd < 0) ThrowErrno(info.Env(), EBADF, "ioctl", nullptr, h->path);
  return h;
}

Napi::Value FdOpen(const Napi::CallbackInfo& info, Kind kind) {
  std::string path = ArgString(info, 0, "path");
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "open", nullptr, path);
  }
  return WrapHandle(info.Env(), new FdHandle(GetAddon(info.Env()), fd, true, path), kind);
}

Napi::Value FdFromFd(const Napi::CallbackInfo& info, Kind kind) {
  int32_t fd = ArgI32(info, 0, "fd");
  if (fd < 0) ThrowRange(info.Env(), "fd must be a non-negative integer");
  if (fcntl(fd, F_GETFD) < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "fcntl");
  }
  std::string path = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : std::string();
  return WrapHandle(info.Env(), new FdHandle(GetAddon(info.Env()), fd, info[1].ToBoolean(), path), kind);
}

Napi::Value FdClose(const Napi::CallbackInfo& info, Kind kind, const char* what) {
  Unwrap<FdHandle>(info[0], kind, what)->Release();
  return Napi::Value();
}

Napi::Value FdNumber(const Napi::CallbackInfo& info, Kind kind, const char* what) {
  return Napi::Number::New(info.Env(), Unwrap<FdHandle>(info[0], kind, what)->fd);
}

void MemoryBlock::Unmap() {
  if (!unmapped) {
    munmap(addr, length);
    unmapped = true;
  }
}

void MemoryBlock::Unref() {
  if (--refs == 0) {
    Unmap();
    delete this;
  }
}

MemoryHandle::MemoryHandle(AddonData* a, void* addr, size_t length) : Handle(a), block(new MemoryBlock()) {
  block->addr = addr;
  block->length = length;
}

MemoryHandle::~MemoryHandle() {
  // GC backstop: memory stays mapped while an ArrayBuffer over it is alive.
  views.clear();
  block->Unref();
}

void MemoryHandle::DetachViews() {
  // At env teardown Node detaches external ArrayBuffers itself and no JS runs any more.
  if (addon == nullptr || addon->tearingDown) return;
  for (auto& ref : views) {
    if (ref.IsEmpty()) continue;
    Napi::ArrayBuffer ab = ref.Value();
    if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
  }
  views.clear();
}

void MemoryHandle::Release() {
  if (block->unmapped) return;
  DetachViews();
  block->Unmap();
}

Napi::ArrayBuffer MemoryHandle::ArrayBuffer(Napi::Env env) {
  if (block->unmapped) ThrowClosed(env, "mmap");
  if (block->suspended) ThrowErrno(env, EIO, "mmap");
  block->refs++;
  auto ab = Napi::ArrayBuffer::New(
      env, block->addr, block->length, [](Napi::Env, void*, MemoryBlock* b) { b->Unref(); }, block);
  // Drop references to ArrayBuffers that were already collected, then remember this one.
  std::vector<Napi::Reference<Napi::ArrayBuffer>> kept;
  for (auto& ref : views) {
    if (!ref.IsEmpty() && !ref.Value().IsEmpty()) kept.push_back(std::move(ref));
  }
  views.swap(kept);
  views.push_back(Napi::Weak(ab));
  return ab;
}

}  // namespace vfio

static Napi::Object InitVfio(Napi::Env env, Napi::Object exports) { return vfio::InitModule(env, exports); }

NODE_API_MODULE(vfio, InitVfio)
