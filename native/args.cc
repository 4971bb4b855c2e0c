// Argument checks for the native entry points (see args.h).
#include "args.h"

#include <cmath>
#include <cstring>

#include "errors.h"

namespace vfio {

double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d;
  // One napi call: it fails with napi_number_expected for anything but a number.
  if (napi_get_value_double(info.Env(), info[i], &d) != napi_ok) {
    ThrowType(info.Env(), std::string(name) + " must be a number");
  }
  return d;
}

namespace {

// The u32 rule, for positional arguments and slots alike.
uint32_t CheckU32(Napi::Env env, double d, const char* name) {
  if (!(d >= 0 && d <= 4294967295.0) || std::floor(d) != d) {
    ThrowRange(env, std::string(name) + " must be an integer from 0 to 2^32-1");
  }
  return static_cast<uint32_t>(d);
}

}  // namespace

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return CheckU32(info.Env(), ArgNumber(info, i, name), name);
}

int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = ArgNumber(info, i, name);
  if (!(d >= -2147483648.0 && d <= 2147483647.0) || std::floor(d) != d) {
    ThrowRange(info.Env(), std::string(name) + " must be a 32-bit integer");
  }
  return static_cast<int32_t>(d);
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  double d;
  if (napi_get_value_double(env, info[i], &d) == napi_ok) {
    if (!(d >= 0 && d <= 9007199254740991.0) || std::floor(d) != d) {
      ThrowRange(env, std::string(name) + " must be a non-negative safe integer or a bigint");
    }
    return static_cast<uint64_t>(d);
  }
  uint64_t v;
  bool lossless = false;
  if (napi_get_value_bigint_uint64(env, info[i], &v, &lossless) == napi_ok) {
    if (!lossless) ThrowRange(env, std::string(name) + " must be from 0 to 2^64-1");
    return v;
  }
  ThrowType(env, std::string(name) + " must be a bigint or a number");
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) ThrowType(info.Env(), std::string(name) + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) ThrowType(info.Env(), std::string(name) + " must not contain a NUL byte");
  return s;
}

namespace {

size_t ElementSize(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:
      return 8;
  }
}

}  // namespace

Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  napi_value v = info[i];
  bool is = false;
  void* data = nullptr;
  napi_value abv = nullptr;
  size_t length = 0;
  // Typed arrays first (the common case): one call gives the data pointer and the length.
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count = 0, offset = 0;
    napi_get_typedarray_info(env, v, &type, &count, &data, &abv, &offset);
    length = count * ElementSize(type);
  } else if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    napi_get_arraybuffer_info(env, v, &data, &length);
    abv = v;
  } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    size_t offset = 0;
    napi_get_dataview_info(env, v, &length, &data, &abv, &offset);
  } else {
    ThrowType(env, std::string(name) + " must be an ArrayBuffer, a TypedArray or a DataView");
  }
  // A detached buffer reports no data; only then is the extra check worth a call.
  if (length == 0) {
    bool detached = false;
    if (napi_is_detached_arraybuffer(env, abv, &detached) == napi_ok && detached) {
      ThrowType(env, std::string(name) + " views a detached ArrayBuffer");
    }
  }
  return {static_cast<uint8_t*>(data), length};
}

Napi::Value ToBigInt(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

double Slots::Number(size_t i) const {
  double d;
  memcpy(&d, block_ + 8 * i, sizeof(d));
  return d;
}

uint32_t Slots::U32(size_t i, const char* name) const { return CheckU32(env_, Number(i), name); }

uint64_t Slots::Index(size_t i, const char* name) const {
  double d = Number(i);
  if (!(d >= 0 && d <= 9007199254740991.0) || std::floor(d) != d) {
    ThrowRange(env_, std::string(name) + " must be an integer from 0 to 2^53-1");
  }
  return static_cast<uint64_t>(d);
}

uint64_t Slots::U64(size_t i) const {
  uint64_t v;
  memcpy(&v, block_ + 8 * i, sizeof(v));
  return v;
}

uint64_t Slots::U64Pair(size_t i, const char* name) const { return Number(i) == -1 ? U64(i + 1) : Index(i, name); }

void LeaveU64(uint8_t* results, uint64_t v) {
  double d = v <= 9007199254740991ULL ? static_cast<double>(v) : -1;
  memcpy(results, &v, 8);
  memcpy(results + 8, &d, 8);
}

off_t ArgOffset(const Napi::CallbackInfo& info, size_t i) {
  uint64_t off = ArgU64(info, i, "offset");
  if (off > static_cast<uint64_t>(INT64_MAX)) ThrowRange(info.Env(), "offset is too large");
  return static_cast<off_t>(off);
}

}  // namespace vfio
