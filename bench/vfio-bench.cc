// The C side of the benchmarks: the same operations the Node library does, on the same edu
// device, with plain syscalls (C++ only for the addon's own uAPI header: the ioctl table and the
// kernel structs live once, in native/uapi.h). Built by bench/run.mjs with the machine's
// compiler, which passes the edu register map of examples/edu.ts as -DEDU_* flags.
//
//   vfio-bench <cdev> <runs> <bench>...      prints {"bench": [ns per op, one per run], ...}
//
// Built a second time as a shared library (-DVFIO_BENCH_LIB, bench/out/vfio-bench.so) that the
// bench loads into its own Node process through koffi: the same C loops, run in the process the
// library runs in, which tells the process's own cost per syscall (a large mm and working set
// under TCG) from the library's work per call. vfio_bench_setup(cdev), vfio_bench_run(bench) =>
// ns per op, vfio_bench_teardown().
//
// Benches: getinfo, regioninfo, pread32, mmio32, mmiow32, mmioblock, map4k, map2m, irq, dma.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "bench-device.h"

#ifndef EDU_IRQ_STATUS
#error "build with bench/run.mjs: it passes the edu register map (examples/edu.ts) as -DEDU_* flags"
#endif

using namespace bench;

static int dev, ictx, efd;
static uint32_t ioas;
static uint64_t bar0_off;
static size_t bar_size;
static volatile uint8_t* bar;

static uint32_t rd32(uint32_t off) { return *reinterpret_cast<volatile uint32_t*>(bar + off); }
static void wr32(uint32_t off, uint32_t v) { *reinterpret_cast<volatile uint32_t*>(bar + off) = v; }
static void wr64(uint32_t off, uint64_t v) { *reinterpret_cast<volatile uint64_t*>(bar + off) = v; }

static void setup(const char* path) {
  Device d = open_device(path);
  dev = d.dev;
  ictx = d.ictx;
  ioas = d.ioas;
  bar0_off = d.bar0_off;
  bar = d.bar;
  bar_size = d.bar0_size;
  efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct {
    vfio_irq_set s;
    int32_t fd;
  } set{{sizeof set, (1 << 2) | (1 << 5), 1, 0, 1}, efd};  // DATA_EVENTFD|ACTION_TRIGGER, MSI
  if (ioctl(dev, Req(Ioctl::VFIO_DEVICE_SET_IRQS), &set)) die("set irqs");
}

// Take a count that is already there with one read (the device often answers before the CPU
// gets here, under emulation nearly always), else poll and read: what waitSync() does too.
static void wait_irq(void) {
  struct pollfd p = {efd, POLLIN, 0};
  for (uint64_t n;;) {
    if (read(efd, &n, 8) == 8) break;
    if (errno != EAGAIN) die("read eventfd");
    if (poll(&p, 1, 5000) != 1) die("poll eventfd (no interrupt)");
  }
  uint32_t st = rd32(EDU_IRQ_STATUS);
  if (st) wr32(EDU_IRQ_ACK, st);
}

static uint8_t* alloc(size_t n) {
  void* p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) die("mmap anonymous");
  return static_cast<uint8_t*>(p);
}

