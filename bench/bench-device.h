// What both C benchmark programs do first: open a device cdev, bind it to a new iommufd, attach
// it to a new IOAS, map BAR0 and turn bus mastering on; plus the clock and the error exit.
// Plain syscalls over the addon's own uAPI header (native/uapi.h).
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../native/uapi.h"

namespace bench {

using namespace vfio;

inline unsigned long Req(Ioctl i) { return Info(i).number; }

// The program's name for error messages (set by main).
inline const char* program = "bench";

[[noreturn]] inline void die(const char* what) {
  fprintf(stderr, "%s: %s: %s\n", program, what, errno ? strerror(errno) : "failed");
  exit(1);
}

inline uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

struct Device {
  int dev, ictx;
  uint32_t ioas;
  uint64_t bar0_off, cfg_off;
  size_t bar0_size;
  volatile uint8_t* bar;
};

// The device at `path`, bound, attached, BAR0 mapped, bus master on.
inline Device open_device(const char* path) {
  Device d{};
  d.dev = open(path, O_RDWR | O_CLOEXEC);
  if (d.dev < 0) die(path);
  d.ictx = open("/dev/iommu", O_RDWR | O_CLOEXEC);
  if (d.ictx < 0) die("/dev/iommu");
  vfio_device_bind_iommufd b{};
  b.argsz = kBindMinsz;
  b.iommufd = d.ictx;
  if (ioctl(d.dev, Req(Ioctl::VFIO_DEVICE_BIND_IOMMUFD), &b)) die("bind");
  iommu_ioas_alloc a{sizeof a, 0, 0};
  if (ioctl(d.ictx, Req(Ioctl::IOMMU_IOAS_ALLOC), &a)) die("ioas alloc");
  d.ioas = a.out_ioas_id;
  vfio_device_attach_iommufd_pt at{kAttachMinsz, 0, d.ioas, 0};
  if (ioctl(d.dev, Req(Ioctl::VFIO_DEVICE_ATTACH_IOMMUFD_PT), &at)) die("attach");
  vfio_region_info r{sizeof r, 0, 0, 0, 0, 0};
  if (ioctl(d.dev, Req(Ioctl::VFIO_DEVICE_GET_REGION_INFO), &r)) die("region info");
  d.bar0_off = r.offset;
  d.bar0_size = r.size;
  void* p = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, d.dev, r.offset);
  if (p == MAP_FAILED) die("mmap bar0");
  d.bar = static_cast<volatile uint8_t*>(p);
  r = vfio_region_info{sizeof r, 0, 7, 0, 0, 0};
  if (ioctl(d.dev, Req(Ioctl::VFIO_DEVICE_GET_REGION_INFO), &r)) die("config region info");
  d.cfg_off = r.offset;
  uint16_t cmd;
  if (pread(d.dev, &cmd, 2, d.cfg_off + 4) != 2) die("read command");
  cmd |= 4;  // bus master
  if (pwrite(d.dev, &cmd, 2, d.cfg_off + 4) != 2) die("write command");
  return d;
}

}  // namespace bench
