// Errors thrown to JS. VfioError is one class, made in TS: C++ calls the factory lib/errors.ts
// registered at load time, right after the failed call, with the errno it captured.
#include "errors.h"

#include <cstring>

#include "addon.h"

namespace vfio {

void ThrowErrno(Napi::Env env, int err, const char* syscall, const char* ioctl, const std::string& path) {
  AddonData* addon = GetAddon(env);
  if (addon->makeError.IsEmpty()) {
    throw Napi::Error::New(env, std::string(syscall) + " failed: " + strerror(err));
  }
  Napi::Value e = addon->makeError.Call({
      Napi::Number::New(env, err),
      Napi::String::New(env, syscall),
      ioctl ? Napi::String::New(env, ioctl) : env.Undefined(),
      path.empty() ? env.Undefined() : Napi::String::New(env, path),
  });
  throw Napi::Error(env, e);
}

void ThrowType(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

void ThrowRange(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

}  // namespace vfio
