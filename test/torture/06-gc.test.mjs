// Every resource that user code drops is collected and its OS resource released by the finalizer
// (a backstop: close() is the way). Each case runs with --expose-gc in a child process.
import { test } from 'node:test';
import { assertSurvived, runCase } from './child.mjs';

const links = `const links = () => fs.readdirSync('/proc/self/fd').map((f) => { try { return fs.readlinkSync('/proc/self/fd/' + f); } catch { return ''; } });`;

const CASES = {
  Iommufd: `
    const before = fdCount();
    (() => { vfio.Iommufd.open().allocIoas(); })();
    await settle();
    assert.equal(fdCount(), before);`,
  DmaBuffer: `
    const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('/dev/zero')).length;
    const before = maps();
    (() => { const b = vfio.DmaBuffer.alloc(3 << 20); b.bytes.fill(7); })();
    await settle();
    assert.equal(maps(), before, 'the anonymous mapping was unmapped');`,
  'IoAddressSpace with a mapping': `
    const before = fdCount();
    (() => { const i = vfio.Iommufd.open(); const s = i.allocIoas(); s.map(vfio.DmaBuffer.alloc(8192)); })();
    await settle();
    assert.equal(fdCount(), before);
    assert.equal(status('VmPin'), 0, 'the kernel unpinned the memory');`,
  VfioDevice: `
    const before = fdCount();
    (() => { const i = vfio.Iommufd.open(); const d = vfio.VfioDevice.open(edu.cdevPath); d.bind(i); d.attach(i.allocIoas()); })();
    await settle();
    assert.equal(fdCount(), before);
    const i = vfio.Iommufd.open(); const d = vfio.VfioDevice.open(edu.cdevPath);
    assert.ok(d.bind(i) > 0); d.close(); i.close();`,
  MappedRegion: `
    const bars = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('/dev/vfio/devices/')).length;
    const i = vfio.Iommufd.open(); const d = vfio.VfioDevice.open(edu.cdevPath); d.bind(i);
    (() => { const bar = d.region(0).map(); bar.read32(0); })();
    await settle();
    assert.equal(bars(), 0, 'the BAR was unmapped while the device stays open');
    d.close(); i.close();`,
  Interrupts: `${links}
    const eventfds = () => links().filter((l) => l.includes('eventfd')).length;
    const before = eventfds();
    const i = vfio.Iommufd.open();
    (() => {
      const d = vfio.VfioDevice.open(edu.cdevPath); d.bind(i);
      d.enableIrq('msi').disable();
      const again = d.enableIrq('msi', {}); again.trigger(0);
    })();
    await settle();
    assert.equal(eventfds(), before, 'the eventfds were closed');
    i.close();`,
  'FaultQueue (with its iommufd)': `
    const before = fdCount();
    (() => { const i = vfio.Iommufd.open(); const q = i.allocFaultQueue(); q.on('fault', () => {}); q.removeAllListeners('fault'); })();
    await settle();
    assert.equal(fdCount(), before, 'the iommufd and the fault queue fd were closed');`,
  'memfd DmaBuffer': `
    const before = fdCount();
    (() => { const b = vfio.DmaBuffer.alloc(8192, { memfd: true }); b.bytes.fill(7); })();
    await settle();
    assert.equal(fdCount(), before, 'the memfd was closed with the mapping');`,
  'aligned DmaBuffer': `
    const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('/dev/zero')).length;
    const before = maps();
    (() => { const b = vfio.DmaBuffer.alloc(64 << 10, { align: 2 << 20 }); b.bytes.fill(7); })();
    await settle();
    assert.equal(maps(), before, 'the aligned mapping was unmapped');`,
  'iommufd mmap (a vIOMMU region; 6.12 has no mock IOMMU to make one)': `
    const regions = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('/dev/iommu')).length;
    const i = vfio.Iommufd.open(); const ioas = i.allocIoas();
    const cmd = new Uint32Array(18); cmd.set([72, 2, ioas.id]); // IOMMU_TEST_OP_MOCK_DOMAIN
    let mock = true;
    try { i.ioctl((0x3b << 8) | (0x80 + 32), new Uint8Array(cmd.buffer)); } catch (e) { if (e.code !== 'ENOTTY') throw e; mock = false; }
    if (mock) {
      const parent = i.allocHwpt(cmd[6], ioas, { nestParent: true });
      const data = new DataView(new ArrayBuffer(24));
      i.allocViommu(cmd[6], parent, 0xdeadbeef, { data });
      (() => { const r = i.mmap(data.getBigUint64(8, true), Number(data.getBigUint64(16, true))); r.read32(0); })();
      assert.equal(regions(), 1);
      await settle();
      assert.equal(regions(), 0, 'the vIOMMU region was unmapped while the iommufd stays open');
    } else {
      assert.throws(() => i.mmap(0, 4096), { code: 'ERR_VFIO_NEEDS_KERNEL' });
    }
    i.close();`,
  'VfioContainer and VfioGroup': `
    const before = fdCount();
    (() => { vfio.VfioContainer.open(); vfio.VfioGroup.open(edu.iommuGroup); })();
    await settle();
    assert.equal(fdCount(), before);`,
};

for (const [kind, body] of Object.entries(CASES)) {
  test(`a dropped ${kind} is collected and its resource released`, async () => {
    assertSurvived(await runCase(body));
  });
}
