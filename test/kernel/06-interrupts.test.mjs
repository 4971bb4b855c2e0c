// Interrupts: MSI on edu through eventfd + uv_poll, loopback on mtty, liveness, disable.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DmaBuffer } from 'vfio';
import { deviceOf, withBound } from './lab.mjs';
import { EDU, ackIrq, openEdu, startDma } from './edu.mjs';
import { fastCalls } from '../../dist/native.js';

test('an edu DMA completion delivers an interrupt event and resolves wait() over MSI', async () => {
  const edu = openEdu();
  const buf = DmaBuffer.alloc(4096);
  const bar = edu.dev.region(0).map();
  const irqs = edu.dev.enableIrq('msi');
  try {
    edu.dev.config.enableBusMaster();
    const iova = edu.ioas.map(buf, { iova: 0x100000 });
    const got = new Promise((resolve) => irqs.once('interrupt', (vector, count) => resolve({ vector, count })));
    const waited = irqs.wait(0, { timeoutMs: 5000 });
    startDma(bar, { src: iova, dst: EDU.BUFFER, count: 256, toRam: false, irq: true });
    const ev = await got;
    assert.equal(ev.vector, 0);
    assert.ok(ev.count >= 1);
    assert.equal(await waited, ev.count, 'wait() resolved with the same delivery');
    assert.equal(bar.read32(EDU.IRQ_STATUS) & 0x100, 0x100, 'edu reports the DMA interrupt');
    ackIrq(bar);
  } finally {
    irqs.disable();
    bar.close();
    edu.close();
    buf.free();
  }
});

test('a write to the raise-irq register resolves wait() and delivers an interrupt event', async () => {
  const edu = openEdu();
  const bar = edu.dev.region(0).map();
  const irqs = edu.dev.enableIrq('msi');
  try {
    edu.dev.config.enableBusMaster();
    const got = new Promise((resolve) => irqs.once('interrupt', (vector, count) => resolve({ vector, count })));
    const waiting = irqs.wait(0, { timeoutMs: 5000 });
    bar.write32(EDU.IRQ_RAISE, 0x1);
    const count = await waiting;
    assert.ok(count >= 1);
    assert.deepEqual(await got, { vector: 0, count }, 'the same delivery as an event');
    ackIrq(bar);
  } finally {
    irqs.close();
    bar.close();
    edu.close();
  }
});

test('interrupts that arrive with no listener are delivered to the next one', async () => {
  const edu = openEdu();
  const bar = edu.dev.region(0).map();
  const irqs = edu.dev.enableIrq('msi');
  try {
    edu.dev.config.enableBusMaster();
    for (let i = 0; i < 3; i++) {
      bar.write32(EDU.IRQ_RAISE, 0x1);
      ackIrq(bar);
    }
    await sleep(50);
    // MSIs raised back to back may merge in the (emulated) APIC; at least one must be waiting.
    const count = await irqs.wait(0, { timeoutMs: 5000 });
    assert.ok(count >= 1 && count <= 3, `count ${count}`);
  } finally {
    irqs.close();
    bar.close();
    edu.close();
  }
});

test('trigger() loops back through the eventfd on mtty', async () => {
  await withBound('mtty', async ({ dev }) => {
    assert.equal(dev.irqInfo(1).count, 1);
    const irqs = dev.enableIrq('msi');
    const waiting = irqs.wait(0, { timeoutMs: 5000 });
    irqs.trigger(0);
    assert.equal(await waiting, 1);
    const it = irqs[Symbol.asyncIterator]();
    irqs.trigger();
    assert.deepEqual((await it.next()).value, { vector: 0, count: 1 });
    await it.return();
    assert.throws(() => irqs.trigger(1), RangeError);
    irqs.disable();
  }, { attach: false });
});

test('an Interrupts with no listeners does not keep the process alive', () => {
  const script = `
    const { Iommufd, VfioDevice } = require('vfio');
    const iommufd = Iommufd.open();
    const dev = VfioDevice.open(${JSON.stringify(deviceOf('mtty').cdevPath)});
    dev.bind(iommufd);
    const irqs = dev.enableIrq('msi');
    const onIrq = () => {};
    irqs.on('interrupt', onIrq);
    irqs.off('interrupt', onIrq);
    globalThis.keep = irqs;
    console.log('armed');`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.signal, null, 'the process had to be killed: something kept it alive');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /armed/);
});

test('an unref()ed Interrupts with a listener does not keep the process alive either', () => {
  const script = `
    const { Iommufd, VfioDevice } = require('vfio');
    const iommufd = Iommufd.open();
    const dev = VfioDevice.open(${JSON.stringify(deviceOf('mtty').cdevPath)});
    dev.bind(iommufd);
    const irqs = dev.enableIrq('msi').unref();
    irqs.on('interrupt', () => {});`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.signal, null, 'the process had to be killed: something kept it alive');
  assert.equal(r.status, 0, r.stderr);
});

test('disable() stops delivery and rejects a pending wait()', async () => {
  const edu = openEdu();
  const bar = edu.dev.region(0).map();
  const irqs = edu.dev.enableIrq('msi');
  try {
    edu.dev.config.enableBusMaster();
    let seen = 0;
    irqs.on('interrupt', () => seen++);
    const pending = irqs.wait(0);
    irqs.disable();
    await assert.rejects(pending, { code: 'ERR_VFIO_CLOSED' });
    bar.write32(EDU.IRQ_RAISE, 0x1);
    await sleep(100);
    ackIrq(bar);
    assert.equal(seen, 0);
    assert.equal(irqs.closed, true);
    assert.throws(() => irqs.trigger(0), { code: 'ERR_VFIO_CLOSED' });
    irqs.disable();
  } finally {
    bar.close();
    edu.close();
  }
});

