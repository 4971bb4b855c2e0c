// What the optional fast-call module (native/fast_calls.cc, vfio_fast.node) may call in the addon:
// plain C types only, so the two share nothing but this header. The module finds the addon's
// lookup function by name in the already loaded vfio.node (dlopen with RTLD_NOLOAD) and asks it
// for the calling env's table, by that env's key; everything JS hands either side is a number
// that the addon compares against what it knows, never a pointer it follows. Every check stays in
// the addon.
#pragma once

#include <cstdint>

namespace vfio {

// Bumped whenever the struct or the lookup changes; its symbol name carries it.
#define VFIO_FAST_CALL_TARGET_SYMBOL "vfio_fast_call_target_v1"

struct FastCallTarget {
  void* addon = nullptr;  // the env's AddonData
  // One volatile store of `width` (1, 2 or 4) bytes, `value` at `offset` of the mapping whose key
  // (native.handleKey) is `handleKey`, under the access lock and after the writel barrier, as
  // mappingWrite8/16/32 make it. The key is looked up among the env's live handles, never followed.
  // Returns false, having touched nothing, for anything the N-API call would refuse or that cannot
  // be told here (not a live mapping, released, offset outside or misaligned, value out of range,
  // memory suspended): the caller then makes the N-API call, which throws the error.
  bool (*mmioWrite)(void* addon, double handleKey, double offset, double value, uint32_t width) = nullptr;
  // One non-blocking read of the eventfd of the interrupt watcher whose key is `watcherKey`, as
  // irqRead makes it: the count it cleared (0 when none was pending), or -1, having read nothing,
  // when the N-API call must make it (not a live watcher, closed, or a read error it throws).
  double (*irqRead)(void* addon, double watcherKey) = nullptr;
};

// vfio_fast_call_target_v1(envKey): the table of the live env whose key (native.fastCallEnvKey())
// is envKey, or null.
using FastCallTargetLookup = const FastCallTarget* (*)(double envKey);

}  // namespace vfio
