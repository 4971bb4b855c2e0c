// Module entry: per-env data, the env cleanup hook, and the exports of every kernel object.
#include "addon.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>

#include "handles.h"

namespace vfio {

namespace {

// The live envs, by their AddonData: the one process-wide record the fast-call module's lookup
// needs (it is called with a number from JS, so it must recognise the env without following it).
std::mutex& EnvsMutex() {
  static std::mutex m;
  return m;
}
std::unordered_set<AddonData*>& Envs() {
  static auto* envs = new std::unordered_set<AddonData*>();
  return *envs;
}

// The env is tearing down (main thread exit, worker end): release every resource JS left open.
// Asynchronous, so that Node keeps running the loop (and keeps this addon loaded) until the
// close callbacks of our uv handles have run; a worker that was the only thread to load the
// addon unloads it right after its env is gone.
void CleanupEnv(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* addon = static_cast<AddonData*>(arg);
  addon->tearingDown = true;
  addon->cleanupHook = hook;
  {
    std::lock_guard<std::mutex> lock(EnvsMutex());
    Envs().erase(addon);
  }
  // Finalizers that run later must not touch addon.
  std::unordered_set<Handle*> live;
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

// The cheapest call that enters the kernel (getppid, which glibc does not cache): the bench's
// floor for one syscall made from this process.
void NoopSyscall(const Napi::CallbackInfo&) { syscall(SYS_getppid); }

// The handle check every call on a device makes (an open device handle in info[0]), and nothing
// else: the bench's floor for a call that takes a handle.
void NoopHandle(const Napi::CallbackInfo& info) { OpenFdArg(info, 0, Kind::Device, "device"); }

Napi::Value Initialize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "initialize: makeError must be a function");
  GetAddon(env)->makeError = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

// () => this env's key for the fast-call module's install() (fast_calls.h).
Napi::Value FastCallEnvKey(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), PointerKey(GetAddon(info.Env())));
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  auto* addon = new AddonData();
  env.SetInstanceData<AddonData>(addon);
  addon->fastCalls.addon = addon;
  {
    std::lock_guard<std::mutex> lock(EnvsMutex());
    Envs().insert(addon);
  }
  addon->probe = Napi::Persistent(Napi::Function::New(env, Noop, "probe"));
  if (napi_add_async_cleanup_hook(env, CleanupEnv, addon, nullptr) != napi_ok) {
    throw Napi::Error::New(env, "vfio: could not register the env cleanup hook");
  }
  Export(env, exports, "initialize", Initialize);
  Export(env, exports, "fastCallEnvKey", FastCallEnvKey);
  Export(env, exports, "handleKey", HandleKey);
  exports.Set("noop", Napi::Function::New(env, Noop, "noop"));  // the cheapest call: the bench's floor
  exports.Set("results", Napi::ArrayBuffer::New(env, addon->results, sizeof(addon->results)));
  exports.Set("args", Napi::ArrayBuffer::New(env, addon->args, sizeof(addon->args)));
  exports.Set("noopSyscall", Napi::Function::New(env, NoopSyscall, "noopSyscall"));
  exports.Set("noopHandle", Napi::Function::New(env, NoopHandle, "noopHandle"));
  InitIoctlTable(env, exports);
  InitDevice(env, exports);
  InitIommufd(env, exports);
  InitDmaBuffer(env, exports);
  InitMapping(env, exports);
  InitIrqWatcher(env, exports);
  InitEventQueue(env, exports);
  InitGroup(env, exports);
  InitContainer(env, exports);
  InitUnixSocket(env, exports);
  return exports;
}

}  // namespace

AddonData* GetAddon(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

}  // namespace vfio

// The fast-call module's way in (fast_calls.h): found by name, so visible outside the addon.
extern "C" __attribute__((visibility("default"))) const vfio::FastCallTarget* vfio_fast_call_target_v1(double envKey) {
  auto* addon = static_cast<vfio::AddonData*>(vfio::KeyPointer(envKey));
  std::lock_guard<std::mutex> lock(vfio::EnvsMutex());
  if (addon == nullptr || vfio::Envs().count(addon) == 0 || addon->tearingDown) return nullptr;
  return &addon->fastCalls;
}

namespace vfio {

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
  if (napi_call_function(env, env.Undefined(), addon->probe.Value(), 0, nullptr, &result) == napi_ok) return true;
  // A failed call may leave an exception pending; the caller returns at once anyway.
  napi_value ignored;
  napi_get_and_clear_last_exception(env, &ignored);
  return false;
}

void Export(Napi::Env env, Napi::Object exports, const char* name, Napi::Function::Callback cb) {
  exports.Set(name, Napi::Function::New(env, cb, name));
}

}  // namespace vfio

static Napi::Object InitVfio(Napi::Env env, Napi::Object exports) { return vfio::InitModule(env, exports); }

NODE_API_MODULE(vfio, InitVfio)
