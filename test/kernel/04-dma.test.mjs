// DMA through the IOMMU on edu: a DmaBuffer mapped in an IOAS, RAM -> edu -> RAM.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DmaBuffer } from 'vfio';
import { EDU, openEdu, startDma, startWordBounce, waitDmaIdle } from './edu.mjs';

test('iovaRanges returns the ranges the kernel reports, around the x86 MSI window', () => {
  const edu = openEdu();
  try {
    const ranges = edu.ioas.iovaRanges();
    assert.ok(ranges.length >= 2, JSON.stringify(ranges, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));
    assert.equal(ranges[0].start, 0n);
    for (const r of ranges) {
      assert.equal(typeof r.start, 'bigint');
      assert.ok(r.last > r.start);
      assert.ok(r.last < 0xfee00000n || r.start > 0xfeefffffn, 'no range covers the MSI window');
    }
    assert.equal(edu.ioas.iovaAlignment, 4096n);
  } finally {
    edu.close();
  }
});

test('a DmaBuffer maps at a fixed IOVA and unmaps', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(16384);
  try {
    assert.equal(edu.ioas.map(buf, { iova: 0x100000n }), 0x100000n);
    assert.equal(edu.ioas.unmap(0x100000n, 16384), 16384);
  } finally {
    edu.close();
    buf.free();
  }
});

test('a DmaBuffer maps at a kernel-chosen IOVA inside the allowed ranges', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(8192);
  try {
    edu.ioas.allowIovas([{ start: 0x1000000n, last: 0xfffffffn }]);
    const iova = edu.ioas.map(buf);
    assert.equal(typeof iova, 'bigint');
    assert.ok(iova >= 0x1000000n && iova + 8192n - 1n <= 0xfffffffn, `iova 0x${iova.toString(16)}`);
    assert.equal(iova % 4096n, 0n);
    assert.equal(edu.ioas.unmapAll(), 8192);
  } finally {
    edu.close();
    buf.free();
  }
});

test('edu DMA from RAM to the device and back lands equal in another part of the buffer', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(8192);
  const bar = edu.dev.region(0).map();
  try {
    edu.dev.config.enableBusMaster();
    assert.ok(edu.dev.config.command & 0x4, 'bus master enabled');
    edu.ioas.allowIovas([{ start: 0x1000000n, last: 0xfffffffn }]);
    const iova = edu.ioas.map(buf);
    const len = 1024;
    const src = buf.bytes.subarray(0, len);
    for (let i = 0; i < len; i++) src[i] = (i * 7 + 3) & 0xff;
    startDma(bar, { src: iova, dst: EDU.BUFFER, count: len, toRam: false });
    waitDmaIdle(bar);
    startDma(bar, { src: EDU.BUFFER, dst: iova + 4096n, count: len, toRam: true });
    waitDmaIdle(bar);
    assert.deepEqual(buf.bytes.subarray(4096, 4096 + len), src);
  } finally {
    bar.close();
    edu.close();
    buf.free();
  }
});

test('the IOAS keeps a mapped buffer alive and refuses its free until it is unmapped', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(4096);
  try {
    edu.ioas.map(buf, { iova: 0x400000 });
    assert.throws(() => buf.free(), { name: 'VfioStateError', code: 'ERR_VFIO_BUFFER_MAPPED' });
    assert.equal(buf.freed, false);
    edu.ioas.unmap(0x400000, 4096);
    buf.free();
    assert.equal(buf.freed, true);
  } finally {
    edu.close();
    if (!buf.freed) buf.free();
  }
});

test('load32 sees a completion word the device DMAs into the buffer, polled without a plain read', () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(8192);
  const bar = edu.dev.region(0).map();
  try {
    edu.dev.config.enableBusMaster();
    const iova = edu.ioas.map(buf);
    buf.store32(0, 0xc0de0001);
    // The CPU polls the word while the device writes it: each load32 reads the memory again.
    startWordBounce(bar, iova);
    const end = Date.now() + 5000;
    while (buf.load32(4096) !== 0xc0de0001 && Date.now() < end);
    assert.equal(buf.load32(4096), 0xc0de0001);
    waitDmaIdle(bar);
    edu.ioas.unmap(iova, buf.size);
  } finally {
    bar.close();
    edu.close();
    buf.free();
  }
});

test('a worker polls a completion word in shared DMA memory that the device writes', async () => {
  const { Worker } = await import('node:worker_threads');
  const edu = openEdu();
  const buf = DmaBuffer.alloc(8192);
  const bar = edu.dev.region(0).map();
  const worker = new Worker(`
    const { DmaBuffer } = require('vfio');
    const { parentPort, workerData } = require('node:worker_threads');
    const b = DmaBuffer.fromShared(workerData);
    parentPort.postMessage('polling');
    const end = Date.now() + 10000;
    while (b.load32(4096) !== 0xc0de0002 && Date.now() < end);
    parentPort.postMessage(b.load32(4096));
    b.free();`, { eval: true, execArgv: [], workerData: buf.share() });
  try {
    await new Promise((resolve) => worker.once('message', resolve));
    edu.dev.config.enableBusMaster();
    const iova = edu.ioas.map(buf);
    buf.store32(0, 0xc0de0002);
    startWordBounce(bar, iova);
    assert.equal(await new Promise((resolve) => worker.once('message', resolve)), 0xc0de0002);
    waitDmaIdle(bar);
    await new Promise((resolve) => worker.once('exit', resolve));
    assert.throws(() => buf.free(), { code: 'ERR_VFIO_BUFFER_MAPPED' }, 'still mapped here, whatever the worker did');
    edu.ioas.unmap(iova, buf.size);
  } finally {
    await worker.terminate();
    bar.close();
    edu.close();
    buf.free();
  }
});
