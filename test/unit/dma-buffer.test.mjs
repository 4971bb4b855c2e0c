import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { DmaBuffer } from 'vfio';

test('alloc rounds up to whole pages and zero-fills', () => {
  const b = DmaBuffer.alloc(5000);
  assert.equal(b.size, 8192);
  assert.equal(b.bytes.length, 8192);
  assert.ok(b.bytes.every((x) => x === 0));
  b.free();
});

/** The /proc/self/maps lines as [start, end, perms]. */
function maps() {
  return fs.readFileSync('/proc/self/maps', 'utf8').trim().split('\n').map((l) => {
    const [range, perms] = l.split(/\s+/);
    const [a, b] = range.split('-').map((x) => BigInt(`0x${x}`));
    return [a, b, perms];
  });
}

test('alloc({ align }) places the buffer at a multiple of align and gives back the rest of the reservation', () => {
  for (const memfd of [false, true]) {
    const align = 2 * 1024 * 1024;
    const b = DmaBuffer.alloc(16 * 4096, { align, memfd });
    try {
      assert.equal(b.address % BigInt(align), 0n, `memfd: ${memfd}`);
      assert.equal(b.size, 16 * 4096);
      b.bytes.fill(0xa5);
      assert.equal(b.load32(b.size - 4), 0xa5a5a5a5);
      const end = b.address + BigInt(b.size);
      const leftovers = maps().filter(([s, e, perms]) => perms.startsWith('---') && (e === b.address || s === end));
      assert.deepEqual(leftovers, [], 'no PROT_NONE reservation is left beside the buffer');
    } finally {
      b.free();
    }
  }
  const small = DmaBuffer.alloc(4096, { align: 1 });
  assert.equal(small.address % 4096n, 0n, 'align below the page size: page-aligned as always');
  small.free();
});

test('alloc refuses an align that is not a power of two up to 2^30', () => {
  assert.throws(() => DmaBuffer.alloc(4096, { align: 3 * 4096 }), { name: 'RangeError', message: /options\.align must be a power of two/ });
  assert.throws(() => DmaBuffer.alloc(4096, { align: 0 }), RangeError);
  assert.throws(() => DmaBuffer.alloc(4096, { align: -4096 }), RangeError);
  assert.throws(() => DmaBuffer.alloc(4096, { align: 2 ** 31 }), RangeError);
  assert.throws(() => DmaBuffer.alloc(4096, { align: '4096' }), TypeError);
});

test('free detaches every ArrayBuffer handed out', () => {
  const b = DmaBuffer.alloc(4096);
  const ab = b.buffer;
  const u8 = b.bytes;
  u8[0] = 7;
  assert.equal(new Uint8Array(ab)[0], 7);
  b.free();
  assert.equal(ab.byteLength, 0);
  assert.equal(u8.length, 0);
  assert.equal(u8[0], undefined);
  assert.throws(() => b.buffer, { code: 'ERR_VFIO_CLOSED' });
  b.free();
});

test('alloc rejects bad sizes', () => {
  assert.throws(() => DmaBuffer.alloc(0), RangeError);
  assert.throws(() => DmaBuffer.alloc(-1), RangeError);
  assert.throws(() => DmaBuffer.alloc('4096'), TypeError);
  assert.throws(() => DmaBuffer.alloc(1.5), RangeError);
  assert.throws(() => DmaBuffer.alloc(2 ** 50), { name: 'RangeError', message: /memory/ });
});

test('load32/load64/store32/store64 are single accesses at aligned offsets, little-endian like the device', () => {
  const b = DmaBuffer.alloc(4096);
  b.store32(8, 0x11223344);
  assert.deepEqual([...b.bytes.subarray(8, 12)], [0x44, 0x33, 0x22, 0x11]);
  assert.equal(b.load32(8), 0x11223344);
  b.store32(12, -1);
  assert.equal(b.load32(12), 0xffffffff);
  b.store64(16, 0x0102030405060708n);
  assert.equal(b.load64(16), 0x0102030405060708n);
  b.store64(24, 4096);
  assert.equal(b.load64(24), 4096n);
  b.bytes[32] = 5;
  assert.equal(b.load32(32), 5, 'a load sees a plain store through the bytes view');
  b.free();
});

test('the accessors refuse unaligned, out-of-range and mistyped arguments, and use after free', () => {
  const b = DmaBuffer.alloc(4096);
  assert.throws(() => b.load32(2), { name: 'RangeError', message: /aligned/ });
  assert.throws(() => b.load64(4), RangeError);
  assert.throws(() => b.load32(4096), { name: 'RangeError', message: /outside/ });
  assert.throws(() => b.store32(0, 2 ** 32), RangeError);
  assert.throws(() => b.store32('0', 1), TypeError);
  assert.throws(() => b.store64(0, 1.5), RangeError);
  assert.throws(() => b.store64(0, '1'), TypeError);
  b.free();
  assert.throws(() => b.load32(0), { code: 'ERR_VFIO_CLOSED' });
  assert.throws(() => b.store64(0, 1n), { code: 'ERR_VFIO_CLOSED' });
});

test('share() and fromShared() give a worker the same memory, which lives until every thread freed it', async () => {
  const { Worker } = await import('node:worker_threads');
  const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/dev/zero')).length;
  const before = maps();
  const b = DmaBuffer.alloc(8192);
  b.store32(0, 0x1234);
  const w = new Worker(`
    const { DmaBuffer } = require('vfio');
    const { parentPort, workerData } = require('node:worker_threads');
    const b = DmaBuffer.fromShared(workerData);
    parentPort.postMessage(b.load32(0));
    parentPort.once('message', () => {
      parentPort.postMessage(b.load32(4));
      b.store32(8, 0xbeef);
      b.free();
      parentPort.postMessage('freed');
    });`, { eval: true, workerData: b.share() });
  const next = () => new Promise((resolve) => w.once('message', resolve));
  assert.equal(await next(), 0x1234, 'the worker sees the main thread\'s store');
  b.store32(4, 0x5678);
  const u8 = b.bytes;
  w.postMessage('go');
  assert.equal(await next(), 0x5678);
  assert.equal(await next(), 'freed');
  assert.equal(b.load32(8), 0xbeef, 'the worker\'s free() detached only its own views');
  assert.equal(u8[8], 0xef);
  await new Promise((resolve) => w.once('exit', resolve));
  b.free();
  assert.equal(maps(), before, 'unmapped once every thread freed it');
  assert.throws(() => DmaBuffer.fromShared(b.share()), { code: 'ERR_VFIO_CLOSED' });
});

test('fromShared refuses values that share() did not make', () => {
  for (const v of [null, 1, {}, { vfioSharedDmaBuffer: 1 }, 'x']) assert.throws(() => DmaBuffer.fromShared(v), TypeError);
  assert.throws(() => DmaBuffer.fromShared({ vfioSharedDmaBuffer: 12345n }), { code: 'ERR_VFIO_CLOSED' });
});
