// tools/testing/selftests/iommu/iommufd.c (Linux 7.3) through the library. Upstream drives the
// kernel's mock IOMMU (CONFIG_IOMMUFD_TEST) with raw ioctls; here every uAPI call is the
// library's own (Iommufd, IoAddressSpace, VfioContainer on /dev/iommu) and only the mock's test
// commands go through the raw escape hatch, iommufd.ioctl() (../mock-iommu.mjs). Cases are named
// FIXTURE.VARIANT.TEST. Where the library refuses before the syscall (it always sends a struct of
// its own size, it maps only DmaBuffers), the case asserts that typed refusal and says so. The
// lab's 6.12 kernel has no mock: the cases that need it are printed as not expressible there.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DmaBuffer, Iommufd, VfioContainer, constants as C } from 'vfio';
import {
  IOMMU_TEST_CMD, MOCK, OP, accessPages, accessReplaceIoas, accessRw, testCmd, addReserved, checkDevCache, checkMap, checkRefs, createAccess, destroyAccessPages,
  hasMock, mockAttach, mockDevice, mockIotlbIs, selftestData, mockDirty, mockEvent, mockFault, mockPasidAttach, mockPasidCheck, mockPasidDetach,
  mockPasidReplace, setTempMemoryLimit,
} from '../mock-iommu.mjs';
import { patternAt } from './fork-child.mjs';
import { needsMock, notExpressible } from './modes.mjs';

const FILE = 'iommu/iommufd';
const PAGE_SIZE = 4096;
const BUFFER_SIZE = PAGE_SIZE * 16;
const MAX_U64 = (1n << 64n) - 1n;

const MOCKED = (() => {
  const probe = Iommufd.open();
  try {
    return hasMock(probe);
  } finally {
    probe.close();
  }
})();

