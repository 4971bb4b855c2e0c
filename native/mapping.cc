// An mmap of a device region (a BAR). Accesses are single volatile loads/stores of exactly
// the requested width (libvfn mmio.h, DPDK rte_io), bounds- and alignment-checked here too,
// so even a caller that bypasses lib/ cannot touch memory outside the mapping.
#include <sys/mman.h>

#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "common.h"

namespace vfio {

namespace {

// The barriers of Linux's writel/readl around device-memory accesses. Before a store to a BAR
// (a doorbell): every earlier store to DMA memory must be visible to the device first. After a
// load from a BAR: later loads from DMA memory must not be satisfied before it. arm64 needs the
// outer-shareable DMA barriers (dma_wmb = dmb oshst, dma_rmb = dmb oshld); on x86 (TSO, and BARs
// mapped uncached) ordinary ordering suffices and only the compiler must not reorder.
inline void BeforeMmioWrite() {
#if defined(__aarch64__)
  asm volatile("dmb oshst" ::: "memory");
#else
  std::atomic_thread_fence(std::memory_order_release);
#endif
}

inline void AfterMmioRead() {
#if defined(__aarch64__)
  asm volatile("dmb oshld" ::: "memory");
#else
  std::atomic_thread_fence(std::memory_order_acquire);
#endif
}

}  // namespace

Napi::Value NewMapping(Napi::Env env, void* addr, size_t length) {
  return WrapHandle(env, new MemoryHandle(GetAddon(env), addr, length), Kind::Mapping);
}

namespace {

MemoryHandle* Map(const Napi::CallbackInfo& info) {
  auto* m = Unwrap<MemoryHandle>(info[0], Kind::Mapping, "mapping");
  if (m->released()) ThrowErrno(info.Env(), EBADF, "mmap");
  return m;
}

// One access to device memory: holds the block's access lock (shared) while it runs, after
// checking that the memory is on. Suspending takes the lock exclusively, so once the library has
// turned the device's memory off, no access from any thread (a BAR can be shared with workers)
// is in flight or can start: none can raise SIGBUS.
class Access {
 public:
  Access(Napi::Env env, MemoryHandle* m) : lock_(m->block->access) {
    if (m->block->suspended) {
      lock_.unlock();
      ThrowErrno(env, EIO, "mmap");
    }
  }

