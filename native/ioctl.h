// Issuing the ioctls of the table in uapi.h: one call-or-throw helper and one grow-and-retry
// helper. Every failure becomes the VfioError (errno, 'ioctl', the table's name, the fd's path),
// with errno captured right after the call.
#pragma once

#include <napi.h>

#include <cstdint>
#include <vector>

#include "handles.h"
#include "uapi.h"

namespace vfio {

// The argument type of each ioctl, from the table (void: no argument or a plain value).
template <Ioctl I>
struct IoctlArg;
#define VFIO_IOCTL_ARG(name, nr, arg) \
  template <>                         \
  struct IoctlArg<Ioctl::name> {      \
    using type = arg;                 \
  };
VFIO_IOCTLS(VFIO_IOCTL_ARG)
#undef VFIO_IOCTL_ARG

// ioctl(h->fd, I, arg); returns the ioctl's result, throws on failure.
int CallIoctl(Napi::Env env, const FdHandle* h, Ioctl i, void* arg);
template <Ioctl I>
int Call(Napi::Env env, const FdHandle* h, typename IoctlArg<I>::type* arg) {
  return CallIoctl(env, h, I, arg);
}
// For the requests that take a plain integer (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU).
int CallIoctlValue(Napi::Env env, const FdHandle* h, Ioctl i, unsigned long value);

// An ioctl whose argument the kernel may ask to be larger (a capability chain, an array). Each
// try: `prepare(buf)` fills a zeroed buffer of the current size, the ioctl runs, and `need(buf)`
// says how many bytes the kernel wants. `tooSmall` is the errno with which the kernel refuses a
// small buffer (0 when it succeeds and reports the size instead). Returns the buffer once it
// fits; throws EMSGSIZE if the kernel still asks for more after a few tries.
std::vector<uint8_t> GrowAndRetry(Napi::Env env, const FdHandle* h, Ioctl i, size_t size, int tooSmall,
                                  void (*prepare)(std::vector<uint8_t>& buf, uint32_t arg), uint32_t arg,
                                  size_t (*need)(const std::vector<uint8_t>& buf));

// For GrowAndRetry on the info ioctls whose struct starts with argsz and grows with a capability
// chain: the kernel reports the size it needs in argsz.
void PrepareArgsz(std::vector<uint8_t>& buf, uint32_t);
size_t ArgszNeed(const std::vector<uint8_t>& buf);

// (h, request, arg: Uint8Array) => the ioctl's result: the raw escape hatch for requests the
// table does not have (those it has are refused, naming the library's call). The struct's own
// size (its first u32) must lie within arg; the kernel copies in and out of arg.
Napi::Value RawIoctl(const Napi::CallbackInfo& info, const FdHandle* h);

// A copy of `buf` as a JS Uint8Array.
Napi::Value ToUint8Array(Napi::Env env, const std::vector<uint8_t>& buf);

}  // namespace vfio