/** upstream's get_huge_page_size(): the THP size, else 2 MiB. */
function hugePageSize() {
  try {
    return Number(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/hpage_pmd_size', 'utf8')) || 2 * 1024 * 1024;
  } catch {
    return 2 * 1024 * 1024;
  }
}

/**
 * upstream's global `buffer`: 16 pages at a huge-page-aligned address (the kernel aligns the IOVAs
 * it picks no better than the memory), shared by every case; the pin checks look at it after each.
 */
const buffer = DmaBuffer.alloc(BUFFER_SIZE, { align: hugePageSize() });

/** A test that needs the mock: registered where the kernel has it (the lab's 7.3), else counted as needing it. */
function mockTest(name, fn) {
  if (MOCKED) test(name, fn);
  else needsMock(FILE, name);
}

/** upstream's teardown_iommufd: close, then no page of `buffer` may still be pinned. */
function teardown(iommufd) {
  iommufd.close();
  checkNoPins();
}

/** No page of the global `buffer` is pinned (asked of the mock through a fresh iommufd). */
function checkNoPins() {
  if (!MOCKED) return;
  const check = Iommufd.open();
  try {
    checkRefs(check, buffer.address, BUFFER_SIZE, 0);
  } finally {
    check.close();
  }
}

const errno = (code) => ({ name: 'VfioError', code });

/** Run `fn()`, then `cleanup()` once it is done: at once, on a throw, or when its promise settles. */
function thenCleanup(fn, cleanup) {
  let result;
  try {
    result = fn();
  } catch (err) {
    cleanup();
    throw err;
  }
  if (result instanceof Promise) return result.finally(cleanup);
  cleanup();
  return result;
}

// ---- FIXTURE(iommufd): a bare /dev/iommu --------------------------------------------------------

function withIommufd(fn) {
  const iommufd = Iommufd.open();
  try {
    fn(iommufd);
  } finally {
    teardown(iommufd);
  }
}

test('iommufd.simple_close', () => {
  withIommufd((iommufd) => assert.equal(iommufd.closed, false));
});

test('iommufd.cmd_fail (a NULL struct: the library takes no pointer, only a Uint8Array: TypeError)', () => {
  withIommufd((iommufd) => {
    assert.throws(() => iommufd.destroy(0), errno('ENOENT'), 'object id is invalid');
    assert.throws(() => iommufd.ioctl(C.IOMMU_DESTROY, null), TypeError, 'bad pointer');
    const unknown = (0x3b << 8) | (0x80 - 1); // _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE - 1)
    const cmd = new Uint8Array(8);
    new DataView(cmd.buffer).setUint32(0, 8, true);
    assert.throws(() => iommufd.ioctl(unknown, cmd), errno('ENOTTY'), 'unknown ioctl');
  });
});

// upstream's TEST_LENGTH rows: every one is a request the library wraps, so it always sends the
// struct's own size and the raw ioctl refuses the request (the kernel's EINVAL for a short struct
// and E2BIG for non-zero bytes past it cannot be reached through the library).
const LENGTHS = ['IOMMU_DESTROY', 'IOMMU_GET_HW_INFO', 'IOMMU_HWPT_ALLOC', 'IOMMU_HWPT_INVALIDATE', 'IOMMU_IOAS_ALLOC',
  'IOMMU_IOAS_IOVA_RANGES', 'IOMMU_IOAS_ALLOW_IOVAS', 'IOMMU_IOAS_MAP', 'IOMMU_IOAS_COPY', 'IOMMU_IOAS_UNMAP', 'IOMMU_OPTION',
  'IOMMU_VFIO_IOAS', 'IOMMU_IOAS_MAP_FILE', 'IOMMU_VIOMMU_ALLOC', 'IOMMU_VDEVICE_ALLOC', 'IOMMU_IOAS_CHANGE_PROCESS'];

test('iommufd.cmd_length (every request is one the library wraps and sizes itself: its raw ioctl refuses them, TypeError)', () => {
  withIommufd((iommufd) => {
    for (const request of LENGTHS) {
      assert.equal(typeof C[request], 'number', `${request} has a number`);
      const cmd = new Uint8Array(64);
      new DataView(cmd.buffer).setUint32(0, 7, true);
      assert.throws(() => iommufd.ioctl(C[request], cmd), { name: 'TypeError', message: new RegExp(`is ${request}, which the library wraps`) });
    }
  });
});

test('iommufd.cmd_ex_fail (a longer IOMMU_DESTROY cannot be sent: the library\'s call gives ENOENT, its raw form is refused)', () => {
  withIommufd((iommufd) => {
    assert.throws(() => iommufd.destroy(0), errno('ENOENT'), 'object id is invalid');
    const cmd = new Uint8Array(16);
    new DataView(cmd.buffer).setUint32(0, 16, true);
    assert.throws(() => iommufd.ioctl(C.IOMMU_DESTROY, cmd), TypeError, 'the raw form of a wrapped request');
  });
});

test('iommufd.global_options', () => {
  withIommufd((iommufd) => {
    assert.equal(iommufd.getOption('rlimitMode'), 0n);
    iommufd.setOption('rlimitMode', 1); // this requires root
    assert.throws(() => iommufd.setOption('rlimitMode', 2), errno('EINVAL'));
    assert.equal(iommufd.getOption('rlimitMode'), 1n);
    iommufd.setOption('rlimitMode', 0);
    assert.throws(() => iommufd.getOption('hugePages'), errno('ENOENT'), 'hugePages is per IOAS: object 0 is no IOAS');
    assert.throws(() => iommufd.setOption('hugePages', 0), errno('ENOENT'));
  });
});

test('iommufd.simple_ioctls (/dev/iommu as a VFIO container)', () => {
  const container = VfioContainer.open('/dev/iommu');
  try {
    assert.equal(container.apiVersion(), 0, 'VFIO_API_VERSION');
    assert.equal(container.checkExtension(C.VFIO_TYPE1v2_IOMMU), true);
  } finally {
    container.close();
  }
});

/** The compat container on a bare /dev/iommu, and that fd as an Iommufd too (not owned). */
function withCompat(fn) {
  const container = VfioContainer.open('/dev/iommu');
  const iommufd = Iommufd.fromFd(container.fd, { own: false });
  try {
    fn(container, iommufd);
  } finally {
    iommufd.close();
    container.close();
  }
}

test('iommufd.unmap_cmd (argsz and flags: the library always sends the struct\'s own size and no unknown flags; no IOAS: ENODEV)', () => {
  withCompat((container) => {
    assert.throws(() => container.unmap(MOCK.APERTURE_START, PAGE_SIZE), errno('ENODEV'));
  });
});

test('iommufd.map_cmd (argsz and flags as unmap_cmd; a map needs an IOAS: ENODEV)', () => {
  withCompat((container) => {
    assert.throws(() => container.map(buffer, { iova: MOCK.APERTURE_START, length: PAGE_SIZE }), errno('ENODEV'));
  });
});

test('iommufd.info_cmd (argsz: the library sizes it; no IOAS: ENODEV)', () => {
  withCompat((container) => {
    assert.throws(() => container.info(), errno('ENODEV'));
  });
});

test('iommufd.set_iommu_cmd (needs an IOAS: ENODEV)', () => {
  withCompat((container) => {
    assert.throws(() => container.setIommu(C.VFIO_TYPE1v2_IOMMU), errno('ENODEV'));
    assert.throws(() => container.setIommu(C.VFIO_TYPE1_IOMMU), errno('ENODEV'));
  });
});

test('iommufd.vfio_ioas', () => {
  withIommufd((iommufd) => {
    assert.throws(() => iommufd.vfioIoas({ op: 'get' }), errno('ENODEV'), 'no compat IOAS');
    assert.throws(() => iommufd.vfioIoas({ op: 'set', ioas: 0 }), errno('ENOENT'), 'invalid id for set');
    const ioas = iommufd.allocIoas();
    iommufd.vfioIoas({ op: 'set', ioas });
    assert.equal(iommufd.vfioIoas({ op: 'get' }), ioas.id, 'the same id comes back from get');
    iommufd.vfioIoas({ op: 'clear' });
    assert.throws(() => iommufd.vfioIoas({ op: 'get' }), errno('ENODEV'));
  });
});

// ---- FIXTURE(iommufd_ioas): an IOAS, with 0, 1 or 2 mock domains ---------------------------------

const IOAS_VARIANTS = {
  no_domain: { mockDomains: 0 },
  mock_domain: { mockDomains: 1, pasidCapable: true },
  two_mock_domain: { mockDomains: 2 },
  mock_domain_limit: { mockDomains: 1, memoryLimit: 16 },
};

function withIoas(variant, fn) {
  const iommufd = Iommufd.open();
  const self = { iommufd, ioas: iommufd.allocIoas(), stdevId: 0, hwptId: 0, deviceId: 0, devicePasidId: 0, baseIova: 0n };
  const cleanup = () => {
    if (MOCKED && !iommufd.closed) setTempMemoryLimit(iommufd, MOCK.DEFAULT_MEMORY_LIMIT);
    teardown(iommufd);
  };
  return thenCleanup(() => {
    if (MOCKED) setTempMemoryLimit(iommufd, variant.memoryLimit ?? MOCK.DEFAULT_MEMORY_LIMIT);
    for (let i = 0; i < variant.mockDomains; i++) {
      const m = mockDevice(iommufd, self.ioas);
      Object.assign(self, { stdevId: m.stdevId, hwptId: m.hwptId, deviceId: m.idevId, baseIova: MOCK.APERTURE_START });
      for (let c = 0; c < MOCK.DEV_CACHE_NUM; c++) checkDevCache(iommufd, m.idevId, c, MOCK.DEV_CACHE_DEFAULT);
    }
    if (variant.pasidCapable) self.devicePasidId = mockDevice(iommufd, self.ioas, MOCK.FLAGS_DEVICE_PASID).idevId;
    return fn(self, variant);
  }, cleanup);
}

/**
 * TEST_F(iommufd_ioas, name) for every variant: `needsMock` when the case uses the mock's test
 * commands even without a mock domain (the mock-domain variants always need the mock).
 */
function ioasTest(name, fn, { needsMock = false, variants = Object.keys(IOAS_VARIANTS) } = {}) {
  for (const v of variants) {
    const title = `iommufd_ioas.${v}.${name}`;
    if (needsMock || IOAS_VARIANTS[v].mockDomains > 0) mockTest(title, () => withIoas(IOAS_VARIANTS[v], fn));
    else test(title, () => withIoas(IOAS_VARIANTS[v], fn));
  }
}

/** upstream's test_ioctl_ioas_map_fixed of `length` bytes (0: all) of `buf` (default the global buffer) from `offset`. */
const mapFixed = (self, length, iova, offset = 0, buf = buffer) =>
  self.ioas.map(buf, { iova, offset, ...(length ? { length } : {}) });

ioasTest('ioas_auto_destroy', (self) => assert.equal(self.ioas.destroyed, false));

ioasTest('ioas_destroy', (self) => {
  if (self.stdevId) {
    assert.throws(() => self.iommufd.destroy(self.ioas.id), errno('EBUSY'), 'a device has a HWPT using it');
  } else {
    self.ioas.destroy();
    assert.equal(self.ioas.destroyed, true);
  }
});

ioasTest('hwpt_attach', (self) => {
  if (self.stdevId) assert.ok(mockDevice(self.iommufd, self.hwptId).idevId > 0, 'a device attached directly to a HWPT');
  else assert.throws(() => mockDevice(self.iommufd, self.hwptId), errno('ENOENT'));
}, { needsMock: true });

ioasTest('ioas_area_destroy', (self) => {
  mapFixed(self, PAGE_SIZE, self.baseIova);
  if (self.stdevId) assert.throws(() => self.iommufd.destroy(self.ioas.id), errno('EBUSY'));
  else self.ioas.destroy();
});

ioasTest('ioas_area_auto_destroy', (self) => {
  for (let i = 0; i < 10; i++) mapFixed(self, PAGE_SIZE, self.baseIova + BigInt(i * PAGE_SIZE));
});

ioasTest('get_hw_info (the library sizes the data buffer itself: the exact, larger and smaller user buffers are not expressible)', (self, variant) => {
  const { iommufd } = self;
  if (self.deviceId) {
    const hw = iommufd.hwInfo(self.deviceId);
    assert.equal(hw.type, MOCK.HW_INFO_TYPE_SELFTEST);
    assert.equal(hw.data.length, 8, 'sizeof(struct iommu_test_hw_info)');
    assert.equal(new DataView(hw.data.buffer, hw.data.byteOffset).getUint32(4, true), MOCK.HW_INFO_SELFTEST_REGVAL);
    assert.throws(() => iommufd.hwInfo(self.deviceId, { dataType: MOCK.HW_INFO_TYPE_SELFTEST + 1 }), errno('EOPNOTSUPP'));
    assert.equal(iommufd.hwInfo(self.deviceId, { dataType: MOCK.HW_INFO_TYPE_SELFTEST }).type, MOCK.HW_INFO_TYPE_SELFTEST);
    assert.equal(hw.maxPasidLog2 ?? 0, 0);
    if (variant.pasidCapable) assert.equal(iommufd.hwInfo(self.devicePasidId).maxPasidLog2, MOCK.PASID_WIDTH);
  } else {
    assert.throws(() => iommufd.hwInfo(self.deviceId), errno('ENOENT'));
  }
});

ioasTest('area', (self) => {
  const { ioas } = self;
  const at = (pages) => self.baseIova + BigInt(pages * PAGE_SIZE);
  for (let i = 0; i < 10; i++) assert.throws(() => ioas.unmap(i * PAGE_SIZE, PAGE_SIZE), errno('ENOENT'), 'nothing is mapped');
  for (let i = 0; i < 10; i++) mapFixed(self, PAGE_SIZE, at(i));
  for (let i = 0; i < 10; i++) assert.equal(ioas.unmap(at(i), PAGE_SIZE), PAGE_SIZE);

  mapFixed(self, PAGE_SIZE * 2, at(16));
  assert.throws(() => ioas.unmap(at(16), PAGE_SIZE), errno('ENOENT'), 'split fails');
  assert.throws(() => ioas.unmap(at(17), PAGE_SIZE), errno('ENOENT'), 'split fails');

  assert.throws(() => mapFixed(self, PAGE_SIZE * 2, at(16)), errno('EEXIST'), 'over map fails');
  assert.throws(() => mapFixed(self, PAGE_SIZE, at(16)), errno('EEXIST'));
  assert.throws(() => mapFixed(self, PAGE_SIZE, at(17)), errno('EEXIST'));
  assert.throws(() => mapFixed(self, PAGE_SIZE * 2, at(15)), errno('EEXIST'));
  assert.throws(() => mapFixed(self, PAGE_SIZE * 3, at(15)), errno('EEXIST'));

  assert.equal(ioas.unmap(0, MAX_U64), PAGE_SIZE * 2, 'unmap all works');
  assert.equal(ioas.unmap(0, MAX_U64), 0, 'unmap all succeeds on an empty IOAS');
});

ioasTest('unmap_fully_contained_areas', (self) => {
  const base = self.baseIova + BigInt(4 * PAGE_SIZE); // room for no_domain to rewind base_iova
  const P = (n) => BigInt(n * PAGE_SIZE);
  for (let i = 0; i < 4; i++) mapFixed(self, 8 * PAGE_SIZE, base + P(i * 16));
  assert.throws(() => self.ioas.unmap(base - P(4), P(8)), errno('ENOENT'), 'not fully contained');
  assert.throws(() => self.ioas.unmap(base + P(3 * 16 + 8 - 4), P(8)), errno('ENOENT'));
  assert.equal(self.ioas.unmap(base - P(4), P(3 * 16 + 8 + 4)), 32 * PAGE_SIZE, 'fully contained areas are unmapped');
});

const ffsAlign = (length) => BigInt(length & -length);

ioasTest('area_auto_iova (no_domain maps the DmaBuffer where upstream maps the unbacked address 1<<31: the library maps only memory it owns)', (self) => {
  const { ioas, iommufd } = self;
  const iovas = [];
  for (let i = 0; i < 10; i++) iovas.push(ioas.map(buffer, { length: PAGE_SIZE }));
  for (const iova of iovas) ioas.unmap(iova, PAGE_SIZE);

  const lengths = [...Array(10).keys()].map((i) => PAGE_SIZE * (i + 1));
  const mapAll = () => lengths.map((length) => {
    const iova = ioas.map(buffer, { length });
    assert.equal(iova % ffsAlign(length), 0n, `the kernel aligns the IOVA of ${length} bytes`);
    return iova;
  });
  const unmapAll = (got) => got.forEach((iova, i) => ioas.unmap(iova, lengths[i]));
  unmapAll(mapAll());

  const reserved = { start: BigInt(PAGE_SIZE * 4), length: BigInt(PAGE_SIZE * 100) };
  addReserved(iommufd, ioas, reserved.start, reserved.length);
  const avoided = mapAll();
  for (const iova of avoided) assert.ok(!(iova > reserved.start && iova < reserved.start + reserved.length), 'avoids the reserved region');
  unmapAll(avoided);

  assert.throws(() => ioas.allowIovas([{ start: BigInt(PAGE_SIZE), last: BigInt(PAGE_SIZE * 600) }]), errno('EADDRINUSE'),
    'an allowed region intersects a reserved one');
  const range = self.stdevId
    ? { start: MOCK.APERTURE_START + BigInt(PAGE_SIZE), last: MOCK.APERTURE_START + BigInt(PAGE_SIZE * 600) - 1n }
    : { start: BigInt(PAGE_SIZE * 200), last: BigInt(PAGE_SIZE * 600) - 1n };
  ioas.allowIovas([range]);
  const allowed = mapAll();
  allowed.forEach((iova, i) => {
    assert.ok(iova >= range.start && iova + BigInt(lengths[i]) <= range.last + 1n, 'allocated from the allowed region');
  });
  unmapAll(allowed);
}, { needsMock: true });

ioasTest('reserved_overflow', (self) => {
  addReserved(self.iommufd, self.ioas, 6, 0xffffffffffff8001n);
  assert.throws(() => self.ioas.map(buffer, { length: 0x5000 }), errno('ENOSPC'));
}, { needsMock: true });

ioasTest('area_allowed', (self) => {
  const { ioas, iommufd } = self;
  const range = { start: self.baseIova, last: self.baseIova + BigInt(PAGE_SIZE * 600) };
  ioas.allowIovas([range]);
  assert.throws(() => addReserved(iommufd, ioas, range.start + BigInt(PAGE_SIZE), PAGE_SIZE), errno('EADDRINUSE'),
    'a reserved region intersects an allowed one');
  ioas.allowIovas([]);
  addReserved(iommufd, ioas, range.start + BigInt(PAGE_SIZE), PAGE_SIZE);
  assert.throws(() => ioas.allowIovas([range]), errno('EADDRINUSE'), 'an allowed region intersects a reserved one');
}, { needsMock: true });

ioasTest('copy_area', (self) => {
  mapFixed(self, PAGE_SIZE, self.baseIova);
  const inside = self.ioas.copyFrom(self.ioas, { srcIova: self.baseIova, dstIova: self.baseIova + BigInt(PAGE_SIZE), length: PAGE_SIZE });
  assert.equal(inside, self.baseIova + BigInt(PAGE_SIZE), 'a copy inside one IOAS');
  const dst = self.iommufd.allocIoas();
  assert.equal(dst.copyFrom(self.ioas, { srcIova: self.baseIova, dstIova: 0, length: PAGE_SIZE }), 0n, 'a copy between IOASes');
});

ioasTest('iova_ranges (the library grows its buffer on EMSGSIZE itself: the too-small-buffer steps are not expressible)', (self) => {
  const { ioas } = self;
  const first = ioas.iovaRanges();
  if (!self.stdevId) {
    assert.deepEqual(first, [{ start: 0n, last: MAX_U64 }]);
    assert.equal(ioas.iovaAlignment, 1n);
  } else {
    assert.deepEqual(first, [{ start: MOCK.APERTURE_START, last: MOCK.APERTURE_LAST }]);
    assert.equal(ioas.iovaAlignment, BigInt(MOCK.PAGE_SIZE));
  }
  addReserved(self.iommufd, ioas, PAGE_SIZE, PAGE_SIZE);
  if (!self.stdevId) {
    assert.deepEqual(ioas.iovaRanges(), [{ start: 0n, last: BigInt(PAGE_SIZE - 1) }, { start: BigInt(PAGE_SIZE * 2), last: MAX_U64 }]);
  } else {
    assert.deepEqual(ioas.iovaRanges(), [{ start: MOCK.APERTURE_START, last: MOCK.APERTURE_LAST }]);
  }
}, { needsMock: true });

ioasTest('ioas_option_huge_pages', (self) => {
  const { iommufd, ioas } = self;
  assert.equal(iommufd.getOption('hugePages', ioas), 1n);
  iommufd.setOption('hugePages', 0, ioas);
  assert.equal(iommufd.getOption('hugePages', ioas), 0n);
  assert.throws(() => iommufd.setOption('hugePages', 2, ioas), errno('EINVAL'));
  iommufd.setOption('hugePages', 1, ioas);
});

ioasTest('ioas_iova_alloc (lengths off the mock\'s 2 KiB alignment: the library\'s EINVAL before the syscall, the kernel\'s errno)', (self, variant) => {
  for (let length = 1; length !== PAGE_SIZE * 2; length++) {
    if (variant.mockDomains && length % MOCK.PAGE_SIZE) {
      assert.throws(() => self.ioas.map(buffer, { length }), { name: 'VfioError', code: 'EINVAL', ioctl: 'IOMMU_IOAS_MAP' });
    } else {
      const iova = self.ioas.map(buffer, { length });
      assert.equal(self.ioas.unmap(iova, length), length);
    }
  }
});

// Upstream returns at once for the mock-domain variants (the alignment cannot be raised once a
// domain and a map are present): only no_domain asserts anything.
ioasTest('ioas_align_change', (self) => {
  const { iommufd, ioas } = self;
  const P = BigInt(PAGE_SIZE);
  mapFixed(self, PAGE_SIZE, MOCK.APERTURE_START);
  iommufd.setOption('hugePages', 0, ioas); // everything must now be PAGE_SIZE-aligned
  assert.throws(() => mapFixed(self, PAGE_SIZE, MOCK.APERTURE_START + P, MOCK.PAGE_SIZE), errno('EINVAL'), 'misalignment is rejected at map time');
  iommufd.setOption('hugePages', 0, ioas);
  iommufd.setOption('hugePages', 1, ioas); // reduce the alignment
  mapFixed(self, PAGE_SIZE, MOCK.APERTURE_START + P, MOCK.PAGE_SIZE);
  assert.throws(() => iommufd.setOption('hugePages', 0, ioas), errno('EADDRINUSE'), 'misalignment is rejected during the upgrade');
  ioas.unmap(MOCK.APERTURE_START + P, PAGE_SIZE);
  ioas.unmap(MOCK.APERTURE_START, PAGE_SIZE);
}, { variants: ['no_domain'] });

ioasTest('copy_sweep', (self, variant) => {
  const { iommufd, ioas } = self;
  const dst = iommufd.allocIoas();
  const last = MOCK.APERTURE_START + BigInt(BUFFER_SIZE) - (variant.mockDomains ? 1n : 2n);
  mapFixed(self, Number(last - MOCK.APERTURE_START + 1n), MOCK.APERTURE_START);
  const length = BigInt(MOCK.PAGE_SIZE);
  let copies = 0;
  for (let iova = MOCK.APERTURE_START - BigInt(PAGE_SIZE); iova <= last; iova += 511n) {
    const copy = () => dst.copyFrom(ioas, { srcIova: iova, dstIova: MOCK.APERTURE_START, length });
    if (iova < MOCK.APERTURE_START || iova + length - 1n > last) {
      assert.throws(copy, errno('ENOENT'), `src 0x${iova.toString(16)}`);
    } else {
      copy();
      dst.unmap(MOCK.APERTURE_START, length);
      copies++;
    }
  }
  assert.ok(copies > 100);
  dst.destroy();
});

ioasTest('access_domain_destory', (self) => {
  const { iommufd, ioas } = self;
  const buf = DmaBuffer.alloc(2 * hugePageSize(), { hugePages: true });
  try {
    mapFixed(self, 0, self.baseIova, 0, buf);
    const access = createAccess(iommufd, ioas, MOCK.FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
    const pages = accessPages(iommufd, access, self.baseIova + BigInt(PAGE_SIZE), PAGE_SIZE, buf.address + BigInt(PAGE_SIZE));
    if (self.stdevId) iommufd.destroy(self.stdevId); // a complicated unpin across a huge page boundary
    destroyAccessPages(iommufd, access, pages);
    fs.closeSync(access);
    ioas.unmapAll();
  } finally {
    buf.free();
  }
}, { needsMock: true });

ioasTest('access_pin', (self) => {
  const { iommufd, ioas } = self;
  const access = createAccess(iommufd, ioas, MOCK.FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
  try {
    for (let npages = 1; npages < BUFFER_SIZE / PAGE_SIZE; npages++) {
      const length = npages * PAGE_SIZE;
      const pin = () => accessPages(iommufd, access, MOCK.APERTURE_START, length, buffer.address);
      mapFixed(self, BUFFER_SIZE, MOCK.APERTURE_START); // single map/unmap
      destroyAccessPages(iommufd, access, pin());
      const first = pin(); // double user
      destroyAccessPages(iommufd, access, pin());
      destroyAccessPages(iommufd, access, first);
      const held = pin(); // add and remove a domain with a user
      const added = mockDevice(iommufd, ioas);
      checkMap(iommufd, added.hwptId, MOCK.APERTURE_START, BUFFER_SIZE, buffer.address);
      iommufd.destroy(added.stdevId);
      destroyAccessPages(iommufd, access, held);
      ioas.unmap(MOCK.APERTURE_START, BUFFER_SIZE);
    }
  } finally {
    fs.closeSync(access);
  }
}, { needsMock: true });

ioasTest('access_pin_unmap', (self) => {
  const { iommufd, ioas } = self;
  const access = createAccess(iommufd, ioas, MOCK.FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
  try {
    mapFixed(self, BUFFER_SIZE, MOCK.APERTURE_START);
    const pages = accessPages(iommufd, access, MOCK.APERTURE_START, BUFFER_SIZE, buffer.address);
    ioas.unmap(MOCK.APERTURE_START, BUFFER_SIZE); // triggers the access's unmap op
    assert.throws(() => destroyAccessPages(iommufd, access, pages), errno('ENOENT'), 'the kernel removed the pin');
  } finally {
    fs.closeSync(access);
  }
}, { needsMock: true });

/** upstream's check_access_rw: reads and writes through the access, byte-exact around a page boundary, then all 16 pages. */
function checkAccessRw(iommufd, access, iova, defFlags) {
  const words = new Uint16Array(buffer.buffer);
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(Math.random() * 0x10000);
  const tmp = scratch.bytes.subarray(0, 64);
  const P = BigInt(PAGE_SIZE);
  for (let at = iova + P - 50n; at < iova + P + 50n; at++) {
    const off = Number(at - iova);
    for (let length = 1; length < tmp.length; length++) {
      accessRw(iommufd, access, at, length, scratch.address, defFlags);
      assert.equal(Buffer.compare(buffer.bytes.subarray(off, off + length), tmp.subarray(0, length)), 0, `read ${length} at +${off}`);
      for (let i = 0; i < tmp.length; i++) tmp[i] = Math.floor(Math.random() * 256);
      accessRw(iommufd, access, at, length, scratch.address, defFlags | MOCK.ACCESS_RW_WRITE);
      assert.equal(Buffer.compare(buffer.bytes.subarray(off, off + length), tmp.subarray(0, length)), 0, `write ${length} at +${off}`);
    }
  }
  const whole = DmaBuffer.alloc(BUFFER_SIZE); // the multi-page test
  try {
    accessRw(iommufd, access, iova, BUFFER_SIZE, whole.address, defFlags);
    assert.equal(Buffer.compare(buffer.bytes, whole.bytes), 0);
  } finally {
    whole.free();
  }
}

/** Memory for the access's reads and writes (upstream's stack array `tmp`). */
const scratch = DmaBuffer.alloc(PAGE_SIZE);

ioasTest('access_rw', (self) => {
  const { iommufd, ioas } = self;
  const access = createAccess(iommufd, ioas, 0);
  try {
    const iova = ioas.map(buffer, { length: BUFFER_SIZE });
    checkAccessRw(iommufd, access, iova, 0);
    checkAccessRw(iommufd, access, iova, MOCK.ACCESS_RW_SLOW_PATH);
    ioas.unmap(iova, BUFFER_SIZE);
  } finally {
    fs.closeSync(access);
  }
}, { needsMock: true });

ioasTest('access_rw_unaligned', (self) => {
  const { iommufd, ioas } = self;
  const access = createAccess(iommufd, ioas, 0);
  try {
    const iova = self.baseIova + BigInt(MOCK.PAGE_SIZE); // unaligned pages
    mapFixed(self, BUFFER_SIZE, iova);
    checkAccessRw(iommufd, access, iova, 0);
    ioas.unmap(iova, BUFFER_SIZE);
  } finally {
    fs.closeSync(access);
  }
}, { needsMock: true });

const FORK_CHILD = fileURLToPath(new URL('./fork-child.mjs', import.meta.url));

/** Read the child's 16 pages through the access and check its pattern (upstream compares with its MAP_SHARED buffer). */
function checkChildPages(iommufd, access) {
  const whole = DmaBuffer.alloc(BUFFER_SIZE);
  try {
    accessRw(iommufd, access, MOCK.APERTURE_START, BUFFER_SIZE, whole.address, 0);
    for (let i = 0; i < BUFFER_SIZE; i++) {
      if (whole.bytes[i] !== patternAt(i)) assert.fail(`byte ${i} of the other process's pages: ${whole.bytes[i]}, not ${patternAt(i)}`);
    }
  } finally {
    whole.free();
  }
}

ioasTest('fork_gone (the child: a second node given the fd, mapping memory of its own with a known pattern)', (self) => {
  const { iommufd, ioas } = self;
  const access = createAccess(iommufd, ioas, 0);
  try {
    const r = spawnSync(process.execPath, [FORK_CHILD, String(ioas.id), String(MOCK.APERTURE_START), 'gone'],
      { stdio: ['ignore', 'inherit', 'inherit', iommufd.fd], env: process.env });
    assert.equal(r.status, 0, 'the child mapped and exited');
    if (self.stdevId) {
      // A domain existed: everything was pinned in the child, so this copies between domains.
      mockDevice(iommufd, ioas);
      checkChildPages(iommufd, access);
    } else {
      // No domain: the pages must be pinned now, which cannot happen: the child's mm is gone.
      assert.throws(() => mockDevice(iommufd, ioas), errno('EFAULT'));
    }
  } finally {
    fs.closeSync(access);
  }
}, { needsMock: true });

ioasTest('fork_present (the child as in fork_gone, waiting until told to go)', async (self) => {
  const { iommufd, ioas } = self;
  const access = createAccess(iommufd, ioas, 0);
  const child = spawn(process.execPath, [FORK_CHILD, String(ioas.id), String(MOCK.APERTURE_START), 'present'],
    { stdio: ['pipe', 'pipe', 'inherit', iommufd.fd], env: process.env });
  try {
    const [line] = await once(child.stdout, 'data');
    assert.equal(String(line).trim(), 'mapped');
    mockDevice(iommufd, ioas); // pins the pages of the live remote process
    checkChildPages(iommufd, access);
  } finally {
    child.stdin.end();
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    fs.closeSync(access);
  }
}, { needsMock: true });

/** The fds of this process that are dma-bufs. */
function dmabufFds() {
  return fs.readdirSync('/proc/self/fd').map(Number).filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).includes('dmabuf');
    } catch {
      return false;
    }
  });
}

