// The shared part of fds watched on the env's loop (see polled_fd.h).
#include "polled_fd.h"

#include <unistd.h>

namespace vfio {

void PolledFd::Release() {
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

void PolledFd::Init(Napi::Function fn, const char* name) {
  callback = Napi::Weak(fn);
  context = std::make_unique<Napi::AsyncContext>(env, name);
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) ThrowType(env, "no event loop");
  poll = new uv_poll_t();
  int r = uv_poll_init(loop, poll, fd);
  if (r < 0) {
    delete poll;
    poll = nullptr;
    ThrowErrno(env, -r, "uv_poll_init");
  }
  poll->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(poll));
}

void PolledFd::Start(uv_poll_cb onReadable) {
  if (started) return;
  int r = uv_poll_start(poll, UV_READABLE, onReadable);
  if (r < 0) ThrowErrno(env, -r, "uv_poll_start");
  started = true;
  callback.Ref();
}

void PolledFd::Stop() {
  if (started) {
    uv_poll_stop(poll);
    callback.Unref();
  }
  started = false;
}

void PolledFd::SetRef(bool ref) {
  auto* h = reinterpret_cast<uv_handle_t*>(poll);
  if (ref) {
    uv_ref(h);
  } else {
    uv_unref(h);
  }
}

bool PolledFd::Deliver(const std::initializer_list<napi_value>& args) {
  Napi::Value fn = callback.Value();
  if (fn.IsEmpty()) return false;
  try {
    fn.As<Napi::Function>().MakeCallback(env.Global(), args, *context);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
    return false;
  }
  return true;
}

}  // namespace vfio
