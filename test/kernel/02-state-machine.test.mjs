// VfioDevice's state machine against the real kernel.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Iommufd, VfioDevice, VfioError, VfioStateError } from 'vfio';
import { cdevDevices, deviceOf, withBound } from './lab.mjs';

const edu = deviceOf('edu');

const calls = {
  'info()': (d) => d.info(),
  'regionInfo(0)': (d) => d.regionInfo(0),
  'irqInfo(1)': (d) => d.irqInfo(1),
  'region(7)': (d) => d.region(7),
  config: (d) => d.config.vendorId,
  "enableIrq('msi')": (d) => d.enableIrq('msi'),
  'reset()': (d) => d.reset(),
  'hotResetInfo()': (d) => d.hotResetInfo(),
  'feature(0)': (d) => d.feature(0),
  'attach(1)': (d) => d.attach(1),
  'detach()': (d) => d.detach(),
};

test('open gives a blocked device', () => {
  const dev = VfioDevice.open(edu.bdf);
  assert.equal(dev.state, 'blocked');
  assert.equal(dev.devId, null);
  assert.equal(dev.path, edu.cdevPath);
  dev.close();
});

for (const [name, call] of Object.entries(calls)) {
  test(`${name} on a blocked device throws ERR_VFIO_NOT_BOUND with errno -22`, () => {
    const dev = VfioDevice.open(edu.cdevPath);
    try {
      assert.throws(() => call(dev), (e) => e instanceof VfioStateError && e.code === 'ERR_VFIO_NOT_BOUND' && e.errno === -22);
      assert.equal(dev.state, 'blocked');
    } finally {
      dev.close();
    }
  });

  test(`${name} with checks off reaches the kernel and fails with EINVAL`, () => {
    const dev = VfioDevice.open(edu.cdevPath, { checks: false });
    try {
      assert.throws(() => call(dev), (e) => e instanceof VfioError && !(e instanceof VfioStateError) &&
        e.code === 'EINVAL' && e.errno === -22);
    } finally {
      dev.close();
    }
  });
}

for (const d of cdevDevices()) {
  test(`probeBlocked on ${d.kind} reports EINVAL for ioctl, read, write and mmap`, () => {
    const dev = VfioDevice.open(d.cdevPath);
    try {
      assert.deepEqual(dev.probeBlocked(), { ioctl: 'EINVAL', read: 'EINVAL', write: 'EINVAL', mmap: 'EINVAL' });
      assert.equal(dev.state, 'blocked');
    } finally {
      dev.close();
    }
  });
}

test('bind gives bound and a devId; a second bind throws ERR_VFIO_ALREADY_BOUND', () => {
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(edu.cdevPath);
  try {
    const devId = dev.bind(iommufd);
    assert.equal(dev.state, 'bound');
    assert.ok(devId > 0);
    assert.equal(dev.devId, devId);
    assert.throws(() => dev.bind(iommufd), { name: 'VfioStateError', code: 'ERR_VFIO_ALREADY_BOUND', errno: -22 });
    assert.throws(() => dev.probeBlocked(), { code: 'ERR_VFIO_ALREADY_BOUND' });
  } finally {
    dev.close();
    iommufd.close();
  }
});

test('attach gives attached with an auto HWPT id, detach gives bound again', () => {
  withBound('edu', ({ dev, iommufd }) => {
    const ioas = iommufd.allocIoas();
    const pt = dev.attach(ioas);
    assert.equal(dev.state, 'attached');
    assert.ok(pt > 0 && pt !== ioas.id, `vfio-pci reports an auto HWPT (${pt}), not the IOAS (${ioas.id})`);
    assert.equal(dev.ptId, pt);
    assert.equal(dev.attach(ioas), pt, 'attaching again replaces with the same HWPT');
    dev.detach();
    assert.equal(dev.state, 'bound');
    assert.equal(dev.ptId, null);
    ioas.destroy();
  }, { attach: false });
});

test('attach on mtty echoes the IOAS id', () => {
  withBound('mtty', ({ dev, iommufd }) => {
    const ioas = iommufd.allocIoas();
    assert.equal(dev.attach(ioas), ioas.id);
    assert.equal(dev.state, 'attached');
  }, { attach: false });
});

test('after close every call throws ERR_VFIO_CLOSED and closing twice is fine', () => {
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(edu.cdevPath);
  dev.bind(iommufd);
  dev.close();
  assert.equal(dev.state, 'closed');
  for (const call of [...Object.values(calls), (d) => d.bind(iommufd), (d) => d.probeBlocked(), (d) => d.fd]) {
    assert.throws(() => call(dev), { name: 'VfioStateError', code: 'ERR_VFIO_CLOSED' });
  }
  dev.close();
  iommufd.close();
});

test('the devid is freed by close: binding again on a new fd works', () => {
  const iommufd = Iommufd.open();
  try {
    for (let i = 0; i < 3; i++) {
      const dev = VfioDevice.open(edu.cdevPath);
      assert.ok(dev.bind(iommufd) > 0);
      dev.close();
    }
  } finally {
    iommufd.close();
  }
});

test('binding the same device through a second fd fails with EINVAL', () => {
  const iommufd = Iommufd.open();
  const a = VfioDevice.open(edu.cdevPath);
  const b = VfioDevice.open(edu.cdevPath);
  try {
    a.bind(iommufd);
    assert.throws(() => b.bind(iommufd), { code: 'EINVAL', ioctl: 'VFIO_DEVICE_BIND_IOMMUFD' });
    assert.equal(b.state, 'blocked');
  } finally {
    a.close();
    b.close();
    iommufd.close();
  }
});