/**
 * IOMMU_TEST_OP_DMABUF_GET: a dma-buf of `length` bytes from the mock; returns its fd. Linux
 * 7.3.4's mock returns 0, not the fd it installed (selftest.c: `return 0` after dma_buf_fd()), so
 * upstream's test goes on with fd 0; the new fd is found in /proc/self/fd instead.
 */
function mockDmabuf(iommufd, length) {
  const before = new Set(dmabufFds());
  const cmd = new Uint8Array(72);
  const v = new DataView(cmd.buffer);
  v.setUint32(0, 72, true);
  v.setUint32(4, OP.DMABUF_GET, true);
  v.setUint32(16, length, true);
  v.setUint32(20, 0o2000000, true); // O_CLOEXEC
  const r = iommufd.ioctl(IOMMU_TEST_CMD, cmd);
  const made = dmabufFds().filter((fd) => !before.has(fd));
  assert.equal(made.length, 1, 'the mock made one dma-buf fd');
  assert.ok(r === 0 || r === made[0], `the ioctl returned ${r}`);
  return made[0];
}

/** IOMMU_TEST_OP_DMABUF_REVOKE: the exporter revokes (or restores) the dma-buf. */
function mockRevokeDmabuf(iommufd, fd, revoked) {
  testCmd(iommufd, OP.DMABUF_REVOKE, 0, (v, u) => {
    v.setInt32(u, fd, true);
    v.setUint32(u + 4, revoked ? 1 : 0, true);
  });
}

