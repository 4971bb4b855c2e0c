// The C side of the NVMe benchmark: a minimal userspace NVMe driver doing what vfio/nvme does for
// polled random reads (bring-up, one I/O queue pair, 4 KiB reads at random LBAs with `qd` in
// flight, and the library's doorbell policy: the completions one poll reaps are resubmitted,
// then one SQ tail and one CQ head doorbell announce the batch), on the same controller. Built
// by bench/run.mjs, which passes the register map and opcodes of lib/nvme/spec.ts as -DNVME_*
// flags; the ioctls and structs come from native/uapi.h.
//
//   nvme-bench <cdev> <qd> <seconds>        prints {"iops": N, "ios": N, "seconds": S}
#include <atomic>

#include "bench-device.h"

#ifndef NVME_REG_CAP
#error "build with bench/run.mjs: it passes the NVMe register map (lib/nvme/spec.ts) as -DNVME_* flags"
#endif

using namespace bench;

static volatile uint8_t* bar;
static uint32_t rd32(uint32_t off) { return *reinterpret_cast<volatile uint32_t*>(bar + off); }
static uint64_t rd64(uint32_t off) { return *reinterpret_cast<volatile uint64_t*>(bar + off); }
static uint64_t doorbell_ns, doorbells;  // time spent in register writes (for the breakdown)
static void wr32(uint32_t off, uint32_t v) {
  uint64_t t = now_ns();
  std::atomic_thread_fence(std::memory_order_release);  // writel: memory writes first
  *reinterpret_cast<volatile uint32_t*>(bar + off) = v;
  doorbell_ns += now_ns() - t;
  doorbells++;
}
static void wr64(uint32_t off, uint64_t v) { *reinterpret_cast<volatile uint64_t*>(bar + off) = v; }

// DMA memory: one anonymous mapping at IOVA kIova; queues first, then the data buffers.
constexpr uint64_t kIova = 0x100000;
constexpr size_t kMemSize = 4 << 20;
static uint8_t* mem;
static uint64_t iova_of(const void* p) { return kIova + (static_cast<const uint8_t*>(p) - mem); }

struct Queue {
  uint16_t qid, size, tail, head, phase;
  volatile uint32_t* sq;  // 16 dwords per entry
  volatile uint32_t* cq;  // 4 dwords per entry
  uint32_t sqdb, cqdb;
};

static void queue_init(Queue* q, uint16_t qid, uint16_t size, uint8_t* sq, uint8_t* cq, uint32_t dstrd) {
  *q = Queue{qid, size, 0, 0, 1, reinterpret_cast<volatile uint32_t*>(sq), reinterpret_cast<volatile uint32_t*>(cq), 0, 0};
  uint32_t stride = 4u << dstrd;
  q->sqdb = NVME_REG_DOORBELLS + 2 * qid * stride;
  q->cqdb = q->sqdb + stride;
  memset(sq, 0, size * NVME_SQE_SIZE);
  memset(cq, 0, size * NVME_CQE_SIZE);
}

// Write a command at the tail (the caller rings the doorbell).
static void submit(Queue* q, uint16_t cid, uint8_t opcode, uint32_t nsid, uint64_t prp1, const uint32_t* cdw10_15) {
  volatile uint32_t* e = q->sq + q->tail * (NVME_SQE_SIZE / 4);
  e[0] = opcode | ((uint32_t)cid << 16);
  e[1] = nsid;
  for (int i = 2; i < 6; i++) e[i] = 0;
  e[6] = (uint32_t)prp1;
  e[7] = (uint32_t)(prp1 >> 32);
  e[8] = 0;
  e[9] = 0;
  for (int i = 0; i < 6; i++) e[10 + i] = cdw10_15 ? cdw10_15[i] : 0;
  q->tail = (q->tail + 1) % q->size;
}

