// iommufd beyond the basics: HW info, HWPT allocation, options, MAP_FILE, hugepage buffers,
// hot-reset info, device features, and the legacy group/container path.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { DmaBuffer, Iommufd, VfioContainer, VfioDevice, VfioGroup, constants } from 'vfio';
import { deviceOf, withBound } from './lab.mjs';
import { openEdu } from './edu.mjs';

test('hwInfo reports an Intel VT-d IOMMU with its register data', () => {
  const edu = openEdu();
  try {
    const hw = edu.iommufd.hwInfo(edu.dev);
    assert.equal(hw.type, constants.IOMMU_HW_INFO_TYPE_INTEL_VTD);
    assert.equal(typeof hw.capabilities, 'bigint');
    assert.equal(hw.data.length, 24, 'struct iommu_hw_info_vtd');
  } finally {
    edu.close();
  }
});

test('allocHwpt gives a page table that attach() uses directly and destroy() frees after detach', () => {
  const edu = openEdu();
  try {
    const hwpt = edu.iommufd.allocHwpt(edu.dev, edu.ioas);
    assert.ok(hwpt.id > 0);
    assert.equal(edu.dev.attach(hwpt), hwpt.id, 'a HWPT id is echoed');
    assert.throws(() => hwpt.destroy(), { code: 'EBUSY', ioctl: 'IOMMU_DESTROY' });
    edu.dev.detach();
    hwpt.destroy();
    hwpt.destroy();
  } finally {
    edu.close();
  }
});

test('IOMMU options: rlimitMode is per-user by default, hugePages is per IOAS', () => {
  const edu = openEdu();
  try {
    assert.equal(edu.iommufd.getOption('rlimitMode'), 0n);
    assert.equal(edu.iommufd.getOption('hugePages', edu.ioas), 1n);
    const ioas = edu.iommufd.allocIoas();
    edu.iommufd.setOption('hugePages', false, ioas);
    assert.equal(edu.iommufd.getOption('hugePages', ioas), 0n);
    ioas.destroy();
    assert.throws(() => edu.iommufd.getOption('nope'), TypeError);
  } finally {
    edu.close();
  }
});

test('mapFile on a kernel older than 6.13 fails with a clear error', () => {
  const edu = openEdu();
  const file = '/dev/shm/vfio-mapfile-test';
  fs.writeFileSync(file, Buffer.alloc(8192));
  const fd = fs.openSync(file, 'r+');
  try {
    const [major, minor] = process.env.VFIO_LAB_KERNEL_RELEASE.split('.').map(Number);
    if (major > 6 || (major === 6 && minor >= 13)) {
      assert.equal(typeof edu.ioas.mapFile(fd, { start: 0, length: 8192 }), 'bigint');
    } else {
      assert.throws(() => edu.ioas.mapFile(fd, { start: 0, length: 8192 }),
        { name: 'VfioUnsupportedError', code: 'ERR_VFIO_NEEDS_KERNEL', errno: -25, needs: '6.13', ioctl: 'IOMMU_IOAS_MAP_FILE',
          message: /IOMMU_IOAS_MAP_FILE needs Linux 6\.13 or newer; this kernel is 6\.12.* \(it answered ENOTTY\)/ });
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file);
    edu.close();
  }
});

test('a hugepage DmaBuffer maps and unmaps', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(1, { hugePages: true });
  try {
    assert.equal(buf.size, 2 * 1024 * 1024);
    const iova = edu.ioas.map(buf, { iova: 0x200000 });
    assert.equal(edu.ioas.unmap(iova, buf.size), buf.size);
  } finally {
    edu.close();
    buf.free();
  }
});