ioasTest('dmabuf_simple', (self) => {
  const length = PAGE_SIZE * 4;
  const dfd = mockDmabuf(self.iommufd, length);
  try {
    assert.throws(() => self.ioas.mapFile(dfd, { start: 0, length: 0 }), errno('EINVAL'));
    assert.throws(() => self.ioas.mapFile(dfd, { start: length, length }), errno('EINVAL'));
    assert.throws(() => self.ioas.mapFile(dfd, { start: 0, length: length + 1 }), errno('EINVAL'));
    assert.equal(typeof self.ioas.mapFile(dfd, { start: 0, length }), 'bigint');
  } finally {
    fs.closeSync(dfd);
  }
}, { needsMock: true });

ioasTest('dmabuf_revoke', (self) => {
  const { iommufd, ioas } = self;
  const length = PAGE_SIZE * 4;
  const dfd = mockDmabuf(iommufd, length);
  try {
    const iova = ioas.mapFile(dfd, { start: 0, length });
    mockRevokeDmabuf(iommufd, dfd, true);
    if (self.deviceId) iommufd.allocHwpt(self.deviceId, ioas);
    assert.throws(() => ioas.mapFile(dfd, { start: 0, length }), errno('ENODEV'), 'revoked');
    mockRevokeDmabuf(iommufd, dfd, false);
    ioas.mapFile(dfd, { start: 0, length });
    ioas.unmap(iova, length); // restore the IOVA
    assert.equal(ioas.mapFile(dfd, { start: 0, length, iova }), iova);
  } finally {
    fs.closeSync(dfd);
  }
}, { needsMock: true });

ioasTest('alloc_hwpt_nested (not expressible: a NULL data or entry pointer, more entries than given, and the fault id 2^32-1: the library passes what it is given)', (self) => {
  const { iommufd, ioas, deviceId } = self;
  const data = selftestData();
  const SELFTEST = MOCK.HWPT_DATA_SELFTEST;
  if (!deviceId) {
    assert.throws(() => iommufd.allocHwpt(0, ioas), errno('ENOENT'));
    assert.throws(() => iommufd.allocHwpt(0, 0, { dataType: SELFTEST, data }), errno('ENOENT'));
    assert.throws(() => mockAttach(iommufd, { stdevId: 0 }, { id: 0 }), errno('ENOENT'));
    return;
  }
  const nestedOf = (parent, options = {}) => iommufd.allocHwpt(deviceId, parent, { dataType: SELFTEST, data, ...options });
  assert.throws(() => iommufd.allocHwpt(ioas.id, deviceId), errno('ENOENT'), 'an IOAS as the device');
  assert.throws(() => iommufd.allocHwpt(deviceId, deviceId), errno('EINVAL'), 'a device as the parent');
  assert.throws(() => iommufd.allocHwpt(deviceId, ioas, { flags: C.IOMMU_HWPT_ALLOC_NEST_PARENT | C.IOMMU_HWPT_FAULT_ID_VALID }),
    errno('EOPNOTSUPP'), 'a fault id flag without a fault queue');
  const parent = iommufd.allocHwpt(deviceId, ioas, { nestParent: true });
  const notParent = iommufd.allocHwpt(deviceId, ioas);
  // Negative nested allocations.
  assert.throws(() => nestedOf(parent, { dataType: C.IOMMU_HWPT_DATA_NONE }), errno('EINVAL'));
  assert.throws(() => nestedOf(parent, { dataType: SELFTEST + 1 }), errno('EOPNOTSUPP'));
  assert.throws(() => nestedOf(parent, { data: new Uint8Array(3) }), errno('EINVAL'), 'shorter than iotlb');
  assert.throws(() => nestedOf(parent, { nestParent: true }), errno('EOPNOTSUPP'));
  assert.throws(() => nestedOf(notParent), errno('EINVAL'));
  // Two nested HWPTs sharing one parent, and one that reports faults.
  const queue = iommufd.allocFaultQueue();
  const nested = [nestedOf(parent), nestedOf(parent)];
  const iopf = nestedOf(parent, { faultQueue: queue });
  for (const h of nested) for (let i = 0; i < MOCK.IOTLB_NUM; i++) assert.equal(mockIotlbIs(iommufd, h, i, MOCK.IOTLB_DEFAULT), true);
  assert.throws(() => nestedOf(nested[0]), errno('EINVAL'), 'a nested HWPT on a nested HWPT');
  assert.throws(() => iommufd.destroy(parent.id), errno('EBUSY'), 'the parent is in use');

  /** struct iommu_hwpt_invalidate_selftest { flags, iotlb_id } */
  const req = (flags, iotlbId) => new Uint32Array([flags, iotlbId]);
  const INV = MOCK.HWPT_INVALIDATE_DATA_SELFTEST;
  const fails = (hwpt, entries, code, handled, type = INV) => assert.throws(() => hwpt.invalidate(type, entries), (err) => {
    assert.equal(err.code, code);
    assert.equal(err.handled, handled);
    return true;
  });
  const iotlbIs = (hwpt, values) => values.forEach((v, i) => assert.equal(mockIotlbIs(iommufd, hwpt, i, v), true, `IOTLB ${i}`));
  const D = MOCK.IOTLB_DEFAULT;
  fails(parent, [req(0, 0)], 'EINVAL', 0); // a parent has no caches to invalidate
  assert.equal(nested[0].invalidate(INV, []), 0, 'an empty array checks the data type');
  fails(nested[0], [req(0, 0)], 'EINVAL', 0, MOCK.HWPT_INVALIDATE_DATA_SELFTEST + 0xff);
  fails(nested[0], [new Uint8Array(9)], 'EINVAL', 0); // entry sizes: sizeof + 1,
  fails(nested[0], [new Uint8Array(1)], 'EINVAL', 0); // 1,
  fails(nested[0], [new Uint8Array(PAGE_SIZE + 1)], 'EINVAL', 0); // PAGE_SIZE + 1,
  fails(nested[0], [new Uint8Array(0)], 'EINVAL', 0); // and 0 with one entry
  fails(nested[0], [req(0xffffffff, 0)], 'EOPNOTSUPP', 0);
  fails(nested[0], [req(0, 3 + 1)], 'EINVAL', 0); // MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1
  fails(nested[0], [req(0, 0), req(0xffffffff, 1)], 'EOPNOTSUPP', 1);
  iotlbIs(nested[0], [0, D, D, D]);
  fails(nested[0], [req(0, 0), req(0, 3 + 1)], 'EINVAL', 1);
  iotlbIs(nested[0], [0, D, D, D]);
  assert.equal(nested[0].invalidate(INV, [req(0, 1)]), 1);
  iotlbIs(nested[0], [0, 0, D, D]);
  assert.equal(nested[0].invalidate(INV, [req(0, 2), req(0, 3)]), 2);
  iotlbIs(nested[0], [0, 0, 0, 0]);
  assert.equal(nested[1].invalidate(INV, [req(MOCK.INVALIDATE_FLAG_ALL, 0)]), 1);
  iotlbIs(nested[1], [0, 0, 0, 0]);

  mockAttach(iommufd, mock(self), nested[0]);
  assert.throws(() => iommufd.destroy(nested[0].id), errno('EBUSY'));
  mockAttach(iommufd, mock(self), nested[1]);
  assert.throws(() => iommufd.destroy(nested[1].id), errno('EBUSY'));
  nested[0].destroy();
  mockAttach(iommufd, mock(self), iopf);
  assert.throws(() => iommufd.destroy(iopf.id), errno('EBUSY'));
  triggerIopf(iommufd, mock(self), queue);
  mockAttach(iommufd, mock(self), parent);
  nested[1].destroy();
  iopf.destroy();
  mockAttach(iommufd, mock(self), ioas);
  parent.destroy();
  notParent.destroy();
  queue.close();
}, { needsMock: true });

