// HWPT features QEMU's VT-d does not emulate (dirty tracking, nesting, vIOMMU, vDEVICE, event and
// fault queues, typed hwInfo), tested positively against the kernel's mock IOMMU on 7.3; on 6.12
// each test asserts the library's typed "needs Linux X.Y" error, or what the kernel says of the
// real VT-d under edu, so every test asserts something on both kernels.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { DmaBuffer, FaultQueue, Iommufd, VfioDevice, constants as C } from 'vfio';
import { openEdu } from './edu.mjs';
import { devicesOf } from './lab.mjs';
import { MOCK, hasMock, mockAttach, mockDevice, mockDirty, mockEvent, mockFault, mockIotlbIs, selftestData } from './mock-iommu.mjs';

const NEEDS = (version) => ({ name: 'VfioUnsupportedError', code: 'ERR_VFIO_NEEDS_KERNEL', needs: version,
  message: new RegExp(`needs Linux ${version.replace('.', '\\.')} or newer; this kernel is 6\\.12`) });

/** A fresh iommufd with an IOAS and, where the kernel has the mock, a mock device on it. */
function mockLab() {
  const iommufd = Iommufd.open();
  const ioas = iommufd.allocIoas();
  const mock = hasMock(iommufd) ? mockDevice(iommufd, ioas) : null;
  return { iommufd, ioas, mock, close: () => iommufd.close() };
}


test('hwInfo accepts a device id and, with { dataType } (Linux 6.17), asks for one type of data', () => {
  const lab = mockLab();
  const edu = openEdu();
  try {
    if (lab.mock) {
      const hw = lab.iommufd.hwInfo(lab.mock.idevId);
      assert.equal(hw.type, MOCK.HW_INFO_TYPE_SELFTEST);
      assert.equal(new DataView(hw.data.buffer).getUint32(4, true), MOCK.HW_INFO_SELFTEST_REGVAL, 'struct iommu_test_hw_info.test_reg');
      assert.equal(lab.iommufd.hwInfo(lab.mock.idevId, { dataType: MOCK.HW_INFO_TYPE_SELFTEST }).type, MOCK.HW_INFO_TYPE_SELFTEST);
      assert.throws(() => lab.iommufd.hwInfo(lab.mock.idevId, { dataType: C.IOMMU_HW_INFO_TYPE_ARM_SMMUV3 }), { code: 'EOPNOTSUPP' });
      assert.equal(edu.iommufd.hwInfo(edu.dev, { dataType: C.IOMMU_HW_INFO_TYPE_INTEL_VTD }).type, C.IOMMU_HW_INFO_TYPE_INTEL_VTD);
    } else {
      assert.throws(() => edu.iommufd.hwInfo(edu.dev, { dataType: C.IOMMU_HW_INFO_TYPE_INTEL_VTD }), NEEDS('6.17'));
    }
    assert.throws(() => edu.iommufd.hwInfo(edu.dev, { dataType: -1 }), RangeError);
    assert.throws(() => edu.iommufd.hwInfo('dev'), TypeError);
  } finally {
    edu.close();
    lab.close();
  }
});

