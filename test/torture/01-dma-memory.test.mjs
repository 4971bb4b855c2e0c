/* global WebAssembly */
// DMA goes only into memory whose lifetime the library controls, and a DmaBuffer cannot be freed
// while any part of it is pinned by any IOAS or container.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { DmaBuffer, Iommufd } from 'vfio';
import { EDU, ackIrq, openEdu, startDma, waitDmaIdle } from '../kernel/edu.mjs';
import { assertSurvived, runCase } from './child.mjs';

const vmPin = () => Number(/VmPin:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);

test('map refuses every kind of JS memory with a TypeError that names DmaBuffer.alloc', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(8192);
  try {
    const resizable = new ArrayBuffer(4096, { maxByteLength: 8192 });
    const candidates = [
      new ArrayBuffer(4096), new Uint8Array(4096), Buffer.alloc(4096), new DataView(new ArrayBuffer(4096)),
      resizable, new SharedArrayBuffer(4096), new WebAssembly.Memory({ initial: 1 }).buffer, buf.buffer, buf.bytes,
      new Proxy(buf, {}), Object.create(buf), { size: 4096 }, null, undefined, 42,
    ];
    for (const m of candidates) {
      assert.throws(() => edu.ioas.map(m), { name: 'TypeError', message: /DmaBuffer\.alloc/ }, String(m));
    }
    assert.equal(buf.mappings, 0);
    assert.equal(edu.ioas.unmapAll(), 0, 'nothing reached the kernel');
  } finally {
    edu.close();
    buf.free();
  }
});

test('the transferred-ArrayBuffer repro is refused before anything is pinned', async () => {
  assertSurvived(await runCase(`
    const iommufd = vfio.Iommufd.open();
    const ioas = iommufd.allocIoas();
    const ab = new ArrayBuffer(3 * 4096);
    assert.throws(() => ioas.map(new Uint8Array(ab, 4096, 4096)), TypeError);
    structuredClone(ab, { transfer: [ab] });
    await settle();
    assert.equal(status('VmPin'), 0);
    assert.equal(ioas.unmapAll(), 0);
    iommufd.close();`));
});

test('free() is refused while any part of the buffer is mapped in any IOAS', () => {
  const edu = openEdu();
  const other = edu.iommufd.allocIoas();
  const buf = DmaBuffer.alloc(4 * 4096);
  try {
    const a = edu.ioas.map(buf, { offset: 4096, length: 4096 });
    other.map(buf);
    assert.equal(buf.mappings, 2);
    assert.throws(() => buf.free(), { code: 'ERR_VFIO_BUFFER_MAPPED' });
    edu.ioas.unmap(a, 4096);
    assert.throws(() => buf.free(), { code: 'ERR_VFIO_BUFFER_MAPPED' });
    other.unmapAll();
    assert.equal(buf.mappings, 0);
    buf.free();
    assert.equal(buf.freed, true);
  } finally {
    other.destroy();
    edu.close();
  }
});

test('destroying the IOAS releases its pins, and its calls then throw ERR_VFIO_CLOSED', () => {
  const iommufd = Iommufd.open();
  const ioas = iommufd.allocIoas();
  const buf = DmaBuffer.alloc(8192);
  ioas.map(buf);
  assert.throws(() => buf.free(), { code: 'ERR_VFIO_BUFFER_MAPPED' });
  ioas.destroy();
  assert.throws(() => ioas.iovaOf(buf), { code: 'ERR_VFIO_CLOSED' });
  assert.throws(() => ioas.map(buf), { code: 'ERR_VFIO_CLOSED' });
  buf.free();
  iommufd.close();
});

test('closing the device and the iommufd releases the pins, and free() then succeeds', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(8192);
  edu.ioas.map(buf, { iova: 0x100000 });
  const pinned = vmPin();
  assert.ok(pinned >= 8, `VmPin counts the mapping (${pinned} kB)`);
  edu.dev.close();
  edu.iommufd.close();
  assert.equal(vmPin(), 0, 'the kernel unpinned everything');
  buf.free();
});

test('closing the iommufd while the device stays open still lets free() go ahead', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(4096);
  try {
    edu.ioas.map(buf);
    edu.iommufd.close();
    assert.equal(edu.ioas.destroyed, true);
    buf.free();
  } finally {
    edu.dev.close();
  }
});

test('iovaOf gives the IOVA of a byte of a mapped part, and refuses bytes that are not mapped', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(4 * 4096);
  try {
    const iova = edu.ioas.map(buf, { offset: 8192, length: 8192, iova: 0x300000 });
    assert.equal(iova, 0x300000n);
    assert.equal(edu.ioas.iovaOf(buf, 8192), 0x300000n);
    assert.equal(edu.ioas.iovaOf(buf, 8192 + 100), 0x300064n);
    assert.throws(() => edu.ioas.iovaOf(buf, 0), { code: 'ERR_VFIO_NOT_MAPPED' });
    assert.throws(() => edu.ioas.iovaOf(buf, 4 * 4096), { code: 'ERR_VFIO_NOT_MAPPED' });
    assert.throws(() => edu.ioas.iovaOf(new Uint8Array(4)), { name: 'TypeError', message: /DmaBuffer/ });
    assert.throws(() => edu.ioas.map(buf, { offset: 4 * 4096 }), RangeError);
    assert.throws(() => edu.ioas.map(buf, { offset: 4096, length: 4 * 4096 }), RangeError);
    edu.ioas.unmap(iova, 8192);
  } finally {
    edu.close();
    buf.free();
  }
});

test('a device DMA into a mapped part of a buffer lands in exactly those bytes', () => {
  const edu = openEdu();
  const src = DmaBuffer.alloc(4096);
  const buf = DmaBuffer.alloc(3 * 4096);
  const bar = edu.dev.region(0).map();
  try {
    edu.dev.config.enableBusMaster();
    for (let i = 0; i < 64; i++) src.bytes[i] = 0xa0 + i;
    const from = edu.ioas.map(src);
    const iova = edu.ioas.map(buf, { offset: 4096, length: 4096 });
    startDma(bar, { src: from, dst: EDU.BUFFER, count: 64, toRam: false });
    waitDmaIdle(bar);
    startDma(bar, { src: EDU.BUFFER, dst: iova + 16n, count: 64, toRam: true });
    waitDmaIdle(bar);
    ackIrq(bar);
    const bytes = buf.bytes;
    assert.equal(bytes[4096 + 16], 0xa0);
    assert.equal(bytes[4096 + 16 + 63], 0xa0 + 63);
    assert.ok(bytes.subarray(0, 4096).every((b) => b === 0), 'the unmapped first page is untouched');
    assert.ok(bytes.subarray(8192).every((b) => b === 0), 'the unmapped last page is untouched');
    edu.ioas.unmap(iova, 4096);
    edu.ioas.unmap(from, 4096);
  } finally {
    bar.close();
    edu.close();
    buf.free();
    src.free();
  }
});
