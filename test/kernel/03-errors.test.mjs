// Errors that explain: what the kernel said, which call, and the likely cause.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DmaBuffer, Iommufd, VfioDevice, VfioError } from 'vfio';
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

test('an unaligned IOVA or length is refused before the syscall', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(4096);
  const saved = native.ioasMap;
  let calls = 0;
  native.ioasMap = (...args) => {
    calls++;
    return saved(...args);
  };
  try {
    assert.throws(() => edu.ioas.map(buf, { iova: 0x200800 }), { name: 'RangeError', message: /aligned/ });
    assert.throws(() => edu.ioas.map(buf, { iova: 0x200000, length: 100 }), { name: 'RangeError', message: /multiple/ });
    assert.throws(() => edu.ioas.map(buf, { iova: 0x200000, offset: 100 }), { name: 'RangeError', message: /page size/ });
    assert.throws(() => edu.ioas.unmap(0x200800, 4096), RangeError);
    assert.equal(calls, 0);
  } finally {
    native.ioasMap = saved;
    edu.close();
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
