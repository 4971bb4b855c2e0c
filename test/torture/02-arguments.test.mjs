// Arguments are validated before the syscall and the result recorded right after it: no argument
// can leave the library's state different from the kernel's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Iommufd, VfioContainer, VfioDevice } from 'vfio';
import { openBound } from '../kernel/lab.mjs';

const bound = (kind = 'edu') => openBound(kind, { attach: false });

test('attach refuses an IOAS of another iommufd before the syscall', () => {
  const b = bound();
  const foreign = Iommufd.open();
  try {
    const ioas = foreign.allocIoas();
    assert.throws(() => b.dev.attach(ioas), { name: 'TypeError', message: /another iommufd/ });
    assert.equal(b.dev.state, 'bound');
    assert.equal(b.dev.ptId, null);
  } finally {
    foreign.close();
    b.close();
  }
});

test('attach refuses a destroyed IOAS even when its id was reused', () => {
  const b = bound();
  try {
    const old = b.iommufd.allocIoas();
    old.destroy();
    const reused = b.iommufd.allocIoas();
    assert.equal(reused.id, old.id, 'the kernel hands out the freed id again');
    assert.throws(() => b.dev.attach(old), { name: 'VfioStateError', code: 'ERR_VFIO_CLOSED', message: /destroyed/ });
    assert.equal(b.dev.state, 'bound');
    b.dev.attach(reused);
    assert.equal(b.dev.state, 'attached');
  } finally {
    b.close();
  }
});

test('attach refuses an IOAS whose iommufd was closed', () => {
  const b = bound();
  const other = Iommufd.open();
  const ioas = other.allocIoas();
  other.close();
  try {
    assert.throws(() => b.dev.attach(ioas), { code: 'ERR_VFIO_CLOSED' });
  } finally {
    b.close();
  }
});

test('attach of a Proxy or look-alike is a TypeError and the state stays as the kernel has it', () => {
  const b = bound();
  try {
    const ioas = b.iommufd.allocIoas();
    for (const t of [new Proxy(ioas, {}), { id: ioas.id }, Object.create(ioas), '1', null, 1.5, -1]) {
      assert.throws(() => b.dev.attach(t), (e) => e instanceof TypeError || e instanceof RangeError);
      assert.equal(b.dev.state, 'bound');
    }
    b.dev.attach(ioas);
    b.dev.detach();
    assert.equal(b.dev.state, 'bound');
  } finally {
    b.close();
  }
});

test('attach by number uses the bound iommufd and detach/close keep working', () => {
  const b = bound();
  try {
    const ioas = b.iommufd.allocIoas();
    assert.ok(b.dev.attach(ioas.id) > 0);
    assert.equal(b.dev.state, 'attached');
    b.dev.detach();
  } finally {
    b.close();
  }
});

test('a HWPT of another iommufd or a destroyed one is refused', () => {
  const b = bound();
  const other = bound('nvme');
  try {
    const ioas = b.iommufd.allocIoas();
    const hwpt = b.iommufd.allocHwpt(b.dev, ioas);
    assert.throws(() => other.dev.attach(hwpt), { name: 'TypeError', message: /another iommufd/ });
    hwpt.destroy();
    assert.throws(() => b.dev.attach(hwpt), { code: 'ERR_VFIO_CLOSED' });
    assert.equal(b.dev.state, 'bound');
  } finally {
    other.close();
    b.close();
  }
});

test('a NUL byte in a path or name is a TypeError naming the argument', () => {
  assert.throws(() => Iommufd.open('/dev/null\0/../x'), { name: 'TypeError', message: /path.*NUL/ });
  assert.throws(() => VfioDevice.open('/dev/null\0x'), { name: 'TypeError', message: /bdfOrPath.*NUL/ });
  assert.throws(() => VfioContainer.open('/dev/vfio/vfio\0'), { name: 'TypeError', message: /path.*NUL/ });
});
