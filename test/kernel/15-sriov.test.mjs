// SR-IOV end to end on the lab's SR-IOV nvme PF (QEMU nvme with sriov_max_vfs=2, on vfio-pci
// with enable_sriov=1): the sysfs helpers, the PF's VF token, and a VF that opens only with the
// right token, on the cdev (bind({ vfToken }), Linux 6.17+) and on the group path (vf_token=).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import {
  Iommufd, VfioContainer, VfioDevice, VfioGroup, bindToVfioPci, listPciDevices, physfnOf, setSriovNumVfs,
  sriovTotalVfs, virtfnsOf,
} from 'vfio';
import { deviceOf } from './lab.mjs';

const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;
const [MAJOR, MINOR] = process.env.VFIO_LAB_KERNEL_RELEASE.split('.').map(Number);
const atLeast = (major, minor) => MAJOR > major || (MAJOR === major && MINOR >= minor);

test('SR-IOV: the PF\'s VFs are created, found, bound to vfio-pci and opened only with the PF\'s VF token', () => {
  const pf = deviceOf('nvme-sriov');
  assert.equal(sriovTotalVfs(pf.bdf), 2);
  assert.equal(sriovTotalVfs(deviceOf('edu').bdf), 0, 'not SR-IOV capable');
  assert.equal(listPciDevices().find((d) => d.bdf === pf.bdf).totalVfs, 2);
  assert.throws(() => setSriovNumVfs(pf.bdf, 3), RangeError);
  assert.throws(() => setSriovNumVfs(deviceOf('edu').bdf, 1), { code: 'ENODEV' });

  const iommufd = Iommufd.open();
  const pfDev = VfioDevice.open(pf.cdevPath);
  const token = randomUUID();
  const opened = [];
  let vfs = [];
  try {
    pfDev.bind(iommufd);
    pfDev.setVfToken(token);
    setSriovNumVfs(pf.bdf, 2, { autoprobe: false });
    vfs = virtfnsOf(pf.bdf);
    assert.equal(vfs.length, 2);
    for (const vf of vfs) {
      assert.equal(physfnOf(vf), pf.bdf);
      assert.equal(listPciDevices().find((d) => d.bdf === vf).physfn, pf.bdf);
    }
    assert.equal(physfnOf(pf.bdf), null);
    const vf = vfs[0];
    const cdev = bindToVfioPci(vf);
    assert.match(cdev, /^\/dev\/vfio\/devices\/vfio\d+$/);
    const listed = execFileSync(process.execPath, [CLI, 'list'], { encoding: 'utf8' });
    assert.match(listed, new RegExp(`${vf.replace(/\./g, '\\.')} .* VF of ${pf.bdf.replace(/\./g, '\\.')}`));
    assert.match(listed, new RegExp(`${pf.bdf.replace(/\./g, '\\.')} .* PF, 2 VFs max`));

    // The cdev: from 6.17 no token is refused (EACCES, with the fix in the message), a wrong one
    // too, and the right one binds. Before 6.17 the cdev checks no VF token at all (the bind
    // succeeds without one; only the group path enforces it) and cannot pass one.
    const noToken = VfioDevice.open(cdev);
    opened.push(noToken);
    if (atLeast(6, 17)) {
      assert.throws(() => noToken.bind(iommufd), { code: 'EACCES', message: /VF token is needed/ });
    } else {
      noToken.bind(iommufd);
      assert.equal(noToken.config.vendorId, 0x1b36, '6.12 lets the VF\'s cdev bind without its token');
      noToken.close();
    }
    const wrong = VfioDevice.open(cdev);
    opened.push(wrong);
    if (atLeast(6, 17)) {
      assert.throws(() => wrong.bind(iommufd, { vfToken: randomUUID() }), { code: 'EACCES' });
      const right = VfioDevice.open(cdev);
      opened.push(right);
      right.bind(iommufd, { vfToken: token });
      assert.equal(right.state, 'bound');
      assert.equal(right.config.vendorId, 0x1b36);
      right.close();
    } else {
      assert.throws(() => wrong.bind(iommufd, { vfToken: token }),
        { name: 'VfioUnsupportedError', code: 'ERR_VFIO_NEEDS_KERNEL', needs: '6.17' });
    }
    assert.throws(() => wrong.bind(iommufd, { vfToken: 'nope' }), TypeError);
    for (const d of opened) d.close();
    opened.length = 0;

    // The group path takes the token as a vf_token= suffix on every kernel.
    const vfGroup = Number(listPciDevices().find((d) => d.bdf === vf).iommuGroup);
    const group = VfioGroup.open(vfGroup);
    const container = VfioContainer.open();
    try {
      group.setContainer(container);
      container.setIommu();
      assert.throws(() => group.getDevice(vf), { code: 'EACCES', message: /vf_token/ });
      assert.throws(() => group.getDevice(`${vf} vf_token=${randomUUID()}`), { code: 'EACCES' });
      const viaGroup = group.getDevice(`${vf} vf_token=${token}`);
      assert.equal(viaGroup.config.vendorId, 0x1b36);
      viaGroup.close();
    } finally {
      group.close();
      container.close();
    }
    assert.throws(() => pfDev.setVfToken('x'), TypeError);
  } finally {
    for (const d of opened) d.close();
    setSriovNumVfs(pf.bdf, 0); // removes the VFs (and their vfio-pci binding)
    pfDev.close();
    iommufd.close();
  }
  assert.deepEqual(virtfnsOf(pf.bdf), []);
});
