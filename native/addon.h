// Per-env state of the addon and the module's entry points. No static mutable state: everything
// hangs off AddonData, which is per env (main thread or worker).
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <unordered_set>

#include "fast_calls.h"

namespace vfio {

struct Handle;

struct AddonData {
  // (errno, syscall, ioctl?, path?) => VfioError, supplied by lib/errors.ts at load time.
  Napi::FunctionReference makeError;
  // A no-op JS function: calling it fails once the thread is told to stop (worker.terminate(),
  // process.exit()), which is how a blocking wait notices that it must return.
  Napi::FunctionReference probe;
  // Every live handle, released by the env cleanup hook if JS never closed it.
  std::unordered_set<Handle*> live;
  // Set while the env tears down: no JS handles may be touched then.
  bool tearingDown = false;
  // uv handles closed but whose close callback has not run yet. The env's async cleanup hook
  // finishes only when this is 0, so no close callback can run after the addon is unloaded.
  int pendingCloses = 0;
  napi_async_cleanup_hook_handle cleanupHook = nullptr;
  void CloseDone();
  // Where the fixed-size info calls (GET_INFO, GET_REGION_INFO, GET_IRQ_INFO) leave their struct
  // for lib/ to read: exported once as native.results, an ArrayBuffer over this memory, so a call
  // passes no buffer argument. Per env (each worker has its own); JS that detaches the
  // ArrayBuffer only loses its view, the memory stays ours until the env is gone.
  alignas(8) uint8_t results[64] = {};
  // Where the hot calls take their arguments (args.h, Slots): exported once as native.args; lib/
  // writes a call's slots right before it, so no argument crosses as a napi_value.
  alignas(8) uint8_t args[64] = {};
  // What the optional fast-call module calls (fast_calls.h), found by vfio_fast_call_target_v1.
  FastCallTarget fastCalls;
};

AddonData* GetAddon(Napi::Env env);

// Close a uv_poll_t allocated with new; it is freed in the close callback, which is counted in
// AddonData::pendingCloses so that env teardown waits for it.
void ClosePoll(AddonData* addon, uv_poll_t* poll);

// Whether JS can still run on this thread (false once a worker is terminated or the process
// exits while native code blocks).
bool CanRunJs(Napi::Env env);

// The eventfd of the interrupt-watcher handle in info[i] (for calls that hand the kernel an
// eventfd: SET_IRQS takes the numbers in an array, IOEVENTFD takes the handle).
int EventFdArg(const Napi::CallbackInfo& info, size_t i);

// Take ownership of `fd`, an iommufd event queue (a fault queue or a vEVENTQ) that the kernel
// just returned, as an EventQueue handle calling `callback(errno)` on the env's loop whenever it
// is readable (lib/ reads the records). The fd is closed if the handle cannot be made.
Napi::Value AdoptEventQueue(Napi::Env env, int fd, const Napi::Value& callback, const char* name);

// exports[name] = a JS function calling cb.
void Export(Napi::Env env, Napi::Object exports, const char* name, Napi::Function::Callback cb);

// One per kernel object (and per file).
void InitDevice(Napi::Env env, Napi::Object exports);
void InitIommufd(Napi::Env env, Napi::Object exports);
void InitDmaBuffer(Napi::Env env, Napi::Object exports);
void InitMapping(Napi::Env env, Napi::Object exports);
void InitIrqWatcher(Napi::Env env, Napi::Object exports);
void InitEventQueue(Napi::Env env, Napi::Object exports);
void InitGroup(Napi::Env env, Napi::Object exports);
void InitContainer(Napi::Env env, Napi::Object exports);
void InitUnixSocket(Napi::Env env, Napi::Object exports);
void InitIoctlTable(Napi::Env env, Napi::Object exports);

}  // namespace vfio
