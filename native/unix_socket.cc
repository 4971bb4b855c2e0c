// AF_UNIX sockets for fd passing (SCM_RIGHTS): a privileged helper opens the VFIO and iommufd
// nodes and hands the fds to an unprivileged process. The sockets are plain fds the caller owns;
// libuv never reads them (it would drop the passed fds). lib/fd-passing.ts is the API.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "common.h"

namespace vfio {

namespace {

// The kernel's limit on fds per SCM_RIGHTS message (SCM_MAX_FD).
constexpr size_t kMaxFds = 253;
// How long one poll(2) lasts at most while receiveFds waits.
constexpr int kSliceMs = 50;

// () => [fd, fd]: a connected SOCK_SEQPACKET pair (message boundaries kept), close-on-exec.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) ThrowErrno(env, errno, "socketpair");
  auto out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, sv[0]));
  out.Set(1u, Napi::Number::New(env, sv[1]));
  return out;
}

// (socket, fds: Int32Array, data: Uint8Array) => bytes sent. At least one data byte goes with
// the fds (a message with none carries no ancillary data on a stream socket).
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgI32(info, 0, "socket");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowType(env, "fds must be an Int32Array");
  }
  Napi::Int32Array fds = info[1].As<Napi::Int32Array>();
  Bytes data = ArgBytes(info, 2, "data");
  if (fds.ElementLength() > kMaxFds) ThrowRange(env, "at most 253 fds go in one message (SCM_MAX_FD)");
  if (data.length == 0) ThrowRange(env, "data must hold at least one byte");
  iovec iov{data.data, data.length};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<uint8_t> control;
  if (fds.ElementLength() > 0) {
    size_t bytes = fds.ElementLength() * sizeof(int);
    control.assign(CMSG_SPACE(bytes), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(bytes);
    memcpy(CMSG_DATA(c), fds.Data(), bytes);
  }
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "sendmsg");
  return Napi::Number::New(env, static_cast<double>(n));
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// (socket, maxFds, maxBytes, timeoutMs (-1: none)) => [fds: Int32Array, data: Uint8Array], or
// null at end of stream. Blocks the calling thread until a message arrives or the timeout
// (ETIMEDOUT). Received fds are close-on-exec; the caller owns them. A message with more fds
// than maxFds is refused (EMSGSIZE) and the fds it carried are closed, never leaked.
Napi::Value ReceiveFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgI32(info, 0, "socket");
  uint32_t maxFds = ArgU32(info, 1, "maxFds");
  uint32_t maxBytes = ArgU32(info, 2, "maxBytes");
  double timeout = ArgNumber(info, 3, "timeoutMs");
  if (maxFds > kMaxFds) ThrowRange(env, "maxFds is at most 253 (SCM_MAX_FD)");
  if (maxBytes == 0 || maxBytes > (1u << 20)) ThrowRange(env, "maxBytes must be 1 .. 1048576");
  int64_t deadline = timeout < 0 ? -1 : NowMs() + static_cast<int64_t>(timeout);
  // Waits in slices, so that a thread that is stopping (worker.terminate(), process.exit())
  // leaves the wait instead of blocking its teardown (as Interrupts.waitSync does).
  for (;;) {
    pollfd p{sock, POLLIN, 0};
    int wait = kSliceMs;
    if (deadline >= 0) {
      int64_t left = deadline - NowMs();
      if (left < wait) wait = left <= 0 ? 0 : static_cast<int>(left);
    }
    int r = poll(&p, 1, wait);
    if (r < 0 && errno != EINTR) ThrowErrno(env, errno, "poll");
    if (r > 0 && (p.revents & POLLNVAL)) ThrowErrno(env, EBADF, "poll");
    if (r > 0) break;
    // No exception then: it could not be thrown into a stopping thread (it would abort).
    if (!CanRunJs(env)) return env.Null();
    if (deadline >= 0 && NowMs() >= deadline) ThrowErrno(env, ETIMEDOUT, "recvmsg");
  }
  std::vector<uint8_t> data(maxBytes);
  std::vector<uint8_t> control(CMSG_SPACE((maxFds ? maxFds : 1) * sizeof(int)));
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "recvmsg");
  std::vector<int> got;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const uint8_t* p = CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, p + i * sizeof(int), sizeof(int));
      got.push_back(fd);
    }
  }
  if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
    for (int fd : got) close(fd);
    ThrowErrno(env, EMSGSIZE, "recvmsg");
  }
  if (n == 0 && got.empty()) return env.Null();
  auto fds = Napi::Int32Array::New(env, got.size());
  if (!got.empty()) memcpy(fds.Data(), got.data(), got.size() * sizeof(int));
  auto bytes = Napi::Uint8Array::New(env, static_cast<size_t>(n));
  if (n > 0) memcpy(bytes.Data(), data.data(), static_cast<size_t>(n));
  auto out = Napi::Array::New(env, 2);
  out.Set(0u, fds);
  out.Set(1u, bytes);
  return out;
}

}  // namespace

void InitUnixSocket(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "socketPair", SocketPair);
  Export(env, exports, "sendFds", SendFds);
  Export(env, exports, "receiveFds", ReceiveFds);
}

}  // namespace vfio