test('1 GiB pages: { hugePages: \'1G\' } maps where the guest can reserve one, and else says why not', () => {
  const pool = '/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages';
  if (!fs.existsSync(pool)) {
    // QEMU's TCG "max" CPU here has no pdpe1gb, so the kernel made no 1 GiB pool: mmap says EINVAL.
    assert.throws(() => DmaBuffer.alloc(4096, { hugePages: '1G' }),
      { name: 'VfioError', code: 'EINVAL', path: pool, message: /has no hugetlb pages of that size/ });
    return;
  }
  fs.writeFileSync(pool, '1');
  const reserved = Number(fs.readFileSync(pool, 'utf8'));
  const edu = openEdu();
  try {
    if (reserved === 1) {
      const buf = DmaBuffer.alloc(4096, { hugePages: '1G' });
      try {
        assert.equal(buf.size, 2 ** 30);
        const iova = edu.ioas.map(buf, { iova: 2 ** 30 });
        assert.equal(edu.ioas.unmap(iova, buf.size), buf.size);
      } finally {
        buf.free();
      }
    } else {
      assert.throws(() => DmaBuffer.alloc(4096, { hugePages: '1G' }),
        { name: 'VfioError', code: 'ENOMEM', path: pool, message: /reserve them in that file/ });
    }
  } finally {
    edu.close();
    fs.writeFileSync(pool, '0');
  }
});

test('hugePages takes true, \'2M\' or \'1G\'; an empty 2 MiB pool\'s ENOMEM names its nr_hugepages file', () => {
  assert.throws(() => DmaBuffer.alloc(1, { hugePages: '4K' }), TypeError);
  const pool = '/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages';
  const before = fs.readFileSync(pool, 'utf8').trim();
  fs.writeFileSync(pool, '0');
  try {
    assert.throws(() => DmaBuffer.alloc(1, { hugePages: '2M' }),
      { name: 'VfioError', code: 'ENOMEM', path: pool, message: /reserve them in that file/ });
  } finally {
    fs.writeFileSync(pool, before);
  }
  const buf = DmaBuffer.alloc(1, { hugePages: '2M' });
  assert.equal(buf.size, 2 * 1024 * 1024);
  buf.free();
});

test('hotResetInfo lists the affected devices by devid in the cdev form', () => {
  const iommufd = Iommufd.open();
  const nvme = deviceOf('nvme');
  const dev = VfioDevice.open(nvme.bdf);
  try {
    const devId = dev.bind(iommufd);
    const info = dev.hotResetInfo();
    assert.ok(info.flags & constants.VFIO_PCI_HOT_RESET_FLAG_DEV_ID);
    assert.equal(info.owned, true);
    assert.deepEqual(info.devices, [{ bdf: nvme.bdf, devId, groupId: null }]);
  } finally {
    dev.close();
    iommufd.close();
  }
});

test('hotReset() in the cdev form resets the bus: an enabled NVMe controller is disabled', () => {
  withBound('nvme', ({ dev }) => {
    const bar = dev.region(0);
    bar.write32(0x14, 0x00460001); // NVMe CC.EN: enable the controller
    assert.equal(bar.read32(0x1c) & 1, 1, 'CSTS.RDY');
    dev.hotReset();
    assert.equal(bar.read32(0x14), 0, 'CC is back to its reset value');
    assert.equal(bar.read32(0x1c) & 1, 0, 'the controller is no longer ready');
    assert.equal(dev.config.vendorId, 0x1b36);
  }, { attach: false });
});

