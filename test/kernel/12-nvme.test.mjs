// vfio/nvme against the lab's QEMU nvme (16 MiB namespace of 512-byte blocks, serial vfiolab).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DmaBuffer } from 'vfio';
import { NvmeController, NvmeError } from 'vfio/nvme';
import { deviceOf, withResource } from './lab.mjs';

const nvme = deviceOf('nvme');

/** Retry a read until the controller is back from the reset a timeout triggers (5 s at most). */
async function readOnceRecovered(qp, buf) {
  const end = Date.now() + 5000;
  for (;;) {
    try {
      await qp.read(1, 0, 1, buf);
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const withController = (fn, options) => withResource(NvmeController.open(nvme.bdf, options), (c) => c.close(), fn);

/** Run `fn(qp, buf)` on a new queue pair and a `bytes`-byte buffer, then release both. */
function withQueue(ctrl, options, bytes, fn) {
  const buf = DmaBuffer.alloc(bytes);
  return withResource(ctrl.createQueuePair(options), (qp) => {
    qp.close();
    ctrl.release(buf);
    buf.free();
  }, (qp) => fn(qp, buf));
}

test('open brings the controller up: identify and the namespace', () => {
  withController((ctrl) => {
    const id = ctrl.identify();
    assert.equal(id.vid, 0x1b36);
    assert.equal(id.serial, 'vfiolab');
    assert.ok(id.nn >= 1);
    assert.equal(id.raw.length, 4096);
    assert.deepEqual(ctrl.namespaces, [{ nsid: 1, blockCount: 32768n, blockSize: 512 }]);
    assert.equal(ctrl.maxQueueEntries, 2048);
    assert.ok(ctrl.smart().temperatureK > 200, 'a plausible temperature');
    assert.ok(ctrl.getFeature(0x07) >= 0, 'Number of Queues');
  });
});

test('a controller error is an NvmeError with the spec\'s status name', () => {
  withController((ctrl) => {
    assert.throws(() => ctrl.getLogPage(0x7f, 512), (e) => e instanceof NvmeError && e.name === 'NvmeError' &&
      e.sct === 0 && e.sc === 2 && e.status === 'Invalid Field in Command' && e.opcode === 0x02);
  });
});

test('data written through two queue pairs (polled and MSI-X) over the whole namespace reads back, with PRP lists', async () => {
  await withController(async (ctrl) => {
    const polled = ctrl.createQueuePair({ size: 32, interrupts: false });
    const irq = ctrl.createQueuePair({ size: 32 });
    const chunk = 128; // blocks: 64 KiB, a PRP list of 16 entries at an unaligned offset
    const out = DmaBuffer.alloc(4096 + chunk * 512);
    const back = DmaBuffer.alloc(4096 + chunk * 512);
    try {
      for (let lba = 0; lba < 32768; lba += chunk) {
        const qp = (lba / chunk) % 2 ? irq : polled;
        for (let i = 0; i < chunk * 512; i += 4) out.store32(4 + i, (lba * 512 + i) ^ 0x5a5a5a5a);
        await qp.write(1, lba, chunk, out, 4);
      }
      for (let lba = 0; lba < 32768; lba += chunk) {
        const qp = (lba / chunk) % 2 ? polled : irq;
        await qp.read(1, lba, chunk, back, 8);
        for (let i = 0; i < chunk * 512; i += 4096) {
          assert.equal(back.load32(8 + i), ((lba * 512 + i) ^ 0x5a5a5a5a) >>> 0, `lba ${lba} + ${i}`);
        }
      }
      await Promise.all([polled.flush(1), irq.flush(1)]);
    } finally {
      polled.close();
      irq.close();
      ctrl.release(out);
      ctrl.release(back);
      out.free();
      back.free();
    }
  });
});

test('a small queue wraps around many times, synchronously and with many commands in flight', async () => {
  await withController(async (ctrl) => {
    await withQueue(ctrl, { size: 4, interrupts: false }, 8 * 512, async (qp, buf) => {
      for (let i = 0; i < 100; i++) {
        buf.store32(0, i);
        qp.writeSync(1, 1000 + (i % 8), 1, buf);
      }
      for (let round = 0; round < 20; round++) {
        await Promise.all([0, 1, 2].map((k) => qp.read(1, 1000 + k, 1, buf, k * 512)));
      }
      assert.equal(qp.outstanding, 0);
      qp.readSync(1, 1000 + (99 % 8), 1, buf);
      assert.equal(buf.load32(0), 99);
    });
  });
});

test('bad I/O arguments are refused before anything is submitted', async () => {
  await withController(async (ctrl) => {
    const qp = ctrl.createQueuePair({ interrupts: false });
    const buf = DmaBuffer.alloc(4096);
    try {
      await assert.rejects(qp.read(1, 32768, 1, buf), { name: 'RangeError', message: /past the end/ });
      await assert.rejects(qp.read(1, 0, 0, buf), { name: 'RangeError', message: /at least 1/ });
      await assert.rejects(qp.read(1, 0, 9, buf), { name: 'RangeError', message: /too small/ });
      await assert.rejects(qp.read(1, 0, 1, new Uint8Array(512)), { name: 'TypeError', message: /DmaBuffer/ });
      await assert.rejects(qp.read(2, 0, 1, buf), { name: 'RangeError', message: /namespace/ });
      await assert.rejects(qp.read(1, 0, 1, buf, 2), { name: 'RangeError', message: /multiple of 4/ });
      assert.throws(() => qp.readSync(1, -1, 1, buf), RangeError);
      assert.equal(qp.outstanding, 0);
    } finally {
      qp.close();
      buf.free();
    }
    await assert.rejects(qp.read(1, 0, 1, buf), { code: 'ERR_VFIO_CLOSED' });
  });
});

test('close() shuts the controller down and it can be opened again; use after close is refused', () => {
  const ctrl = NvmeController.open(nvme.bdf);
  ctrl.close();
  ctrl.close();
  assert.throws(() => ctrl.identify(), { code: 'ERR_VFIO_CLOSED' });
  assert.throws(() => ctrl.createQueuePair(), { code: 'ERR_VFIO_CLOSED' });
  withController((again) => assert.equal(again.identify().serial, 'vfiolab'));
  assert.throws(() => NvmeController.open(42), TypeError);
});

test('submit() sends a raw command: the library fills the command id and the PRPs', async () => {
  await withController(async (ctrl) => {
    await withQueue(ctrl, { interrupts: false }, 4096, async (qp, buf) => {
      buf.store32(0, 0xfeedf00d);
      await qp.write(1, 77, 1, buf);
      buf.store32(0, 0);
      const read = new Uint8Array(64);
      const v = new DataView(read.buffer);
      v.setUint32(0, 0x02, true); // Read
      v.setUint32(4, 1, true); // nsid
      v.setUint32(40, 77, true); // SLBA
      assert.equal(await qp.submit(read, { buffer: buf, length: 512 }), 0);
      assert.equal(buf.load32(0), 0xfeedf00d);
      const bad = new Uint8Array(64);
      bad[0] = 0x7f;
      bad[4] = 1; // nsid 1: QEMU checks the namespace before the opcode
      await assert.rejects(qp.submit(bad), (e) => e instanceof NvmeError && e.status === 'Invalid Command Opcode' && e.opcode === 0x7f);
      await assert.rejects(qp.submit(new Uint8Array(63)), TypeError);
    });
  });
});

test('a queue pair moved to a worker with share() is driven there; the owner deletes it afterwards', async () => {
  const { Worker } = await import('node:worker_threads');
  await withController(async (ctrl) => {
    const qp = ctrl.createQueuePair({ size: 16 });
    const a = DmaBuffer.alloc(4096);
    const b = DmaBuffer.alloc(4096);
    const shared = qp.share({ buffers: [a, b] });
    await assert.rejects(qp.read(1, 0, 1, a), { code: 'ERR_VFIO_BUSY', message: /moved/ });
    const worker = new Worker(`
      const { NvmeQueuePair } = require('vfio/nvme');
      const { parentPort, workerData } = require('node:worker_threads');
      const qp = NvmeQueuePair.fromShared(workerData);
      const [a, b] = qp.buffers;
      (async () => {
        for (let i = 0; i < 512; i += 4) a.store32(i, 0xab000000 + i);
        for (let lba = 3000; lba < 3040; lba++) await qp.write(1, lba, 1, a);
        qp.readSync(1, 3039, 1, b);
        const same = Buffer.compare(a.bytes.subarray(0, 512), b.bytes.subarray(0, 512)) === 0;
        qp.close();
        parentPort.postMessage(same);
      })().catch((e) => parentPort.postMessage(String(e)));`, { eval: true, execArgv: [], workerData: shared });
    try {
      assert.equal(await new Promise((resolve) => worker.once('message', resolve)), true);
      qp.close();
      const check = ctrl.createQueuePair({ interrupts: false });
      check.readSync(1, 3020, 1, b);
      assert.equal(b.load32(4), 0xab000004, 'the worker\'s writes are on the medium');
      check.close();
    } finally {
      await worker.terminate();
      qp.close();
      ctrl.release(a);
      ctrl.release(b);
      a.free();
      b.free();
    }
  });
});

test('a reset while I/O is outstanding rejects every outstanding command, and I/O works after it', async () => {
  await withController(async (ctrl) => {
    await withQueue(ctrl, { interrupts: false }, 8 * 512, async (qp, buf) => {
      const pending = [0, 1, 2, 3].map((k) => qp.read(1, k, 1, buf, k * 512));
      ctrl.reset();
      for (const p of pending) await assert.rejects(p, { code: 'ECANCELED' });
      assert.equal(qp.outstanding, 0);
      await qp.read(1, 0, 1, buf);
      qp.writeSync(1, 5, 1, buf);
    });
  });
});

test('a command that times out (the controller disabled underneath) rejects, and the controller recovers', async () => {
  await withController(async (ctrl) => {
    await withQueue(ctrl, { interrupts: false }, 4096, async (qp, buf) => {
      ctrl.bar.write32(0x14, 0); // CC.EN = 0 behind the driver's back
      await assert.rejects(qp.read(1, 0, 1, buf), { code: 'ETIMEDOUT', message: /did not complete within 300 ms/ });
      await readOnceRecovered(qp, buf);
      assert.equal(ctrl.bar.read32(0x1c) & 1, 1, 'the controller is ready again');
    });
  }, { timeoutMs: 300 });
});

test('a command on a queue pair completed by interrupts times out too, and the controller recovers', async () => {
  await withController(async (ctrl) => {
    await withQueue(ctrl, { interrupts: true }, 4096, async (qp, buf) => {
      ctrl.bar.write32(0x14, 0); // CC.EN = 0: no completion, no interrupt
      await assert.rejects(qp.read(1, 0, 1, buf), { code: 'ETIMEDOUT' });
      await readOnceRecovered(qp, buf);
    });
  }, { timeoutMs: 300 });
});

test('doorbells of commands submitted in one turn are written once, after it', async () => {
  await withController(async (ctrl) => {
    await withQueue(ctrl, { size: 16, interrupts: false }, 8 * 512, async (qp, buf) => {
      const writes = [];
      const write32 = ctrl.bar.write32.bind(ctrl.bar);
      ctrl.bar.write32 = (offset, value) => {
        writes.push(offset);
        write32(offset, value);
      };
      try {
        const reads = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => qp.read(1, k, 1, buf, k * 512));
        assert.equal(writes.length, 0, 'nothing is written during the turn that submits');
        await Promise.all(reads);
        const sqDoorbell = 0x1000 + 2 * qp.qid * 4;
        assert.equal(writes.filter((o) => o === sqDoorbell).length, 1, 'one SQ tail write for the eight commands');
      } finally {
        delete ctrl.bar.write32;
      }
    });
  });
});

test('a doorbell that cannot be written (memory off) rejects the commands, and the unannounced ones never run', async () => {
  await withController(async (ctrl) => {
    await withQueue(ctrl, { interrupts: false }, 4096, async (qp, buf) => {
      const cmd = ctrl.device.config.command;
      buf.bytes.fill(0);
      qp.writeSync(1, 7, 1, buf);
      buf.bytes.fill(0x5a);
      const p = qp.write(1, 7, 1, buf);
      ctrl.device.config.write16(4, cmd & ~2); // before the turn ends: the flush finds the BAR off
      await assert.rejects(p, { code: 'ERR_VFIO_MEMORY_OFF' });
      assert.equal(qp.outstanding, 0);
      ctrl.device.config.write16(4, cmd);
      buf.bytes.fill(0x11);
      qp.writeSync(1, 3, 1, buf); // the next doorbell: it must not announce the dropped write
      qp.readSync(1, 7, 1, buf);
      assert.deepEqual([...new Set(buf.bytes.subarray(0, 512))], [0], 'the dropped write of 0x5a never ran');
      qp.readSync(1, 3, 1, buf);
      assert.equal(buf.bytes[511], 0x11);
    });
  });
});

test('read() and write() with a callback complete from poll(), make no promise, and throw on bad arguments', async () => {
  await withController(async (ctrl) => {
    await withQueue(ctrl, { size: 8, interrupts: false }, 4096, async (qp, buf) => {
      const results = [];
      buf.bytes.fill(0x3c, 0, 512);
      assert.equal(qp.write(1, 9, 1, buf, 0, (err) => results.push(['write', err])), undefined);
      while (qp.outstanding) qp.poll();
      buf.bytes.fill(0, 0, 512);
      qp.read(1, 9, 1, buf, 0, (err) => results.push(['read', err]));
      while (qp.outstanding) qp.poll();
      assert.deepEqual(results, [['write', null], ['read', null]]);
      assert.equal(buf.bytes[511], 0x3c);
      assert.throws(() => qp.read(1, 32768, 1, buf, 0, () => {}), { name: 'RangeError', message: /past the end/ });
      assert.throws(() => qp.read(1, 0, 1, buf, 0, 'nope'), { name: 'TypeError', message: /callback must be a function/ });
      assert.throws(() => qp.read(1, 0, 1, new Uint8Array(512), 0, () => {}), TypeError);
      assert.equal(qp.outstanding, 0);
    });
  });
});

test('a completion callback that throws is reported as an uncaught exception, and the queue goes on', async () => {
  await withController(async (ctrl) => {
    await withQueue(ctrl, { size: 8, interrupts: false }, 4096, async (qp, buf) => {
      const uncaught = [];
      const onUncaught = (err) => uncaught.push(err);
      process.prependListener('uncaughtException', onUncaught);
      const listeners = process.rawListeners('uncaughtException').filter((l) => l !== onUncaught);
      for (const l of listeners) process.off('uncaughtException', l);
      try {
        let second = null;
        qp.read(1, 0, 1, buf, 0, () => {
          throw new Error('a bug in the callback');
        });
        qp.read(1, 1, 1, buf, 512, (err) => {
          second = err;
        });
        while (qp.outstanding) qp.poll();
        assert.equal(second, null, 'the other completion was delivered');
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(uncaught.map((e) => e.message), ['a bug in the callback']);
        await qp.read(1, 2, 1, buf);
      } finally {
        process.off('uncaughtException', onUncaught);
        for (const l of listeners) process.on('uncaughtException', l);
      }
    });
  });
});