test('dirty tracking: a dirty-tracking HWPT reports the pages marked dirty, once unless clear is false', () => {
  const lab = mockLab();
  const edu = openEdu();
  const buf = DmaBuffer.alloc(16 * 4096);
  const marks = DmaBuffer.alloc(4096);
  try {
    if (lab.mock) {
      const { iommufd, ioas, mock } = lab;
      iommufd.setOption('hugePages', false, ioas); // 4 KiB IOPTEs, so each page is its own dirty bit
      ioas.map(buf, { iova: MOCK.APERTURE_START });
      const hwpt = iommufd.allocHwpt(mock.idevId, ioas, { dirtyTracking: true });
      hwpt.setDirtyTracking(true);
      const length = buf.size;
      const mark = (pages) => {
        marks.bytes.fill(0);
        for (const p of pages) marks.bytes[p >> 3] |= 1 << (p & 7);
        return mockDirty(iommufd, hwpt, MOCK.APERTURE_START, length, 4096, marks);
      };
      const dirtyPages = (bitmap) => [...Array(16).keys()].filter((i) => (bitmap[i >> 6] >> BigInt(i & 63)) & 1n);

      assert.equal(mark([0, 2, 5, 15]), 4);
      assert.deepEqual(dirtyPages(hwpt.getDirtyBitmap(MOCK.APERTURE_START, length, 4096)), [0, 2, 5, 15]);
      assert.deepEqual(dirtyPages(hwpt.getDirtyBitmap(MOCK.APERTURE_START, length, 4096)), [], 'read bits are cleared');

      mark([7]);
      assert.deepEqual(dirtyPages(hwpt.getDirtyBitmap(MOCK.APERTURE_START, length, 4096, { clear: false })), [7]);
      const into = new BigUint64Array(4).fill(~0n);
      assert.equal(hwpt.getDirtyBitmap(MOCK.APERTURE_START, length, 4096, { into }), into);
      assert.deepEqual(dirtyPages(into), [7], 'still dirty after a read without clearing');
      assert.equal(into[1], ~0n & 0xffffffffffffffffn, 'words past the range are left as they were');

      hwpt.setDirtyTracking(false);
      const plain = iommufd.allocHwpt(mock.idevId, ioas);
      assert.throws(() => plain.setDirtyTracking(true), { name: 'VfioError', ioctl: 'IOMMU_HWPT_SET_DIRTY_TRACKING' });
      assert.throws(() => hwpt.getDirtyBitmap(MOCK.APERTURE_START, length, 3000), { name: 'RangeError', message: /power of two/ });
      assert.throws(() => hwpt.getDirtyBitmap(MOCK.APERTURE_START, 0, 4096), RangeError);
      assert.throws(() => hwpt.getDirtyBitmap(MOCK.APERTURE_START, length, 4096, { into: new BigUint64Array(0) }), RangeError);
      assert.throws(() => hwpt.getDirtyBitmap(MOCK.APERTURE_START, length, 4096, { into: new Uint8Array(8) }), TypeError);
      assert.throws(() => hwpt.setDirtyTracking(1), TypeError);
      plain.destroy();
      hwpt.destroy();
      assert.throws(() => hwpt.setDirtyTracking(true), { code: 'ERR_VFIO_CLOSED' });
      ioas.unmapAll();
    }
    // QEMU's VT-d has no second-stage dirty bits (SSADS), on every kernel.
    assert.throws(() => edu.iommufd.allocHwpt(edu.dev, edu.ioas, { dirtyTracking: true }),
      { name: 'VfioUnsupportedError', code: 'ERR_VFIO_UNSUPPORTED', errno: -95, message: /does not support dirty tracking/ });
    assert.equal(edu.iommufd.hwInfo(edu.dev).capabilities & BigInt(C.IOMMU_HW_CAP_DIRTY_TRACKING), 0n);
  } finally {
    edu.close();
    lab.close();
    buf.free();
    marks.free();
  }
});