// Reap one completion if there is one: its command id, or -1.
static int reap(Queue* q, uint16_t* status) {
  volatile uint32_t* c = q->cq + q->head * (NVME_CQE_SIZE / 4);
  uint32_t dw3 = c[3];
  if (((dw3 >> 16) & 1) != q->phase) return -1;
  std::atomic_thread_fence(std::memory_order_acquire);  // dma_rmb: the entry after its phase
  *status = (uint16_t)(dw3 >> 17);
  q->head = (q->head + 1) % q->size;
  if (q->head == 0) q->phase ^= 1;
  return dw3 & 0xffff;
}

static Queue admin;

static void admin_run(uint8_t opcode, uint32_t nsid, uint64_t prp1, uint32_t cdw10, uint32_t cdw11) {
  uint32_t cdw[6] = {cdw10, cdw11, 0, 0, 0, 0};
  submit(&admin, 0, opcode, nsid, prp1, cdw);
  wr32(admin.sqdb, admin.tail);
  uint16_t status;
  uint64_t end = now_ns() + 5000000000ull;
  while (reap(&admin, &status) < 0)
    if (now_ns() > end) die("admin command timed out");
  wr32(admin.cqdb, admin.head);
  if (status) {
    fprintf(stderr, "nvme-bench: admin opcode 0x%x failed with status 0x%x\n", opcode, status);
    exit(1);
  }
}

static void wait_ready(bool ready, uint32_t ms) {
  uint64_t end = now_ns() + (uint64_t)ms * 1000000;
  while (((rd32(NVME_REG_CSTS) & NVME_CSTS_RDY) != 0) != ready)
    if (now_ns() > end) die("CSTS.RDY did not change within CAP.TO");
}

