// Discovery through sysfs, and reset where the device supports it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Iommufd, VfioDevice, bindToVfioPci, cdevPathFor, listPciDevices } from 'vfio';
import { deviceOf, devicesOf, openBound, withBound } from './lab.mjs';

test('listPciDevices lists the edu and nvme devices with their cdevPath', () => {
  const list = listPciDevices();
  for (const d of [...devicesOf('edu'), ...devicesOf('nvme')]) {
    const found = list.find((p) => p.bdf === d.bdf);
    assert.ok(found, `${d.bdf} listed`);
    assert.equal(found.cdevPath, d.cdevPath);
    assert.equal(found.driver, 'vfio-pci');
    assert.equal(found.iommuGroup, d.iommuGroup);
  }
  const edu = list.find((p) => p.bdf === deviceOf('edu').bdf);
  assert.equal(edu.vendorId, 0x1234);
  assert.equal(edu.deviceId, 0x11e8);
  assert.equal(list.find((p) => p.bdf === deviceOf('nvme').bdf).classCode, 0x010802);
});

test('cdevPathFor gives the cdev of a vfio-pci device and of an mdev', () => {
  assert.equal(cdevPathFor(deviceOf('edu').bdf), deviceOf('edu').cdevPath);
  assert.equal(cdevPathFor(deviceOf('edu').bdf.slice(5)), deviceOf('edu').cdevPath, 'short form 00:05.0');
  assert.equal(cdevPathFor(deviceOf('mtty').id), deviceOf('mtty').cdevPath);
});

test('cdevPathFor on a device without a VFIO driver says so', () => {
  const other = listPciDevices().find((p) => p.driver !== 'vfio-pci');
  assert.ok(other, 'the lab has devices not bound to vfio-pci');
  assert.throws(() => cdevPathFor(other.bdf), (e) => e.code === 'ERR_VFIO_NO_DRIVER' &&
    e.message.includes(other.bdf) && /not (bound to any driver|to a VFIO driver)/.test(e.message) && /vfio bind/.test(e.message));
});

test('VfioDevice.open by BDF and by mdev UUID', () => {
  for (const d of [deviceOf('edu'), deviceOf('mtty')]) {
    const dev = VfioDevice.open(d.id);
    assert.equal(dev.path, d.cdevPath);
    dev.close();
  }
});

test('reset() works where info().canReset says so', () => {
  withBound('nvme', ({ dev }) => {
    assert.equal(dev.info().canReset, true);
    const bar = dev.region(0);
    bar.write32(0x14, 0x00460001); // NVMe CC.EN: enable the controller
    assert.equal(bar.read32(0x1c) & 1, 1, 'CSTS.RDY');
    dev.reset();
    assert.equal(bar.read32(0x14), 0, 'CC is back to its reset value');
    assert.equal(bar.read32(0x1c) & 1, 0, 'the controller is no longer ready');
    assert.equal(dev.config.vendorId, 0x1b36, 'the device answers after reset');
  }, { attach: false });
});

test("'request' fires when someone unbinds the open device from vfio-pci; closing it lets the unbind finish", async () => {
  const { spawn } = await import('node:child_process');
  const edu2 = devicesOf('edu')[1];
  const { dev, close } = openBound('edu', { n: 1, attach: false });
  try {
    assert.equal(dev.irqInfo(4).count, 1, 'vfio-pci offers the REQ index');
    const requested = new Promise((resolve) => dev.once('request', (count) => {
      dev.close(); // give the device back
      resolve(count);
    }));
    const unbind = spawn('sh', ['-c', `echo ${edu2.bdf} > /sys/bus/pci/drivers/vfio-pci/unbind`], { stdio: 'ignore' });
    const exited = new Promise((resolve) => unbind.on('exit', resolve));
    assert.ok(await requested >= 1);
    assert.equal(await exited, 0, 'the unbind completed once the device was closed');
    assert.equal(listPciDevices().find((d) => d.bdf === edu2.bdf).driver, null);
  } finally {
    close();
    bindToVfioPci(edu2.bdf);
  }
  assert.equal(listPciDevices().find((d) => d.bdf === edu2.bdf).driver, 'vfio-pci', 'bound back for the other tests');
});

test("a 'request' listener added before bind starts at bind, and removing it turns the REQ index off", () => {
  const edu = deviceOf('edu');
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(edu.cdevPath);
  try {
    const onRequest = () => {};
    dev.on('request', onRequest);
    dev.bind(iommufd);
    assert.throws(() => dev.enableIrq('req'), { code: 'ERR_VFIO_BUSY' }, 'the REQ vector is owned by the listener');
    dev.off('request', onRequest);
    dev.enableIrq('req').disable();
  } finally {
    dev.close();
    iommufd.close();
  }
});
