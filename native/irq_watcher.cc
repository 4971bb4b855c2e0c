// An eventfd watched on the env's loop (polled_fd.h). Each wakeup reads (and so resets) the
// counter and calls JS with the count; ref'd only while lib/interrupts.ts has listeners, so an
// Interrupts object (and the device behind it) that user code dropped can be collected.
#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmath>
#include <cstring>

#include "polled_fd.h"

namespace vfio {

namespace {

struct IrqWatcher : PolledFd {
  using PolledFd::PolledFd;
};

IrqWatcher* Watcher(const Napi::CallbackInfo& info) {
  return PolledArg<IrqWatcher>(info, Kind::IrqWatcher, "interrupt watcher", "eventfd");
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
  if (!w || !w->Live()) return;
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
      if (!w->Deliver({Napi::Number::New(env, static_cast<double>(count)), Napi::Number::New(env, err)})) return;
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
  auto handle = WrapHandle(env, w, Kind::IrqWatcher);  // owns (and closes) fd from here
  w->Init(info[0].As<Napi::Function>(), "vfio:interrupt");
  return handle;
}

Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Watcher(info)->fd); }

Napi::Value Start(const Napi::CallbackInfo& info) {
  Watcher(info)->Start(OnPoll);
  return Napi::Value();
}

Napi::Value Stop(const Napi::CallbackInfo& info) {
  Watcher(info)->Stop();
  return Napi::Value();
}

Napi::Value Ref(const Napi::CallbackInfo& info) {
  Watcher(info)->SetRef(info[1].ToBoolean());
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

// The fast-call module's read (fast_calls.h): ReadCount's checks, -1 where it would throw.
double FastIrqRead(void* addon, double key) {
  Handle* h = FindLive(static_cast<AddonData*>(addon), KeyPointer(key), Kind::IrqWatcher);
  if (h == nullptr) return -1;
  auto* w = static_cast<IrqWatcher*>(h);
  if (w->fd < 0) return -1;
  int err = 0;
  uint64_t n = Drain(w->fd, &err);
  return err ? -1 : static_cast<double>(n);
}

double NowMs() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

// Whether a signal that the event loop watches (process.on('SIGTERM'), a child's SIGCHLD, ...)
// arrived and waits to be handled: libuv's signal handler writes a message for it to the loop's
// signal pipe (uv_loop_t's signal_pipefd, -1 while the loop watches no signal). Signals nobody
// on the loop watches (profiler ticks, for example) leave it empty.
bool SignalPending(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop || loop->signal_pipefd[0] < 0) return false;
  struct pollfd p = {loop->signal_pipefd[0], POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

// How long one poll(2) lasts at most: between slices the wait checks that the thread may go on.
constexpr double kSliceMs = 50;

// (watcher; slot 0: timeoutMs, -1 for none) => count > 0; 0 on timeout; -1 when a signal that
// the event loop watches arrived (EINTR: return to the loop so the handler runs); -2 when the
// thread is stopping (worker.terminate(), process.exit()); left in native.results as a float64.
// Blocks the thread in poll(2) like a C driver, against one deadline however often signals
// interrupt it. A count already pending (a device that answered while the caller got here, the
// common case in a tight loop) is taken with one read, without the poll.
Napi::Value WaitSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  IrqWatcher* w = Watcher(info);
  double timeout = Slots(env, w->addon->args).Number(0);
  if (!(timeout == -1 || (timeout >= 0 && timeout <= 9007199254740991.0 && std::floor(timeout) == timeout))) {
    ThrowRange(env, "timeoutMs must be -1 or an integer from 0 to 2^53-1");
  }
  auto done = [w](double result) {
    memcpy(w->addon->results, &result, sizeof(result));
    return Napi::Value();
  };
  int drainErr = 0;
  uint64_t pending = Drain(w->fd, &drainErr);
  if (drainErr) ThrowErrno(env, drainErr, "read");
  if (pending) return done(static_cast<double>(pending));
  const bool forever = timeout < 0;
  const double deadline = NowMs() + (forever ? 0 : timeout);
  // The eventfd, and the pipe libuv's signal handler writes to: a signal that JS listens for is
  // seen even when it arrived before poll(2) started (no EINTR then).
  struct pollfd p[2] = {{w->fd, POLLIN, 0}, {-1, POLLIN, 0}};
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) == napi_ok && loop && loop->signal_pipefd[0] >= 0)
    p[1].fd = loop->signal_pipefd[0];
  const nfds_t n = p[1].fd >= 0 ? 2 : 1;
  for (;;) {
    double slice = kSliceMs;
    if (!forever) {
      double left = std::ceil(deadline - NowMs());
      if (left < slice) slice = left < 0 ? 0 : left;
    }
    int r = poll(p, n, static_cast<int>(slice));
    if (r < 0) {
      int err = errno;
      if (err != EINTR) ThrowErrno(env, err, "poll");
      if (!CanRunJs(env)) return done(-2);
      if (SignalPending(env)) return done(-1);
      continue;
    }
    if (r > 0) {
      if (p[0].revents) {
        int err = 0;
        uint64_t count = Drain(w->fd, &err);
        if (err) ThrowErrno(env, err, "read");
        if (count) return done(static_cast<double>(count));
      }
      if (n == 2 && (p[1].revents & POLLIN)) {
        if (!CanRunJs(env)) return done(-2);
        return done(-1);
      }
    }
    if (!CanRunJs(env)) return done(-2);
    if (!forever && NowMs() >= deadline) return done(0);
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

int EventFdArg(const Napi::CallbackInfo& info, size_t i) {
  auto* w = Unwrap<IrqWatcher>(info[i], Kind::IrqWatcher, "eventfd");
  if (w->fd < 0) ThrowErrno(info.Env(), EBADF, "eventfd");
  return w->fd;
}

void InitIrqWatcher(Napi::Env env, Napi::Object exports) {
  GetAddon(env)->fastCalls.irqRead = FastIrqRead;
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
