// mmapped memory shared by BAR mappings and DMA buffers (see memory.h).
#include "memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <random>
#include <unordered_map>

#include "errors.h"

namespace vfio {

namespace {

// The addon's one piece of process-wide state: blocks shared between threads, by id, and the lock
// that guards every block's counters (sharing memory between envs is process-wide by nature).
// Never destroyed, so there is no exit-time ordering to get wrong.
std::mutex& BlocksMutex() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}

std::unordered_map<uint64_t, MemoryBlock*>& ShareTable() {
  static auto* table = new std::unordered_map<uint64_t, MemoryBlock*>();
  return *table;
}

}  // namespace

void MemoryBlock::MaybeUnmapLocked() {
  if (unmapped || handles > 0 || liveViews > 0) return;
  munmap(addr, length);
  if (fd >= 0) close(fd);
  fd = -1;
  unmapped = true;
  if (shareId) ShareTable().erase(shareId);
}

void MemoryBlock::Unref() {
  bool last;
  {
    std::lock_guard<std::mutex> lock(BlocksMutex());
    last = --refs == 0;
  }
  if (last) delete this;
}

MemoryHandle::MemoryHandle(AddonData* a, void* addr, size_t length) : Handle(a), block(new MemoryBlock()) {
  block->addr = addr;
  block->length = length;
  block->handles = 1;
  block->refs = 1;
}

MemoryHandle::MemoryHandle(AddonData* a, MemoryBlock* shared) : Handle(a), block(shared) {}

MemoryHandle::~MemoryHandle() {
  // GC backstop: the memory stays mapped while an ArrayBuffer over it is alive.
  views.clear();
  if (!released_) {
    std::lock_guard<std::mutex> lock(BlocksMutex());
    block->handles--;
    block->MaybeUnmapLocked();
  }
  block->Unref();
}

void MemoryHandle::DetachViews() {
  // At env teardown Node detaches external ArrayBuffers itself and no JS runs any more.
  if (addon == nullptr || addon->tearingDown) return;
  for (auto& [ref, record] : views) {
    // A collected ArrayBuffer's weak reference is empty before its finalizer (which owns the
    // record) runs, so the record is only touched while the ArrayBuffer is alive.
    if (ref.IsEmpty()) continue;
    Napi::ArrayBuffer ab = ref.Value();
    if (ab.IsEmpty() || record->detached) continue;
    if (!ab.IsDetached()) ab.Detach();
    record->detached = true;
    std::lock_guard<std::mutex> lock(BlocksMutex());
    block->liveViews--;
  }
  views.clear();
}

void MemoryHandle::Release() {
  if (released_) return;
  DetachViews();
  released_ = true;
  std::lock_guard<std::mutex> lock(BlocksMutex());
  block->handles--;
  block->MaybeUnmapLocked();
}

Napi::ArrayBuffer MemoryHandle::ArrayBuffer(Napi::Env env) {
  if (released_) ThrowErrno(env, EBADF, "mmap");
  if (block->suspended) ThrowErrno(env, EIO, "mmap");
  auto* record = new ViewRecord{block};
  {
    std::lock_guard<std::mutex> lock(BlocksMutex());
    block->liveViews++;
    block->refs++;
  }
  auto ab = Napi::ArrayBuffer::New(
      env, block->addr, block->length,
      [](Napi::Env, void*, ViewRecord* r) {
        MemoryBlock* b = r->block;
        {
          std::lock_guard<std::mutex> lock(BlocksMutex());
          if (!r->detached) b->liveViews--;
          b->MaybeUnmapLocked();
        }
        delete r;
        b->Unref();
      },
      record);
  // Drop the entries of ArrayBuffers already collected, then remember this one.
  std::vector<std::pair<Napi::Reference<Napi::ArrayBuffer>, ViewRecord*>> kept;
  for (auto& entry : views) {
    if (!entry.first.IsEmpty() && !entry.first.Value().IsEmpty()) kept.push_back(std::move(entry));
  }
  views.swap(kept);
  views.emplace_back(Napi::Weak(ab), record);
  return ab;
}

uint64_t MemoryHandle::Share() {
  std::lock_guard<std::mutex> lock(BlocksMutex());
  if (!block->shareId) {
    std::random_device rd;
    uint64_t id = 0;
    do {
      id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    } while (id == 0 || ShareTable().count(id));
    ShareTable()[id] = block;
    block->shareId = id;
  }
  return block->shareId;
}

MemoryBlock* AcquireShared(uint64_t id) {
  std::lock_guard<std::mutex> lock(BlocksMutex());
  auto it = ShareTable().find(id);
  if (it == ShareTable().end()) return nullptr;
  // Under the same lock as every count: an entry is erased (at munmap) before its block can go.
  MemoryBlock* block = it->second;
  if (block->unmapped) return nullptr;
  block->handles++;
  block->refs++;
  return block;
}

}  // namespace vfio
