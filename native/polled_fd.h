// A file descriptor watched by a uv_poll handle on the env's own loop (not uv_default_loop, so
// it works in workers), calling JS when readable: what interrupt watchers (eventfds) and iommufd
// event queues share. The poll handle is unref'd unless lib/ refs it (only while something
// listens). The JS callback is held weakly while stopped and strongly only while polling, so a
// JS object that user code dropped can be collected. The uv handle is closed through ClosePoll,
// which env teardown waits for.
#pragma once

#include <uv.h>

#include <memory>

#include "common.h"

namespace vfio {

struct PolledFd : Handle {
  PolledFd(AddonData* a, Napi::Env e, int f) : Handle(a), env(e), fd(f) {}
  ~PolledFd() override { Release(); }
  void Release() override;
  // Make the (stopped, unref'd) poll handle and hold `fn` weakly; `name` names the async context.
  // On failure the handle stays valid and releases the fd itself.
  void Init(Napi::Function fn, const char* name);
  void Start(uv_poll_cb onReadable);
  void Stop();
  void SetRef(bool ref);
  // Call the callback with `args` (made in the caller's HandleScope) in its async context; a
  // throwing listener is an uncaught exception. False when the call threw or there is no callback.
  bool Deliver(const std::initializer_list<napi_value>& args);
  bool Live() const { return fd >= 0 && !callback.IsEmpty() && addon && !addon->tearingDown; }

  Napi::Env env;
  int fd;
  uv_poll_t* poll = nullptr;
  bool started = false;
  Napi::FunctionReference callback;  // weak while stopped, strong while polling
  std::unique_ptr<Napi::AsyncContext> context;
};

// The PolledFd of kind `kind` in info[0], throwing EBADF (syscall `syscall`) once it is released.
template <typename T>
T* PolledArg(const Napi::CallbackInfo& info, Kind kind, const char* what, const char* syscall) {
  auto* p = Unwrap<T>(info[0], kind, what);
  if (p->fd < 0) ThrowErrno(info.Env(), EBADF, syscall);
  return p;
}

}  // namespace vfio
