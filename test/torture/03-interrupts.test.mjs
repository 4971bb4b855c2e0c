// Interrupt sets own their vectors exclusively, disable() switches off only its own, waits honour
// any timeout, waitSync() keeps one deadline and gives way to signals and thread stops, and a
// device with interrupts is collectable.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deviceOf, openBound } from '../kernel/lab.mjs';
import { assertSurvived, runCase } from './child.mjs';

const edu = deviceOf('edu');
const nvme = deviceOf('nvme');

/** A worker that opens the edu, enables MSI, says 'waiting' and blocks in waitSync(0, options). */
function blockedWorker(options) {
  return `
    const vfio = require('vfio');
    const { parentPort, workerData } = require('node:worker_threads');
    const iommufd = vfio.Iommufd.open();
    const dev = vfio.VfioDevice.open(workerData);
    dev.bind(iommufd);
    const irqs = dev.enableIrq('msi');
    parentPort.postMessage('waiting');
    irqs.waitSync(0${options ? `, ${options}` : ''});`;
}

const open = (info) => openBound(info.kind, { attach: false });

test('a second enableIrq over owned vectors is refused, naming the owner, and the first keeps delivering', async () => {
  const { dev, close } = open(edu);
  try {
    const first = dev.enableIrq('msi');
    assert.throws(() => dev.enableIrq('msi'), { code: 'ERR_VFIO_BUSY', message: /vectors 0\.\.0 .*overlap vectors 0\.\.0/ });
    const got = first.wait(0, { timeoutMs: 5000 });
    first.trigger(0);
    assert.equal(await got, 1);
    first.disable();
    const again = dev.enableIrq('msi');
    again.disable();
  } finally {
    close();
  }
});

test('MSI-X sets on vectors 0-1 and 2 each deliver after the other is disabled', async () => {
  const { dev, close } = open(nvme);
  try {
    const a = dev.enableIrq('msix', { start: 0, count: 2 });
    const b = dev.enableIrq('msix', { start: 2, count: 1 });
    assert.throws(() => dev.enableIrq('msix', { start: 1, count: 2 }), { code: 'ERR_VFIO_BUSY', message: /vectors 0\.\.1/ });
    for (const [set, v] of [[a, 0], [a, 1], [b, 2]]) {
      const w = set.wait(v, { timeoutMs: 5000 });
      set.trigger(v);
      assert.equal(await w, 1, `vector ${v}`);
    }
    b.disable();
    for (const v of [0, 1]) {
      const w = a.wait(v, { timeoutMs: 5000 });
      a.trigger(v);
      assert.equal(await w, 1, `vector ${v} still delivers after the other set's disable()`);
    }
    const c = dev.enableIrq('msix', { start: 2, count: 1 });
    a.disable();
    const w = c.wait(2, { timeoutMs: 5000 });
    c.trigger(2);
    assert.equal(await w, 1, 'vector 2 still delivers after the other set\'s disable()');
    c.disable();
  } finally {
    close();
  }
});

