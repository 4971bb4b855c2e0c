// The native interrupt watcher (eventfd + uv_poll on the env's loop), driven from software on
// the host: what the kernel's vfio MSI handler does with eventfd_signal, this test does with write.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { hot, native } from '../../dist/native.js';

test('a signalled eventfd calls back with the count and resets it', async () => {
  const got = [];
  const w = native.irqCreate((count, errno) => got.push([count, errno]));
  try {
    native.irqSignal(w);
    native.irqSignal(w);
    native.irqStart(w);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(got, [[2, 0]], 'two signals before polling arrive summed');
    assert.equal(native.irqRead(w), 0, 'the callback read the counter');
  } finally {
    native.irqClose(w);
  }
});

test('waitSync-style blocking read returns the count, or 0 on timeout', () => {
  const w = native.irqCreate(() => {});
  try {
    assert.equal(hot.irqWaitSync(w, 10), 0);
    native.irqSignal(w);
    assert.equal(hot.irqWaitSync(w, 1000), 1);
  } finally {
    native.irqClose(w);
  }
});

test('waitSync takes a count already pending without waiting, even with a zero timeout', () => {
  const w = native.irqCreate(() => {});
  try {
    native.irqSignal(w);
    native.irqSignal(w);
    assert.equal(hot.irqWaitSync(w, 0), 2);
    assert.equal(hot.irqWaitSync(w, 0), 0, 'the read reset the counter');
  } finally {
    native.irqClose(w);
  }
});

test('waitSync refuses a timeout that is not -1 or a safe integer before any syscall', () => {
  const w = native.irqCreate(() => {});
  try {
    native.irqSignal(w);
    for (const t of [-2, 0.5, NaN, 2 ** 53]) {
      assert.throws(() => hot.irqWaitSync(w, t), { name: 'RangeError', message: /timeoutMs/ }, `timeout ${t}`);
    }
    assert.equal(native.irqRead(w), 1, 'the refused calls left the count pending');
  } finally {
    native.irqClose(w);
  }
});

test('a started but unref()ed watcher does not keep the process alive', () => {
  const script = `
    const { native } = require(${JSON.stringify(new URL('../../dist/native.js', import.meta.url).pathname)});
    const w = native.irqCreate(() => {});
    native.irqStart(w);
    native.irqRef(w, false);
    globalThis.keep = w;`;
  const r = spawnSync(process.execPath, ['-e', script], { timeout: 10_000 });
  assert.equal(r.signal, null, 'the process had to be killed');
  assert.equal(r.status, 0);
});

test('a closed watcher refuses use and closing again is harmless', () => {
  const w = native.irqCreate(() => {});
  native.irqClose(w);
  native.irqClose(w);
  assert.throws(() => native.irqSignal(w), { code: 'EBADF' });
  assert.throws(() => native.irqCreate('not a function'), TypeError);
});