int main(int argc, char** argv) {
  program = "nvme-bench";
  if (argc != 4) {
    fprintf(stderr, "usage: nvme-bench <cdev> <qd> <seconds>\n");
    return 2;
  }
  int qd = atoi(argv[2]);
  double seconds = atof(argv[3]);
  if (qd < 1 || qd > 1023 || seconds <= 0) die("bad arguments");

  // The device, bound to an iommufd and attached to an IOAS, BAR0 mapped, bus master on.
  Device d = open_device(argv[1]);
  bar = d.bar;
  void* p = mmap(NULL, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) die("mmap anonymous");
  mem = static_cast<uint8_t*>(p);
  iommu_ioas_map m{sizeof m, 7, d.ioas, 0, (uintptr_t)mem, kMemSize, kIova};  // FIXED_IOVA|WRITEABLE|READABLE
  if (ioctl(d.ictx, Req(Ioctl::IOMMU_IOAS_MAP), &m)) die("ioas map");

  // Bring-up: disable, admin queues, enable; identify namespace 1.
  uint64_t cap = rd64(NVME_REG_CAP);
  uint32_t dstrd = (cap >> 32) & 0xf;
  uint32_t ready_ms = ((cap >> 24) & 0xff) * 500;
  if (ready_ms < 500) ready_ms = 500;
  wr32(NVME_REG_CC, 0);
  wait_ready(false, ready_ms);
  const uint16_t asize = 32;
  uint8_t* asq = mem;
  uint8_t* acq = mem + NVME_PAGE;
  uint8_t* idbuf = mem + 2 * NVME_PAGE;
  uint8_t* iosq = mem + 4 * NVME_PAGE;   // up to 1024 entries: 16 pages
  uint8_t* iocq = mem + 20 * NVME_PAGE;  // 4 pages
  uint8_t* data = mem + 32 * NVME_PAGE;  // qd pages
  queue_init(&admin, 0, asize, asq, acq, dstrd);
  wr32(NVME_REG_AQA, ((asize - 1) << 16) | (asize - 1));
  wr64(NVME_REG_ASQ, iova_of(asq));
  wr64(NVME_REG_ACQ, iova_of(acq));
  wr32(NVME_REG_CC, NVME_CC_EN | NVME_CC_IOSQES | NVME_CC_IOCQES);
  wait_ready(true, ready_ms);
  admin_run(NVME_ADMIN_IDENTIFY, 1, iova_of(idbuf), 0, 0);
  uint64_t nsze;
  memcpy(&nsze, idbuf, 8);
  uint32_t block = 1u << idbuf[128 + 4 * (idbuf[26] & 0xf) + 2];
  uint32_t blocks = 4096 / block;
  uint64_t span = nsze / blocks;

  // One polled I/O queue pair of qd + 1 entries.
  uint16_t size = (uint16_t)(qd + 1);
  Queue io;
  queue_init(&io, 1, size, iosq, iocq, dstrd);
  admin_run(NVME_ADMIN_CREATE_CQ, 0, iova_of(iocq), ((uint32_t)(size - 1) << 16) | 1, 1);
  admin_run(NVME_ADMIN_CREATE_SQ, 0, iova_of(iosq), ((uint32_t)(size - 1) << 16) | 1, (1 << 16) | 1);

  // The workload: qd reads in flight at random 4 KiB-aligned LBAs, each resubmitted on completion.
  uint64_t rng = 0x9e3779b97f4a7c15ull ^ now_ns();
  auto read_at_random = [&](uint16_t cid) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    uint64_t lba = (rng % span) * blocks;
    uint32_t cdw[6] = {(uint32_t)lba, (uint32_t)(lba >> 32), blocks - 1, 0, 0, 0};
    submit(&io, cid, NVME_NVM_READ, 1, iova_of(data + cid * NVME_PAGE), cdw);
  };
  uint64_t ios = 0;
  int outstanding = qd;
  doorbell_ns = doorbells = 0;
  uint64_t t0 = now_ns();
  uint64_t end = t0 + (uint64_t)(seconds * 1e9);
  bool running = true;
  uint64_t stop = 0;
  for (uint16_t k = 0; k < qd; k++) read_at_random(k);
  wr32(io.sqdb, io.tail);
  while (outstanding) {
    int n = 0;
    uint16_t status;
    int cid;
    while ((cid = reap(&io, &status)) >= 0) {
      n++;
      if (status) {
        fprintf(stderr, "nvme-bench: read failed with status 0x%x\n", status);
        exit(1);
      }
      if (running) {
        ios++;
        read_at_random((uint16_t)cid);
      } else {
        outstanding--;
      }
    }
    if (n && running) wr32(io.sqdb, io.tail);
    if (n) wr32(io.cqdb, io.head);
    if (running && now_ns() >= end) {
      running = false;
      stop = now_ns();
    }
  }
  double took = (double)(stop - t0) / 1e9;
  double per_doorbell = doorbells ? (double)doorbell_ns / doorbells : 0;
  double doorbells_per_io = ios ? (double)doorbells / ios : 0;

  // Delete the queues, shut down normally, release.
  admin_run(NVME_ADMIN_DELETE_SQ, 0, 0, 1, 0);
  admin_run(NVME_ADMIN_DELETE_CQ, 0, 0, 1, 0);
  wr32(NVME_REG_CC, rd32(NVME_REG_CC) | NVME_CC_SHN_NORMAL);
  uint64_t shn_end = now_ns() + 5000000000ull;
  while ((rd32(NVME_REG_CSTS) & NVME_CSTS_SHST_MASK) != NVME_CSTS_SHST_COMPLETE && now_ns() < shn_end) {
  }
  iommu_ioas_unmap u{sizeof u, d.ioas, kIova, kMemSize};
  if (ioctl(d.ictx, Req(Ioctl::IOMMU_IOAS_UNMAP), &u)) die("ioas unmap");
  munmap(mem, kMemSize);
  munmap(const_cast<uint8_t*>(bar), d.bar0_size);
  close(d.dev);
  close(d.ictx);
  printf("{\"iops\": %.1f, \"ios\": %llu, \"seconds\": %.3f, \"doorbellNs\": %.0f, \"doorbellsPerIo\": %.2f}\n", ios / took,
         (unsigned long long)ios, took, per_doorbell, doorbells_per_io);
  return 0;
}