test('nesting: a nested HWPT with driver data on a nest parent, and invalidate() of its caches', () => {
  const lab = mockLab();
  const edu = openEdu();
  try {
    if (lab.mock) {
      const { iommufd, ioas, mock } = lab;
      const parent = iommufd.allocHwpt(mock.idevId, ioas, { nestParent: true });
      const nested = iommufd.allocHwpt(mock.idevId, parent, { dataType: MOCK.HWPT_DATA_SELFTEST, data: selftestData() });
      for (let i = 0; i < MOCK.IOTLB_NUM; i++) assert.ok(mockIotlbIs(iommufd, nested, i, MOCK.IOTLB_DEFAULT));

      assert.equal(nested.invalidate(MOCK.HWPT_INVALIDATE_DATA_SELFTEST, []), 0, 'an empty list probes the type');
      assert.equal(nested.invalidate(MOCK.HWPT_INVALIDATE_DATA_SELFTEST, [new Uint32Array([0, 1]), new Uint32Array([0, 3])]), 2);
      assert.ok(mockIotlbIs(iommufd, nested, 1, 0) && mockIotlbIs(iommufd, nested, 3, 0), 'entries 1 and 3 invalidated');
      assert.ok(mockIotlbIs(iommufd, nested, 0, MOCK.IOTLB_DEFAULT), 'entry 0 kept');
      assert.equal(nested.invalidate(MOCK.HWPT_INVALIDATE_DATA_SELFTEST, [new Uint32Array([MOCK.INVALIDATE_FLAG_ALL, 0])]), 1);
      assert.ok(mockIotlbIs(iommufd, nested, 0, 0));

      mockAttach(iommufd, mock, nested);
      assert.throws(() => nested.destroy(), { code: 'EBUSY' });
      mockAttach(iommufd, mock, ioas);

      assert.throws(() => nested.invalidate(MOCK.HWPT_INVALIDATE_DATA_SELFTEST + 1, [new Uint32Array([0, 0])]), { code: 'EINVAL' });
      assert.throws(() => nested.invalidate(MOCK.HWPT_INVALIDATE_DATA_SELFTEST, [new Uint32Array([0, 9])]), { code: 'EINVAL' },
        'iotlb id past the mock IOTLB');
      assert.throws(() => nested.invalidate(0, [new Uint32Array(2), new Uint32Array(3)]), { name: 'RangeError', message: /same byteLength/ });
      assert.throws(() => nested.invalidate(0, 'x'), TypeError);
      assert.throws(() => iommufd.allocHwpt(mock.idevId, parent, { dataType: MOCK.HWPT_DATA_SELFTEST + 1, data: selftestData() }),
        { code: 'EOPNOTSUPP' });
      assert.throws(() => iommufd.allocHwpt(mock.idevId, nested, { dataType: MOCK.HWPT_DATA_SELFTEST, data: selftestData() }),
        { code: 'EINVAL' }, 'no nesting on a nested HWPT');
      assert.throws(() => iommufd.allocHwpt(mock.idevId, parent, { data: selftestData() }), { name: 'TypeError', message: /dataType/ });
      assert.throws(() => iommufd.allocHwpt(mock.idevId, parent, { dataType: 1, data: [1, 2] }), TypeError);
      assert.throws(() => parent.destroy(), { code: 'EBUSY' }, 'the nested HWPT holds its parent');
      nested.destroy();
      parent.destroy();
    }
    // QEMU 7.2's VT-d offers no nesting (no first-stage translation) on every kernel.
    assert.throws(() => edu.iommufd.allocHwpt(edu.dev, edu.ioas, { nestParent: true }),
      { name: 'VfioUnsupportedError', code: 'ERR_VFIO_UNSUPPORTED', message: /does not support nesting/ });
  } finally {
    edu.close();
    lab.close();
  }
});

