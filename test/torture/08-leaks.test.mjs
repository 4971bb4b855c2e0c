// 2,000 open/bind/attach/map/unmap/close cycles leave no fd open and no memory pinned.
import { test } from 'node:test';
import { assertSurvived, runCase } from './child.mjs';

test('2000 open/bind/attach/map/unmap/close cycles leak no fd and no pinned memory', async () => {
  const r = await runCase(`
    const fdsBefore = fdCount();
    const pinBefore = status('VmPin');
    const buf = vfio.DmaBuffer.alloc(16384);
    for (let i = 0; i < 2000; i++) {
      const iommufd = vfio.Iommufd.open();
      const dev = vfio.VfioDevice.open(edu.cdevPath);
      dev.bind(iommufd);
      const ioas = iommufd.allocIoas();
      dev.attach(ioas);
      const iova = ioas.map(buf, { offset: (i % 4) * 4096, length: 4096 });
      if (i === 0) assert.ok(status('VmPin') > pinBefore, 'a mapping shows in VmPin');
      ioas.unmap(iova, 4096);
      dev.close();
      ioas.destroy();
      iommufd.close();
    }
    buf.free();
    const out = { cycles: 2000, fdsBefore, fdsAfter: fdCount(), pinBefore, pinAfter: status('VmPin') };
    console.log(JSON.stringify(out));
    assert.equal(out.fdsAfter, out.fdsBefore);
    assert.equal(out.pinAfter, out.pinBefore);`, { timeoutMs: 300_000 });
  assertSurvived(r);
  const s = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{')));
  console.log(`# leaks: ${s.cycles} cycles, fds ${s.fdsBefore} -> ${s.fdsAfter}, VmPin ${s.pinBefore} -> ${s.pinAfter} kB`);
});
