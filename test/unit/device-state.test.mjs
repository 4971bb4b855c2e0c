// The TypeScript state machine, without a kernel: a device wrapped around /dev/null's fd.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { VfioDevice, VfioStateError } from 'vfio';
import { hot, native } from '../../dist/native.js';

function blockedDevice() {
  return VfioDevice.fromFd(fs.openSync('/dev/null', 'r+'), { own: true });
}

/** Replace every native function with a spy that records calls, for the duration of fn. */
function countNativeCalls(fn) {
  const calls = [];
  const saved = {};
  for (const [k, v] of Object.entries(native)) {
    if (typeof v !== 'function') continue;
    saved[k] = v;
    native[k] = (...args) => {
      calls.push(k);
      return v(...args);
    };
  }
  try {
    fn();
  } finally {
    Object.assign(native, saved);
  }
  return calls;
}

// The pre-bind gate is structural: every VfioDevice member is tested here unless it is listed as
// working before bind, so a new method that reaches a syscall cannot slip past the gate.
const WORKS_BEFORE_BIND = new Set(['constructor', 'bind', 'probeBlocked', 'close', 'state', 'devId', 'ptId', 'fd',
  'checks', 'iommufd', 'ioas', 'memoryOff', 'path']);
/** Arguments for members that need some (the rest are called with none). */
const ARGS = { regionInfo: [0], irqInfo: [1], region: [0], enableIrq: ['msi'], feature: [0], attach: [1], ioeventfd: [0, 4, 4] };

const deviceCalls = {};
for (const key of Object.getOwnPropertyNames(VfioDevice.prototype)) {
  if (WORKS_BEFORE_BIND.has(key) || key.startsWith('_')) continue;
  const d = Object.getOwnPropertyDescriptor(VfioDevice.prototype, key);
  const args = ARGS[key] ?? [];
  deviceCalls[d.get ? key : `${key}(${args.map((a) => JSON.stringify(a)).join(', ')})`] =
    d.get ? (dev) => dev[key] : (dev) => dev[key](...args);
}

test('the gate covers every device member that reaches the kernel', () => {
  for (const name of ['info()', 'regionInfo(0)', 'irqInfo(1)', 'region(0)', 'config', 'enableIrq("msi")', 'reset()',
    'hotResetInfo()', 'hotReset()', 'feature(0)', 'attach(1)', 'detach()']) {
    assert.ok(name in deviceCalls, `${name} is enumerated`);
  }
});

test('a device from fromFd() starts blocked', () => {
  const dev = blockedDevice();
  assert.equal(dev.state, 'blocked');
  assert.equal(dev.devId, null);
  dev.close();
});

for (const [name, call] of Object.entries(deviceCalls)) {
  test(`${name} before bind throws ERR_VFIO_NOT_BOUND without a syscall`, () => {
    const dev = blockedDevice();
    try {
      const calls = countNativeCalls(() => {
        assert.throws(() => call(dev), (e) => e instanceof VfioStateError && e.code === 'ERR_VFIO_NOT_BOUND' && e.errno === -22);
      });
      assert.deepEqual(calls, [], `native calls made: ${calls.join(', ')}`);
    } finally {
      dev.close();
    }
  });

  test(`${name} after close throws ERR_VFIO_CLOSED`, () => {
    const dev = blockedDevice();
    dev.close();
    assert.throws(() => call(dev), { name: 'VfioStateError', code: 'ERR_VFIO_CLOSED' });
  });
}

test('close is idempotent and sets state closed', () => {
  const dev = blockedDevice();
  dev.close();
  dev.close();
  assert.equal(dev.state, 'closed');
});

test('wrong argument types throw TypeError naming the argument', () => {
  assert.throws(() => VfioDevice.open(42), { name: 'TypeError', message: /bdfOrPath/ });
  assert.throws(() => VfioDevice.fromFd('3'), { name: 'TypeError', message: /fd/ });
  const dev = blockedDevice();
  try {
    assert.throws(() => dev.bind({}), { name: 'TypeError', message: /iommufd/ });
    assert.throws(() => dev.enableIrq('nope'), { name: 'TypeError', message: /index/ });
  } finally {
    dev.close();
  }
});

test('the native map calls take only DmaBuffer handles, never JS memory', () => {
  const fd = fs.openSync('/dev/null', 'r+');
  const ictx = native.iommufdFromFd(fd, true);
  try {
    const dma = native.dmaAlloc(8192, false);
    const bytes = new Uint8Array(native.dmaArrayBuffer(dma));
    assert.throws(() => hot.ioasMap(ictx, 1, 6, bytes, 0, 4096, 0n), { name: 'TypeError', message: /DmaBuffer/ });
    assert.throws(() => hot.ioasMap(ictx, 1, 6, new ArrayBuffer(4096), 0, 4096, 0n), { name: 'TypeError' });
    assert.throws(() => hot.ioasMap(ictx, 1, 6, dma, 4096, 8192, 0n), { name: 'RangeError', message: /outside the memory/ });
    const container = native.containerOpen('/dev/null');
    assert.throws(() => native.type1Map(container, bytes, 0, 4096, 0n, 3), { name: 'TypeError', message: /DmaBuffer/ });
    native.containerClose(container);
    native.dmaFree(dma);
  } finally {
    native.iommufdClose(ictx);
  }
});

test('native functions reject foreign handles instead of crashing', () => {
  assert.throws(() => native.deviceGetInfo({}), TypeError);
  assert.throws(() => native.mappingRead32(native.dmaAlloc(4096, false), 0), /mapping/);
  assert.throws(() => hot.read32(null, 0), TypeError);
  assert.throws(() => hot.read32(undefined, 0), TypeError);
  assert.throws(() => hot.ioasMap(native.dmaAlloc(4096, false), 1, 6, null, 0, 4096, 0n), TypeError);
});

