// Newer device and DMA-memory features: file-backed DMA (memfd + IOMMU_IOAS_MAP_FILE, 6.13),
// peer-to-peer DMA into another device's BAR through a dma-buf (6.19), the typed low-power
// feature, feature probes, and the mdev helpers. Where the kernel is older than a feature, the
// test asserts the library's ERR_VFIO_NEEDS_KERNEL.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { DmaBuffer, Iommufd, VfioContainer, VfioGroup, constants as C, createMdev, mdevDevice, mdevTypes, removeMdev } from 'vfio';
import { deviceOf, devicesOf, openBound } from './lab.mjs';
import { EDU, openEdu, startDma, startWordBounce, waitDmaIdle } from './edu.mjs';

const [MAJOR, MINOR] = process.env.VFIO_LAB_KERNEL_RELEASE.split('.').map(Number);
const atLeast = (major, minor) => MAJOR > major || (MAJOR === major && MINOR >= minor);
const NEEDS = (version) => ({ name: 'VfioUnsupportedError', code: 'ERR_VFIO_NEEDS_KERNEL', needs: version });

test('a memfd DmaBuffer has an fd, and mapFile(buf.fd) maps it for device DMA (Linux 6.13)', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(8192, { memfd: true });
  const plain = DmaBuffer.alloc(4096);
  const bar = edu.dev.region(0).map();
  try {
    assert.equal(typeof buf.fd, 'number');
    assert.ok(fs.fstatSync(buf.fd).isFile(), 'a memfd');
    assert.equal(fs.fstatSync(buf.fd).size, 8192);
    assert.equal(plain.fd, null, 'anonymous memory has no fd');
    edu.dev.config.enableBusMaster();
    if (atLeast(6, 13)) {
      const iova = edu.ioas.mapFile(buf.fd, { start: 0, length: buf.size });
      buf.store32(0, 0xf11e0001);
      startWordBounce(bar, iova);
      waitDmaIdle(bar);
      assert.equal(buf.load32(4096), 0xf11e0001, 'the device wrote the memfd pages the buffer views');
      // The mapping pins the file, not the buffer: free() is allowed, the pages stay the mapping's.
      const fd = buf.fd;
      buf.free();
      assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' }, 'the buffer closed its fd');
      assert.equal(edu.ioas.unmap(iova, 8192), 8192);
    } else {
      assert.throws(() => edu.ioas.mapFile(buf.fd, { start: 0, length: buf.size }), NEEDS('6.13'));
    }
  } finally {
    bar.close();
    edu.close();
    if (!buf.freed) buf.free();
    plain.free();
  }
});

test('exportDmabuf (Linux 6.19): edu A DMAs into edu B\'s BAR mapped through a dma-buf', () => {
  const a = openEdu(0);
  const b = openEdu(1);
  const barA = a.dev.region(0).map();
  const barB = b.dev.region(0).map();
  const src = DmaBuffer.alloc(4096);
  try {
    if (!atLeast(6, 19)) {
      assert.throws(() => b.dev.region(0).exportDmabuf({ length: 4096 }), NEEDS('6.19'));
      return;
    }
    const fd = b.dev.region(0).exportDmabuf({ offset: 0, length: 4096 });
    assert.ok(fd > 2);
    const peer = a.ioas.mapFile(fd, { start: 0, length: 4096 });
    fs.closeSync(fd); // the IOAS holds the dma-buf now
    a.dev.config.enableBusMaster();
    const srcIova = a.ioas.map(src);
    src.store32(0, 0x1234abcd);
    startDma(barA, { src: srcIova, dst: EDU.BUFFER, count: 4, toRam: false });
    waitDmaIdle(barA);
    // To edu B's liveness register (it stores the complement of what is written): a write that
    // only a DMA through B's BAR can make.
    startDma(barA, { src: EDU.BUFFER, dst: peer + BigInt(EDU.LIVENESS), count: 4, toRam: true });
    waitDmaIdle(barA);
    assert.equal(barB.read32(EDU.LIVENESS), ~0x1234abcd >>> 0, 'edu B saw edu A\'s write');
    a.ioas.unmap(peer, 4096);
    assert.throws(() => b.dev.region(0).exportDmabuf({ offset: 0, length: 0 }), RangeError);
    assert.throws(() => b.dev.region(0).exportDmabuf({ offset: 4096, length: 2 ** 20 }), RangeError);
    assert.throws(() => b.dev.region(C.VFIO_PCI_CONFIG_REGION_INDEX).exportDmabuf(), { code: 'ENODEV' });
  } finally {
    barA.close();
    barB.close();
    a.close();
    b.close();
    src.free();
  }
});

