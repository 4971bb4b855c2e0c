// Memory mapped with mmap, shared by a Mapping (a BAR) or a DmaBuffer handle. ArrayBuffers
// handed out over it are external; Release() detaches them all before munmap, so JS can never
// touch unmapped memory. An ArrayBuffer keeps the memory alive until it is collected (its
// finalizer holds a reference), so GC order cannot free it early.
#pragma once

#include <napi.h>

#include <vector>

#include "handles.h"

namespace vfio {

struct MemoryBlock {
  void* addr = nullptr;
  size_t length = 0;
  int refs = 1;  // the owning handle + one per live ArrayBuffer
  bool unmapped = false;
  // Device memory the library has made inaccessible (memory decode off, D3, low power): the
  // ArrayBuffers over it are detached and native accessors refuse, so no access can SIGBUS.
  bool suspended = false;
  void Unmap();
  void Unref();
};

struct MemoryHandle : Handle {
  MemoryHandle(AddonData* a, void* addr, size_t length);
  ~MemoryHandle() override;
  void Release() override;
  // Detach every ArrayBuffer handed out (they are rebuilt after a resume by asking again).
  void DetachViews();
  Napi::ArrayBuffer ArrayBuffer(Napi::Env env);
  bool released() const { return block->unmapped; }
  MemoryBlock* block;
  std::vector<Napi::Reference<Napi::ArrayBuffer>> views;
};

}  // namespace vfio
