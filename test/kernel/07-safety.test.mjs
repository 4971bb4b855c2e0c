// Nothing a caller does may crash the process: detached buffers, use after close, bad input,
// no fd leaks. Crash-prone cases run in a child process whose exit is checked.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import { DmaBuffer, Iommufd, VfioDevice } from 'vfio';
import { deviceOf, withBound } from './lab.mjs';

const edu = deviceOf('edu');

function runChild(body) {
  const script = `
    const assert = require('node:assert/strict');
    const { DmaBuffer, Iommufd, VfioDevice } = require('vfio');
    const edu = ${JSON.stringify(edu)};
    ${body}
    console.log('survived');`;
  return spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 30_000 });
}

function assertSurvived(r) {
  assert.equal(r.signal, null, `child died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /survived/);
}

test('after DmaBuffer.free() its ArrayBuffers are detached and nothing segfaults', () => {
  assertSurvived(runChild(`
    const b = DmaBuffer.alloc(1 << 20);
    const ab = b.buffer, u8 = b.bytes, dv = new DataView(ab);
    u8.fill(0xaa);
    b.free();
    assert.equal(ab.byteLength, 0);
    assert.equal(u8.length, 0);
    assert.equal(u8[12345], undefined);
    assert.throws(() => dv.getUint32(0), TypeError);
    assert.throws(() => new Uint8Array(ab), TypeError);
    assert.throws(() => b.bytes, { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => u8.fill(1), TypeError);
    assert.throws(() => new Uint32Array(8).set(u8), TypeError);
    globalThis.gc();`));
});

test('after MappedRegion.close() every accessor throws and nothing segfaults', () => {
  assertSurvived(runChild(`
    const ictx = Iommufd.open();
    const dev = VfioDevice.open(edu.cdevPath);
    dev.bind(ictx);
    const bar = dev.region(0).map();
    bar.read32(0);
    bar.close();
    for (const f of ['read8', 'read16', 'read32', 'read64']) assert.throws(() => bar[f](0), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => bar.write32(4, 1), { code: 'ERR_VFIO_CLOSED' });
    bar.close();
    dev.close(); ictx.close();`));
});

test('after device.close() its regions, mappings and interrupts throw and nothing segfaults', () => {
  assertSurvived(runChild(`
    const ictx = Iommufd.open();
    const dev = VfioDevice.open(edu.cdevPath);
    dev.bind(ictx);
    const region = dev.region(0);
    const bar = region.map();
    const cfg = dev.config;
    const irqs = dev.enableIrq('msi');
    dev.close();
    assert.throws(() => bar.read32(0), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => region.read32(0), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => region.map(), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => cfg.vendorId, { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => irqs.trigger(0), { code: 'ERR_VFIO_CLOSED' });
    assert.equal(irqs.closed, true);
    ictx.close();
    globalThis.gc();`));
});

test('native calls on a closed or foreign handle throw instead of crashing', () => {
  assertSurvived(runChild(`
    const { hot, native } = require(${JSON.stringify(new URL('../../dist/native.js', import.meta.url).pathname)});
    const b = native.dmaAlloc(4096, false);
    native.dmaFree(b);
    assert.throws(() => native.dmaArrayBuffer(b), { code: 'EBADF' });
    assert.throws(() => hot.ioasMap(b, 1, 6, b, 0, 4096, 0n), TypeError);
    const ictx = native.iommufdOpen('/dev/iommu');
    assert.throws(() => hot.ioasMap(ictx, 1, 6, b, 0, 4096, 0n), { code: 'EBADF' });
    const d = native.deviceOpen(edu.cdevPath);
    native.deviceClose(d);
    assert.throws(() => native.deviceGetInfo(d), { code: 'EBADF' });
    assert.throws(() => hot.read32(ictx, 0), TypeError);
    assert.throws(() => native.mappingRead32({}, 0), TypeError);
    native.iommufdClose(ictx);`));
});

test('wrong argument types throw TypeError naming the argument', () => {
  withBound('edu', ({ dev, iommufd }) => {
    const ioas = iommufd.allocIoas();
    assert.throws(() => dev.regionInfo('0'), { name: 'TypeError', message: /index/ });
    assert.throws(() => dev.region(0).read32(null), { name: 'TypeError', message: /offset/ });
    assert.throws(() => dev.attach('ioas'), { name: 'TypeError', message: /target/ });
    assert.throws(() => ioas.map('memory'), { name: 'TypeError', message: /memory/ });
    assert.throws(() => ioas.map(new Uint8Array(4096)), { name: 'TypeError', message: /DmaBuffer\.alloc/ });
    const buf = DmaBuffer.alloc(4096);
    assert.throws(() => ioas.map(buf, { iova: 'x' }), { name: 'TypeError', message: /iova/ });
    buf.free();
    assert.throws(() => ioas.unmap({}, 4096), { name: 'TypeError', message: /iova/ });
    assert.throws(() => DmaBuffer.alloc({}), { name: 'TypeError', message: /size/ });
    assert.throws(() => Iommufd.open(3), { name: 'TypeError', message: /path/ });
    assert.throws(() => dev.enableIrq(1, { count: 'one' }), { name: 'TypeError', message: /count/ });
  }, { attach: false });
});

test('1000 open/bind/close cycles leave /proc/self/fd as it was', () => {
  const before = fs.readdirSync('/proc/self/fd').length;
  const iommufd = Iommufd.open();
  for (let i = 0; i < 1000; i++) {
    const dev = VfioDevice.open(edu.cdevPath);
    dev.bind(iommufd);
    dev.close();
  }
  iommufd.close();
  assert.equal(fs.readdirSync('/proc/self/fd').length, before);
});

test('a process that never closes its resources exits cleanly', () => {
  assertSurvived(runChild(`
    const ictx = Iommufd.open();
    const dev = VfioDevice.open(edu.cdevPath);
    dev.bind(ictx);
    const ioas = ictx.allocIoas();
    dev.attach(ioas);
    const buf = DmaBuffer.alloc(8192);
    ioas.map(buf, { iova: 0x100000 });
    const bar = dev.region(0).map();
    globalThis.keep = { bar, buf, irqs: dev.enableIrq('msi'), u8: buf.bytes };`));
});

test('a worker thread that exits without closing releases its fds (per-env cleanup hook)', async () => {
  const { Worker } = await import('node:worker_threads');
  const code = `
    const { Iommufd, VfioDevice, DmaBuffer } = require('vfio');
    const { workerData, parentPort } = require('node:worker_threads');
    const ictx = Iommufd.open();
    const dev = VfioDevice.open(workerData.cdevPath);
    dev.bind(ictx);
    const bar = dev.region(0).map();
    const irqs = dev.enableIrq('msi');
    irqs.on('interrupt', () => {});
    const buf = DmaBuffer.alloc(4096);
    globalThis.keep = { bar, irqs, u8: buf.bytes };
    parentPort.postMessage(bar.read32(0));`;
  const worker = new Worker(code, { eval: true, workerData: { cdevPath: edu.cdevPath } });
  const id = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  assert.equal(id & 0xffff, 0x00ed);
  await worker.terminate();
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(edu.cdevPath);
  try {
    assert.ok(dev.bind(iommufd) > 0, 'the worker no longer holds the device');
  } finally {
    dev.close();
    iommufd.close();
  }
});