test('lowPower.enter()/exit() suspend and restore the BAR mappings; feature() returns the ioctl result', () => {
  const edu = openEdu();
  const bar = edu.dev.region(0).map();
  try {
    assert.equal(bar.read32(EDU.ID) >>> 16, 0x0100, 'edu\'s ID register');
    edu.dev.lowPower.enter();
    assert.throws(() => bar.read32(EDU.ID), { code: 'ERR_VFIO_MEMORY_OFF' });
    edu.dev.lowPower.exit();
    assert.equal(bar.read32(EDU.ID) >>> 16, 0x0100);
    edu.dev.lowPower.enter({ wakeup: true });
    assert.throws(() => bar.read32(EDU.ID), { code: 'ERR_VFIO_MEMORY_OFF' });
    edu.dev.lowPower.exit();
    assert.equal(bar.read32(EDU.ID) >>> 16, 0x0100);
    assert.throws(() => edu.dev.lowPower.enter({ wakeup: 1 }), TypeError);
    assert.equal(edu.dev.feature(C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, { probe: true, set: true }), 0);
  } finally {
    bar.close();
    edu.close();
  }
});

test('supportsFeature: low power yes, migration and DMA logging "not supported by this device"', () => {
  const edu = openEdu();
  try {
    assert.equal(edu.dev.supportsFeature(C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), true);
    assert.equal(edu.dev.supportsFeature(C.VFIO_DEVICE_FEATURE_MIGRATION, 'get'), false);
    assert.equal(edu.dev.supportsFeature(C.VFIO_DEVICE_FEATURE_DMA_LOGGING_START), false);
    assert.equal(edu.dev.supportsFeature(C.VFIO_DEVICE_FEATURE_BUS_MASTER), false, 'vfio-pci does not implement it');
    assert.throws(() => edu.dev.supportsFeature(0x10000), RangeError);
  } finally {
    edu.close();
  }
  assert.throws(() => edu.dev.supportsFeature(C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), { code: 'ERR_VFIO_CLOSED' });
});

test('mdev helpers: mdevTypes lists the parent\'s types; createMdev and removeMdev make and remove one', () => {
  const types = mdevTypes('mtty');
  assert.deepEqual(types.map((t) => t.type), ['mtty-1', 'mtty-2']);
  assert.equal(types[0].deviceApi, 'vfio-pci');
  const before = types[0].availableInstances;
  assert.ok(before > 0);
  const mdev = createMdev('mtty', 'mtty-1');
  try {
    assert.match(mdev.uuid, /^[0-9a-f-]{36}$/);
    assert.equal(mdev.type, 'mtty-1');
    assert.match(mdev.cdevPath, /^\/dev\/vfio\/devices\/vfio\d+$/);
    assert.equal(mdevTypes('mtty')[0].availableInstances, before - 1);
  } finally {
    removeMdev(mdev.uuid);
  }
  assert.equal(mdevDevice(mdev.uuid), null, 'gone');
  assert.throws(() => mdevTypes('nope'), { code: 'ENOENT', message: /mdev_bus/ });
  assert.throws(() => mdevTypes('../x'), TypeError);
  assert.throws(() => createMdev('mtty', 'mtty-9'), { code: 'ENOENT', message: /mtty-1, mtty-2/ });
  assert.throws(() => createMdev('mtty', 'mtty-1', 'not-a-uuid'), TypeError);
  assert.throws(() => removeMdev(mdev.uuid), { code: 'ENOENT' });
});

