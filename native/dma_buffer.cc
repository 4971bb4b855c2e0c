// Page-aligned anonymous memory for DMA, owned by the library. JS sees it through an
// external ArrayBuffer that is detached when the buffer is freed.
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

namespace vfio {

namespace {

// mmap `length` bytes at an address that is a multiple of `align` (a power of two above the page
// size): reserve length + align of address space, map over its aligned part, and give back the
// rest. MAP_FAILED with errno on failure.
void* MapAligned(size_t length, int flags, int fd, size_t align) {
  size_t span = length + align;
  void* reserved = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return MAP_FAILED;
  uintptr_t start = reinterpret_cast<uintptr_t>(reserved);
  uintptr_t at = (start + align - 1) & ~(static_cast<uintptr_t>(align) - 1);
  void* p = mmap(reinterpret_cast<void*>(at), length, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    munmap(reserved, span);
    errno = err;
    return MAP_FAILED;
  }
  if (at > start) munmap(reserved, at - start);
  if (start + span > at + length) munmap(reinterpret_cast<void*>(at + length), start + span - (at + length));
  return p;
}

// (size, hugeShift, memfd, align) => DmaBuffer handle. hugeShift: 0, or log2 of the hugetlb page
// size (21: 2 MiB, 30: 1 GiB). With memfd the memory is a memfd's pages (the buffer owns the fd,
// for IOMMU_IOAS_MAP_FILE); otherwise anonymous shared memory. align: 0, or a power of two the
// address must be a multiple of (lib/ checks it).
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double size = ArgNumber(info, 0, "size");
  uint32_t shift = info[1].IsNumber() ? ArgU32(info, 1, "hugeShift") : (info[1].ToBoolean() ? 21 : 0);
  if (shift != 0 && shift != 21 && shift != 30) ThrowRange(env, "hugeShift must be 0, 21 or 30");
  bool huge = shift != 0;
  bool file = info[2].ToBoolean();
  size_t align = info[3].IsUndefined() ? 0 : ArgU32(info, 3, "align");
  if (align & (align - 1)) ThrowRange(env, "align must be a power of two");
  if (align <= static_cast<size_t>(sysconf(_SC_PAGESIZE)) || (huge && align <= (size_t{1} << shift))) align = 0;
  // The "path" of a failure is the pool's reservation file, so the error says what to raise.
  const char* pool = shift == 30 ? "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"
                                 : "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
  if (!(size >= 1 && size <= 9007199254740991.0)) ThrowRange(env, "size must be a positive integer");
  const auto length = static_cast<size_t>(size);
  int fd = -1;
  int flags = MAP_SHARED | MAP_POPULATE;
  if (file) {
    // The page size is encoded as for mmap: MFD_HUGE_SHIFT (linux/memfd.h) equals MAP_HUGE_SHIFT.
    fd = memfd_create("vfio-dma", MFD_CLOEXEC | (huge ? MFD_HUGETLB | (shift << MAP_HUGE_SHIFT) : 0));
    int err = fd < 0 ? errno : 0;
    if (!err && ftruncate(fd, static_cast<off_t>(length)) < 0) err = errno;
    if (err) {
      if (fd >= 0) close(fd);
      ThrowErrno(env, err, fd < 0 ? "memfd_create" : "ftruncate", nullptr, huge ? pool : "");
    }
  } else {
    flags |= MAP_ANONYMOUS | (huge ? MAP_HUGETLB | (shift << MAP_HUGE_SHIFT) : 0);
  }
  void* p = align ? MapAligned(length, flags, fd, align) : mmap(nullptr, length, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    if (fd >= 0) close(fd);
    ThrowErrno(env, err, "mmap", nullptr, huge ? pool : "");
  }
  auto* handle = new MemoryHandle(GetAddon(env), p, length);
  handle->block->fd = fd;
  return WrapHandle(env, handle, Kind::DmaBuffer);
}

MemoryHandle* Buf(const Napi::CallbackInfo& info) {
  auto* m = Unwrap<MemoryHandle>(info[0], Kind::DmaBuffer, "DmaBuffer");
  if (m->released()) ThrowErrno(info.Env(), EBADF, "mmap");
  return m;
}

Napi::Value Buffer(const Napi::CallbackInfo& info) { return Buf(info)->ArrayBuffer(info.Env()); }

Napi::Value Free(const Napi::CallbackInfo& info) {
  Unwrap<MemoryHandle>(info[0], Kind::DmaBuffer, "DmaBuffer")->Release();
  return Napi::Value();
}

// (buf) => the id under which other threads can open the same memory (a bigint)
Napi::Value Share(const Napi::CallbackInfo& info) { return ToBigInt(info.Env(), Buf(info)->Share()); }

// (id: bigint) => a DmaBuffer handle on the memory shared under id, in this env
Napi::Value FromShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t id = ArgU64(info, 0, "id");
  MemoryBlock* block = AcquireShared(id);
  if (!block) ThrowErrno(env, ENOENT, "mmap");
  return WrapHandle(env, new MemoryHandle(GetAddon(env), block), Kind::DmaBuffer);
}

// (buf) => its size in bytes
Napi::Value Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Buf(info)->block->length));
}

// (buf) => the memfd behind it, or -1
Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Buf(info)->block->fd); }

// (buf) => its address in this process (a bigint), for user pointers in raw ioctl structs
Napi::Value Address(const Napi::CallbackInfo& info) {
  return ToBigInt(info.Env(), reinterpret_cast<uintptr_t>(Buf(info)->block->addr));
}

Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

}  // namespace

// The address and length of the DmaBuffer in info[i], for the DMA map calls (iommufd.cc,
// group.cc). Anything else is a TypeError: only library-owned memory is mapped for DMA.
void DmaBufferSpan(const Napi::CallbackInfo& info, size_t i, void** addr, size_t* length) {
  auto* m = Unwrap<MemoryHandle>(info[i], Kind::DmaBuffer, "DmaBuffer");
  if (m->released()) ThrowErrno(info.Env(), EBADF, "mmap");
  *addr = m->block->addr;
  *length = m->block->length;
}

void InitDmaBuffer(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "dmaAlloc", Alloc);
  Export(env, exports, "dmaArrayBuffer", Buffer);
  Export(env, exports, "dmaFree", Free);
  Export(env, exports, "pageSize", PageSize);
  Export(env, exports, "dmaShare", Share);
  Export(env, exports, "dmaFromShared", FromShared);
  Export(env, exports, "dmaSize", Size);
  Export(env, exports, "dmaAddress", Address);
  Export(env, exports, "dmaFd", Fd);
}

}  // namespace vfio