/** The fixture's (last) mock device, as the mock helpers take it. */
function mock(self) {
  return { stdevId: self.stdevId, idevId: self.deviceId };
}

// ---- FIXTURE(vfio_compat_mock_domain): /dev/iommu as a type1 container over a mock domain -------

const COMPAT_VARIANTS = { Ver1v2: C.VFIO_TYPE1v2_IOMMU, Ver1v0: C.VFIO_TYPE1_IOMMU };

function withCompatMock(version, fn) {
  const container = VfioContainer.open('/dev/iommu');
  const iommufd = Iommufd.fromFd(container.fd, { own: false });
  try {
    const ioas = iommufd.allocIoas(); // what VFIO would consider a group
    mockDevice(iommufd, ioas);
    iommufd.vfioIoas({ op: 'set', ioas });
    container.setIommu(version);
    fn({ container, iommufd, ioas });
  } finally {
    iommufd.close();
    container.close();
    checkNoPins();
  }
}

function compatTest(name, fn) {
  for (const [variant, version] of Object.entries(COMPAT_VARIANTS)) {
    mockTest(`vfio_compat_mock_domain.${variant}.${name}`, () => withCompatMock(version, (self) => fn(self, version)));
  }
}

compatTest('simple_close', ({ container }) => assert.ok(container.fd >= 0));

compatTest('option_huge_pages', ({ iommufd, ioas }, version) => {
  assert.equal(iommufd.getOption('hugePages', ioas), version === C.VFIO_TYPE1_IOMMU ? 0n : 1n);
});

compatTest('get_info (the library reads the whole struct with its caps; the argsz sweep over partial structs is not expressible)', ({ container }) => {
  const info = container.info();
  assert.ok(info.pageSizes > 0n, 'iova_pgsizes');
  assert.deepEqual(info.iovaRanges, [{ start: MOCK.APERTURE_START, last: MOCK.APERTURE_LAST }], 'the IOVA range cap');
});

compatTest('map (the shuffle of unmaps is a fixed permutation here)', ({ container }) => {
  assert.equal(container.map(buffer, { iova: MOCK.APERTURE_START }), MOCK.APERTURE_START);
  assert.equal(container.unmap(MOCK.APERTURE_START, BUFFER_SIZE), BUFFER_SIZE);
  assert.equal(container.unmap(MOCK.APERTURE_START, BUFFER_SIZE), 0, 'an unmap of nothing succeeds');
  container.map(buffer, { iova: MOCK.APERTURE_START });
  assert.equal(container.unmapAll(), BUFFER_SIZE, 'UNMAP_FLAG_ALL');
  const pages = [];
  for (let i = 0; i < BUFFER_SIZE / PAGE_SIZE; i++) {
    const iova = MOCK.APERTURE_START + BigInt(i * PAGE_SIZE);
    container.map(buffer, { iova, offset: i * PAGE_SIZE, length: PAGE_SIZE });
    pages.push(iova);
  }
  for (let i = 0; i < pages.length; i++) {
    const iova = pages[(i * 7) % pages.length];
    assert.equal(container.unmap(iova, PAGE_SIZE), PAGE_SIZE);
  }
});

compatTest('huge_map (type1 cuts a mapping up, type1v2 refuses: ENOENT)', ({ container }, version) => {
  const hugePage = 2 * 1024 * 1024;
  const huge = DmaBuffer.alloc(hugePage * 2, { hugePages: true });
  try {
    container.map(huge, { iova: MOCK.APERTURE_START });
    const piece = huge.size / 16;
    for (let i = 0; i < 16; i++) {
      const iova = MOCK.APERTURE_START + BigInt(((i * 5) % 16) * piece);
      if (version === C.VFIO_TYPE1_IOMMU) assert.equal(container.unmap(iova, piece), piece);
      else assert.throws(() => container.unmap(iova, piece), errno('ENOENT'));
    }
    // type1's pieces are gone from the kernel; the library keeps its pin of the whole buffer until
    // an unmap covers the whole mapping (a partial unmap never releases memory still mapped).
    container.unmapAll();
  } finally {
    huge.free();
  }
});

// ---- FIXTURE(change_process): the pinned-memory charge moves to another process ----------------

for (const variant of ['account_none', 'account_user', 'account_mm']) {
  mockTest(`change_process.${variant}.basic (in a process without CAP_IPC_LOCK; the fork is a second node given the iommufd as fd 3)`, () => {
    const child = fileURLToPath(new URL('./change-process-child.mjs', import.meta.url));
    const r = spawnSync('setpriv', ['--inh-caps=-ipc_lock', '--bounding-set=-ipc_lock', process.execPath, child, variant],
      { encoding: 'utf8', env: process.env });
    assert.equal(r.error, undefined, `setpriv (util-linux) runs: ${r.error?.message}`);
    assert.equal(r.status, 0, `the case failed in its process:\n${r.stdout}${r.stderr}`);
  });
}

// ---- FIXTURE(iommufd_mock_domain): an IOAS with one or two mock domains -------------------------

const MOCK_DOMAIN_VARIANTS = {
  one_domain: { mockDomains: 1 },
  two_domains: { mockDomains: 2 },
  one_domain_hugepage: { mockDomains: 1, hugepages: true },
  two_domains_hugepage: { mockDomains: 2, hugepages: true },
  one_domain_file: { mockDomains: 1, file: true },
  one_domain_file_hugepage: { mockDomains: 1, hugepages: true, file: true },
};

function withMockDomain(variant, fn) {
  const iommufd = Iommufd.open();
  const self = { iommufd, ioas: iommufd.allocIoas(), mocks: [], hwptIds: [0, 0] };
  try {
    for (let i = 0; i < variant.mockDomains; i++) {
      const m = mockDevice(iommufd, self.ioas);
      self.mocks.push(m);
      self.hwptIds[i] = m.hwptId;
      for (let c = 0; c < MOCK.DEV_CACHE_NUM; c++) checkDevCache(iommufd, self.mocks[0].idevId, c, MOCK.DEV_CACHE_DEFAULT);
    }
    // upstream's mmap_buf_size: 8 pages, or two huge pages (hugetlb, except for the file variants,
    // whose memfd has normal pages).
    self.bufSize = variant.hugepages ? 2 * hugePageSize() : PAGE_SIZE * 8;
    self.alloc = () => DmaBuffer.alloc(self.bufSize, variant.file ? { memfd: true } : { hugePages: !!variant.hugepages });
    /** upstream's check_mock_iova: every mock domain maps `length` bytes at `iova` to `address`. */
    self.checkMockIova = (address, iova, length) => {
      for (const id of self.hwptIds) if (id) checkMap(iommufd, id, iova, length, address);
    };
    fn(self, variant);
  } finally {
    teardown(iommufd);
  }
}

function mockDomainTest(name, fn) {
  for (const [v, variant] of Object.entries(MOCK_DOMAIN_VARIANTS)) {
    mockTest(`iommufd_mock_domain.${v}.${name}`, () => withMockDomain(variant, fn));
  }
}

/** upstream's global mfd_buffer: 16 pages of a memfd. */
const mfdBuffer = DmaBuffer.alloc(BUFFER_SIZE, { memfd: true });

mockDomainTest('basic (a mapping that faults half way cannot be made: the library maps only live DmaBuffers, and refuses a freed one before the syscall)', (self, variant) => {
  const { ioas } = self;
  if (variant.file) {
    const iova = ioas.mapFile(mfdBuffer.fd, { start: 0, length: PAGE_SIZE });
    self.checkMockIova(mfdBuffer.address, iova, PAGE_SIZE);
    const file = `/dev/shm/vfio-upstream-basic-${process.pid}`;
    fs.writeFileSync(file, Buffer.alloc(self.bufSize));
    const fd = fs.openSync(file, 'r+');
    try {
      assert.throws(() => ioas.mapFile(fd, { start: 0, length: self.bufSize + 1 }), errno('EINVAL'), 'longer than the file');
      fs.ftruncateSync(fd, 0);
      assert.throws(() => ioas.mapFile(fd, { start: 0, length: self.bufSize }), errno('EINVAL'), 'the file was truncated');
    } finally {
      fs.closeSync(fd);
      fs.rmSync(file);
    }
  } else {
    const iova = ioas.map(buffer, { length: PAGE_SIZE });
    self.checkMockIova(buffer.address, iova, PAGE_SIZE);
    const gone = self.alloc();
    gone.free();
    assert.throws(() => ioas.map(gone), { code: 'ERR_VFIO_CLOSED' });
  }
});

/** all_aligns and all_aligns_copy: map every start and end on the mock's 2 KiB grid (huge: few starts). */
function allAligns(self, variant, during) {
  const buf = self.alloc();
  const size = self.bufSize;
  const step = variant.hugepages ? size / 16 : MOCK.PAGE_SIZE;
  const pageDown = (n) => Math.floor(n / PAGE_SIZE) * PAGE_SIZE;
  let maps = 0;
  try {
    checkRefs(self.iommufd, buf.address, size, 0);
    for (let start = 0; start < size; start += step) {
      for (let end = variant.hugepages ? size : start + MOCK.PAGE_SIZE; end < size; end += MOCK.PAGE_SIZE) {
        const length = end - start;
        const iova = variant.file ? self.ioas.mapFile(buf.fd, { start, length }) : self.ioas.map(buf, { offset: start, length });
        during?.();
        self.checkMockIova(buf.address + BigInt(start), iova, length);
        checkRefs(self.iommufd, buf.address + BigInt(pageDown(start)), pageDown(end) - pageDown(start), 1);
        self.after?.();
        self.ioas.unmap(iova, length);
        maps++;
      }
    }
    checkRefs(self.iommufd, buf.address, size, 0);
  } finally {
    buf.free();
  }
  // As upstream: with huge pages every end is the buffer's end, so nothing is mapped.
  assert.equal(maps, variant.hugepages ? 0 : 120);
}

mockDomainTest('all_aligns', (self, variant) => allAligns(self, variant));

