// The kernel's mock IOMMU (CONFIG_IOMMUFD_TEST, drivers/iommu/iommufd/selftest.c), driven
// through the library's raw escape hatch, iommufd.ioctl(): struct iommu_test_cmd and its
// constants as drivers/iommu/iommufd/iommufd_test.h (Linux 7.3) defines them. The lab's 7.3
// kernel has it (lab/kernel-mock-iommu.config); 6.12's does not.
import assert from 'node:assert/strict';

/** IOMMU_TEST_CMD: _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32). */
export const IOMMU_TEST_CMD = (0x3b << 8) | (0x80 + 32);

/** enum IOMMU_TEST_OP_*. */
export const OP = Object.freeze({
  ADD_RESERVED: 1,
  MOCK_DOMAIN: 2,
  MD_CHECK_MAP: 3,
  MD_CHECK_REFS: 4,
  CREATE_ACCESS: 5,
  DESTROY_ACCESS_PAGES: 6,
  ACCESS_PAGES: 7,
  ACCESS_RW: 8,
  SET_TEMP_MEMORY_LIMIT: 9,
  MOCK_DOMAIN_REPLACE: 10,
  ACCESS_REPLACE_IOAS: 11,
  MOCK_DOMAIN_FLAGS: 12,
  DIRTY: 13,
  MD_CHECK_IOTLB: 14,
  TRIGGER_IOPF: 15,
  DEV_CHECK_CACHE: 16,
  TRIGGER_VEVENT: 17,
  PASID_ATTACH: 18,
  PASID_REPLACE: 19,
  PASID_DETACH: 20,
  PASID_CHECK_HWPT: 21,
  DMABUF_GET: 22,
  DMABUF_REVOKE: 23,
});

/** The mock's constants. */
export const MOCK = Object.freeze({
  APERTURE_START: 1n << 24n,
  APERTURE_LAST: (1n << 31n) - 1n,
  PAGE_SIZE: 2048,
  FLAGS_DEVICE_NO_DIRTY: 1,
  FLAGS_DEVICE_PASID: 4,
  PASID_WIDTH: 20,
  DEV_CACHE_DEFAULT: 0xbaddad,
  DEV_CACHE_NUM: 4,
  DEFAULT_MEMORY_LIMIT: 65536,
  HUGE_PAGE_SIZE: 512 * 2048,
  IOMMUPT_DEFAULT: 0,
  IOMMUPT_HUGE: 1,
  FLAGS_ACCESS_WRITE: 1,
  FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES: 1,
  ACCESS_RW_WRITE: 1,
  ACCESS_RW_SLOW_PATH: 4,
  HW_INFO_TYPE_SELFTEST: 0xfeedbeef,
  HW_INFO_SELFTEST_REGVAL: 0xdeadbeef,
  HWPT_DATA_SELFTEST: 0xdead,
  IOTLB_DEFAULT: 0xbadbeef,
  IOTLB_NUM: 4,
  HWPT_INVALIDATE_DATA_SELFTEST: 0xdeadbeef,
  INVALIDATE_FLAG_ALL: 1,
  VIOMMU_TYPE_SELFTEST: 0xdeadbeef,
  VEVENTQ_TYPE_SELFTEST: 0xbeefbeef,
  VIOMMU_INVALIDATE_DATA_SELFTEST: 0xdeadbeef,
  VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID: 0xdadbeef,
  DEV_CACHE_ID_MAX: 3,
  HW_QUEUE_TYPE_SELFTEST: 0xdeadbeef,
  HW_QUEUE_MAX: 2,
});

// sizeof(struct iommu_test_cmd): a 16-byte head, a 48-byte union, `last`, padding to 8.
const CMD_SIZE = 72;
const UNION = 16;

/** struct iommu_test_cmd `op` on object `id`, its union filled by `fill(view, UNION)`; the view after the call. */
export function testCmd(iommufd, op, id, fill) {
  return cmd(iommufd, op, id, fill && ((v) => fill(v, UNION)));
}

function cmd(iommufd, op, id, fill) {
  const bytes = new Uint8Array(CMD_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, CMD_SIZE, true);
  v.setUint32(4, op, true);
  v.setUint32(8, id, true);
  fill?.(v);
  iommufd.ioctl(IOMMU_TEST_CMD, bytes);
  return v;
}

/** struct iommu_hwpt_selftest: a nested HWPT's driver data (iotlb = the default, pagetable_type 0). */
export const selftestData = () => new Uint32Array([MOCK.IOTLB_DEFAULT, 0]);