// One run of a bench: the time per operation in ns.
static double run(const char* name) {
  uint64_t t0, n;
  volatile uint32_t sink = 0;
  if (!strcmp(name, "syscall")) {
    n = 100000;
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) syscall(SYS_getppid);
  } else if (!strcmp(name, "getinfo")) {
    n = 20000;
    vfio_device_info info;
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
      info.argsz = sizeof info;
      if (ioctl(dev, Req(Ioctl::VFIO_DEVICE_GET_INFO), &info)) die("get info");
    }
  } else if (!strcmp(name, "regioninfo")) {
    n = 20000;
    vfio_region_info r;
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
      r = vfio_region_info{sizeof r, 0, 0, 0, 0, 0};
      if (ioctl(dev, Req(Ioctl::VFIO_DEVICE_GET_REGION_INFO), &r)) die("region info");
      sink += (uint32_t)r.size;
    }
  } else if (!strcmp(name, "pread32")) {
    n = 20000;
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
      uint32_t v;
      if (pread(dev, &v, 4, bar0_off) != 4) die("pread");
      sink += v;
    }
  } else if (!strcmp(name, "mmio32")) {
    n = 200000;
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) sink += rd32(0);
  } else if (!strcmp(name, "mmiow32")) {
    n = 50000;
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
      std::atomic_thread_fence(std::memory_order_release);  // writel
      wr32(EDU_LIVENESS, (uint32_t)i);
    }
  } else if (!strcmp(name, "mmioblock")) {
    // 64 consecutive registers, as MappedRegion.readInto does: the time per read.
    static uint32_t out[64];
    n = 5000;
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
      for (int r = 0; r < 64; r++) out[r] = rd32(4 * r);
    sink += out[0];
    return (double)(now_ns() - t0) / (n * 64);
  } else if (!strcmp(name, "map4k") || !strcmp(name, "map2m")) {
    size_t len = name[3] == '4' ? 4096 : 2 << 20;
    n = len == 4096 ? 2000 : 500;
    static uint8_t* bufs[2];  // allocated once per process and kept, as the library's DmaBuffers are
    uint8_t*& buf = bufs[len == 4096 ? 0 : 1];
    if (!buf) buf = alloc(len);
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
      iommu_ioas_map m{sizeof m, (1 << 0) | (1 << 1) | (1 << 2), ioas, 0, (uintptr_t)buf, len, 0x200000};
      if (ioctl(ictx, Req(Ioctl::IOMMU_IOAS_MAP), &m)) die("map");
      iommu_ioas_unmap u{sizeof u, ioas, 0x200000, len};
      if (ioctl(ictx, Req(Ioctl::IOMMU_IOAS_UNMAP), &u)) die("unmap");
    }
    return (double)(now_ns() - t0) / n;
  } else if (!strcmp(name, "irq")) {
    n = 2000;
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
      wr32(EDU_IRQ_RAISE, 1);
      wait_irq();
    }
  } else if (!strcmp(name, "dma")) {
    n = 3;
    uint8_t* buf = alloc(8192);
    iommu_ioas_map m{sizeof m, 7, ioas, 0, (uintptr_t)buf, 8192, 0x100000};
    if (ioctl(ictx, Req(Ioctl::IOMMU_IOAS_MAP), &m)) die("map dma");
    for (int i = 0; i < 1024; i++) buf[i] = (uint8_t)(i * 7 + 3);
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
      wr64(EDU_DMA_SRC, 0x100000); wr64(EDU_DMA_DST, EDU_BUFFER); wr64(EDU_DMA_COUNT, 1024);
      wr64(EDU_DMA_CMD, EDU_CMD_START | EDU_CMD_IRQ);
      wait_irq();
      wr64(EDU_DMA_SRC, EDU_BUFFER); wr64(EDU_DMA_DST, 0x101000); wr64(EDU_DMA_COUNT, 1024);
      wr64(EDU_DMA_CMD, EDU_CMD_START | EDU_CMD_TO_RAM | EDU_CMD_IRQ);
      wait_irq();
    }
    uint64_t t = now_ns() - t0;
    if (memcmp(buf, buf + 4096, 1024)) { fprintf(stderr, "vfio-bench: DMA copy differs\n"); exit(1); }
    iommu_ioas_unmap u{sizeof u, ioas, 0x100000, 8192};
    if (ioctl(ictx, Req(Ioctl::IOMMU_IOAS_UNMAP), &u)) die("unmap dma");
    munmap(buf, 8192);
    return (double)t / n;
  } else {
    fprintf(stderr, "vfio-bench: unknown bench %s\n", name);
    exit(2);
  }
  (void)sink;
  return (double)(now_ns() - t0) / n;
}

#ifdef VFIO_BENCH_LIB
extern "C" {
int vfio_bench_setup(const char* path) {
  program = "vfio-bench.so";
  setup(path);
  return 0;
}
double vfio_bench_run(const char* name) { return run(name); }
// One operation of a control-path bench per call (0 getinfo, 1 regioninfo, 2 pread32, 3 map4k's
// map, 4 its unmap), for a loop in JS: the C op with JS running between ops, as the library's is.
int vfio_bench_op(int which) {
  static uint8_t* buf4k;
  switch (which) {
    case 0: {
      vfio_device_info info;
      info.argsz = sizeof info;
      return ioctl(dev, Req(Ioctl::VFIO_DEVICE_GET_INFO), &info);
    }
    case 1: {
      vfio_region_info r{sizeof r, 0, 0, 0, 0, 0};
      return ioctl(dev, Req(Ioctl::VFIO_DEVICE_GET_REGION_INFO), &r);
    }
    case 2: {
      uint32_t v;
      return pread(dev, &v, 4, bar0_off) == 4 ? 0 : -1;
    }
    case 3: {
      if (!buf4k) buf4k = alloc(4096);
      iommu_ioas_map m{sizeof m, (1 << 0) | (1 << 1) | (1 << 2), ioas, 0, (uintptr_t)buf4k, 4096, 0x200000};
      return ioctl(ictx, Req(Ioctl::IOMMU_IOAS_MAP), &m);
    }
    case 4: {
      iommu_ioas_unmap u{sizeof u, ioas, 0x200000, 4096};
      return ioctl(ictx, Req(Ioctl::IOMMU_IOAS_UNMAP), &u);
    }
    default:
      return -1;
  }
}
void vfio_bench_teardown(void) {
  close(efd);
  munmap(const_cast<uint8_t*>(bar), bar_size);
  close(dev);  // frees the MSI and the attachment
  close(ictx);
}
}
#else
int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: vfio-bench <cdev> <runs> <bench>...\n");
    return 2;
  }
  program = "vfio-bench";
  setup(argv[1]);
  int runs = atoi(argv[2]);
  printf("{");
  for (int b = 3; b < argc; b++) {
    printf("%s\"%s\": [", b > 3 ? ", " : "", argv[b]);
    for (int r = 0; r < runs; r++) printf("%s%.1f", r ? ", " : "", run(argv[b]));
    printf("]");
    fflush(stdout);
  }
  printf("}\n");
  return 0;
}
#endif
