// An eventfd watched by a uv_poll handle on the env's own loop (not uv_default_loop, so it
// works in workers). Each wakeup reads (and so resets) the counter and calls JS with the count.
// The handle is ref'd only while lib/interrupts.ts has listeners.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include "common.h"

namespace vfio {

namespace {

struct IrqWatcher : Handle {
  IrqWatcher(AddonData* a, Napi::Env e, int f) : Handle(a), env(e), fd(f) {}
  ~IrqWatcher() override { Release(); }
  void Release() override {
    if (poll) {
      uv_poll_stop(poll);
      uv_close(reinterpret_cast<uv_handle_t*>(poll), [](uv_handle_t* p) { delete reinterpret_cast<uv_poll_t*>(p); });
      poll = nullptr;
    }
    if (fd >= 0) close(fd);
    fd = -1;
    if (addon && !addon->tearingDown) {
      callback.Reset();
      context.reset();
    }
  }
  Napi::Env env;
  int fd;
  uv_poll_t* poll = nullptr;
  bool started = false;
  Napi::FunctionReference callback;
  std::unique_ptr<Napi::AsyncContext> context;
};

IrqWatcher* Watcher(const Napi::CallbackInfo& info) {
  auto* w = Unwrap<IrqWatcher>(info[0], Kind::IrqWatcher, "interrupt watcher");
  if (w->fd < 0) ThrowErrno(info.Env(), EBADF, "eventfd");
  return w;
}

// Read the eventfd counter without blocking: 0 when nothing is pending.
uint64_t Drain(int fd, int* err) {
  uint64_t count = 0;
  *err = 0;
  if (read(fd, &count, sizeof(count)) != sizeof(count)) {
    *err = errno == EAGAIN ? 0 : errno;
    return 0;
  }
  return count;
}

void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  auto* w = static_cast<IrqWatcher*>(handle->data);
  if (!w || w->fd < 0 || w->callback.IsEmpty()) return;
  int err = 0;
  uint64_t count = 0;
  if (status == 0) {
    count = Drain(w->fd, &err);
    if (count == 0 && err == 0) return;  // spurious wakeup
  } else {
    err = -status;
  }
  Napi::Env env = w->env;
  // Deliver, then look again: a handler that triggers the next interrupt (acknowledge, start the
  // next transfer) often has it pending by the time it returns, and delivering it now saves a
  // whole event-loop turn. Bounded, so a storm cannot starve the loop.
  for (int round = 0;; round++) {
    {
      Napi::HandleScope scope(env);
      try {
        w->callback.MakeCallback(env.Global(),
                                 {Napi::Number::New(env, static_cast<double>(count)), Napi::Number::New(env, err)},
                                 *w->context);
      } catch (const Napi::Error& e) {
        // An exception from a listener is an uncaught exception, as for any event emitter.
        napi_fatal_exception(env, e.Value());
        return;
      }
    }
    // On the last round leave any new count in the eventfd: the next loop turn delivers it.
    if (err || w->fd < 0 || !w->started || round == 15) return;
    count = Drain(w->fd, &err);
    if (count == 0 && err == 0) return;
  }
}

// (callback: (count, errno) => void) => IrqWatcher handle
Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) ThrowType(env, "callback must be a function");
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    ThrowErrno(env, err, "eventfd");
  }
  auto* w = new IrqWatcher(GetAddon(env), env, fd);
  auto handle = WrapHandle(env, w, Kind::IrqWatcher);
  w->callback = Napi::Persistent(info[0].As<Napi::Function>());
  w->context = std::make_unique<Napi::AsyncContext>(env, "vfio:interrupt");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) ThrowType(env, "no event loop");
  w->poll = new uv_poll_t();
  int r = uv_poll_init(loop, w->poll, fd);
  if (r < 0) {
    delete w->poll;
    w->poll = nullptr;
    ThrowErrno(env, -r, "uv_poll_init");
  }
  w->poll->data = w;
  uv_unref(reinterpret_cast<uv_handle_t*>(w->poll));
  return handle;
}

Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Watcher(info)->fd); }

Napi::Value Start(const Napi::CallbackInfo& info) {
  IrqWatcher* w = Watcher(info);
  if (!w->started) {
    int r = uv_poll_start(w->poll, UV_READABLE, OnPoll);
    if (r < 0) ThrowErrno(info.Env(), -r, "uv_poll_start");
    w->started = true;
  }
  return Napi::Value();
}

Napi::Value Stop(const Napi::CallbackInfo& info) {
  IrqWatcher* w = Watcher(info);
  if (w->started) uv_poll_stop(w->poll);
  w->started = false;
  return Napi::Value();
}

Napi::Value Ref(const Napi::CallbackInfo& info) {
  IrqWatcher* w = Watcher(info);
  if (info[1].ToBoolean()) {
    uv_ref(reinterpret_cast<uv_handle_t*>(w->poll));
  } else {
    uv_unref(reinterpret_cast<uv_handle_t*>(w->poll));
  }
  return Napi::Value();
}

// Non-blocking read of the counter: 0 when nothing is pending.
Napi::Value ReadCount(const Napi::CallbackInfo& info) {
  IrqWatcher* w = Watcher(info);
  int err = 0;
  uint64_t n = Drain(w->fd, &err);
  if (err) ThrowErrno(info.Env(), err, "read");
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// (watcher, timeoutMs) => count, 0 on timeout. Blocks the thread in poll(2) like a C driver.
Napi::Value WaitSync(const Napi::CallbackInfo& info) {
  IrqWatcher* w = Watcher(info);
  int32_t timeout = ArgI32(info, 1, "timeoutMs");
  struct pollfd p = {w->fd, POLLIN, 0};
  for (;;) {
    int r = poll(&p, 1, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ThrowErrno(info.Env(), err, "poll");
    }
    if (r == 0) return Napi::Number::New(info.Env(), 0);
    int err = 0;
    uint64_t n = Drain(w->fd, &err);
    if (err) ThrowErrno(info.Env(), err, "read");
    if (n) return Napi::Number::New(info.Env(), static_cast<double>(n));
  }
}

// Add to the counter, as a device would (for tests and software loopback).
Napi::Value Signal(const Napi::CallbackInfo& info) {
  IrqWatcher* w = Watcher(info);
  uint64_t one = 1;
  if (write(w->fd, &one, sizeof(one)) != sizeof(one)) {
    int err = errno;
    ThrowErrno(info.Env(), err, "write");
  }
  return Napi::Value();
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Unwrap<IrqWatcher>(info[0], Kind::IrqWatcher, "interrupt watcher")->Release();
  return Napi::Value();
}

}  // namespace

void InitIrqWatcher(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "irqCreate", Create);
  Export(env, exports, "irqFd", Fd);
  Export(env, exports, "irqStart", Start);
  Export(env, exports, "irqStop", Stop);
  Export(env, exports, "irqRef", Ref);
  Export(env, exports, "irqRead", ReadCount);
  Export(env, exports, "irqWaitSync", WaitSync);
  Export(env, exports, "irqSignal", Signal);
  Export(env, exports, "irqClose", Close);
}

}  // namespace vfio