 private:
  std::shared_lock<std::shared_mutex> lock_;
};

template <typename T>
volatile T* At(const Napi::CallbackInfo& info, MemoryHandle* m, double d) {
  size_t off = static_cast<size_t>(d);
  if (!(d >= 0) || static_cast<double>(off) != d || off > m->block->length - sizeof(T) ||
      m->block->length < sizeof(T)) {
    ThrowRange(info.Env(), "offset " + std::to_string(d) + " is outside the mapping");
  }
  if (off % sizeof(T)) ThrowRange(info.Env(), "offset must be aligned to the access width");
  return reinterpret_cast<volatile T*>(static_cast<uint8_t*>(m->block->addr) + off);
}

template <typename T>
Napi::Value Read(const Napi::CallbackInfo& info) {
  MemoryHandle* m = Map(info);
  volatile T* p = At<T>(info, m, ArgNumber(info, 1, "offset"));
  T v;
  {
    Access access(info.Env(), m);
    v = *p;
    AfterMmioRead();
  }
  if constexpr (sizeof(T) == 8) {
    return ToBigInt(info.Env(), v);
  } else {
    return Napi::Number::New(info.Env(), v);
  }
}

// (mapping; slot 0: offset, slot 1: value, a number or for 8 bytes a bigint): the doorbell path,
// so its arguments come through native.args (args.h) and only the handle crosses.
template <typename T>
Napi::Value Write(const Napi::CallbackInfo& info) {
  MemoryHandle* m = Map(info);
  Slots in(info.Env(), m->addon->args);
  volatile T* p = At<T>(info, m, in.Number(0));
  T v;
  if constexpr (sizeof(T) == 8) {
    v = in.U64(1);
  } else {
    uint32_t u = in.U32(1, "value");
    if (sizeof(T) < 4 && u > static_cast<uint32_t>(static_cast<T>(~T{0})))
      ThrowRange(info.Env(), "value does not fit the access width");
    v = static_cast<T>(u);
  }
  Access access(info.Env(), m);
  BeforeMmioWrite();
  *p = v;
  return Napi::Value();
}

// The fast-call module's write (fast_calls.h): the checks of Map, At, Slots::U32 and Access, in
// that order, answering false instead of throwing, so the caller's N-API call throws the error.
bool FastMmioWrite(void* addon, double handleKey, double offset, double value, uint32_t width) {
  if (width != 1 && width != 2 && width != 4) return false;
  Handle* h = FindLive(static_cast<AddonData*>(addon), KeyPointer(handleKey), Kind::Mapping);
  if (h == nullptr) return false;
  auto* m = static_cast<MemoryHandle*>(h);
  size_t off = static_cast<size_t>(offset);
  if (m->released() || !(offset >= 0) || static_cast<double>(off) != offset || m->block->length < width ||
      off > m->block->length - width || off % width) {
    return false;
  }
  if (!(value >= 0) || value > static_cast<double>((uint64_t{1} << (8 * width)) - 1) ||
      static_cast<double>(static_cast<uint32_t>(value)) != value) {
    return false;
  }
  std::shared_lock<std::shared_mutex> lock(m->block->access);
  if (m->block->suspended) return false;
  auto* p = static_cast<uint8_t*>(m->block->addr) + off;
  uint32_t v = static_cast<uint32_t>(value);
  BeforeMmioWrite();
  if (width == 1) {
    *reinterpret_cast<volatile uint8_t*>(p) = static_cast<uint8_t>(v);
  } else if (width == 2) {
    *reinterpret_cast<volatile uint16_t*>(p) = static_cast<uint16_t>(v);
  } else {
    *reinterpret_cast<volatile uint32_t*>(p) = v;
  }
  return true;
}

// (mapping, offset, width, out: TypedArray) => consecutive reads of `width` bytes into `out`,
// each one volatile access of exactly that width (a batch: one native call for many reads).
Napi::Value ReadBlock(const Napi::CallbackInfo& info) {
  MemoryHandle* m = Map(info);
  double d = ArgNumber(info, 1, "offset");
  uint32_t width = ArgU32(info, 2, "width");
  Bytes out = ArgBytes(info, 3, "out");
  size_t off = static_cast<size_t>(d);
  if (width != 1 && width != 2 && width != 4 && width != 8) ThrowRange(info.Env(), "width must be 1, 2, 4 or 8");
  if (!(d >= 0) || static_cast<double>(off) != d || off % width || out.length % width || off > m->block->length ||
      out.length > m->block->length - off) {
    ThrowRange(info.Env(), "the block is outside the mapping or not aligned to its width");
  }
  auto* base = static_cast<uint8_t*>(m->block->addr) + off;
  size_t n = out.length / width;
  Access access(info.Env(), m);
  for (size_t i = 0; i < n; i++) {
    switch (width) {
      case 1:
        reinterpret_cast<uint8_t*>(out.data)[i] = reinterpret_cast<volatile uint8_t*>(base)[i];
        break;
      case 2:
        reinterpret_cast<uint16_t*>(out.data)[i] = reinterpret_cast<volatile uint16_t*>(base)[i];
        break;
      case 4:
        reinterpret_cast<uint32_t*>(out.data)[i] = reinterpret_cast<volatile uint32_t*>(base)[i];
        break;
      default:
        reinterpret_cast<uint64_t*>(out.data)[i] = reinterpret_cast<volatile uint64_t*>(base)[i];
        break;
    }
  }
  AfterMmioRead();
  return Napi::Value();
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Unwrap<MemoryHandle>(info[0], Kind::Mapping, "mapping")->Release();
  return Napi::Value();
}

Napi::Value Buffer(const Napi::CallbackInfo& info) { return Map(info)->ArrayBuffer(info.Env()); }

// (mapping, suspended: boolean). Suspending detaches every ArrayBuffer over the mapping and makes
// the accessors refuse; the mmap itself stays, and works again once the device's memory is on.
Napi::Value SetSuspended(const Napi::CallbackInfo& info) {
  auto* m = Unwrap<MemoryHandle>(info[0], Kind::Mapping, "mapping");
  if (m->released()) ThrowErrno(info.Env(), EBADF, "mmap");
  bool on = info[1].ToBoolean();
  {
    std::unique_lock<std::shared_mutex> lock(m->block->access);
    m->block->suspended = on;
  }
  if (on) m->DetachViews();
  return Napi::Value();
}

// (mapping) => the id under which other threads can open the same mapping (a bigint)
Napi::Value Share(const Napi::CallbackInfo& info) { return ToBigInt(info.Env(), Map(info)->Share()); }

// (id: bigint) => a mapping handle on the BAR mapping shared under id, in this env. Its accesses
// go through native code only, under the access lock.
Napi::Value FromShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MemoryBlock* block = AcquireShared(ArgU64(info, 0, "id"));
  if (!block) ThrowErrno(env, ENOENT, "mmap");
  return WrapHandle(env, new MemoryHandle(GetAddon(env), block), Kind::Mapping);
}

}  // namespace

void MappingSpan(const Napi::CallbackInfo& info, size_t i, void** addr, size_t* length) {
  auto* m = Unwrap<MemoryHandle>(info[i], Kind::Mapping, "mapping");
  if (m->released()) ThrowErrno(info.Env(), EBADF, "mmap");
  *addr = m->block->addr;
  *length = m->block->length;
}

void InitMapping(Napi::Env env, Napi::Object exports) {
  GetAddon(env)->fastCalls.mmioWrite = FastMmioWrite;
  Export(env, exports, "mappingRead8", Read<uint8_t>);
  Export(env, exports, "mappingRead16", Read<uint16_t>);
  Export(env, exports, "mappingRead32", Read<uint32_t>);
  Export(env, exports, "mappingRead64", Read<uint64_t>);
  Export(env, exports, "mappingWrite8", Write<uint8_t>);
  Export(env, exports, "mappingWrite16", Write<uint16_t>);
  Export(env, exports, "mappingWrite32", Write<uint32_t>);
  Export(env, exports, "mappingWrite64", Write<uint64_t>);
  Export(env, exports, "mappingReadBlock", ReadBlock);
  Export(env, exports, "mappingClose", Close);
  Export(env, exports, "mappingArrayBuffer", Buffer);
  Export(env, exports, "mappingSetSuspended", SetSuspended);
  Export(env, exports, "mappingShare", Share);
  Export(env, exports, "mappingFromShared", FromShared);
}

}  // namespace vfio
