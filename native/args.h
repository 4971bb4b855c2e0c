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

// The arguments of the hot calls (pread/pwrite, MMIO writes, region and IRQ info, IOAS map and
// unmap), passed through the per-env block native.args (AddonData::args) instead of as
// napi_values, which under emulation cost more than the syscall: lib/ writes slot i (8 bytes at
// offset 8*i; a float64 for a number, a uint64 for a bigint) right before the call, and the call
// reads its slots first. Each slot is checked as the Arg* functions check theirs, so any value a
// caller leaves there is a RangeError, never undefined behaviour. A handle still crosses as a
// napi_value: what it points to is never taken from memory JS can write.
class Slots {
 public:
  Slots(Napi::Env env, const uint8_t* block) : env_(env), block_(block) {}
  double Number(size_t i) const;
  uint32_t U32(size_t i, const char* name) const;
  // A number slot holding an integer from 0 to 2^53-1.
  uint64_t Index(size_t i, const char* name) const;
  // A bigint slot (any u64).
  uint64_t U64(size_t i) const;
  // A u64 in two slots: slot i holds it as a number (0 to 2^53-1), or -1 when slot i + 1 holds it
  // as a bigint (lib/native.ts putU64): safe values, nearly all, cost JS no bigint work.
  uint64_t U64Pair(size_t i, const char* name) const;
  // A file offset in a number slot (pread, pwrite).
  off_t Offset(size_t i) const { return static_cast<off_t>(Index(i, "offset")); }

 private:
  Napi::Env env_;
  const uint8_t* block_;
};

// Leave a u64 result in `results` (AddonData::results) in both forms: as a u64 at offset 0 and as
// a float64 at offset 8, -1 when it is not a safe integer (lib/native.ts takeU64).
void LeaveU64(uint8_t* results, uint64_t v);

}  // namespace vfio