test('wait() takes a timeout beyond 2^31-1 ms and keeps waiting', async () => {
  const { dev, close } = open(edu);
  try {
    const irqs = dev.enableIrq('msi');
    const w = irqs.wait(0, { timeoutMs: 2 ** 31 });
    let settled = false;
    w.then(() => (settled = true), () => (settled = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(settled, false, 'a 2^31 ms timeout did not fire after 300 ms');
    irqs.trigger(0);
    assert.equal(await w, 1);
    const far = irqs.wait(0, { timeoutMs: Number.MAX_SAFE_INTEGER });
    irqs.trigger(0);
    assert.equal(await far, 1);
    assert.throws(() => irqs.wait(0, { timeoutMs: 2 ** 53 }), RangeError);
    irqs.disable();
  } finally {
    close();
  }
});

test('drain() reads and clears the count without blocking', () => {
  const { dev, close } = open(edu);
  try {
    const irqs = dev.enableIrq('msi');
    assert.equal(irqs.drain(0), 0);
    irqs.trigger(0);
    irqs.trigger(0);
    assert.equal(irqs.drain(0), 2);
    assert.equal(irqs.drain(0), 0);
    irqs.disable();
    assert.throws(() => irqs.drain(0), { code: 'ERR_VFIO_CLOSED' });
  } finally {
    close();
  }
});

test('waitSync() keeps one deadline while signals keep interrupting poll', async () => {
  // --cpu-prof makes V8 send SIGPROF to the thread every millisecond.
  const r = await runCase(`
    const iommufd = vfio.Iommufd.open();
    const dev = vfio.VfioDevice.open(edu.cdevPath);
    dev.bind(iommufd);
    const irqs = dev.enableIrq('msi');
    const t0 = Date.now();
    assert.throws(() => irqs.waitSync(0, { timeoutMs: 1500 }), { code: 'ETIMEDOUT' });
    console.log('elapsed', Date.now() - t0);
    dev.close(); iommufd.close();`, { args: ['--cpu-prof', '--cpu-prof-dir=/tmp/vfio-prof', '--cpu-prof-interval=1000'] });
  assertSurvived(r);
  const elapsed = Number(/elapsed (\d+)/.exec(r.stdout)[1]);
  assert.ok(elapsed >= 1400 && elapsed < 4000, `waited ${elapsed} ms for a 1500 ms deadline`);
});

test('waitSync() returns EINTR promptly so a JS signal handler runs', async () => {
  const r = await runCase(`
    import { Worker } from 'node:worker_threads';
    const iommufd = vfio.Iommufd.open();
    const dev = vfio.VfioDevice.open(edu.cdevPath);
    dev.bind(iommufd);
    const irqs = dev.enableIrq('msi');
    let handled = 0;
    process.on('SIGUSR2', () => { handled = Date.now(); });
    new Worker('setTimeout(() => process.kill(process.pid, "SIGUSR2"), 300)', { eval: true, execArgv: [] });
    const t0 = Date.now();
    let error;
    try { irqs.waitSync(0, { timeoutMs: 20000 }); } catch (e) { error = e; }
    const waited = Date.now() - t0;
    assert.equal(error?.code, 'EINTR', String(error));
    assert.match(error.message, /signal/);
    for (let i = 0; i < 100 && !handled; i++) await sleep(20);
    assert.ok(handled > 0, 'the handler ran');
    console.log('waited', waited, 'handler after', handled - t0 - waited);
    dev.close(); iommufd.close();
    console.log('survived');
    process.exit(0);`);
  assertSurvived(r);
  const waited = Number(/waited (\d+)/.exec(r.stdout)[1]);
  assert.ok(waited < 5000, `waitSync returned after ${waited} ms`);
});

test('worker.terminate() ends a worker blocked in waitSync() at once', async () => {
  const r = await runCase(`
    import { Worker } from 'node:worker_threads';
    const w = new Worker(${JSON.stringify(blockedWorker('{ timeoutMs: 120000 }'))}, { eval: true, execArgv: [], workerData: edu.cdevPath });
    await new Promise((r) => w.once('message', r));
    await sleep(200);
    const t0 = Date.now();
    await w.terminate();
    console.log('terminated', Date.now() - t0);`, { prelude: true, timeoutMs: 60_000 });
  assertSurvived(r);
  const ms = Number(/terminated (\d+)/.exec(r.stdout)[1]);
  assert.ok(ms < 5000, `terminate() took ${ms} ms`);
});

test('process.exit() in the main thread ends a worker blocked in waitSync() without a timeout', async () => {
  const r = await runCase(`
    import { Worker } from 'node:worker_threads';
    const w = new Worker(${JSON.stringify(blockedWorker(''))}, { eval: true, execArgv: [], workerData: edu.cdevPath });
    await new Promise((r) => w.once('message', r));
    await sleep(200);
    console.log('survived');
    process.exit(0);`, { timeoutMs: 30_000 });
  assertSurvived(r);
  assert.ok(r.ms < 20_000, `the process took ${r.ms} ms to exit`);
});

test('a device that enabled interrupts is collected once dropped, and its fds closed', async () => {
  assertSurvived(await runCase(`
    const iommufd = vfio.Iommufd.open();
    const before = fdCount();
    (() => {
      const dev = vfio.VfioDevice.open(edu.cdevPath);
      dev.bind(iommufd);
      const irqs = dev.enableIrq('msi');
      const f = () => {};
      irqs.on('interrupt', f);
      irqs.off('interrupt', f);
    })();
    await settle();
    assert.equal(fdCount(), before, 'the device and eventfds were closed by the finalizers');
    const again = vfio.VfioDevice.open(edu.cdevPath);
    const iommufd2 = vfio.Iommufd.open();
    assert.ok(again.bind(iommufd2) > 0, 'the device can be bound again');
    again.close(); iommufd2.close(); iommufd.close();`));
});

test('interrupts that still have listeners keep their device alive and delivering', async () => {
  assertSurvived(await runCase(`
    let got = 0;
    let trigger;
    (() => {
      const iommufd = vfio.Iommufd.open();
      const dev = vfio.VfioDevice.open(edu.cdevPath);
      dev.bind(iommufd);
      const irqs = dev.enableIrq('msi').unref();
      irqs.on('interrupt', (v, n) => { got += n; });
      trigger = new WeakRef(irqs);
    })();
    await settle();
    assert.ok(trigger.deref(), 'a listening set is not collected');
    trigger.deref().trigger(0);
    await sleep(100);
    assert.equal(got, 1);`));
});
