// Errors thrown to JS: the library's own VfioError for failed syscalls (made by lib/errors.ts),
// TypeError and RangeError for bad arguments.
#pragma once

#include <napi.h>

#include <string>

namespace vfio {

// Throw the JS VfioError for a failed syscall. `err` is the positive errno.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const char* ioctl = nullptr,
                             const std::string& path = std::string());
[[noreturn]] void ThrowType(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& message);

}  // namespace vfio
