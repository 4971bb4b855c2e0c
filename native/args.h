// Argument checks for the native entry points. Each throws a TypeError or RangeError naming the
// argument, so even a caller that bypasses lib/ gets a JS error, never undefined behaviour.
#pragma once

#include <napi.h>
#include <sys/types.h>

#include <cstdint>
#include <string>

namespace vfio {

double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* name);
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name);  // number or bigint
// A file offset (pread, pwrite, mmap): a u64 up to INT64_MAX.
off_t ArgOffset(const Napi::CallbackInfo& info, size_t i);
// A string for a syscall: a NUL byte inside it is a TypeError (it would silently truncate).
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);

// Bytes of an ArrayBuffer or any ArrayBufferView (never detached). Only for data the kernel
// copies during the call (SET_IRQS fds, feature data, pread/pwrite): never for DMA.
struct Bytes {
  uint8_t* data;
  size_t length;
};
Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name);

Napi::Value ToBigInt(Napi::Env env, uint64_t v);

}  // namespace vfio