test('wait() rejects with ETIMEDOUT when nothing arrives', async () => {
  const edu = openEdu();
  const irqs = edu.dev.enableIrq('msi');
  try {
    await assert.rejects(irqs.wait(0, { timeoutMs: 50 }), { code: 'ETIMEDOUT' });
  } finally {
    irqs.close();
    edu.close();
  }
});

test('a handler that raises the next interrupt itself loses none over many rounds', async () => {
  const edu = openEdu();
  const bar = edu.dev.region(0).map();
  const irqs = edu.dev.enableIrq('msi');
  try {
    edu.dev.config.enableBusMaster();
    let left = 100;
    let seen = 0;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stalled with ${left} interrupts to go`)), 20_000);
      irqs.on('interrupt', (_vector, count) => {
        seen += count;
        ackIrq(bar);
        if (--left === 0) {
          clearTimeout(timer);
          resolve();
        } else {
          bar.write32(EDU.IRQ_RAISE, 0x1);
        }
      });
      bar.write32(EDU.IRQ_RAISE, 0x1);
    });
    assert.equal(seen, 100);
  } finally {
    irqs.close();
    bar.close();
    edu.close();
  }
});

test('waitSync() blocks until the interrupt and is refused while listeners take deliveries', () => {
  const edu = openEdu();
  const bar = edu.dev.region(0).map();
  const irqs = edu.dev.enableIrq('msi');
  try {
    edu.dev.config.enableBusMaster();
    bar.write32(EDU.IRQ_RAISE, 0x1);
    assert.equal(irqs.waitSync(0, { timeoutMs: 5000 }), 1);
    ackIrq(bar);
    assert.throws(() => irqs.waitSync(0, { timeoutMs: 10 }), { code: 'ETIMEDOUT' });
    const listener = () => {};
    irqs.on('interrupt', listener);
    assert.throws(() => irqs.waitSync(0), { code: 'ERR_VFIO_BUSY' });
    irqs.off('interrupt', listener);
  } finally {
    irqs.close();
    bar.close();
    edu.close();
  }
});

test('INTx on mtty: a UART interrupt is delivered, and unmask() re-arms the line for the next one', async () => {
  await withBound('mtty', async ({ dev }) => {
    const uart = dev.region(0);
    const irqs = dev.enableIrq('intx');
    assert.equal(dev.irqInfo(0).automasked, true);
    uart.write8(2, 0x00); // FCR: no FIFO, so the receive interrupt comes at the first byte
    uart.write8(1, 0x01); // IER: interrupt when received data is available
    for (let round = 0; round < 3; round++) {
      const got = irqs.wait(0, { timeoutMs: 5000 });
      uart.write8(0, 0x41 + round); // THR: mtty loops the byte back to RX, raising INTx
      assert.ok(await got >= 1, `round ${round}`);
      assert.equal(uart.read8(0), 0x41 + round, 'the byte came back');
      // Automasked: until unmask(), another byte raises nothing.
      const masked = irqs.wait(0, { timeoutMs: 300 });
      uart.write8(0, 0x61 + round);
      await assert.rejects(masked, { code: 'ETIMEDOUT' });
      assert.equal(uart.read8(0), 0x61 + round);
      irqs.unmask();
    }
    irqs.disable();
  }, { attach: false });
});

test('mask()/unmask() on an index that is not maskable is refused without a syscall', () => {
  withBound('nvme', ({ dev }) => {
    const irqs = dev.enableIrq('msix', { count: 1 });
    assert.equal(dev.irqInfo(2).maskable, false);
    assert.throws(() => irqs.mask(), { name: 'VfioStateError', code: 'ERR_VFIO_NOT_MASKABLE', message: /not maskable/ });
    assert.throws(() => irqs.unmask(), { code: 'ERR_VFIO_NOT_MASKABLE' });
    irqs.disable();
    assert.throws(() => irqs.unmask(), { code: 'ERR_VFIO_CLOSED' });
  }, { attach: false });
});

test('drain() optimized into V8 fast calls reads 0 with nothing pending, then the one MSI the raise register sent', async () => {
  assert.ok(fastCalls().active, `the fast calls are off: ${fastCalls().why}`);
  const edu = openEdu();
  const bar = edu.dev.region(0).map();
  const irqs = edu.dev.enableIrq('msi');
  try {
    edu.dev.config.enableBusMaster();
    const poll = () => irqs.drain(0);
    // Until V8 has optimized the loop the reads take the slow callback; then a round must not.
    const deadline = Date.now() + 20_000;
    let slow;
    do {
      const before = fastCalls().slowCalls();
      for (let i = 0; i < 5000; i++) assert.equal(poll(), 0);
      slow = fastCalls().slowCalls() - before;
    } while (slow > 0 && Date.now() < deadline);
    assert.equal(slow, 0, 'a round of 5000 optimized reads took no slow callback');
    bar.write32(EDU.IRQ_RAISE, 1);
    let count = 0;
    const end = Date.now() + 5000;
    while (count === 0 && Date.now() < end) count = poll();
    assert.equal(count, 1, 'the MSI the raise register sent was counted once');
    assert.equal(poll(), 0);
    ackIrq(bar);
  } finally {
    irqs.disable();
    bar.close();
    edu.close();
  }
});
