import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DmaBuffer } from 'vfio';

test('alloc rounds up to whole pages and zero-fills', () => {
  const b = DmaBuffer.alloc(5000);
  assert.equal(b.size, 8192);
  assert.equal(b.bytes.length, 8192);
  assert.ok(b.bytes.every((x) => x === 0));
  b.free();
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