test('vIOMMU (Linux 6.13): vDEVICEs, nested HWPTs on it, and its event queue (6.15) delivering events on the loop', async () => {
  const lab = mockLab();
  const edu = openEdu();
  try {
    if (lab.mock) {
      const { iommufd, ioas, mock } = lab;
      const parent = iommufd.allocHwpt(mock.idevId, ioas, { nestParent: true });
      const viommu = iommufd.allocViommu(mock.idevId, parent, MOCK.VIOMMU_TYPE_SELFTEST);
      assert.equal(viommu.type, MOCK.VIOMMU_TYPE_SELFTEST);
      assert.throws(() => parent.destroy(), { code: 'EBUSY' }, 'the vIOMMU holds its parent');
      const nested = iommufd.allocHwpt(mock.idevId, viommu, { dataType: MOCK.HWPT_DATA_SELFTEST, data: selftestData() });
      const vdev = viommu.allocVdevice(mock.idevId, 0x99);
      assert.equal(vdev.virtId, 0x99n);
      assert.throws(() => viommu.allocVdevice(mock.idevId, 0x98), { code: 'EEXIST' }, 'one vDEVICE per device');
      mockAttach(iommufd, mock, nested);

      const queue = viommu.allocEventQueue(MOCK.VEVENTQ_TYPE_SELFTEST, 2, { dataSize: 4 });
      assert.ok(queue.id > 0 && queue.fd > 2);
      assert.deepEqual(queue.read(), [], 'empty');
      const arrived = once(queue, 'event');
      mockEvent(iommufd, mock);
      const [event] = await arrived;
      assert.equal(event.sequence, 0);
      assert.equal(event.lostEvents, false);
      assert.equal(new DataView(event.data.buffer, event.data.byteOffset).getUint32(0, true), 0x99, 'the event names the virtual id');

      // Depth 2: a third event overflows, and the queue says so.
      mockEvent(iommufd, mock);
      mockEvent(iommufd, mock);
      mockEvent(iommufd, mock);
      const events = queue.read();
      assert.deepEqual(events.map((e) => e.sequence), [1, 2, 3]);
      assert.deepEqual(events.map((e) => e.lostEvents), [false, false, true]);

      assert.throws(() => viommu.allocEventQueue(MOCK.VEVENTQ_TYPE_SELFTEST, 2, { dataSize: 4 }), { code: 'EEXIST' },
        'one queue per type');
      assert.throws(() => viommu.allocEventQueue(12345, 2), { name: 'TypeError', message: /dataSize/ });
      assert.throws(() => viommu.allocEventQueue(MOCK.VEVENTQ_TYPE_SELFTEST, 0, { dataSize: 4 }), RangeError);
      assert.throws(() => iommufd.allocViommu(mock.idevId, ioas, MOCK.VIOMMU_TYPE_SELFTEST), TypeError);
      assert.throws(() => iommufd.allocViommu(mock.idevId, parent, 0xdead), { code: 'EOPNOTSUPP' });

      queue.close();
      assert.throws(() => queue.read(), { code: 'ERR_VFIO_CLOSED' });
      queue.close();
      mockAttach(iommufd, mock, ioas);
      nested.destroy();
      vdev.destroy();
      viommu.destroy();
      parent.destroy();
      assert.throws(() => viommu.allocVdevice(mock.idevId, 1), { code: 'ERR_VFIO_CLOSED' });
    } else {
      const hwptId = edu.dev.attach(edu.ioas); // any id: 6.12 refuses the request itself
      assert.throws(() => edu.iommufd.allocViommu(edu.dev, hwptId, C.IOMMU_VIOMMU_TYPE_ARM_SMMUV3), NEEDS('6.13'));
    }
  } finally {
    edu.close();
    lab.close();
  }
});

test('fault queue (Linux 6.11): a fault on a HWPT allocated with it arrives as an event and respond() answers it', async () => {
  const lab = mockLab();
  try {
    const { iommufd } = lab;
    const queue = iommufd.allocFaultQueue();
    assert.ok(queue instanceof FaultQueue);
    assert.ok(queue.id > 0 && queue.fd > 2);
    assert.deepEqual(queue.read(), []);
    assert.throws(() => queue.respond(1, 'maybe'), TypeError);
    assert.throws(() => queue.respond(-1), RangeError);
    if (lab.mock) {
      const { ioas, mock } = lab;
      const parent = iommufd.allocHwpt(mock.idevId, ioas, { nestParent: true });
      const hwpt = iommufd.allocHwpt(mock.idevId, parent, { dataType: MOCK.HWPT_DATA_SELFTEST, data: selftestData(), faultQueue: queue });
      mockAttach(iommufd, mock, hwpt);
      const arrived = once(queue, 'fault');
      mockFault(iommufd, mock, { pasid: 1, addr: 0xdeadbeafn });
      const [fault] = await arrived;
      assert.equal(fault.devId, mock.idevId);
      assert.equal(fault.addr, 0xdeadbeafn);
      assert.equal(fault.grpid, 2);
      assert.equal(fault.perm, C.IOMMU_PGFAULT_PERM_READ | C.IOMMU_PGFAULT_PERM_WRITE);
      assert.equal(fault.lastPage, true);
      queue.respond(fault.cookie, 'success');
      assert.throws(() => queue.respond(fault.cookie, 'success'), { syscall: 'write', code: 'EINVAL' }, 'answered once');
      assert.throws(() => queue.close(), { code: 'EBUSY' }, 'the HWPT still uses the queue');
      mockAttach(iommufd, mock, ioas);
      hwpt.destroy();
      parent.destroy();
      queue.close();
    } else {
      queue.close();
    }
    assert.ok(queue.closed);
    assert.throws(() => queue.respond(1), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => iommufd.allocHwpt(1, 1, { faultQueue: queue }), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => iommufd.allocHwpt(1, 1, { faultQueue: {} }), TypeError);
  } finally {
    lab.close();
  }
});

