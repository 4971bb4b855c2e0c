// Memory mapped with mmap: a BAR (Mapping) or DMA memory (DmaBuffer). Handles in one or more envs
// (a DmaBuffer shared with workers) and the ArrayBuffers handed out over it share one block.
// munmap happens once every handle is released and every ArrayBuffer over it is detached or
// collected, so no thread can ever touch unmapped memory; releasing a handle detaches only its own
// env's ArrayBuffers.
#pragma once

#include <napi.h>

#include <cstdint>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "handles.h"

namespace vfio {

struct MemoryBlock {
  void* addr = nullptr;
  size_t length = 0;
  int handles = 0;    // MemoryHandles not yet released, in every env
  int liveViews = 0;  // ArrayBuffers over it that are neither detached nor collected
  int refs = 0;       // handles + ArrayBuffer records: the struct lives while > 0
  bool unmapped = false;
  // Device memory the library has made inaccessible (memory decode off, D3, low power): the
  // ArrayBuffers over it are detached and native accessors refuse, so no access can SIGBUS.
  bool suspended = false;
  // Held shared by each access to the memory, exclusively to change `suspended` (mapping.cc).
  std::shared_mutex access;
  // Nonzero once shared with other threads: its key in the process-wide share table.
  uint64_t shareId = 0;
  // The memfd behind a file-backed DmaBuffer (-1 otherwise), closed with the mapping.
  int fd = -1;
  // With the blocks lock held (memory.cc): munmap once nothing can reach the memory any more.
  void MaybeUnmapLocked();
  // Drop one ref; deletes the block when it was the last.
  void Unref();
};

// The finalizer hint of one ArrayBuffer over a block (owned by its env).
struct ViewRecord {
  MemoryBlock* block;
  bool detached = false;
};

struct MemoryHandle : Handle {
  MemoryHandle(AddonData* a, void* addr, size_t length);
  // Another handle on a block shared from another env (the caller counted it already).
  MemoryHandle(AddonData* a, MemoryBlock* shared);
  ~MemoryHandle() override;
  void Release() override;
  // Detach every ArrayBuffer this handle handed out (they are rebuilt after a resume by asking again).
  void DetachViews();
  Napi::ArrayBuffer ArrayBuffer(Napi::Env env);
  bool released() const { return released_; }
  // Register the block for sharing and return its id.
  uint64_t Share();
  MemoryBlock* block;
  std::vector<std::pair<Napi::Reference<Napi::ArrayBuffer>, ViewRecord*>> views;

 private:
  bool released_ = false;
};

// A Mapping handle around an mmap (a device region's, or a vIOMMU's through the iommufd); the
// handle munmaps it.
Napi::Value NewMapping(Napi::Env env, void* addr, size_t length);

// The block shared under `id`, with one more handle counted, or null when it is gone.
MemoryBlock* AcquireShared(uint64_t id);

// The memory of the DmaBuffer handle in info[i] (TypeError for anything else, EBADF once freed):
// what the map calls hand the kernel, so only library-owned memory is ever mapped for DMA.
void DmaBufferSpan(const Napi::CallbackInfo& info, size_t i, void** addr, size_t* length);
// The same for a BAR mapping handle (container mappings of a BAR, for peer-to-peer DMA).
void MappingSpan(const Napi::CallbackInfo& info, size_t i, void** addr, size_t* length);

}  // namespace vfio
