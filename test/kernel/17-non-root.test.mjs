// Non-root use, as the README's udev rule sets it up: the device's cdev and /dev/iommu given to a
// group (mode 0660), an unprivileged member of it with a memlock limit that covers its DMA
// memory. Everything a driver does then works without root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { devicesOf, withNodeAccess } from './lab.mjs';

const edu = devicesOf('edu')[1];
const NOBODY = 65534;
const EDU_MAP = fileURLToPath(new URL('../../examples/build/edu.js', import.meta.url));

/**
 * Driver code (for a child's -e): bind `dev` to `iommufd`, map an 8 KiB DmaBuffer, store `word`
 * at its start and have the edu copy it to byte 4096 by DMA; leaves `bar`, `ioas`, `buf` defined.
 */
function bindMapAndBounce(word) {
  return `dev.bind(iommufd);
    const ioas = iommufd.allocIoas();
    dev.attach(ioas);
    const buf = DmaBuffer.alloc(8192);
    const iova = ioas.map(buf);
    dev.config.enableBusMaster();
    const bar = dev.region(0).map();
    buf.store32(0, ${word});
    const dma = (src, dst, toRam) => {
      bar.write64(EDU.DMA_SRC, src); bar.write64(EDU.DMA_DST, dst); bar.write64(EDU.DMA_COUNT, 4n);
      bar.write64(EDU.DMA_CMD, BigInt(EDU.CMD_START | (toRam ? EDU.CMD_TO_RAM : 0)));
      while (bar.read64(EDU.DMA_CMD) & 1n);
    };
    dma(iova, BigInt(EDU.BUFFER), false);
    dma(BigInt(EDU.BUFFER), iova + 4096n, true);`;
}

/** Run an ES module's code as uid/gid 65534 with RLIMIT_MEMLOCK `memlock` bytes. */
function asGroupMember(code, memlock) {
  return spawnSync('prlimit', [`--memlock=${memlock}:${memlock}`, 'setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`,
    '--clear-groups', process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
}

test('an unprivileged member of the group the nodes belong to binds, maps and runs device DMA', () => {
  const code = `
    import { DmaBuffer, Iommufd, VfioDevice } from 'vfio';
    import { EDU } from ${JSON.stringify(EDU_MAP)};
    const iommufd = Iommufd.open();
    const dev = VfioDevice.open(${JSON.stringify(edu.bdf)});
    ${bindMapAndBounce(0x600d600d)}
    console.log(process.getuid(), buf.load32(4096).toString(16));
    bar.close(); ioas.unmapAll(); dev.close(); iommufd.close();`;
  const r = withNodeAccess(['/dev/iommu', edu.cdevPath], { gid: NOBODY, mode: 0o660 }, () => asGroupMember(code, 16 * 1024 * 1024));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), `${NOBODY} 600d600d`);
});

test('the same user without the group gets EACCES naming the udev rule', () => {
  const code = `import { Iommufd } from 'vfio';
    try { Iommufd.open(); } catch (e) { console.log(e.code, /udev rule/.test(e.message)); }`;
  const r = withNodeAccess(['/dev/iommu', edu.cdevPath], { gid: 0, mode: 0o660 }, () => asGroupMember(code, 16 * 1024 * 1024));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'EACCES true');
});

test('fd passing: a root helper (examples/fd-helper.mjs) hands the device and iommufd fds to an unprivileged driver', () => {
  const helper = fileURLToPath(new URL('../../examples/fd-helper.mjs', import.meta.url));
  const driver = `
    import { DmaBuffer, Iommufd, VfioDevice, receiveFds } from 'vfio';
    import { EDU } from ${JSON.stringify(EDU_MAP)};
    let denied;
    try { Iommufd.open(); } catch (e) { denied = e.code; }
    const { fds, message } = receiveFds(3, { timeoutMs: 20000 });
    const dev = VfioDevice.fromFd(fds[0], { own: true });
    const iommufd = Iommufd.fromFd(fds[1], { own: true });
    const state = dev.state;
    ${bindMapAndBounce(0xfd5e4d00)}
    console.log(process.getuid(), denied, state, JSON.parse(new TextDecoder().decode(message)).fds.join(','),
      buf.load32(4096).toString(16));
    bar.close(); ioas.unmapAll(); dev.close(); iommufd.close();`;
  const r = spawnSync(process.execPath, [helper, '--uid', String(NOBODY), edu.bdf, '--', process.execPath,
    '--input-type=module', '-e', driver], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), `${NOBODY} EACCES blocked device,iommufd fd5e4d00`);
});
