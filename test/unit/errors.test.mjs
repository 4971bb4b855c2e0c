import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VfioError, VfioStateError } from 'vfio';

test('VfioError carries code, negative errno, syscall, ioctl and path like a Node system error', () => {
  const e = new VfioError({ errno: -16, syscall: 'ioctl', ioctl: 'VFIO_DEVICE_BIND_IOMMUFD', path: '/dev/vfio/devices/vfio0' });
  assert.equal(e.code, 'EBUSY');
  assert.equal(e.errno, -16);
  assert.equal(e.syscall, 'ioctl');
  assert.equal(e.ioctl, 'VFIO_DEVICE_BIND_IOMMUFD');
  assert.equal(e.path, '/dev/vfio/devices/vfio0');
  assert.equal(e.name, 'VfioError');
  assert.ok(e instanceof Error);
  assert.match(e.message, /^EBUSY: .*VFIO_DEVICE_BIND_IOMMUFD '\/dev\/vfio\/devices\/vfio0'/);
});

test('the message explains well-known causes', () => {
  assert.match(new VfioError({ errno: -16, syscall: 'ioctl', ioctl: 'VFIO_DEVICE_BIND_IOMMUFD' }).message, /group/);
  assert.match(new VfioError({ errno: -12, syscall: 'ioctl', ioctl: 'IOMMU_IOAS_MAP' }).message, /RLIMIT_MEMLOCK/);
  assert.match(new VfioError({ errno: -13, syscall: 'open', path: '/dev/vfio/devices/vfio0' }).message, /udev rule/);
  assert.match(new VfioError({ errno: -2, syscall: 'open', path: '/dev/iommu' }).message, /CONFIG_IOMMUFD/);
  assert.match(new VfioError({ errno: -1, syscall: 'ioctl', ioctl: 'VFIO_DEVICE_BIND_IOMMUFD' }).message, /interrupt remapping/);
});

test('VfioStateError is a VfioError with a specific code', () => {
  const e = new VfioStateError('ERR_VFIO_NOT_BOUND', -22, 'ioctl', 'not bound');
  assert.ok(e instanceof VfioError);
  assert.equal(e.name, 'VfioStateError');
  assert.equal(e.code, 'ERR_VFIO_NOT_BOUND');
  assert.equal(e.errno, -22);
});

test('every ioctl a hint is keyed by is a row of the addon\'s ioctl table, and every errno a real one', async () => {
  const { IOCTL_HINTS } = await import('../../dist/errors.js');
  const { native } = await import('../../dist/native.js');
  const { constants } = await import('node:os');
  for (const [ioctl, byErrno] of Object.entries(IOCTL_HINTS)) {
    assert.ok(Object.hasOwn(native.ioctls, ioctl), `${ioctl} is not in the ioctl table (native/uapi.h)`);
    for (const code of Object.keys(byErrno)) assert.ok(code in constants.errno, `${ioctl}: ${code} is not an errno name`);
  }
});

test('the ioctl table gives JS the kernel\'s request numbers', async () => {
  const { native } = await import('../../dist/native.js');
  assert.equal(native.ioctls.VFIO_DEVICE_GET_INFO, 0x3b6b);
  assert.equal(native.ioctls.IOMMU_IOAS_MAP_FILE, 0x3b8f);
  assert.ok(Object.isFrozen(native.ioctls));
});

test('errnos Node does not name are named as the kernel names them, from one table', async () => {
  const { makeNativeError, LINUX_ERRNOS } = await import('../../dist/errors.js');
  const badfd = makeNativeError(77, 'ioctl', 'VFIO_DEVICE_BIND_IOMMUFD');
  assert.equal(badfd.code, 'EBADFD');
  assert.equal(badfd.errno, -77);
  assert.match(badfd.message, /^EBADFD: file descriptor in bad state, VFIO_DEVICE_BIND_IOMMUFD/);
  assert.equal(makeNativeError(95, 'ioctl', 'IOMMU_HWPT_ALLOC').code, 'EOPNOTSUPP');
  assert.equal(makeNativeError(16, 'ioctl').code, 'EBUSY', 'the rest from Node\'s own map');
  for (const [n, [name]] of Object.entries(LINUX_ERRNOS)) assert.match(name, /^E[A-Z]+$/, `errno ${n}`);
});

test('an ENOTTY from a request newer than the kernel is ERR_VFIO_NEEDS_KERNEL naming the release', async () => {
  const { makeNativeError, IOCTL_SINCE, kernelBefore, VfioUnsupportedError } = await import('../../dist/errors.js');
  const { native } = await import('../../dist/native.js');
  for (const name of Object.keys(IOCTL_SINCE)) assert.ok(name in native.ioctls, `${name} is a row of the ioctl table`);
  const e = makeNativeError(25, 'ioctl', 'IOMMU_VIOMMU_ALLOC');
  assert.ok(e instanceof VfioUnsupportedError);
  assert.equal(e.code, 'ERR_VFIO_NEEDS_KERNEL');
  assert.equal(e.needs, '6.13');
  assert.equal(e.errno, -25);
  assert.match(e.message, /IOMMU_VIOMMU_ALLOC needs Linux 6\.13 or newer; this kernel is .* \(it answered ENOTTY\)/);
  assert.equal(makeNativeError(25, 'ioctl', 'VFIO_DEVICE_RESET').code, 'ENOTTY', 'not for requests as old as iommufd');
  assert.equal(kernelBefore('6.13', '6.12.117-amd64'), true);
  assert.equal(kernelBefore('6.13', '6.13.0'), false);
  assert.equal(kernelBefore('6.13', '7.3.4'), false);
  assert.equal(kernelBefore('6.17', '6.9.1'), true);
  assert.equal(kernelBefore('6.13', 'weird'), false);
});

test('a missing VFIO container device names the compat container and the kernel option', async () => {
  const { makeNativeError } = await import('../../dist/errors.js');
  const e = makeNativeError(2, 'open', undefined, '/dev/vfio/vfio');
  assert.equal(e.code, 'ENOENT');
  assert.match(e.message, /no VFIO container device: the kernel lacks CONFIG_VFIO_CONTAINER .*VfioContainer\.open\('\/dev\/iommu'\)/);
});

test('a missing VFIO group says how it comes to be; other missing paths get no VFIO hint', async () => {
  const { makeNativeError } = await import('../../dist/errors.js');
  assert.match(makeNativeError(2, 'open', undefined, '/dev/vfio/12').message, /no such VFIO group: .*group N is bound to vfio-pci/);
  assert.doesNotMatch(makeNativeError(2, 'open', undefined, '/tmp/x').message, /VFIO/);
});
