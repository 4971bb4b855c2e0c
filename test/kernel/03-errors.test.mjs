// Errors that explain: what the kernel said, which call, and the likely cause.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DmaBuffer, Iommufd, VfioDevice, VfioError, VfioGroup } from 'vfio';
import { native } from '../../dist/native.js';
import { deviceOf } from './lab.mjs';
import { openEdu } from './edu.mjs';

test('bind while the group fd is open gives EBUSY naming the ioctl and the cause', () => {
  const d = deviceOf('edu');
  const group = native.groupOpen(d.groupPath);
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(d.bdf);
  try {
    assert.throws(() => dev.bind(iommufd), (e) => e instanceof VfioError && e.code === 'EBUSY' &&
      e.errno === -16 && e.syscall === 'ioctl' && e.ioctl === 'VFIO_DEVICE_BIND_IOMMUFD' &&
      e.path === d.cdevPath && /group/.test(e.message));
  } finally {
    dev.close();
    iommufd.close();
    native.groupClose(group);
  }
});

test('opening a path that does not exist gives ENOENT with the path', () => {
  assert.throws(() => VfioDevice.open('/dev/vfio/devices/vfio77'), (e) =>
    e instanceof VfioError && e.code === 'ENOENT' && e.errno === -2 && e.syscall === 'open' &&
    e.path === '/dev/vfio/devices/vfio77');
  assert.throws(() => Iommufd.open('/dev/no-iommu'), { code: 'ENOENT', path: '/dev/no-iommu' });
});

test('a missing group, container or device name says what to do', () => {
  assert.throws(() => VfioGroup.open(4000), { name: 'VfioError', code: 'ENOENT', path: '/dev/vfio/4000',
    message: /no such VFIO group: .*bound to vfio-pci \(vfio bind <bdf>/ });
  assert.throws(() => VfioDevice.open('nonsense'), { name: 'TypeError',
    message: /'nonsense' is not a PCI address .*an mdev UUID or a path to a VFIO cdev/ });
  assert.throws(() => VfioDevice.open('/dev/vfio/devices/vfio77'), { code: 'ENOENT', message: /bind the device to vfio-pci/ });
});

test('mapping over an existing mapping gives EEXIST', () => {
  const edu = openEdu();
  const a = DmaBuffer.alloc(8192);
  const b = DmaBuffer.alloc(4096);
  try {
    edu.ioas.map(a, { iova: 0x200000 });
    assert.throws(() => edu.ioas.map(b, { iova: 0x201000 }), { name: 'VfioError', code: 'EEXIST', ioctl: 'IOMMU_IOAS_MAP' });
  } finally {
    edu.close();
    a.free();
    b.free();
  }
});

test('an IOVA, offset or length off the IOAS\'s alignment is refused before the syscall with the kernel\'s EINVAL', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(4096);
  const saved = native.ioasMap;
  let calls = 0;
  native.ioasMap = (...args) => {
    calls++;
    return saved(...args);
  };
  try {
    const EINVAL = { name: 'VfioError', code: 'EINVAL', errno: -22, ioctl: 'IOMMU_IOAS_MAP', message: /IOVA alignment 4096/ };
    assert.equal(edu.ioas.iovaAlignment, 4096n, 'a device is attached: the IOMMU page size');
    assert.throws(() => edu.ioas.map(buf, { iova: 0x200800 }), EINVAL);
    assert.throws(() => edu.ioas.map(buf, { iova: 0x200000, length: 100 }), EINVAL);
    assert.throws(() => edu.ioas.map(buf, { iova: 0x200000, offset: 100 }), EINVAL);
    assert.equal(calls, 0);
    // No check of the library's own for unmap: the kernel says ENOENT (no whole mapping there).
    assert.throws(() => edu.ioas.unmap(0x200800, 4096), { name: 'VfioError', code: 'ENOENT', ioctl: 'IOMMU_IOAS_UNMAP' });
  } finally {
    native.ioasMap = saved;
    edu.close();
    buf.free();
  }
});

test('with no device attached the kernel maps byte-granular ranges, and so does the library', () => {
  const iommufd = Iommufd.open();
  const buf = DmaBuffer.alloc(8192);
  try {
    const ioas = iommufd.allocIoas();
    assert.equal(ioas.iovaAlignment, 1n);
    assert.equal(ioas.map(buf, { iova: 0x200064, offset: 100, length: 100 }), 0x200064n);
    assert.equal(ioas.iovaOf(buf, 150), 0x200064n + 50n);
    assert.equal(ioas.unmap(0x200064, 100), 100);
    assert.throws(() => ioas.unmap(0x200000, 0), { name: 'VfioError', code: 'EINVAL', ioctl: 'IOMMU_IOAS_UNMAP' },
      'length 0: the kernel\'s EINVAL');
    ioas.map(buf, { iova: 0x300000 });
    ioas.map(buf, { iova: 0x400000 });
    assert.equal(ioas.unmap(0, 2n ** 64n - 1n), 2 * 8192, 'iova 0 and length 2^64-1: the kernel\'s unmap-all');
    assert.equal(buf.mappings, 0);
  } finally {
    iommufd.close();
    buf.free();
  }
});

test('unmapping what is not mapped gives ENOENT', () => {
  const edu = openEdu();
  try {
    assert.throws(() => edu.ioas.unmap(0x300000, 4096), { name: 'VfioError', code: 'ENOENT', ioctl: 'IOMMU_IOAS_UNMAP' });
  } finally {
    edu.close();
  }
});

test('reset on a device without reset support gives EINVAL and says why', () => {
  const edu = openEdu();
  try {
    assert.equal(edu.dev.info().canReset, false);
    assert.throws(() => edu.dev.reset(), { code: 'EINVAL', ioctl: 'VFIO_DEVICE_RESET', message: /canReset/ });
  } finally {
    edu.close();
  }
});