/** Whether this kernel has the mock (asserted: the lab's 7.3 kernel must, 6.12's must not). */
export function hasMock(iommufd) {
  const [major, minor] = process.env.VFIO_LAB_KERNEL_RELEASE.split('.').map(Number);
  const expected = major > 7 || (major === 7 && minor >= 3);
  let present = true;
  try {
    cmd(iommufd, 0, 0);
  } catch (err) {
    if (err.code === 'ENOTTY') present = false;
  }
  assert.equal(present, expected, `the lab kernel ${process.env.VFIO_LAB_KERNEL_RELEASE} ${expected ? 'lacks' : 'has'} ` +
    'CONFIG_IOMMUFD_TEST (lab/kernel-mock-iommu.config is for 7.3 only)');
  return present;
}

/**
 * A mock device attached to a mock domain on `ioas` (an IoAddressSpace, a HWPT or an id); its
 * iommufd device id is `idevId`. `flags`: MOCK.FLAGS_DEVICE_* (IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS).
 */
export function mockDevice(iommufd, ioas, flags) {
  const id = typeof ioas === 'number' ? ioas : ioas.id;
  const v = flags === undefined ? cmd(iommufd, OP.MOCK_DOMAIN, id)
    : cmd(iommufd, OP.MOCK_DOMAIN_FLAGS, id, (c) => c.setUint32(UNION + 12, flags, true));
  return { stdevId: v.getUint32(UNION, true), hwptId: v.getUint32(UNION + 4, true), idevId: v.getUint32(UNION + 8, true) };
}

/** Attach the mock device to another HWPT or IOAS (what a real device's attach() does). */
export function mockAttach(iommufd, mock, target) {
  cmd(iommufd, OP.MOCK_DOMAIN_REPLACE, mock.stdevId, (v) => v.setUint32(UNION, target.id, true));
}

/** Make the mock IOMMU mark pages dirty, as a device's writes would: bit i of `bitmap` (a DmaBuffer). */
export function mockDirty(iommufd, hwpt, iova, length, pageSize, bitmap) {
  const v = cmd(iommufd, OP.DIRTY, hwpt.id, (c) => {
    c.setBigUint64(UNION + 8, BigInt(iova), true);
    c.setBigUint64(UNION + 16, BigInt(length), true);
    c.setBigUint64(UNION + 24, BigInt(pageSize), true);
    c.setBigUint64(UNION + 32, bitmap.address, true);
  });
  return Number(v.getBigUint64(UNION + 40, true));
}

/** Whether the nested HWPT's mock IOTLB entry `index` holds `value` (the kernel checks; EINVAL if not). */
export function mockIotlbIs(iommufd, hwpt, index, value) {
  try {
    cmd(iommufd, OP.MD_CHECK_IOTLB, hwpt.id, (v) => {
      v.setUint32(UNION, index, true);
      v.setUint32(UNION + 4, value, true);
    });
    return true;
  } catch (err) {
    if (err.code === 'EINVAL') return false;
    throw err;
  }
}

/** Make the mock device fault at `addr` (PASID `pasid`, group 2, read+write). */
export function mockFault(iommufd, mock, { pasid = 1, addr = 0xdeadbeafn } = {}) {
  cmd(iommufd, OP.TRIGGER_IOPF, 0, (v) => {
    v.setUint32(UNION, mock.idevId, true);
    v.setUint32(UNION + 4, pasid, true);
    v.setUint32(UNION + 8, 2, true);
    v.setUint32(UNION + 12, 3, true);
    v.setBigUint64(UNION + 16, addr, true);
  });
}

/** Make the mock vIOMMU report an event for the mock device (data: its virtual id, a u32). */
export function mockEvent(iommufd, mock) {
  cmd(iommufd, OP.TRIGGER_VEVENT, 0, (v) => v.setUint32(UNION, mock.idevId, true));
}

/** The mock's pinned-page accounting limit, in pages (IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT; 65536 is its default). */
export function setTempMemoryLimit(iommufd, limit) {
  cmd(iommufd, OP.SET_TEMP_MEMORY_LIMIT, 0, (v) => v.setUint32(UNION, limit, true));
}

/** Reserve [start, start + length) of the IOAS, as an IOMMU's reserved region would (IOMMU_TEST_OP_ADD_RESERVED). */
export function addReserved(iommufd, ioas, start, length) {
  cmd(iommufd, OP.ADD_RESERVED, ioas.id, (v) => {
    v.setBigUint64(UNION, BigInt(start), true);
    v.setBigUint64(UNION + 8, BigInt(length), true);
  });
}

/** Assert that every page of `length` bytes at `address` (a process address) is pinned `refs` times (IOMMU_TEST_OP_MD_CHECK_REFS). */
export function checkRefs(iommufd, address, length, refs) {
  cmd(iommufd, OP.MD_CHECK_REFS, 0, (v) => {
    v.setBigUint64(UNION, BigInt(length), true);
    v.setBigUint64(UNION + 8, BigInt(address), true);
    v.setUint32(UNION + 16, refs, true);
  });
}