test('the hot calls check the arguments they take through native.args as positional ones are checked', () => {
  const fd = fs.openSync('/dev/null', 'r+');
  const dev = native.deviceFromFd(fd, true);
  const ictx = native.iommufdFromFd(fs.openSync('/dev/null', 'r+'), true);
  const dma = native.dmaAlloc(4096, false);
  try {
    for (const offset of [-1, 0.5, NaN, 2 ** 53, Infinity]) {
      assert.throws(() => hot.read32(dev, offset), { name: 'RangeError', message: /offset/ }, `offset ${offset}`);
      assert.throws(() => hot.write32(dev, offset, 0), { name: 'RangeError', message: /offset/ }, `offset ${offset}`);
    }
    assert.throws(() => hot.write8(dev, 0, 256), { name: 'RangeError', message: /access width/ });
    assert.throws(() => hot.write16(dev, 0, 0x10000), { name: 'RangeError', message: /access width/ });
    assert.throws(() => hot.write32(dev, 0, -1), { name: 'RangeError', message: /value/ });
    assert.throws(() => hot.write64(dev, 0, 1), TypeError, 'a number where the slot takes a bigint');
    assert.throws(() => hot.regionInfo(dev, -1), { name: 'RangeError', message: /index/ });
    assert.throws(() => hot.irqInfo(dev, 2 ** 32), { name: 'RangeError', message: /index/ });
    assert.throws(() => hot.ioasMap(ictx, 2 ** 32, 6, dma, 0, 4096, 0n), { name: 'RangeError', message: /ioasId/ });
    assert.throws(() => hot.ioasMap(ictx, 1, 6, dma, -4096, 4096, 0n), { name: 'RangeError', message: /byteOffset/ });
    assert.throws(() => hot.ioasUnmap(ictx, 1.5, 0n, 4096n), { name: 'RangeError', message: /ioasId/ });
    for (const iova of [-4096, -1, NaN]) {
      assert.throws(() => hot.ioasMap(ictx, 1, 6, dma, 0, 4096, iova), { name: 'RangeError', message: /iova/ }, `iova ${iova}`);
    }
    assert.throws(() => hot.ioasUnmap(ictx, 1, 0.5, 4096), { name: 'RangeError', message: /iova/ });
    assert.throws(() => hot.ioasUnmap(ictx, 1, 0, 2 ** 53), { name: 'RangeError', message: /length/ });
    // Valid slots reach the syscall: /dev/null is no VFIO device, so the kernel says why.
    assert.throws(() => hot.read32(dev, 0), (err) => err.syscall === 'pread' || err.code === 'EIO');
  } finally {
    native.dmaFree(dma);
    native.deviceClose(dev);
    native.iommufdClose(ictx);
  }
});

test('each thread has its own argument and result blocks for the hot calls', async () => {
  const { Worker } = await import('node:worker_threads');
  const mine = new Float64Array(native.args);
  mine[7] = 12345; // slot 7: no call reads it
  const w = new Worker(`
    const { native } = require(${JSON.stringify(new URL('../../dist/native.js', import.meta.url).pathname)});
    native.noop(); // loads this thread's addon instance
    require('node:worker_threads').parentPort.postMessage([new Float64Array(native.args)[7], native.args.byteLength]);`,
  { eval: true });
  const [theirs, size] = await new Promise((resolve, reject) => w.once('message', resolve).once('error', reject));
  await w.terminate();
  assert.equal(size, 64);
  assert.equal(theirs, 0, 'the worker sees its own block, not this thread\'s');
  assert.equal(mine[7], 12345);
  mine[7] = 0;
});

test('the bench-only handle floor refuses foreign and closed handles', () => {
  assert.throws(() => native.noopHandle({}), TypeError);
  const dev = native.deviceFromFd(fs.openSync('/dev/null', 'r+'), true);
  native.noopHandle(dev);
  native.deviceClose(dev);
  assert.throws(() => native.noopHandle(dev), { code: 'EBADF' });
});

test('the hot calls on a closed handle throw EBADF before any syscall', () => {
  const dev = native.deviceFromFd(fs.openSync('/dev/null', 'r+'), true);
  native.deviceClose(dev);
  assert.throws(() => hot.read32(dev, 0), { code: 'EBADF' });
  assert.throws(() => hot.write32(dev, 0, 1), { code: 'EBADF' });
  assert.throws(() => hot.regionInfo(dev, 0), { code: 'EBADF' });
  assert.throws(() => hot.irqInfo(dev, 0), { code: 'EBADF' });
  const mapDev = native.deviceFromFd(fs.openSync('/dev/zero', 'r+'), true);
  const m = native.deviceMmap(mapDev, 0, 4096, true);
  const key = native.handleKey(m);
  hot.mmioWrite32(m, key, 0, 7);
  native.mappingClose(m);
  assert.throws(() => hot.mmioWrite32(m, key, 0, 7), { code: 'EBADF' });
  native.deviceClose(mapDev);
  const ictx = native.iommufdFromFd(fs.openSync('/dev/null', 'r+'), true);
  const dma = native.dmaAlloc(4096, false);
  native.iommufdClose(ictx);
  assert.throws(() => hot.ioasMap(ictx, 1, 6, dma, 0, 4096, 0), { code: 'EBADF' });
  assert.throws(() => hot.ioasUnmap(ictx, 1, 0, 4096), { code: 'EBADF' });
  native.dmaFree(dma);
  const w = native.irqCreate(() => {});
  native.irqClose(w);
  assert.throws(() => hot.irqWaitSync(w, 0), { code: 'EBADF' });
});
