// The kernel's pre-bind gate on the VFIO cdev, seen through the addon.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Iommufd, VfioDevice, VfioError } from 'vfio';
import { hot, native } from '../../dist/native.js';
import { cdevDevices } from './lab.mjs';

/** Run fn with a device opened with checks off, so the kernel answers for itself. */
function withRawDevice(path, fn) {
  const dev = VfioDevice.open(path, { checks: false });
  try {
    return fn(dev._handle('probe'), dev);
  } finally {
    dev.close();
  }
}

for (const d of cdevDevices()) {
  const name = `${d.kind} ${d.id}`;

  test(`cdev of ${name} opens`, () => {
    const dev = VfioDevice.open(d.cdevPath);
    assert.equal(dev.state, 'blocked');
    assert.ok(dev.fd >= 0);
    dev.close();
  });

  test(`${name}: GET_INFO before bind fails with EINVAL`, () => {
    withRawDevice(d.cdevPath, (h) => {
      assert.throws(() => native.deviceGetInfo(h), (e) =>
        e instanceof VfioError && e.code === 'EINVAL' && e.errno === -22 && e.syscall === 'ioctl' &&
        e.ioctl === 'VFIO_DEVICE_GET_INFO' && e.path === d.cdevPath);
    });
  });

  test(`${name}: pread before bind fails with EINVAL`, () => {
    withRawDevice(d.cdevPath, (h) => {
      assert.throws(() => native.devicePreadInto(h, 0, new Uint8Array(4)), { code: 'EINVAL', errno: -22, syscall: 'pread' });
    });
  });

  test(`${name}: pwrite before bind fails with EINVAL`, () => {
    withRawDevice(d.cdevPath, (h) => {
      assert.throws(() => native.devicePwrite(h, 7 * 2 ** 40, new Uint8Array(4)), { code: 'EINVAL', errno: -22, syscall: 'pwrite' });
    });
  });

  test(`${name}: the hot calls (one register, region and IRQ info) before bind fail with the kernel's EINVAL`, () => {
    withRawDevice(d.cdevPath, (h) => {
      assert.throws(() => hot.read32(h, 0), { code: 'EINVAL', errno: -22, syscall: 'pread' });
      assert.throws(() => hot.write32(h, 7 * 2 ** 40 + 4, 0), { code: 'EINVAL', errno: -22, syscall: 'pwrite' });
      assert.throws(() => hot.regionInfo(h, 0), { code: 'EINVAL', errno: -22, ioctl: 'VFIO_DEVICE_GET_REGION_INFO' });
      assert.throws(() => hot.irqInfo(h, 1), { code: 'EINVAL', errno: -22, ioctl: 'VFIO_DEVICE_GET_IRQ_INFO' });
    });
  });

  test(`${name}: mmap before bind fails with EINVAL`, () => {
    withRawDevice(d.cdevPath, (h) => {
      assert.throws(() => native.deviceMmap(h, 0, 4096, false), { code: 'EINVAL', errno: -22, syscall: 'mmap' });
    });
  });

  test(`${name}: bind returns a devid, a second bind fails with EINVAL, then GET_INFO succeeds`, () => {
    const ictx = Iommufd.open();
    try {
      withRawDevice(d.cdevPath, (_h, dev) => {
        const devId = dev.bind(ictx);
        assert.ok(Number.isInteger(devId) && devId > 0, `devid ${devId}`);
        assert.equal(dev.state, 'bound');
        assert.throws(() => dev.bind(ictx), { name: 'VfioError', code: 'EINVAL', errno: -22, ioctl: 'VFIO_DEVICE_BIND_IOMMUFD' });
        const info = dev.info();
        assert.ok(info.numRegions >= 9, `numRegions ${info.numRegions}`);
        assert.equal(info.isPci, true);
      });
    } finally {
      ictx.close();
    }
  });

  test(`${name}: bind while the group fd is open fails with EBUSY`, () => {
    const group = native.groupOpen(d.groupPath);
    const ictx = Iommufd.open();
    const dev = VfioDevice.open(d.cdevPath);
    try {
      assert.throws(() => dev.bind(ictx), (e) =>
        e instanceof VfioError && e.code === 'EBUSY' && e.errno === -16 && e.ioctl === 'VFIO_DEVICE_BIND_IOMMUFD');
      assert.equal(dev.state, 'blocked');
    } finally {
      dev.close();
      ictx.close();
      native.groupClose(group);
    }
  });
}
