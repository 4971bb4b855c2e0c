// An iommufd event queue: the fd of a fault queue (IOMMU_FAULT_QUEUE_ALLOC: page faults read,
// responses written) or of a vEVENTQ (IOMMU_VEVENTQ_ALLOC: virtual IOMMU events read). Watched
// by a uv_poll handle on the env's own loop; when readable, JS is called and reads the records
// itself (lib/event-queue.ts decodes them). Ref'd only while lib/ has listeners; the JS callback
// is held strongly only while polling, as for interrupt watchers.
#include <unistd.h>
#include <uv.h>

#include "common.h"

namespace vfio {

namespace {

struct EventQueue : Handle {
  EventQueue(AddonData* a, Napi::Env e, int f) : Handle(a), env(e), fd(f) {}
  ~EventQueue() override { Release(); }
  void Release() override {
    if (poll) {
      uv_poll_stop(poll);
      ClosePoll(addon, poll);
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
  Napi::FunctionReference callback;  // weak while stopped, strong while polling
  std::unique_ptr<Napi::AsyncContext> context;
};

EventQueue* Queue(const Napi::CallbackInfo& info) {
  auto* q = Unwrap<EventQueue>(info[0], Kind::EventQueue, "event queue");
  if (q->fd < 0) ThrowErrno(info.Env(), EBADF, "read");
  return q;
}

void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  auto* q = static_cast<EventQueue*>(handle->data);
  if (!q || q->fd < 0 || q->callback.IsEmpty() || !q->addon || q->addon->tearingDown) return;
  Napi::Env env = q->env;
  Napi::HandleScope scope(env);
  Napi::Value fn = q->callback.Value();
  if (fn.IsEmpty()) return;
  try {
    fn.As<Napi::Function>().MakeCallback(env.Global(), {Napi::Number::New(env, status < 0 ? -status : 0)},
                                         *q->context);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());  // a throwing listener: an uncaught exception
  }
}

Napi::Value Start(const Napi::CallbackInfo& info) {
  EventQueue* q = Queue(info);
  if (!q->started) {
    int r = uv_poll_start(q->poll, UV_READABLE, OnPoll);
    if (r < 0) ThrowErrno(info.Env(), -r, "uv_poll_start");
    q->started = true;
    q->callback.Ref();
  }
  return Napi::Value();
}

Napi::Value Stop(const Napi::CallbackInfo& info) {
  EventQueue* q = Queue(info);
  if (q->started) {
    uv_poll_stop(q->poll);
    q->callback.Unref();
  }
  q->started = false;
  return Napi::Value();
}

Napi::Value Ref(const Napi::CallbackInfo& info) {
  EventQueue* q = Queue(info);
  auto* h = reinterpret_cast<uv_handle_t*>(q->poll);
  if (info[1].ToBoolean()) {
    uv_ref(h);
  } else {
    uv_unref(h);
  }
  return Napi::Value();
}

// (q, into: Uint8Array) => bytes read; 0 when the queue is empty. The kernel hands out whole
// records only (and EINVAL when the first does not fit).
Napi::Value Read(const Napi::CallbackInfo& info) {
  EventQueue* q = Queue(info);
  Bytes into = ArgBytes(info, 1, "into");
  ssize_t n = read(q->fd, into.data, into.length);
  if (n < 0) {
    int err = errno;
    if (err == EAGAIN) return Napi::Number::New(info.Env(), 0);
    ThrowErrno(info.Env(), err, "read");
  }
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// (q, bytes: Uint8Array) => bytes written (fault responses).
Napi::Value Write(const Napi::CallbackInfo& info) {
  EventQueue* q = Queue(info);
  Bytes bytes = ArgBytes(info, 1, "bytes");
  ssize_t n = write(q->fd, bytes.data, bytes.length);
  if (n < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "write");
  }
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Queue(info)->fd); }

Napi::Value Close(const Napi::CallbackInfo& info) {
  auto* q = Unwrap<EventQueue>(info[0], Kind::EventQueue, "event queue");
  q->Release();
  return Napi::Value();
}

}  // namespace

Napi::Value AdoptEventQueue(Napi::Env env, int fd, const Napi::Value& callback, const char* name) {
  if (!callback.IsFunction()) {
    close(fd);
    ThrowType(env, "callback must be a function");
  }
  auto* q = new EventQueue(GetAddon(env), env, fd);
  auto handle = WrapHandle(env, q, Kind::EventQueue);  // from here the handle owns (and closes) fd
  q->callback = Napi::Weak(callback.As<Napi::Function>());
  q->context = std::make_unique<Napi::AsyncContext>(env, name);
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) ThrowType(env, "no event loop");
  q->poll = new uv_poll_t();
  int r = uv_poll_init(loop, q->poll, fd);
  if (r < 0) {
    delete q->poll;
    q->poll = nullptr;
    ThrowErrno(env, -r, "uv_poll_init");
  }
  q->poll->data = q;
  uv_unref(reinterpret_cast<uv_handle_t*>(q->poll));
  return handle;
}

void InitEventQueue(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "eventQueueStart", Start);
  Export(env, exports, "eventQueueStop", Stop);
  Export(env, exports, "eventQueueRef", Ref);
  Export(env, exports, "eventQueueRead", Read);
  Export(env, exports, "eventQueueWrite", Write);
  Export(env, exports, "eventQueueFd", Fd);
  Export(env, exports, "eventQueueClose", Close);
}

}  // namespace vfio
