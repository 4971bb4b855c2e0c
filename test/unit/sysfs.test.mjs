import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constants, normalizeBdf, cdevPathFor, listPciDevices } from 'vfio';

test('normalizeBdf adds the domain and lower-cases', () => {
  assert.equal(normalizeBdf('00:1F.3'), '0000:00:1f.3');
  assert.equal(normalizeBdf('0000:65:00.0'), '0000:65:00.0');
});

test('malformed PCI addresses throw TypeError', () => {
  for (const bad of ['', '0:0.0', '0000:00:00.8', 'zz:00.0', '00:20.0']) {
    assert.throws(() => normalizeBdf(bad), TypeError, bad);
  }
  assert.throws(() => cdevPathFor(7), TypeError);
});

test('cdevPathFor an absent device says there is no such device', () => {
  assert.throws(() => cdevPathFor('0000:fe:1f.7'), { code: 'ENOENT', message: /no PCI device 0000:fe:1f.7/ });
});

test('listPciDevices returns well-formed entries', () => {
  for (const d of listPciDevices()) {
    assert.match(d.bdf, /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/);
    assert.ok(Number.isInteger(d.vendorId));
  }
});

test('ioctl numbers match the uAPI', () => {
  assert.equal(constants.VFIO_DEVICE_GET_INFO, 0x3b6b);
  assert.equal(constants.VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
  assert.equal(constants.IOMMU_IOAS_MAP, 0x3b85);
  assert.equal(constants.VFIO_PCI_CONFIG_REGION_INDEX, 7);
});

test('SR-IOV and mdev helpers check their arguments before touching sysfs', async () => {
  const vfio = await import('vfio');
  assert.throws(() => vfio.sriovTotalVfs('zz'), TypeError);
  assert.throws(() => vfio.setSriovNumVfs('0000:00:00.0', -1), /RangeError|ENOENT/);
  assert.throws(() => vfio.virtfnsOf('0000:fe:1f.7'), { code: 'ENOENT' });
  assert.throws(() => vfio.physfnOf(12), TypeError);
  assert.throws(() => vfio.mdevTypes('a/b'), TypeError);
  assert.throws(() => vfio.mdevTypes('no-such-parent'), { code: 'ENOENT', message: /mdev_bus/ });
  assert.throws(() => vfio.createMdev('no-such-parent', 'x'), { code: 'ENOENT' });
  assert.throws(() => vfio.removeMdev('nope'), TypeError);
  for (const d of vfio.listPciDevices()) {
    assert.ok(d.physfn === null || /^[0-9a-f]{4}:/.test(d.physfn));
    assert.ok(d.totalVfs === null || Number.isInteger(d.totalVfs));
  }
});
