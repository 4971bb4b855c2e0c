// An iommufd event queue: the fd of a fault queue (IOMMU_FAULT_QUEUE_ALLOC: page faults read,
// responses written) or of a vEVENTQ (IOMMU_VEVENTQ_ALLOC: virtual IOMMU events read), watched
// on the env's loop (polled_fd.h). When readable, JS is called and reads the records itself
// (lib/event-queue.ts decodes them); ref'd only while lib/ has listeners.
#include <unistd.h>

#include "polled_fd.h"

namespace vfio {

namespace {

struct EventQueue : PolledFd {
  using PolledFd::PolledFd;
};

EventQueue* Queue(const Napi::CallbackInfo& info) {
  return PolledArg<EventQueue>(info, Kind::EventQueue, "event queue", "read");
}

void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  auto* q = static_cast<EventQueue*>(handle->data);
  if (!q || !q->Live()) return;
  Napi::HandleScope scope(q->env);
  q->Deliver({Napi::Number::New(q->env, status < 0 ? -status : 0)});
}

Napi::Value Start(const Napi::CallbackInfo& info) {
  Queue(info)->Start(OnPoll);
  return Napi::Value();
}

Napi::Value Stop(const Napi::CallbackInfo& info) {
  Queue(info)->Stop();
  return Napi::Value();
}

Napi::Value Ref(const Napi::CallbackInfo& info) {
  Queue(info)->SetRef(info[1].ToBoolean());
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
  auto handle = WrapHandle(env, q, Kind::EventQueue);  // owns (and closes) fd from here
  q->Init(callback.As<Napi::Function>(), name);
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
