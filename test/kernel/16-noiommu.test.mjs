// Unsafe noiommu devices: an edu behind a host bridge QEMU keeps out of VT-d's scope, with
// vfio.enable_unsafe_noiommu_mode=1. On every kernel vfio makes it a noiommu group
// (/dev/vfio/noiommu-N) for the legacy container; on 7.3 (CONFIG_IOMMUFD_NOIOMMU) it also gets a
// noiommu-vfioN cdev that binds to an iommufd, whose IOAS is then a software page table that
// pins memory and tells its physical addresses (IOMMU_IOAS_NOIOMMU_GET_PA): the device is given
// those, since nothing translates its DMA.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import { DmaBuffer, Iommufd, VfioContainer, VfioDevice, VfioGroup, constants as C, listPciDevices } from 'vfio';
import { deviceOf, withNodeAccess } from './lab.mjs';
import { EDU, openEdu, startDma, waitDmaIdle } from './edu.mjs';

const [MAJOR, MINOR] = process.env.VFIO_LAB_KERNEL_RELEASE.split('.').map(Number);
const atLeast = (major, minor) => MAJOR > major || (MAJOR === major && MINOR >= minor);
const NEEDS = (version) => ({ name: 'VfioUnsupportedError', code: 'ERR_VFIO_NEEDS_KERNEL', needs: version });
const nio = deviceOf('edu-noiommu');

