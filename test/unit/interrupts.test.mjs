// Interrupts' own logic on the host: SET_IRQS is stubbed and the test writes to the eventfds,
// as the kernel's vfio MSI handler would.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { Interrupts } from '../../dist/interrupts.js';
import { native } from '../../dist/native.js';

function fakeIrqs(count = 1) {
  let fds = null;
  const calls = [];
  const saved = native.deviceSetIrqs;
  native.deviceSetIrqs = (_h, flags, index, start, n, data) => {
    calls.push({ flags, index, start, count: n });
    if (data) fds = Int32Array.from(data);
  };
  try {
    const irqs = new Interrupts({ _handle: () => null, _forget: () => {} }, 1, 0, count);
    const fire = (vector = 0, times = 1) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(times));
      fs.writeSync(fds[vector], b);
    };
    return { irqs, fire, calls, restore: () => { native.deviceSetIrqs = saved; } };
  } catch (err) {
    native.deviceSetIrqs = saved;
    throw err;
  }
}

test('wait() resolves with the summed count of the next delivery', async () => {
  const { irqs, fire, restore } = fakeIrqs();
  try {
    fire(0, 3);
    assert.equal(await irqs.wait(0), 3, 'interrupts before wait() are kept by the eventfd');
    const w = irqs.wait();
    fire();
    assert.equal(await w, 1);
  } finally {
    irqs._dispose();
    restore();
  }
});

test('concurrent waiters on one vector all get the delivery; another vector is not woken', async () => {
  const { irqs, fire, restore } = fakeIrqs(2);
  try {
    let other = false;
    irqs.wait(1).then(() => { other = true; }, () => {});
    const [a, b] = [irqs.wait(0), irqs.wait(0)];
    fire(0);
    assert.deepEqual(await Promise.all([a, b]), [1, 1]);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(other, false);
  } finally {
    irqs._dispose();
    restore();
  }
});

test('wait() rejects on timeout, on abort, and when disabled', async () => {
  const { irqs, calls, restore } = fakeIrqs();
  try {
    await assert.rejects(irqs.wait(0, { timeoutMs: 10 }), { code: 'ETIMEDOUT' });
    const ac = new AbortController();
    const aborted = irqs.wait(0, { signal: ac.signal });
    ac.abort(new Error('stop'));
    await assert.rejects(aborted, /stop/);
    await assert.rejects(irqs.wait(0, { signal: AbortSignal.abort(new Error('already')) }), /already/);
    const pending = irqs.wait(0);
    irqs.disable();
    await assert.rejects(pending, { code: 'ERR_VFIO_CLOSED' });
    assert.deepEqual(calls.at(-1), { flags: 0x21, index: 1, start: 0, count: 0 }, 'DATA_NONE|TRIGGER with count 0');
    assert.throws(() => irqs.wait(0), { code: 'ERR_VFIO_CLOSED' });
  } finally {
    irqs._dispose();
    restore();
  }
});

test("'interrupt' events carry the vector and the count; waitSync is refused meanwhile", async () => {
  const { irqs, fire, restore } = fakeIrqs(2);
  try {
    const got = new Promise((resolve) => irqs.once('interrupt', (vector, count) => resolve([vector, count])));
    assert.throws(() => irqs.waitSync(0), { code: 'ERR_VFIO_BUSY' });
    fire(1, 2);
    assert.deepEqual(await got, [1, 2]);
    await new Promise((r) => setImmediate(r));
    fire(0);
    assert.equal(irqs.waitSync(0, { timeoutMs: 1000 }), 1, 'no listeners left: waitSync reads the eventfd');
  } finally {
    irqs._dispose();
    restore();
  }
});

test('the async iterator yields deliveries until disabled', async () => {
  const { irqs, fire, restore } = fakeIrqs();
  try {
    const seen = [];
    const done = (async () => {
      for await (const e of irqs) {
        seen.push(e);
        if (seen.length === 2) irqs.disable();
      }
    })();
    await new Promise((r) => setImmediate(r));
    fire();
    await new Promise((r) => setTimeout(r, 20));
    fire(0, 4);
    await done;
    assert.deepEqual(seen, [{ vector: 0, count: 1 }, { vector: 0, count: 4 }]);
  } finally {
    irqs._dispose();
    restore();
  }
});

test('bad vectors and options are refused', () => {
  const { irqs, restore } = fakeIrqs();
  try {
    assert.throws(() => irqs.wait(1), RangeError);
    assert.throws(() => irqs.trigger('0'), TypeError);
    assert.throws(() => irqs.wait(0, { timeoutMs: -1 }), RangeError);
  } finally {
    irqs._dispose();
    restore();
  }
});