/** Assert that the mock domain `hwptId` maps `length` bytes at `iova` to `address` (IOMMU_TEST_OP_MD_CHECK_MAP). */
export function checkMap(iommufd, hwptId, iova, length, address) {
  cmd(iommufd, OP.MD_CHECK_MAP, hwptId, (v) => {
    v.setBigUint64(UNION, BigInt(iova), true);
    v.setBigUint64(UNION + 8, BigInt(length), true);
    v.setBigUint64(UNION + 16, BigInt(address), true);
  });
}

/** Assert that the mock device's cache entry `cacheId` holds `expected` (IOMMU_TEST_OP_DEV_CHECK_CACHE). */
export function checkDevCache(iommufd, idevId, cacheId, expected) {
  cmd(iommufd, OP.DEV_CHECK_CACHE, idevId, (v) => {
    v.setUint32(UNION, cacheId, true);
    v.setUint32(UNION + 4, expected, true);
  });
}

/**
 * An in-kernel user of the IOAS (an iommufd_access, what an mdev driver holds), made by the mock
 * (IOMMU_TEST_OP_CREATE_ACCESS): returns its fd, which is its id in the commands below; closing
 * the fd destroys it.
 */
export function createAccess(iommufd, ioas, flags = 0) {
  return cmd(iommufd, OP.CREATE_ACCESS, ioas.id, (v) => v.setUint32(UNION + 4, flags, true)).getUint32(UNION, true);
}

/** Pin `length` bytes at `iova` through the access, and check they are the pages at `address` (IOMMU_TEST_OP_ACCESS_PAGES); returns the pin's id. */
export function accessPages(iommufd, accessFd, iova, length, address, flags = 0) {
  const v = cmd(iommufd, OP.ACCESS_PAGES, accessFd, (c) => {
    c.setUint32(UNION, flags, true);
    c.setBigUint64(UNION + 8, BigInt(iova), true);
    c.setBigUint64(UNION + 16, BigInt(length), true);
    c.setBigUint64(UNION + 24, BigInt(address), true);
  });
  return v.getUint32(UNION + 4, true);
}

/** Unpin what accessPages pinned (IOMMU_TEST_OP_DESTROY_ACCESS_PAGES). */
export function destroyAccessPages(iommufd, accessFd, pagesId) {
  cmd(iommufd, OP.DESTROY_ACCESS_PAGES, accessFd, (v) => v.setUint32(UNION, pagesId, true));
}

/** Move the access to another IOAS (IOMMU_TEST_OP_ACCESS_REPLACE_IOAS). */
export function accessReplaceIoas(iommufd, accessFd, ioas) {
  cmd(iommufd, OP.ACCESS_REPLACE_IOAS, accessFd, (v) => v.setUint32(UNION, typeof ioas === 'number' ? ioas : ioas.id, true));
}

/** Copy between `length` bytes at `iova` and process memory at `address`, as an mdev's CPU access would (IOMMU_TEST_OP_ACCESS_RW). */
export function accessRw(iommufd, accessFd, iova, length, address, flags = 0) {
  cmd(iommufd, OP.ACCESS_RW, accessFd, (v) => {
    v.setBigUint64(UNION, BigInt(iova), true);
    v.setBigUint64(UNION + 8, BigInt(length), true);
    v.setBigUint64(UNION + 16, BigInt(address), true);
    v.setUint32(UNION + 24, flags, true);
  });
}

/** Attach (or detach) the mock device's PASID `pasid` to a HWPT (IOMMU_TEST_OP_PASID_ATTACH / _DETACH). */
export function mockPasidAttach(iommufd, mock, pasid, target) {
  cmd(iommufd, OP.PASID_ATTACH, mock.stdevId, (v) => {
    v.setUint32(UNION, pasid, true);
    v.setUint32(UNION + 4, typeof target === 'number' ? target : target.id, true);
  });
}

export function mockPasidReplace(iommufd, mock, pasid, target) {
  cmd(iommufd, OP.PASID_REPLACE, mock.stdevId, (v) => {
    v.setUint32(UNION, pasid, true);
    v.setUint32(UNION + 4, typeof target === 'number' ? target : target.id, true);
  });
}

export function mockPasidDetach(iommufd, mock, pasid) {
  cmd(iommufd, OP.PASID_DETACH, mock.stdevId, (v) => v.setUint32(UNION, pasid, true));
}

/** Whether the mock device's PASID `pasid` is attached to HWPT `hwptId` (0: to none) (IOMMU_TEST_OP_PASID_CHECK_HWPT). */
export function mockPasidCheck(iommufd, mock, pasid, hwptId) {
  try {
    cmd(iommufd, OP.PASID_CHECK_HWPT, mock.stdevId, (v) => {
      v.setUint32(UNION, pasid, true);
      v.setUint32(UNION + 4, hwptId, true);
    });
    return true;
  } catch (err) {
    if (err.code === 'EINVAL') return false;
    throw err;
  }
}