test('closing the iommufd releases its vIOMMUs, vDEVICEs and queues; their use afterwards is ERR_VFIO_CLOSED', () => {
  const lab = mockLab();
  const queue = lab.iommufd.allocFaultQueue();
  let viommu = null;
  if (lab.mock) {
    const parent = lab.iommufd.allocHwpt(lab.mock.idevId, lab.ioas, { nestParent: true });
    viommu = lab.iommufd.allocViommu(lab.mock.idevId, parent, MOCK.VIOMMU_TYPE_SELFTEST);
  }
  queue.on('fault', () => {});
  lab.close();
  assert.ok(queue.closed);
  assert.throws(() => queue.read(), { code: 'ERR_VFIO_CLOSED' });
  queue.close(); // idempotent, no IOMMU_DESTROY on a closed iommufd
  if (viommu) {
    assert.ok(viommu.destroyed);
    assert.throws(() => viommu.allocEventQueue(MOCK.VEVENTQ_TYPE_SELFTEST, 1, { dataSize: 4 }), { code: 'ERR_VFIO_CLOSED' });
  }
});

test('DmaBuffer.address is the memory\'s address for raw ioctl structs, until free()', () => {
  const buf = DmaBuffer.alloc(8192);
  const { address } = buf;
  assert.equal(typeof address, 'bigint');
  assert.equal(address % 4096n, 0n);
  assert.equal(buf.address, address);
  buf.free();
  assert.throws(() => buf.address, { code: 'ERR_VFIO_CLOSED' });
});

test('the new iommufd calls refuse an unbound device, and a destroyed or closed object, before any syscall', () => {
  const lab = mockLab();
  const edu = openEdu();
  const unbound = VfioDevice.open(devicesOf('edu')[1].cdevPath);
  try {
    for (const call of [
      () => edu.iommufd.hwInfo(unbound, { dataType: 1 }),
      () => edu.iommufd.allocHwpt(unbound, edu.ioas, { dirtyTracking: true }),
      () => edu.iommufd.allocViommu(unbound, 1, 0),
    ]) assert.throws(call, { code: 'ERR_VFIO_NOT_BOUND' });
    const hwpt = edu.iommufd.allocHwpt(edu.dev, edu.ioas);
    hwpt.destroy();
    for (const call of [
      () => hwpt.setDirtyTracking(true),
      () => hwpt.getDirtyBitmap(0, 4096, 4096),
      () => hwpt.invalidate(0, []),
      () => edu.iommufd.allocHwpt(edu.dev, hwpt),
    ]) assert.throws(call, { code: 'ERR_VFIO_CLOSED' });
    const { iommufd } = lab;
    lab.close();
    for (const call of [
      () => iommufd.hwInfo(1, { dataType: 1 }),
      () => iommufd.allocHwpt(1, 1),
      () => iommufd.allocViommu(1, 1, 0),
      () => iommufd.allocFaultQueue(),
      () => iommufd.vfioIoas({ op: 'get' }),
    ]) assert.throws(call, { code: 'ERR_VFIO_CLOSED' });
  } finally {
    unbound.close();
    edu.close();
    lab.close();
  }
});