test('the group path: getDevice takes an mdev UUID and a vf_token= suffix; a container unmaps all at once', () => {
  const mtty = deviceOf('mtty');
  const edu = deviceOf('edu');
  const container = VfioContainer.open();
  const mttyGroup = VfioGroup.open(mtty.iommuGroup);
  const eduGroup = VfioGroup.open(edu.iommuGroup);
  const a = DmaBuffer.alloc(4096);
  const b = DmaBuffer.alloc(8192);
  try {
    mttyGroup.setContainer(container);
    eduGroup.setContainer(container);
    container.setIommu();
    const serial = mttyGroup.getDevice(mtty.id.toUpperCase());
    assert.equal(serial.state, 'bound');
    assert.equal(serial.info().numRegions > 0, true);
    serial.close();
    const token = '00000000-0000-0000-0000-0000000000aa';
    assert.throws(() => eduGroup.getDevice(`${edu.bdf} vf_token=${token}`), { code: 'EINVAL' },
      'the kernel refuses a VF token for a device that is neither PF nor VF');
    assert.throws(() => eduGroup.getDevice(edu.bdf, { vfToken: token }), { code: 'EINVAL' });
    assert.throws(() => eduGroup.getDevice(`${edu.bdf} vf_token=nope`), TypeError);
    assert.throws(() => eduGroup.getDevice(`${edu.bdf} junk`), TypeError);
    assert.throws(() => eduGroup.getDevice(42), TypeError);

    assert.equal(container.checkExtension(C.VFIO_UNMAP_ALL), true);
    container.map(a, { iova: 0x100000 });
    container.map(b, { iova: 0x200000 });
    assert.equal(container.unmapAll(), 4096 + 8192);
    assert.throws(() => container.iovaOf(b), { code: 'ERR_VFIO_NOT_MAPPED' }, 'the ledger forgot the mappings');
    a.free();
    b.free();
  } finally {
    mttyGroup.close();
    eduGroup.close();
    container.close();
    if (!a.freed) a.free();
    if (!b.freed) b.free();
  }
});

test('attach/detach({ pasid }): ERR_VFIO_NEEDS_KERNEL before 6.15, ERR_VFIO_UNSUPPORTED on a device without PASID', () => {
  // No lab device has a PASID capability (QEMU 7.2's edu and nvme do not offer one), so the
  // positive path cannot run here; what the kernel answers is asserted, typed.
  const nvme = openBound('nvme');
  try {
    const ptId = nvme.dev.ptId;
    if (atLeast(6, 15)) {
      assert.throws(() => nvme.dev.attach(nvme.ioas, { pasid: 1 }),
        { name: 'VfioUnsupportedError', code: 'ERR_VFIO_UNSUPPORTED', message: /no PASID capability/ });
    } else {
      assert.throws(() => nvme.dev.attach(nvme.ioas, { pasid: 1 }), NEEDS('6.15'));
      assert.throws(() => nvme.dev.detach({ pasid: 1 }), NEEDS('6.15'));
    }
    assert.equal(nvme.dev.state, 'attached', 'a refused PASID attach leaves the device as it was');
    assert.equal(nvme.dev.ptId, ptId);
    assert.throws(() => nvme.dev.attach(nvme.ioas, { pasid: -1 }), RangeError);
    assert.throws(() => nvme.dev.attach(nvme.ioas, { pasid: 2 ** 20 }), RangeError);
  } finally {
    nvme.close();
  }
});

test('type1 maps an mmapped BAR for peer-to-peer DMA; the mapping pins it; an IOAS refuses it with EFAULT', () => {
  const [ea, eb] = devicesOf('edu');
  const container = VfioContainer.open();
  const ga = VfioGroup.open(ea.iommuGroup);
  const gb = VfioGroup.open(eb.iommuGroup);
  const src = DmaBuffer.alloc(4096);
  let a = null;
  let b = null;
  try {
    ga.setContainer(container);
    gb.setContainer(container);
    container.setIommu();
    a = ga.getDevice(ea.bdf);
    b = gb.getDevice(eb.bdf);
    const barA = a.region(0).map();
    const barB = b.region(0).map();
    a.config.enableBusMaster();
    const srcIova = container.map(src, { iova: 0x100000 });
    // Below 2^28: edu clamps DMA addresses to its 28-bit DMA mask.
    const peer = container.map(barB, { iova: 0x800000, length: 4096 });
    assert.equal(peer, 0x800000n);
    assert.throws(() => barB.close(), { code: 'ERR_VFIO_BUFFER_MAPPED', message: /mapped for DMA in a container/ });
    src.store32(0, 0x5a5a1234);
    startDma(barA, { src: srcIova, dst: EDU.BUFFER, count: 4, toRam: false });
    waitDmaIdle(barA);
    startDma(barA, { src: EDU.BUFFER, dst: peer + BigInt(EDU.LIVENESS), count: 4, toRam: true });
    waitDmaIdle(barA);
    assert.equal(barB.read32(EDU.LIVENESS), ~0x5a5a1234 >>> 0, 'edu B saw edu A\'s write through the type1 mapping');
    assert.throws(() => container.map(barB, { offset: 100, length: 4096 }), { code: 'EINVAL' });
    assert.throws(() => container.map(barB, { offset: 0, length: 2 ** 21 }), RangeError);
    assert.equal(container.unmap(peer, 4096), 4096);
    barB.close();

    const iommufd = Iommufd.open();
    try {
      assert.throws(() => iommufd.allocIoas().map(barA), { name: 'VfioError', code: 'EFAULT', message: /exportDmabuf/ });
    } finally {
      iommufd.close();
    }
  } finally {
    a?.close();
    b?.close();
    ga.close();
    gb.close();
    container.close();
    src.free();
  }
});

