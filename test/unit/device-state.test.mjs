// The TypeScript state machine, without a kernel: a device wrapped around /dev/null's fd.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { VfioDevice, VfioStateError } from 'vfio';
import { native } from '../../dist/native.js';

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
    assert.throws(() => native.ioasMap(ictx, 1, 6, bytes, 0, 4096, 0), { name: 'TypeError', message: /DmaBuffer/ });
    assert.throws(() => native.ioasMap(ictx, 1, 6, new ArrayBuffer(4096), 0, 4096, 0), { name: 'TypeError' });
    assert.throws(() => native.ioasMap(ictx, 1, 6, dma, 4096, 8192, 0), { name: 'RangeError', message: /outside the memory/ });
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
  assert.throws(() => native.deviceRead32(null, 0), TypeError);
  assert.throws(() => native.deviceRead32(undefined, 0), TypeError);
  assert.throws(() => native.ioasMap(native.dmaAlloc(4096, false), 1, 6, null, 0, 4096, 0), TypeError);
});