test('hotResetInfo on a root-bus device reports ENODEV (no slot or bus reset)', () => {
  const edu = openEdu();
  try {
    assert.throws(() => edu.dev.hotResetInfo(), { code: 'ENODEV', ioctl: 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO' });
  } finally {
    edu.close();
  }
});

test('feature() probes: low-power entry is supported, the VF token is not (not a PF)', () => {
  const edu = openEdu();
  try {
    edu.dev.feature(3 /* VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY */, { probe: true, set: true });
    assert.throws(() => edu.dev.feature(0 /* PCI_VF_TOKEN */, { probe: true, set: true }),
      { code: 'ENOTTY', ioctl: 'VFIO_DEVICE_FEATURE' });
  } finally {
    edu.close();
  }
});

test('the legacy group path: device fds start bound, bind() is refused, DMA maps in a type1 container', () => {
  const d = deviceOf('edu');
  const container = VfioContainer.open();
  const group = VfioGroup.open(d.iommuGroup);
  const buf = DmaBuffer.alloc(4096);
  try {
    assert.equal(group.status().viable, true);
    group.setContainer(container);
    assert.equal(group.status().containerSet, true);
    assert.equal(container.checkExtension(constants.VFIO_TYPE1v2_IOMMU), true);
    container.setIommu();
    const dev = group.getDevice(d.bdf);
    assert.equal(dev.state, 'bound');
    const iommufd = Iommufd.open();
    assert.throws(() => dev.bind(iommufd), { code: 'ERR_VFIO_ALREADY_BOUND' });
    iommufd.close();
    assert.equal(dev.config.vendorId, 0x1234);
    assert.equal(container.map(buf, { iova: 0x100000 }), 0x100000n);
    assert.throws(() => buf.free(), { code: 'ERR_VFIO_BUFFER_MAPPED' });
    assert.equal(container.unmap(0x100000, 4096), 4096);
    dev.close();
  } finally {
    group.close();
    container.close();
    buf.free();
  }
});

test('while the group fd is open, a cdev bind of its device is refused with EBUSY', () => {
  const d = deviceOf('edu');
  const group = VfioGroup.open(d.iommuGroup);
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(d.bdf);
  try {
    assert.throws(() => dev.bind(iommufd), { code: 'EBUSY' });
  } finally {
    dev.close();
    iommufd.close();
    group.close();
  }
});

test('copyFrom shares a mapping into a second IOAS; the buffer stays held until both are unmapped', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(8192);
  const other = edu.iommufd.allocIoas();
  try {
    edu.ioas.map(buf, { iova: 0x100000 });
    assert.equal(other.copyFrom(edu.ioas, { srcIova: 0x100000, dstIova: 0x300000, length: 8192 }), 0x300000n);
    edu.ioas.unmap(0x100000, 8192);
    assert.throws(() => buf.free(), { code: 'ERR_VFIO_BUFFER_MAPPED' }, 'the copy still holds it');
    assert.equal(other.unmap(0x300000, 8192), 8192);
    buf.free();
    assert.throws(() => other.copyFrom(edu.ioas, { srcIova: 0x100000, length: 8192 }), { code: 'ENOENT', ioctl: 'IOMMU_IOAS_COPY' });
  } finally {
    other.destroy();
    edu.close();
    if (!buf.freed) buf.free();
  }
});

test('a type1 container chooses IOVAs inside its ranges, aligned, reusing space after unmap; iovaOf finds them', () => {
  const d = deviceOf('edu');
  const container = VfioContainer.open();
  const group = VfioGroup.open(d.iommuGroup);
  const a = DmaBuffer.alloc(8192);
  const b = DmaBuffer.alloc(4096);
  try {
    group.setContainer(container);
    container.setIommu();
    const info = container.info();
    assert.ok(info.pageSizes & 4096n, 'the IOMMU does 4 KiB pages');
    const ranges = container.iovaRanges();
    assert.ok(ranges.length >= 1, 'the kernel reports IOVA ranges');
    const inRange = (iova, len) => ranges.some((r) => iova >= r.start && iova + BigInt(len) - 1n <= r.last);
    const ia = container.map(a);
    const ib = container.map(b);
    assert.ok(inRange(ia, a.size) && inRange(ib, b.size));
    assert.equal(ia % 4096n, 0n);
    assert.ok(ib >= ia + 8192n || ib + 4096n <= ia, 'the two mappings do not overlap');
    assert.equal(container.iovaOf(a, 4096 + 5), ia + 4101n);
    assert.equal(container.iovaOf(b), ib);
    assert.throws(() => container.iovaOf(a, 9000), { code: 'ERR_VFIO_NOT_MAPPED' });
    container.unmap(ia, 8192);
    assert.throws(() => container.iovaOf(a), { code: 'ERR_VFIO_NOT_MAPPED' });
    assert.equal(container.map(a), ia, 'the freed space is used again');
    container.unmap(ia, 8192);
    container.unmap(ib, 4096);
    assert.throws(() => container.map(new Uint8Array(4096)), { name: 'TypeError', message: /DmaBuffer\.alloc/ });
  } finally {
    group.close();
    container.close();
    a.free();
    b.free();
  }
});

// The raw escape hatch. IOMMU_TEST_CMD (the kernel's mock IOMMU, in the 7.3 lab kernel only) is
// a request the library does not wrap; VFIO_DEVICE_GET_GFX_DMABUF is one vfio-pci does not
// implement.
const IOMMU_TEST_CMD = (0x3b << 8) | 0xa0;
const VFIO_DEVICE_GET_GFX_DMABUF = (0x3b << 8) | 115;

test('changeProcess (Linux 6.13+) refuses anonymous mappings with EINVAL, takes file mappings, and is an error once closed', () => {
  const edu = openEdu();
  const anon = DmaBuffer.alloc(4096);
  const file = DmaBuffer.alloc(4096, { memfd: true });
  try {
    const [major, minor] = process.env.VFIO_LAB_KERNEL_RELEASE.split('.').map(Number);
    if (major > 6 || (major === 6 && minor >= 13)) {
      const iova = edu.ioas.map(anon);
      assert.throws(() => edu.iommufd.changeProcess(), { name: 'VfioError', code: 'EINVAL', ioctl: 'IOMMU_IOAS_CHANGE_PROCESS' });
      edu.ioas.unmap(iova, 4096);
      edu.ioas.mapFile(file.fd, { start: 0, length: 4096 });
      edu.iommufd.changeProcess();
    } else {
      assert.throws(() => edu.iommufd.changeProcess(),
        { name: 'VfioUnsupportedError', code: 'ERR_VFIO_NEEDS_KERNEL', needs: '6.13', ioctl: 'IOMMU_IOAS_CHANGE_PROCESS' });
    }
  } finally {
    edu.close();
    anon.free();
    file.free();
  }
  assert.throws(() => edu.iommufd.changeProcess(), { name: 'VfioStateError' }, 'use after close');
});

test('ioasFromId wraps an IOAS made elsewhere (the same object for one it knows), refuses other ids, bad input and a closed iommufd', () => {
  const iommufd = Iommufd.open();
  const buf = DmaBuffer.alloc(4096);
  try {
    const ioas = iommufd.allocIoas();
    assert.equal(iommufd.ioasFromId(ioas.id), ioas, 'one object per IOAS');
    const other = Iommufd.fromFd(iommufd.fd, { own: false }); // the fd as another process would get it
    const adopted = other.ioasFromId(ioas.id);
    assert.notEqual(adopted, ioas);
    const iova = adopted.map(buf, { iova: 0x100000 });
    assert.equal(ioas.iovaRanges().length > 0, true);
    assert.equal(adopted.unmap(iova, 4096), 4096, 'its mapping is in the kernel\'s IOAS');
    assert.throws(() => other.ioasFromId(0), { name: 'VfioError', code: 'ENOENT' });
    assert.throws(() => other.ioasFromId(-1), RangeError);
    assert.throws(() => other.ioasFromId('1'), TypeError);
    other.close();
    assert.throws(() => other.ioasFromId(ioas.id), { code: 'ERR_VFIO_CLOSED' }, 'use after close');
    assert.equal(iommufd.closed, false, 'closing the borrowed one leaves the owner open');
  } finally {
    iommufd.close();
    buf.free();
  }
});

test('iommufd.ioctl() issues a request the library does not wrap, copying the struct in and out', () => {
  const iommufd = Iommufd.open();
  try {
    const ioas = iommufd.allocIoas();
    // struct iommu_test_cmd { size, op = IOMMU_TEST_OP_MOCK_DOMAIN, id = ioas, ..., mock_domain outputs }
    const cmd = new Uint32Array(18);
    cmd.set([72, 2, ioas.id]);
    const [major, minor] = process.env.VFIO_LAB_KERNEL_RELEASE.split('.').map(Number);
    if (major > 7 || (major === 7 && minor >= 3)) {
      assert.equal(iommufd.ioctl(IOMMU_TEST_CMD, new Uint8Array(cmd.buffer)), 0);
      const [stdevId, hwptId, idevId] = cmd.subarray(4, 7);
      assert.ok(stdevId > 0 && hwptId > 0 && idevId > 0, 'the kernel wrote the mock device\'s ids back');
      assert.equal(iommufd.hwInfo(idevId).type, 0xfeedbeef, 'and the device id is a real one');
    } else {
      assert.throws(() => iommufd.ioctl(IOMMU_TEST_CMD, new Uint8Array(cmd.buffer)),
        { name: 'VfioError', code: 'ENOTTY', syscall: 'ioctl', path: '/dev/iommu' }, 'no mock IOMMU in 6.12\'s lab kernel');
    }
  } finally {
    iommufd.close();
  }
});

test('vfioIoas: an iommufd opened as a VFIO container maps into its compat IOAS, which vfioIoas names', () => {
  const d = deviceOf('edu');
  const container = VfioContainer.open('/dev/iommu');
  const group = VfioGroup.open(d.iommuGroup);
  const buf = DmaBuffer.alloc(4096);
  const ictx = Iommufd.fromFd(container.fd);
  try {
    assert.throws(() => ictx.vfioIoas({ op: 'get' }), { name: 'VfioError', code: 'ENODEV', ioctl: 'IOMMU_VFIO_IOAS' });
    group.setContainer(container);
    container.setIommu();
    const compat = ictx.vfioIoas({ op: 'get' });
    assert.ok(compat > 0, 'attaching the group made the compat IOAS');
    assert.equal(container.map(buf, { iova: 0x100000 }), 0x100000n);
    const other = ictx.allocIoas();
    assert.equal(ictx.vfioIoas({ op: 'set', ioas: other }), undefined);
    assert.equal(ictx.vfioIoas({ op: 'get' }), other.id);
    ictx.vfioIoas({ op: 'clear' });
    assert.throws(() => ictx.vfioIoas({ op: 'get' }), { code: 'ENODEV' });
    assert.throws(() => ictx.vfioIoas({ op: 'nope' }), TypeError);
    assert.throws(() => ictx.vfioIoas({ op: 'set' }), TypeError);
    assert.throws(() => ictx.vfioIoas(), TypeError);
    ictx.vfioIoas({ op: 'set', ioas: compat });
    assert.equal(container.unmap(0x100000, 4096), 4096);
  } finally {
    ictx.close(); // not owned: the container's fd stays open
    group.close();
    container.close();
    buf.free();
  }
});

test('the raw ioctl refuses requests the library wraps, sizes beyond the buffer, and bad types', () => {
  const iommufd = Iommufd.open();
  try {
    assert.throws(() => iommufd.ioctl(constants.IOMMU_IOAS_MAP, new Uint8Array(64)),
      { name: 'TypeError', message: /IOMMU_IOAS_MAP, which the library wraps/ });
    const big = new Uint32Array([64, 0, 0, 0]);
    assert.throws(() => iommufd.ioctl(constants.IOMMU_FAULT_QUEUE_ALLOC, new Uint8Array(16)),
      { name: 'TypeError', message: /IOMMU_FAULT_QUEUE_ALLOC, which the library wraps/ });
    assert.throws(() => iommufd.ioctl(IOMMU_TEST_CMD, new Uint8Array(big.buffer)), { name: 'RangeError', message: /own size/ });
    assert.throws(() => iommufd.ioctl(IOMMU_TEST_CMD, new Uint32Array(4)), TypeError);
    assert.throws(() => iommufd.ioctl(-1, new Uint8Array(16)), RangeError);
  } finally {
    iommufd.close();
  }
  assert.throws(() => iommufd.ioctl(IOMMU_TEST_CMD, new Uint8Array(16)), { code: 'ERR_VFIO_CLOSED' });
});

test('dev.ioctl() is behind the pre-bind gate, then returns the kernel\'s errno as a VfioError', () => {
  const dev = VfioDevice.open(deviceOf('edu').cdevPath);
  const iommufd = Iommufd.open();
  try {
    const arg = new Uint8Array(new Uint32Array([16, 0, 0, 0]).buffer);
    assert.throws(() => dev.ioctl(VFIO_DEVICE_GET_GFX_DMABUF, arg), { name: 'VfioStateError' });
    dev.bind(iommufd);
    assert.throws(() => dev.ioctl(VFIO_DEVICE_GET_GFX_DMABUF, arg), { name: 'VfioError', code: 'ENOTTY', syscall: 'ioctl' });
    assert.throws(() => dev.ioctl(constants.VFIO_DEVICE_RESET, arg), { name: 'TypeError', message: /VFIO_DEVICE_RESET/ });
  } finally {
    dev.close();
    iommufd.close();
  }
  assert.throws(() => dev.ioctl(VFIO_DEVICE_GET_GFX_DMABUF, new Uint8Array(16)), { code: 'ERR_VFIO_CLOSED' });
});
