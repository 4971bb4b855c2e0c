// tools/testing/selftests/vfio/vfio_iommufd_setup_test.c (Linux 7.3) through the library, on the
// lab's edu. Upstream issues raw ioctls; here the library's calls, and where the library refuses
// before the syscall (its pre-bind gate, its type checks) the case asserts that typed refusal
// and, with the library's checks off, the kernel's own errno.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { Iommufd, VfioDevice } from 'vfio';
import { deviceOf } from '../lab.mjs';

const edu = deviceOf('edu');

/** FIXTURE(vfio_cdev): the cdev and /dev/iommu, opened; closed after. */
function vfioCdev(fn, { checks = true } = {}) {
  const cdev = VfioDevice.open(edu.cdevPath, { checks });
  const iommufd = Iommufd.open();
  try {
    fn({ cdev, iommufd });
  } finally {
    cdev.close();
    iommufd.close();
  }
}

test('vfio_cdev.bind', () => {
  vfioCdev(({ cdev, iommufd }) => {
    assert.ok(cdev.bind(iommufd) > 0);
    assert.ok(cdev.info().numRegions > 0);
  });
});

test('vfio_cdev.get_info_without_bind_fails (library: ERR_VFIO_NOT_BOUND before the syscall; kernel: EINVAL)', () => {
  vfioCdev(({ cdev }) => {
    assert.throws(() => cdev.info(), { name: 'VfioStateError', errno: -22 });
  });
  vfioCdev(({ cdev }) => {
    assert.throws(() => cdev.info(), { name: 'VfioError', code: 'EINVAL', ioctl: 'VFIO_DEVICE_GET_INFO' });
  }, { checks: false });
});

test('vfio_cdev.bind_bad_iommufd_fails (fd -2: library RangeError; a fd that is no iommufd: kernel EBADFD)', () => {
  vfioCdev(({ cdev }) => {
    assert.throws(() => cdev.bind(Iommufd.fromFd(-2)), RangeError);
    const notIommufd = fs.openSync('/dev/null', 'r');
    const fake = Iommufd.fromFd(notIommufd, { own: true });
    try {
      assert.throws(() => cdev.bind(fake), { name: 'VfioError', code: 'EBADFD', ioctl: 'VFIO_DEVICE_BIND_IOMMUFD' });
    } finally {
      fake.close();
    }
  });
});

test('vfio_cdev.repeated_bind_fails (library: ERR_VFIO_ALREADY_BOUND; kernel: EINVAL)', () => {
  vfioCdev(({ cdev, iommufd }) => {
    cdev.bind(iommufd);
    assert.throws(() => cdev.bind(iommufd), { code: 'ERR_VFIO_ALREADY_BOUND', errno: -22 });
  });
  vfioCdev(({ cdev, iommufd }) => {
    cdev.bind(iommufd);
    assert.throws(() => cdev.bind(iommufd), { name: 'VfioError', code: 'EINVAL', ioctl: 'VFIO_DEVICE_BIND_IOMMUFD' });
  }, { checks: false });
});

test('vfio_cdev.attach_detatch_pt', () => {
  vfioCdev(({ cdev, iommufd }) => {
    cdev.bind(iommufd);
    const ioas = iommufd.allocIoas();
    assert.ok(cdev.attach(ioas) > 0);
    cdev.detach();
    assert.equal(cdev.state, 'bound');
  });
});

test('vfio_cdev.attach_invalid_pt_fails (pt id UINT32_MAX: kernel ENOENT)', () => {
  vfioCdev(({ cdev, iommufd }) => {
    cdev.bind(iommufd);
    assert.throws(() => cdev.attach(0xffffffff), { name: 'VfioError', code: 'ENOENT', ioctl: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT' });
    assert.equal(cdev.state, 'bound');
  });
});