test('ioeventfd({ eventfd: irqs }): edu A\'s MSI makes the kernel write edu B\'s register, with no JS in between', async () => {
  const a = openEdu(0);
  const b = openEdu(1);
  const barA = a.dev.region(0).map();
  const barB = b.dev.region(0).map();
  const notEventfd = fs.openSync('/dev/null', 'r');
  try {
    a.dev.config.enableBusMaster();
    const irqs = a.dev.enableIrq('msi').unref();
    const io = b.dev.ioeventfd(0, EDU.LIVENESS, 4, { data: 0x0badf00d, eventfd: irqs });
    barB.write32(EDU.LIVENESS, 0);
    assert.equal(barB.read32(EDU.LIVENESS), 0xffffffff);
    barA.write32(EDU.IRQ_RAISE, 1);
    const want = ~0x0badf00d >>> 0;
    const end = Date.now() + 5000;
    while (barB.read32(EDU.LIVENESS) !== want && Date.now() < end) await new Promise((r) => setTimeout(r, 1));
    assert.equal(barB.read32(EDU.LIVENESS), want, 'the interrupt rang edu B\'s ioeventfd');
    barA.write32(EDU.IRQ_ACK, barA.read32(EDU.IRQ_STATUS));
    io.close();
    assert.ok(io.closed);
    assert.throws(() => b.dev.ioeventfd(0, EDU.LIVENESS, 4, { eventfd: irqs, vector: 5 }), RangeError);
    assert.throws(() => b.dev.ioeventfd(0, EDU.LIVENESS, 4, { eventfd: -1 }), RangeError);
    assert.throws(() => b.dev.ioeventfd(0, EDU.LIVENESS, 4, { eventfd: 'x' }), TypeError);
    assert.throws(() => b.dev.ioeventfd(0, EDU.LIVENESS, 4, { eventfd: notEventfd }),
      { name: 'VfioError', ioctl: 'VFIO_DEVICE_IOEVENTFD' }, 'the kernel takes only an eventfd');
    irqs.disable();
    assert.throws(() => b.dev.ioeventfd(0, EDU.LIVENESS, 4, { eventfd: irqs }), { code: 'ERR_VFIO_CLOSED' });
  } finally {
    fs.closeSync(notEventfd);
    barA.close();
    barB.close();
    a.close();
    b.close();
  }
});

test('VfioGroup.open(n, { noiommu: true }) of a group vfio did not make says how noiommu groups come to be', () => {
  // The working noiommu group is test/kernel/16-noiommu's; here, a number with none.
  assert.equal(fs.existsSync('/dev/vfio/noiommu-4095'), false);
  assert.throws(() => VfioGroup.open(4095, { noiommu: true }),
    { name: 'VfioError', code: 'ENOENT', path: '/dev/vfio/noiommu-4095', message: /enable_unsafe_noiommu_mode=1/ });
  assert.throws(() => VfioGroup.open(-1, { noiommu: true }), RangeError);
});

test('the new device, buffer and container calls refuse use after close, before any syscall', () => {
  const edu = openEdu();
  const region = edu.dev.region(0);
  const irqs = edu.dev.enableIrq('msi');
  edu.close();
  for (const call of [
    () => region.exportDmabuf(),
    () => edu.dev.lowPower,
    () => edu.dev.supportsFeature(C.VFIO_DEVICE_FEATURE_MIGRATION),
    () => edu.dev.setVfToken('00000000-0000-0000-0000-000000000001'),
    () => edu.dev.attach(1, { pasid: 1 }),
    () => edu.dev.detach({ pasid: 1 }),
  ]) assert.throws(call, { code: 'ERR_VFIO_CLOSED' });
  assert.ok(irqs.closed);
  const buf = DmaBuffer.alloc(4096, { memfd: true });
  buf.free();
  assert.throws(() => buf.fd, { code: 'ERR_VFIO_CLOSED' });
  const container = VfioContainer.open();
  container.close();
  assert.throws(() => container.unmapAll(), { code: 'ERR_VFIO_CLOSED' });
  const group = VfioGroup.open(deviceOf('edu').iommuGroup);
  group.close();
  assert.throws(() => group.getDevice(deviceOf('edu').bdf), { code: 'ERR_VFIO_CLOSED' });
});
