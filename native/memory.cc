// mmapped memory shared by BAR mappings and DMA buffers (see memory.h).
#include "memory.h"

#include <sys/mman.h>

#include <cerrno>

#include "errors.h"

namespace vfio {

void MemoryBlock::Unmap() {
  if (!unmapped) {
    munmap(addr, length);
    unmapped = true;
  }
}

void MemoryBlock::Unref() {
  if (--refs == 0) {
    Unmap();
    delete this;
  }
}

MemoryHandle::MemoryHandle(AddonData* a, void* addr, size_t length) : Handle(a), block(new MemoryBlock()) {
  block->addr = addr;
  block->length = length;
}

MemoryHandle::~MemoryHandle() {
  // GC backstop: memory stays mapped while an ArrayBuffer over it is alive.
  views.clear();
  block->Unref();
}

void MemoryHandle::DetachViews() {
  // At env teardown Node detaches external ArrayBuffers itself and no JS runs any more.
  if (addon == nullptr || addon->tearingDown) return;
  for (auto& ref : views) {
    if (ref.IsEmpty()) continue;
    Napi::ArrayBuffer ab = ref.Value();
    if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
  }
  views.clear();
}

void MemoryHandle::Release() {
  if (block->unmapped) return;
  DetachViews();
  block->Unmap();
}

Napi::ArrayBuffer MemoryHandle::ArrayBuffer(Napi::Env env) {
  if (block->unmapped) ThrowErrno(env, EBADF, "mmap");
  if (block->suspended) ThrowErrno(env, EIO, "mmap");
  block->refs++;
  auto ab = Napi::ArrayBuffer::New(
      env, block->addr, block->length, [](Napi::Env, void*, MemoryBlock* b) { b->Unref(); }, block);
  // Drop references to ArrayBuffers that were already collected, then remember this one.
  std::vector<Napi::Reference<Napi::ArrayBuffer>> kept;
  for (auto& ref : views) {
    if (!ref.IsEmpty() && !ref.Value().IsEmpty()) kept.push_back(std::move(ref));
  }
  views.swap(kept);
  views.push_back(Napi::Weak(ab));
  return ab;
}

}  // namespace vfio