test('iommufd.mmap (Linux 6.17) maps a vIOMMU\'s region for exact-width access; bad input and a closed iommufd are refused first', () => {
  const lab = mockLab();
  try {
    const { iommufd } = lab;
    assert.throws(() => iommufd.mmap(0, 0), RangeError);
    assert.throws(() => iommufd.mmap('0', 4096), TypeError);
    assert.throws(() => iommufd.mmap(0, 4096.5), RangeError);
    if (lab.mock) {
      const parent = iommufd.allocHwpt(lab.mock.idevId, lab.ioas, { nestParent: true });
      const data = new DataView(new ArrayBuffer(24)); // struct iommu_viommu_selftest
      data.setUint32(0, 0x5a5a1234, true);
      const viommu = iommufd.allocViommu(lab.mock.idevId, parent, MOCK.VIOMMU_TYPE_SELFTEST, { data });
      const region = iommufd.mmap(data.getBigUint64(8, true), Number(data.getBigUint64(16, true)));
      assert.equal(region.read32(0), 0x5a5a1234, 'the mock\'s page holds in_data');
      assert.throws(() => region.read32(region.size), RangeError);
      region.close();
      assert.throws(() => region.read32(0), { code: 'ERR_VFIO_CLOSED' }, 'use after close');
      viommu.destroy();
    } else {
      assert.throws(() => iommufd.mmap(0, 4096), NEEDS('6.17'));
    }
  } finally {
    lab.close();
  }
  assert.throws(() => lab.iommufd.mmap(0, 4096), { code: 'ERR_VFIO_CLOSED' });
});

test('viommu.allocHwQueue (Linux 6.17) takes a mapped IOVA, pins it until destroyed; invalidate() failures say how many entries were handled', () => {
  const lab = mockLab();
  const buf = DmaBuffer.alloc(4096);
  try {
    if (!lab.mock) {
      assert.throws(() => lab.iommufd.allocViommu(1, 1, MOCK.VIOMMU_TYPE_SELFTEST), NEEDS('6.13'));
      return;
    }
    const { iommufd, ioas, mock } = lab;
    const parent = iommufd.allocHwpt(mock.idevId, ioas, { nestParent: true });
    const viommu = iommufd.allocViommu(mock.idevId, parent, MOCK.VIOMMU_TYPE_SELFTEST);
    assert.throws(() => viommu.allocHwQueue(-1, 0, 0, 4096), RangeError);
    assert.throws(() => viommu.allocHwQueue(0xdeadbeef, 0, 'x', 4096), TypeError);
    const iova = ioas.map(buf);
    const q = viommu.allocHwQueue(0xdeadbeef, 0, iova, 4096); // IOMMU_HW_QUEUE_TYPE_SELFTEST
    assert.equal(q.type, 0xdeadbeef);
    assert.throws(() => ioas.unmap(iova, 4096), { code: 'EBUSY' });
    q.destroy();
    assert.throws(() => iommufd.destroy(q.id), { code: 'ENOENT' }, 'gone');
    ioas.unmap(iova, 4096);

    const vdev = viommu.allocVdevice(mock.idevId, 0x99);
    // struct iommu_viommu_invalidate_selftest { flags, vdev_id, cache_id }: the second has a bad cache id.
    assert.throws(() => viommu.invalidate(0xdeadbeef, [new Uint32Array([0, 0x99, 0]), new Uint32Array([0, 0x99, 9])]),
      { name: 'VfioError', code: 'EINVAL', handled: 1 });
    vdev.destroy();
    viommu.destroy();
    assert.throws(() => viommu.allocHwQueue(0xdeadbeef, 0, iova, 4096), { code: 'ERR_VFIO_CLOSED' }, 'use after destroy');
  } finally {
    lab.close();
    buf.free();
  }
});