mockDomainTest('all_aligns_copy (a mock domain added and destroyed while each area exists)', (self, variant) => {
  let added = null;
  const old = self.hwptIds[1];
  self.after = () => {
    self.iommufd.destroy(added.stdevId);
    self.hwptIds[1] = old;
  };
  allAligns(self, variant, () => {
    added = mockDevice(self.iommufd, self.ioas);
    self.hwptIds[1] = added.hwptId;
  });
});

mockDomainTest('user_copy', (self, variant) => {
  const { iommufd, ioas } = self;
  const buf = variant.file ? mfdBuffer : buffer;
  const mapWhole = (target) => (variant.file
    ? target.mapFile(buf.fd, { start: 0, length: BUFFER_SIZE }) : target.map(buf, { length: BUFFER_SIZE }));
  // Pin the pages in an IOAS with no domains, then copy to an IOAS with domains.
  const first = iommufd.allocIoas();
  let srcIova = mapWhole(first);
  const access = createAccess(iommufd, first, MOCK.FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
  try {
    accessPages(iommufd, access, srcIova, BUFFER_SIZE, buf.address);
    ioas.copyFrom(first, { srcIova, dstIova: MOCK.APERTURE_START, length: BUFFER_SIZE, readable: false });
    self.checkMockIova(buf.address, MOCK.APERTURE_START, BUFFER_SIZE);

    // Now replace the IOAS with a new one.
    const second = iommufd.allocIoas();
    srcIova = mapWhole(second);
    accessReplaceIoas(iommufd, access, second);
    assert.equal(ioas.unmap(MOCK.APERTURE_START, BUFFER_SIZE), BUFFER_SIZE);
    first.destroy();

    const pages = accessPages(iommufd, access, srcIova, BUFFER_SIZE, buf.address);
    ioas.copyFrom(second, { srcIova, dstIova: MOCK.APERTURE_START, length: BUFFER_SIZE, readable: false });
    self.checkMockIova(buf.address, MOCK.APERTURE_START, BUFFER_SIZE);
    destroyAccessPages(iommufd, access, pages);
  } finally {
    fs.closeSync(access);
  }
});

mockDomainTest('replace', (self, variant) => {
  const { iommufd, ioas, mocks, hwptIds } = self;
  const other = iommufd.allocIoas();
  mockAttach(iommufd, mocks[0], other);
  // Replacing the IOAS frees the prior (automatic) HWPT: ENOENT when it is used again.
  if (variant.mockDomains === 1) assert.throws(() => mockAttach(iommufd, mocks[0], { id: hwptIds[0] }), errno('ENOENT'));
  mockAttach(iommufd, mocks[0], other);
  if (variant.mockDomains >= 2) {
    mockAttach(iommufd, mocks[0], { id: hwptIds[1] });
    mockAttach(iommufd, mocks[0], { id: hwptIds[1] });
    mockAttach(iommufd, mocks[0], { id: hwptIds[0] });
  }
  mockAttach(iommufd, mocks[0], ioas);
  other.destroy();
});

mockDomainTest('alloc_hwpt', (self) => {
  const { iommufd, ioas } = self;
  for (const m of self.mocks) {
    assert.throws(() => iommufd.allocHwpt(m.idevId, ioas, { flags: ~C.IOMMU_HWPT_ALLOC_NEST_PARENT >>> 0 }), errno('EOPNOTSUPP'));
    const plain = iommufd.allocHwpt(m.idevId, ioas);
    const parent = iommufd.allocHwpt(m.idevId, ioas, { nestParent: true });
    // A hw_pagetable rotation.
    mockAttach(iommufd, m, plain);
    assert.throws(() => iommufd.destroy(plain.id), errno('EBUSY'));
    mockAttach(iommufd, m, parent);
    assert.throws(() => iommufd.destroy(parent.id), errno('EBUSY'));
    mockAttach(iommufd, m, ioas);
    parent.destroy();
    const direct = mockDevice(iommufd, plain);
    iommufd.destroy(direct.stdevId);
    plain.destroy();
  }
});

notExpressible(FILE, 'iommufd_mock_domain.*.ro_unshare', 'it maps a MAP_PRIVATE mapping of /proc/self/exe to test get_user_pages\' ' +
  'copy-on-write unshare; the library maps only its own DmaBuffers (shared memory: there is nothing to unshare)');

// ---- FIXTURE(iommufd_dirty_tracking): a mock domain with dirty tracking, over buffers of 8 KiB to 128 MiB

const DIRTY_VARIANTS = {
  domain_dirty8k: { bufferSize: 8 * 1024 },
  domain_dirty16k: { bufferSize: 16 * 1024 },
  domain_dirty64k: { bufferSize: 64 * 1024 },
  domain_dirty128k: { bufferSize: 128 * 1024 },
  domain_dirty320k: { bufferSize: 320 * 1024 },
  domain_dirty64M: { bufferSize: 64 * 1024 * 1024 },
  domain_dirty64M_huge: { bufferSize: 64 * 1024 * 1024, hugepages: true },
  domain_dirty128M: { bufferSize: 128 * 1024 * 1024 },
  domain_dirty128M_huge: { bufferSize: 128 * 1024 * 1024, hugepages: true },
};

/**
 * 2 MiB hugetlb pages for `bytes` more than the lab reserves (16): raised for `fn` and put back,
 * as upstream's runner needs the pool sized for its huge variants too.
 */
function withHugePages(bytes, fn) {
  const file = '/proc/sys/vm/nr_hugepages';
  const before = Number(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, String(before + Math.ceil(bytes / (2 * 1024 * 1024))));
  try {
    return fn();
  } finally {
    fs.writeFileSync(file, String(before));
  }
}

function withDirty(variant, fn) {
  const iommufd = Iommufd.open();
  try {
    const ioas = iommufd.allocIoas();
    // Without huge pages the IOAS maps in PAGE_SIZE units, which span two MOCK_PAGE_SIZE entries:
    // the whole mapping is expected dirty.
    if (!variant.hugepages) iommufd.setOption('hugePages', false, ioas);
    const m = mockDevice(iommufd, ioas);
    fn({ iommufd, ioas, hwptId: m.hwptId, stdevId: m.stdevId, idevId: m.idevId, pageSize: MOCK.PAGE_SIZE,
      bitmapSize: variant.bufferSize / MOCK.PAGE_SIZE }, variant);
  } finally {
    teardown(iommufd);
  }
}

function dirtyTest(name, fn) {
  for (const [v, variant] of Object.entries(DIRTY_VARIANTS)) {
    mockTest(`iommufd_dirty_tracking.${v}.${name}`, () => withDirty(variant, fn));
  }
}

dirtyTest('enforce_dirty', ({ iommufd, ioas, idevId }) => {
  const hwpt = iommufd.allocHwpt(idevId, ioas, { dirtyTracking: true });
  const attached = mockDevice(iommufd, hwpt);
  assert.throws(() => mockDevice(iommufd, hwpt, MOCK.FLAGS_DEVICE_NO_DIRTY), errno('EINVAL'));
  iommufd.destroy(attached.stdevId);
  hwpt.destroy();
  // An IOMMU device without dirty tracking: the library's ERR_VFIO_UNSUPPORTED for the kernel's EOPNOTSUPP.
  const other = iommufd.allocIoas();
  const noDirty = mockDevice(iommufd, other, MOCK.FLAGS_DEVICE_NO_DIRTY);
  assert.throws(() => iommufd.allocHwpt(noDirty.idevId, other, { dirtyTracking: true }),
    { name: 'VfioUnsupportedError', code: 'ERR_VFIO_UNSUPPORTED', errno: -95 });
  iommufd.destroy(noDirty.stdevId);
});

dirtyTest('set_dirty_tracking', ({ iommufd, ioas, idevId }) => {
  const hwpt = iommufd.allocHwpt(idevId, ioas, { dirtyTracking: true });
  const attached = mockDevice(iommufd, hwpt);
  hwpt.setDirtyTracking(true);
  hwpt.setDirtyTracking(false);
  iommufd.destroy(attached.stdevId);
  hwpt.destroy();
});

dirtyTest('pasid_set_dirty_tracking', ({ iommufd, ioas, idevId }) => {
  const pasid = 100;
  const hwpt = iommufd.allocHwpt(idevId, ioas, { pasid: true, dirtyTracking: true });
  const dev = mockDevice(iommufd, hwpt, MOCK.FLAGS_DEVICE_PASID);
  mockPasidAttach(iommufd, dev, pasid, hwpt);
  hwpt.setDirtyTracking(true);
  hwpt.setDirtyTracking(false);
  mockPasidDetach(iommufd, dev, pasid);
  iommufd.destroy(dev.stdevId);
  // An IOMMU device without dirty tracking cannot attach a PASID to a dirty-tracking HWPT.
  const other = iommufd.allocIoas();
  const noDirty = mockDevice(iommufd, other, MOCK.FLAGS_DEVICE_PASID | MOCK.FLAGS_DEVICE_NO_DIRTY);
  assert.throws(() => mockPasidAttach(iommufd, noDirty, pasid, hwpt), errno('EINVAL'));
  iommufd.destroy(noDirty.stdevId);
  hwpt.destroy();
});

dirtyTest('device_dirty_capability', ({ iommufd, ioas, idevId }) => {
  const hwpt = iommufd.allocHwpt(idevId, ioas);
  const attached = mockDevice(iommufd, hwpt);
  assert.equal(iommufd.hwInfo(idevId).capabilities & BigInt(C.IOMMU_HW_CAP_DIRTY_TRACKING), BigInt(C.IOMMU_HW_CAP_DIRTY_TRACKING));
  iommufd.destroy(attached.stdevId);
  hwpt.destroy();
});

const bitAt = (words, i) => ((words[i >> 6] >> BigInt(i & 63)) & 1n) === 1n;

/**
 * upstream's test_mock_dirty_bitmaps: the mock marks every first page of each PTE pair (or huge
 * PTE) dirty; getDirtyBitmap reports whole PTEs dirty, then (unless clear is false) nothing.
 * `into`: where the bitmap goes (at an offset into a larger buffer, for the unaligned cases).
 */
function mockDirtyBitmaps(self, hwpt, length, pteSize, into, clear) {
  const { iommufd, pageSize, bitmapSize: nbits } = self;
  const npte = pteSize / pageSize;
  const pteset = 2 * npte;
  const marks = DmaBuffer.alloc(Math.ceil(nbits / 8));
  try {
    for (let i = 0; i < nbits; i += pteset) marks.bytes[i >> 3] |= 1 << (i & 7);
    assert.equal(mockDirty(iommufd, hwpt, MOCK.APERTURE_START, length, pageSize, marks), Math.floor(nbits / pteset) || 1);
  } finally {
    marks.free();
  }
  const read = () => hwpt.getDirtyBitmap(MOCK.APERTURE_START, length, pageSize, { into, clear });
  read();
  for (let i = 0; i < nbits; i += pteset) {
    for (let j = 0; j < pteset; j++) if (bitAt(into, i + j) !== j < npte) assert.fail(`bit ${i + j}: ${bitAt(into, i + j)}`);
  }
  read(); // read already: all clear, unless reading does not clear
  for (let i = 0; i < nbits; i += pteset) {
    for (let j = 0; j < pteset; j++) {
      if (bitAt(into, i + j) !== (j < npte && clear === false)) assert.fail(`second read, bit ${i + j}: ${bitAt(into, i + j)}`);
    }
  }
}

function getDirtyBitmap(self, variant, clear) {
  const { iommufd, ioas, idevId } = self;
  const run = () => {
    const buf = DmaBuffer.alloc(variant.bufferSize, { hugePages: !!variant.hugepages, align: hugePageSize() });
    try {
      ioas.map(buf, { iova: MOCK.APERTURE_START });
      const pteSize = variant.hugepages ? MOCK.HUGE_PAGE_SIZE : PAGE_SIZE;
      const hwpt = iommufd.allocHwpt(idevId, ioas, { dirtyTracking: true, dataType: MOCK.HWPT_DATA_SELFTEST,
        data: new Uint32Array([0, variant.hugepages ? MOCK.IOMMUPT_HUGE : MOCK.IOMMUPT_DEFAULT]) });
      hwpt.setDirtyTracking(true);
      const words = Math.ceil(self.bitmapSize / 64);
      const backing = new ArrayBuffer(words * 8 + PAGE_SIZE);
      mockDirtyBitmaps(self, hwpt, variant.bufferSize, pteSize, new BigUint64Array(backing, 0, words), clear);
      // A PAGE_SIZE-unaligned bitmap (the u64-unaligned one is not expressible: a BigUint64Array is 8-byte aligned).
      mockDirtyBitmaps(self, hwpt, variant.bufferSize, pteSize, new BigUint64Array(backing, MOCK.PAGE_SIZE, words), clear);
      hwpt.destroy();
      ioas.unmapAll();
    } finally {
      buf.free();
    }
  };
  if (variant.hugepages) withHugePages(variant.bufferSize, run);
  else run();
}

dirtyTest('get_dirty_bitmap (bitmaps at offset 0 and 2048; the u64-unaligned one is not expressible)', (self, variant) => getDirtyBitmap(self, variant, true));

dirtyTest('get_dirty_bitmap_no_clear (as get_dirty_bitmap)', (self, variant) => getDirtyBitmap(self, variant, false));

// ---- FIXTURE(iommufd_viommu): a mock vIOMMU over a nesting parent, or none --------------------

function withViommu(variant, fn) {
  const iommufd = Iommufd.open();
  const self = { iommufd, ioas: iommufd.allocIoas(), deviceId: 0, mock: null, parent: null, viommu: null, nested: null };
  const cleanup = () => teardown(iommufd);
  return thenCleanup(() => {
    setTempMemoryLimit(iommufd, MOCK.DEFAULT_MEMORY_LIMIT);
    if (variant.viommu) {
      self.mock = mockDevice(iommufd, self.ioas);
      self.deviceId = self.mock.idevId;
      self.parent = iommufd.allocHwpt(self.deviceId, self.ioas, { nestParent: true });
      self.viommu = iommufd.allocViommu(self.deviceId, self.parent, MOCK.VIOMMU_TYPE_SELFTEST);
      self.nested = iommufd.allocHwpt(self.deviceId, self.viommu, { dataType: MOCK.HWPT_DATA_SELFTEST, data: selftestData() });
    }
    return fn(self);
  }, cleanup);
}


/** TEST_F(iommufd_viommu, name): upstream skips the mock-vIOMMU-only cases for no_viommu, so only mock_viommu runs those. */
function viommuTest(name, fn, { both = false } = {}) {
  for (const [v, variant] of Object.entries({ no_viommu: { viommu: false }, mock_viommu: { viommu: true } })) {
    if (!both && !variant.viommu) continue;
    mockTest(`iommufd_viommu.${v}.${name}`, () => withViommu(variant, fn));
  }
}

viommuTest('viommu_auto_destroy', (self) => assert.equal(self.iommufd.closed, false), { both: true });

viommuTest('viommu_negative_tests', (self) => {
  const { iommufd, ioas, deviceId } = self;
  if (deviceId) {
    assert.throws(() => iommufd.allocViommu(deviceId, 0, MOCK.VIOMMU_TYPE_SELFTEST), errno('ENOENT'), 'hwpt 0');
    const plain = iommufd.allocHwpt(deviceId, ioas);
    assert.throws(() => iommufd.allocViommu(deviceId, plain, MOCK.VIOMMU_TYPE_SELFTEST), errno('EINVAL'), 'not a nesting parent');
    plain.destroy();
    assert.throws(() => iommufd.allocViommu(deviceId, self.parent, 0xdead), errno('EOPNOTSUPP'), 'unsupported type');
    assert.throws(() => iommufd.destroy(self.parent.id), errno('EBUSY'));
    assert.throws(() => iommufd.destroy(self.viommu.id), errno('EBUSY'));
  } else {
    assert.throws(() => iommufd.allocViommu(deviceId, 0, MOCK.VIOMMU_TYPE_SELFTEST), errno('ENOENT'));
  }
}, { both: true });

/** upstream's test_cmd_trigger_iopf: a fault from the mock device, read from the queue and answered. */
function triggerIopf(iommufd, mock, queue, pasid = 1) {
  mockFault(iommufd, mock, { pasid });
  const faults = queue.read();
  assert.ok(faults.length >= 1, 'the fault arrived');
  queue.respond(faults[faults.length - 1].cookie, 'success');
}

viommuTest('viommu_alloc_nested_iopf (the fault id 2^32-1 case is not expressible: faultQueue takes a FaultQueue)', (self) => {
  const { iommufd, viommu, deviceId, mock, ioas } = self;
  const queue = iommufd.allocFaultQueue();
  const data = selftestData();
  assert.throws(() => iommufd.allocHwpt(deviceId, viommu, { faultQueue: queue, flags: 2 ** 31, dataType: MOCK.HWPT_DATA_SELFTEST, data }),
    errno('EOPNOTSUPP'));
  const iopf = iommufd.allocHwpt(deviceId, viommu, { faultQueue: queue, dataType: MOCK.HWPT_DATA_SELFTEST, data });
  assert.throws(() => mockAttach(iommufd, mock, iopf), errno('ENOENT'), 'a vDEVICE must come before attaching to a nested HWPT');
  viommu.allocVdevice(deviceId, 0x99);
  mockAttach(iommufd, mock, iopf);
  assert.throws(() => iommufd.destroy(iopf.id), errno('EBUSY'));
  triggerIopf(iommufd, mock, queue);
  mockAttach(iommufd, mock, ioas);
  iopf.destroy();
  queue.close();
});

viommuTest('viommu_alloc_with_data', (self) => {
  const { iommufd, deviceId, parent } = self;
  const data = new DataView(new ArrayBuffer(24)); // struct iommu_viommu_selftest
  data.setUint32(0, 0xbeef, true);
  const viommu = iommufd.allocViommu(deviceId, parent, MOCK.VIOMMU_TYPE_SELFTEST, { data });
  assert.equal(data.getUint32(4, true), 0xbeef, 'out_data: the kernel wrote the loopback back into the caller\'s data');
  const offset = data.getBigUint64(8, true);
  const length = Number(data.getBigUint64(16, true));
  // Negative mmaps: the offset and length cannot change.
  assert.throws(() => iommufd.mmap(offset + BigInt(PAGE_SIZE), length), errno('ENXIO'));
  assert.throws(() => iommufd.mmap(offset + BigInt(PAGE_SIZE * 2), length), errno('ENXIO'));
  assert.throws(() => iommufd.mmap(offset, length / 2), errno('ENXIO'));
  assert.throws(() => iommufd.mmap(offset, length * 2), errno('ENXIO'));
  const region = iommufd.mmap(offset, length); // the loopback
  assert.equal(region.read32(0), 0xbeef);
  assert.throws(() => iommufd.destroy(viommu.id), errno('EBUSY'), 'the owner of the mmap region is blocked');
  region.close();
});

viommuTest('vdevice_alloc (the read-count checks of the event fd are not expressible: the queue reads whole records itself)', (self) => {
  const { iommufd, viommu, deviceId, mock, ioas, nested } = self;
  if (!deviceId) {
    assert.throws(() => iommufd.allocViommu(0, 0, MOCK.VIOMMU_TYPE_SELFTEST), errno('ENOENT'));
    return;
  }
  assert.throws(() => mockAttach(iommufd, mock, nested), errno('ENOENT'), 'a vDEVICE must come first');
  const MAX_DEPTH = 2 ** 19;
  assert.throws(() => viommu.allocEventQueue(MOCK.VEVENTQ_TYPE_SELFTEST, 0, { dataSize: 4 }), RangeError, 'depth 0: the library\'s RangeError (the kernel\'s EINVAL)');
  assert.throws(() => viommu.allocEventQueue(MOCK.VEVENTQ_TYPE_SELFTEST, MAX_DEPTH + 1, { dataSize: 4 }), errno('EINVAL'));
  viommu.allocEventQueue(MOCK.VEVENTQ_TYPE_SELFTEST, MAX_DEPTH, { dataSize: 4 }).close();

  const queue = viommu.allocEventQueue(MOCK.VEVENTQ_TYPE_SELFTEST, 2, { dataSize: 4 });
  assert.throws(() => viommu.allocEventQueue(MOCK.VEVENTQ_TYPE_SELFTEST, 2, { dataSize: 4 }), errno('EEXIST'));
  assert.deepEqual(queue.read(), [], 'an empty queue');
  let prev = -1;
  /** upstream's test_cmd_read_vevents: n events for virtId, in sequence; false on a gap or a lost-events record. */
  const readVevents = (n, virtId) => {
    const events = queue.read();
    for (const e of events.slice(0, n)) {
      const gap = e.lostEvents || e.sequence - prev > 1;
      prev = e.sequence;
      if (gap) return false;
      assert.equal(new DataView(e.data.buffer, e.data.byteOffset).getUint32(0, true), virtId);
    }
    assert.equal(events.length, n);
    return true;
  };
  const trigger = (n) => {
    for (let i = 0; i < n; i++) mockEvent(iommufd, mock);
  };

  let vdev = viommu.allocVdevice(deviceId, 0x99);
  mockAttach(iommufd, mock, nested);
  trigger(1);
  assert.equal(readVevents(1, 0x99), true);
  assert.throws(() => viommu.allocVdevice(deviceId, 0x99), errno('EEXIST'));
  mockAttach(iommufd, mock, ioas);
  vdev.destroy();

  vdev = viommu.allocVdevice(deviceId, 0x88);
  mockAttach(iommufd, mock, nested);
  trigger(3); // overflows the depth-2 queue
  assert.equal(readVevents(3, 0x88), false, 'EOVERFLOW: the reader sees the lost events');
  trigger(1); // the overflow is gone after those reads
  assert.equal(readVevents(1, 0x88), true);
  queue.close();
  mockAttach(iommufd, mock, ioas);
  vdev.destroy();
}, { both: true });

viommuTest('vdevice_cache (the invalid entry lengths and the NULL array are not expressible: the library packs its entries)', (self) => {
  const { iommufd, viommu, deviceId } = self;
  const vdev = viommu.allocVdevice(deviceId, 0x99);
  const cacheIs = (values) => values.forEach((v, i) => checkDevCache(iommufd, deviceId, i, v));
  const D = MOCK.DEV_CACHE_DEFAULT;
  cacheIs([D, D, D, D]);
  /** struct iommu_viommu_invalidate_selftest { flags, vdev_id, cache_id } */
  const req = (flags, vdevId, cacheId) => new Uint32Array([flags, vdevId, cacheId]);
  const inv = (reqs, type = MOCK.VIOMMU_INVALIDATE_DATA_SELFTEST) => viommu.invalidate(type, reqs);
  const fails = (reqs, code, handled, type) => assert.throws(() => inv(reqs, type), (err) => {
    assert.equal(err.code, code);
    assert.equal(err.handled, handled, 'entries handled before the failure');
    return true;
  });

  assert.equal(inv([]), 0, 'an empty array checks the data type');
  fails([req(0, 0, 0)], 'EINVAL', 0, MOCK.VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID);
  fails([req(0xffffffff, 0x99, 0)], 'EOPNOTSUPP', 0);
  fails([req(0, 0x99, MOCK.DEV_CACHE_ID_MAX + 1)], 'EINVAL', 0);
  fails([req(0, 0x9, 0)], 'EINVAL', 0, undefined);
  // The first entry is handled, the second fails (bad flags, then a bad cache id).
  fails([req(0, 0x99, 0), req(0xffffffff, 0x99, 1)], 'EOPNOTSUPP', 1);
  cacheIs([0, D, D, D]);
  fails([req(0, 0x99, 0), req(0, 0x99, MOCK.DEV_CACHE_ID_MAX + 1)], 'EINVAL', 1);
  cacheIs([0, D, D, D]);
  assert.equal(inv([req(0, 0x99, 1)]), 1);
  cacheIs([0, 0, D, D]);
  assert.equal(inv([req(0, 0x99, 2), req(0, 0x99, 3)]), 2);
  cacheIs([0, 0, 0, 0]);
  assert.equal(inv([req(MOCK.INVALIDATE_FLAG_ALL, 0x99, 0)]), 1);
  cacheIs([0, 0, 0, 0]);
  vdev.destroy();
});

viommuTest('hw_queue', (self) => {
  const { viommu, ioas } = self;
  const T = MOCK.HW_QUEUE_TYPE_SELFTEST;
  const at = MOCK.APERTURE_START;
  assert.throws(() => viommu.allocHwQueue(C.IOMMU_HW_QUEUE_TYPE_DEFAULT, 0, at, PAGE_SIZE), errno('EOPNOTSUPP'));
  assert.throws(() => viommu.allocHwQueue(T, 0, at, 0), errno('EINVAL'), 'length 0');
  assert.throws(() => viommu.allocHwQueue(T, 0, MAX_U64, PAGE_SIZE), errno('EOVERFLOW'));
  assert.throws(() => viommu.allocHwQueue(T, 0, at, PAGE_SIZE), errno('ENOENT'), 'the IOVA is not mapped');
  const iova = ioas.map(buffer, { length: PAGE_SIZE });
  const iova2 = ioas.map(buffer, { offset: PAGE_SIZE, length: PAGE_SIZE });
  assert.throws(() => viommu.allocHwQueue(T, 1, iova, PAGE_SIZE), errno('EIO'), 'index 1 before 0');
  assert.throws(() => viommu.allocHwQueue(T, MOCK.HW_QUEUE_MAX, iova, PAGE_SIZE), errno('EINVAL'));
  const q0 = viommu.allocHwQueue(T, 0, iova, PAGE_SIZE);
  assert.equal(q0.index, 0);
  assert.throws(() => viommu.allocHwQueue(T, 0, iova, PAGE_SIZE), errno('EEXIST'));
  assert.throws(() => ioas.unmap(iova, PAGE_SIZE), errno('EBUSY'), 'the queue owns its IOVA');
  ioas.unmap(iova2, PAGE_SIZE);
  const q1 = viommu.allocHwQueue(T, 1, iova + BigInt(PAGE_SIZE / 2), PAGE_SIZE / 2);
  assert.throws(() => q0.destroy(), errno('EBUSY'), 'queue 1 depends on it');
  q1.destroy();
  q0.destroy();
  ioas.unmap(iova, PAGE_SIZE);
});

viommuTest('vdevice_tombstone', (self) => {
  const vdev = self.viommu.allocVdevice(self.deviceId, 0x99);
  self.iommufd.destroy(self.mock.stdevId);
  assert.throws(() => self.iommufd.destroy(vdev.id), errno('ENOENT'));
});

// ---- FIXTURE(iommufd_device_pasid): a PASID-capable mock device, and one without PASIDs --------

for (const [v, pasidCapable] of [['no_pasid', false], ['has_pasid', true]]) {
  mockTest(`iommufd_device_pasid.${v}.pasid_attach`, () => {
    const iommufd = Iommufd.open();
    try {
      const ioas = iommufd.allocIoas();
      const dev = mockDevice(iommufd, ioas, MOCK.FLAGS_DEVICE_PASID);
      const noPasid = pasidCapable ? null : mockDevice(iommufd, ioas, 0);
      const id = dev.idevId;
      const data = selftestData();
      const check = (pasid, hwpt) => assert.equal(mockPasidCheck(iommufd, dev, pasid, hwpt ? hwpt.id : 0), true,
        `PASID ${pasid} is attached to ${hwpt ? `HWPT ${hwpt.id}` : 'nothing'}`);
      let pasid = 100;
      mockPasidDetach(iommufd, dev, pasid); // detaching what was never attached is no failure
      const parent = iommufd.allocHwpt(id, ioas, { nestParent: true });
      const nested0 = iommufd.allocHwpt(id, parent, { pasid: true, dataType: MOCK.HWPT_DATA_SELFTEST, data });
      const nested1 = iommufd.allocHwpt(id, parent, { pasid: true, dataType: MOCK.HWPT_DATA_SELFTEST, data });
      const queue = iommufd.allocFaultQueue();
      const iopf = iommufd.allocHwpt(id, parent, { faultQueue: queue, pasid: true, dataType: MOCK.HWPT_DATA_SELFTEST, data });
      const viommu = iommufd.allocViommu(id, parent, MOCK.VIOMMU_TYPE_SELFTEST);
      iommufd.allocHwpt(id, viommu, { pasid: true, dataType: MOCK.HWPT_DATA_SELFTEST, data });
      const s2 = iommufd.allocHwpt(id, ioas, { pasid: true });

      mockAttach(iommufd, dev, parent); // the RID on a non-PASID-compatible domain,
      assert.throws(() => mockPasidAttach(iommufd, dev, pasid, s2), errno('EINVAL')); // so a PASID attach fails
      mockAttach(iommufd, dev, s2); // the RID on a PASID-compatible domain,
      mockPasidAttach(iommufd, dev, pasid, nested0); // so a PASID attach succeeds,
      assert.throws(() => mockAttach(iommufd, dev, parent), errno('EINVAL')); // and the RID cannot go back
      mockPasidDetach(iommufd, dev, pasid);
      check(pasid, null);
      if (!pasidCapable) {
        // A PASID-compatible domain serves a device without PASIDs, whose PASIDs attach to nothing.
        mockAttach(iommufd, noPasid, nested0);
        mockAttach(iommufd, noPasid, ioas);
        assert.throws(() => mockPasidAttach(iommufd, noPasid, pasid, parent), errno('EINVAL'));
        assert.throws(() => mockPasidAttach(iommufd, noPasid, pasid, s2), errno('EINVAL'));
      }
      assert.throws(() => mockPasidAttach(iommufd, dev, pasid, parent), errno('EINVAL'));
      check(pasid, null);
      assert.throws(() => mockPasidAttach(iommufd, dev, pasid, ioas), errno('EINVAL'));
      check(pasid, null);
      mockPasidAttach(iommufd, dev, pasid, s2);
      check(pasid, s2);
      assert.throws(() => mockPasidAttach(iommufd, dev, pasid, nested0), errno('EBUSY'), 'attach does not overwrite');
      mockPasidDetach(iommufd, dev, pasid);
      check(pasid, null);
      mockPasidAttach(iommufd, dev, pasid, nested0);
      check(pasid, nested0);
      assert.throws(() => mockPasidAttach(iommufd, dev, pasid, nested0), errno('EBUSY'));
      mockPasidDetach(iommufd, dev, pasid);

      pasid = 200; // replace
      assert.throws(() => mockPasidReplace(iommufd, dev, pasid, s2), errno('EINVAL'), 'replace before attach');
      mockPasidAttach(iommufd, dev, pasid, s2);
      check(pasid, s2);
      assert.throws(() => mockPasidReplace(iommufd, dev, pasid, ioas), errno('EINVAL'));
      check(pasid, s2);
      mockPasidReplace(iommufd, dev, pasid, nested0);
      check(pasid, nested0);
      mockPasidReplace(iommufd, dev, pasid, nested1);
      check(pasid, nested1);
      mockPasidDetach(iommufd, dev, pasid);

      pasid = 1024; // IOMMU_TEST_PASID_RESERVED: the mock fails this replace by design
      mockPasidAttach(iommufd, dev, pasid, s2);
      check(pasid, s2);
      assert.throws(() => mockPasidReplace(iommufd, dev, pasid, nested0), errno('ENOMEM'));
      check(pasid, s2);
      mockPasidDetach(iommufd, dev, pasid);

      pasid = 2048; // an IOPF-capable HWPT
      mockPasidAttach(iommufd, dev, pasid, iopf);
      check(pasid, iopf);
      triggerIopf(iommufd, dev, queue, pasid);
      mockPasidReplace(iommufd, dev, pasid, s2);
      check(pasid, s2);
      mockPasidDetach(iommufd, dev, pasid);
      iopf.destroy();
      queue.close();
      mockAttach(iommufd, dev, ioas);
    } finally {
      teardown(iommufd);
    }
  });
}