/** Run `node -e code` as nobody (uid 65534) and return its stdout, trimmed. */
function asNobody(code) {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath,
    '--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** The noiommu edu on the group path, in a noiommu container; `close()` releases it all. */
function openNoiommuGroup() {
  const group = VfioGroup.open(nio.iommuGroup, { noiommu: true });
  const container = VfioContainer.open();
  group.setContainer(container);
  container.setIommu(C.VFIO_NOIOMMU_IOMMU);
  const dev = group.getDevice(nio.bdf);
  return { group, container, dev, close: () => { dev.close(); group.close(); container.close(); } };
}

test('the noiommu edu has no IOMMU: vfio put it in a noiommu group, and listPciDevices() says so', () => {
  assert.equal(fs.readFileSync('/sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'utf8').trim(), 'Y');
  assert.equal(nio.groupPath, `/dev/vfio/noiommu-${nio.iommuGroup}`);
  assert.ok(fs.statSync(nio.groupPath).isCharacterDevice());
  assert.equal(fs.readFileSync(`/sys/kernel/iommu_groups/${nio.iommuGroup}/name`, 'utf8').trim(), 'vfio-noiommu');
  const byBdf = new Map(listPciDevices().map((d) => [d.bdf, d]));
  assert.equal(byBdf.get(nio.bdf).noiommu, true);
  assert.equal(byBdf.get(nio.bdf).cdevPath, nio.cdevPath);
  assert.equal(byBdf.get(deviceOf('edu').bdf).noiommu, false, 'an edu behind VT-d is not noiommu');
});

test('a noiommu group joins a VFIO_NOIOMMU_IOMMU container and gives a working device', () => {
  const g = openNoiommuGroup();
  try {
    assert.deepEqual(g.group.status(), { viable: true, containerSet: true });
    assert.equal(g.container.checkExtension(C.VFIO_NOIOMMU_IOMMU), true);
    assert.equal(g.dev.state, 'bound', 'a group-path device is never blocked');
    assert.equal(g.dev.config.read16(0), 0x1234, 'config space reads');
    const bar = g.dev.region(0).map();
    try {
      assert.equal(bar.read32(EDU.ID) & 0xff, 0xed, 'BAR0 reads through the mmap');
      bar.write32(EDU.LIVENESS, 0x12345678);
      assert.equal(bar.read32(EDU.LIVENESS), ~0x12345678 >>> 0);
    } finally {
      bar.close();
    }
  } finally {
    g.close();
  }
});

test('a noiommu container takes only VFIO_NOIOMMU_IOMMU (ENODEV for type1v2) and cannot map DMA (ENOTTY, named)', () => {
  const group = VfioGroup.open(nio.iommuGroup, { noiommu: true });
  const container = VfioContainer.open();
  const buf = DmaBuffer.alloc(4096);
  try {
    group.setContainer(container);
    assert.throws(() => container.setIommu(C.VFIO_TYPE1v2_IOMMU), { name: 'VfioError', code: 'ENODEV', ioctl: 'VFIO_SET_IOMMU' });
    container.setIommu(C.VFIO_NOIOMMU_IOMMU);
    assert.throws(() => container.map(buf, { iova: 0x100000 }),
      { name: 'VfioError', code: 'ENOTTY', ioctl: 'VFIO_IOMMU_MAP_DMA', message: /noiommu container .*cannot map/ });
    assert.throws(() => container.info(), { code: 'ENOTTY', ioctl: 'VFIO_IOMMU_GET_INFO' });
    buf.free(); // throws if the failed map had left a hold on the buffer
  } finally {
    group.close();
    container.close();
  }
});

test('a noiommu group needs CAP_SYS_RAWIO: opened by an unprivileged user with access to the node, EPERM', () => {
  withNodeAccess([nio.groupPath], { mode: 0o666 }, () => {
    const code = `import { VfioGroup } from 'vfio';
      try { VfioGroup.open(${nio.iommuGroup}, { noiommu: true }); console.log('opened'); } catch (e) { console.log(e.code); }`;
    assert.equal(asNobody(code), 'EPERM');
  });
});

if (atLeast(7, 3)) {
  test('on 7.3 the noiommu edu has a noiommu-vfioN cdev, blocked until bound like any other', () => {
    assert.match(nio.cdevPath, /^\/dev\/vfio\/devices\/noiommu-vfio\d+$/);
    const dev = VfioDevice.open(nio.bdf);
    try {
      assert.equal(dev.path, nio.cdevPath, 'VfioDevice.open(bdf) finds the noiommu cdev');
      assert.deepEqual(dev.probeBlocked(), { ioctl: 'EINVAL', read: 'EINVAL', write: 'EINVAL', mmap: 'EINVAL' });
    } finally {
      dev.close();
    }
  });

  test('a noiommu cdev needs CAP_SYS_RAWIO: an unprivileged open is EPERM', () => {
    withNodeAccess([nio.cdevPath], { mode: 0o666 }, () => {
      const code = `import { VfioDevice } from 'vfio';
        try { VfioDevice.open('${nio.cdevPath}'); console.log('opened'); } catch (e) { console.log(e.code); }`;
      assert.equal(asNobody(code), 'EPERM');
    });
  });

  test('physicalAddress() gives the addresses the noiommu edu DMAs to and from', () => {
    const iommufd = Iommufd.open();
    const dev = VfioDevice.open(nio.cdevPath);
    const buf = DmaBuffer.alloc(8192);
    try {
      dev.bind(iommufd);
      const ioas = iommufd.allocIoas();
      assert.ok(dev.attach(ioas) > 0);
      const iova = ioas.map(buf);
      const first = ioas.physicalAddress(iova);
      const second = ioas.physicalAddress(iova + 4096n, 4096);
      assert.equal(typeof first.address, 'bigint');
      assert.ok(first.length >= 4096n && first.length <= 8192n, `contiguous bytes ${first.length}`);
      assert.equal(second.length, 4096n, 'capped by maxLength');
      assert.equal(first.address % 4096n, 0n);
      if (first.length === 8192n) assert.equal(second.address, first.address + 4096n);
      assert.deepEqual(ioas.physicalAddress(iova + 100n, 1), { address: first.address + 100n, length: 1n });

      dev.config.enableBusMaster();
      const bar = dev.region(0).map();
      try {
        buf.store32(0, 0x0a0b0c0d);
        startDma(bar, { src: first.address, dst: EDU.BUFFER, count: 4, toRam: false });
        waitDmaIdle(bar);
        startDma(bar, { src: EDU.BUFFER, dst: second.address, count: 4, toRam: true });
        waitDmaIdle(bar);
        assert.equal(buf.load32(4096), 0x0a0b0c0d, 'the device read and wrote the buffer by physical address');
      } finally {
        bar.close();
      }
      assert.equal(ioas.unmap(iova, 8192), 8192);
      assert.throws(() => ioas.physicalAddress(iova), { name: 'VfioError', code: 'ENOENT', ioctl: 'IOMMU_IOAS_NOIOMMU_GET_PA',
        message: /nothing is mapped/ });
    } finally {
      dev.close();
      iommufd.close();
      buf.free();
    }
  });

  test('physicalAddress() on an IOAS with only IOMMU-backed devices is EOPNOTSUPP, named', () => {
    const edu = openEdu();
    const buf = DmaBuffer.alloc(4096);
    try {
      const iova = edu.ioas.map(buf);
      assert.throws(() => edu.ioas.physicalAddress(iova), { name: 'VfioError', code: 'EOPNOTSUPP',
        ioctl: 'IOMMU_IOAS_NOIOMMU_GET_PA', message: /no noiommu device is attached/ });
      edu.ioas.unmap(iova, 4096);
    } finally {
      edu.close();
      buf.free();
    }
  });
} else {
  test('before 7.3 the noiommu edu has no cdev, and opening it by address names its noiommu group', () => {
    assert.equal(nio.cdevPath, null);
    assert.equal(listPciDevices().find((d) => d.bdf === nio.bdf).cdevPath, null);
    assert.throws(() => VfioDevice.open(nio.bdf), { name: 'VfioError', code: 'ERR_VFIO_NO_CDEV',
      message: new RegExp(`noiommu device.*7\\.3.*VfioGroup\\.open\\(${nio.iommuGroup}, \\{ noiommu: true \\}\\)`) });
  });

  test('before 7.3 physicalAddress() is ERR_VFIO_NEEDS_KERNEL', () => {
    const edu = openEdu();
    const buf = DmaBuffer.alloc(4096);
    try {
      const iova = edu.ioas.map(buf);
      assert.throws(() => edu.ioas.physicalAddress(iova), NEEDS('7.3'));
      edu.ioas.unmap(iova, 4096);
    } finally {
      edu.close();
      buf.free();
    }
  });
}

test('physicalAddress() refuses bad input and a destroyed IOAS before any syscall', () => {
  const iommufd = Iommufd.open();
  const ioas = iommufd.allocIoas();
  try {
    assert.throws(() => ioas.physicalAddress('0'), TypeError);
    assert.throws(() => ioas.physicalAddress(-1), RangeError);
    assert.throws(() => ioas.physicalAddress(0, 0), { name: 'RangeError', message: /maxLength/ });
    assert.throws(() => ioas.physicalAddress(0, 2n ** 64n), RangeError);
    ioas.destroy();
    assert.throws(() => ioas.physicalAddress(0), { code: 'ERR_VFIO_CLOSED' });
  } finally {
    iommufd.close();
  }
  assert.throws(() => ioas.physicalAddress(0), { code: 'ERR_VFIO_CLOSED' });
});
