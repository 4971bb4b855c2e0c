// A driver thread: a worker runs an NVMe I/O queue pair on memory and a BAR mapping shared by the
// main thread, which owns the device, brought the controller up and created the queues.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { DmaBuffer, MappedRegion } from 'vfio';
import { openBound } from './lab.mjs';

// NVMe 1.4: controller registers, doorbells (DSTRD 0 in the lab), queue entry sizes.
const REG = { CC: 0x14, CSTS: 0x1c, AQA: 0x24, ASQ: 0x28, ACQ: 0x30, DOORBELL: 0x1000 };
const SQE = 64;
const CQE = 16;
const DEPTH = 16;
/** Layout of the one shared buffer: admin SQ, admin CQ, I/O SQ, I/O CQ, write and read data. */
const AT = { asq: 0, acq: 4096, iosq: 8192, iocq: 12288, wdata: 16384, rdata: 20480 };

function waitFor(cond, what, ms = 10_000) {
  const end = Date.now() + ms;
  while (!cond()) if (Date.now() > end) throw new Error(`nvme: timed out waiting for ${what}`);
}

/** Submit one command on queue `q` ({ sq, cq, qid, tail, head, phase }) and poll its completion. */
function submit(buf, bar, iova, q, fill) {
  const base = q.sq + q.tail * SQE;
  buf.bytes.fill(0, base, base + SQE);
  fill((off, v) => buf.store32(base + off, v), (off, v) => buf.store64(base + off, v));
  q.tail = (q.tail + 1) % DEPTH;
  bar.write32(REG.DOORBELL + 8 * q.qid, q.tail);
  const entry = q.cq + q.head * CQE;
  waitFor(() => ((buf.load32(entry + 12) >>> 16) & 1) === q.phase, `completion on queue ${q.qid}`);
  const status = buf.load32(entry + 12) >>> 17;
  q.head = (q.head + 1) % DEPTH;
  if (q.head === 0) q.phase ^= 1;
  bar.write32(REG.DOORBELL + 8 * q.qid + 4, q.head);
  return status;
}

test('a worker drives an NVMe I/O queue pair through shared DMA memory and a shared BAR mapping', async () => {
  const nvme = openBound('nvme');
  const buf = DmaBuffer.alloc(24576);
  const bar = nvme.dev.region(0).map();
  let worker;
  try {
    nvme.dev.config.enableBusMaster();
    const iova = nvme.ioas.map(buf);
    const io = (off) => iova + BigInt(off);
    // Bring the controller up with an admin queue pair.
    bar.write32(REG.CC, 0);
    waitFor(() => (bar.read32(REG.CSTS) & 1) === 0, 'CSTS.RDY = 0');
    bar.write32(REG.AQA, ((DEPTH - 1) << 16) | (DEPTH - 1));
    bar.write64(REG.ASQ, io(AT.asq));
    bar.write64(REG.ACQ, io(AT.acq));
    bar.write32(REG.CC, (4 << 20) | (6 << 16) | 1); // IOCQES 16 B, IOSQES 64 B, EN
    waitFor(() => (bar.read32(REG.CSTS) & 1) === 1, 'CSTS.RDY = 1');
    const admin = { sq: AT.asq, cq: AT.acq, qid: 0, tail: 0, head: 0, phase: 1 };
    // Create I/O completion queue 1, then I/O submission queue 1 (physically contiguous).
    assert.equal(submit(buf, bar, iova, admin, (d32, d64) => {
      d32(0, 0x05); d64(24, io(AT.iocq)); d32(40, ((DEPTH - 1) << 16) | 1); d32(44, 1);
    }), 0, 'Create I/O CQ');
    assert.equal(submit(buf, bar, iova, admin, (d32, d64) => {
      d32(0, 0x01); d64(24, io(AT.iosq)); d32(40, ((DEPTH - 1) << 16) | 1); d32(44, (1 << 16) | 1);
    }), 0, 'Create I/O SQ');
    for (let i = 0; i < 512; i++) buf.bytes[AT.wdata + i] = (i * 13 + 7) & 0xff;

    // The worker owns queue pair 1: it writes LBA 0 from wdata, reads it back into rdata, and
    // compares, ringing the doorbells through its own view of the BAR.
    worker = new Worker(`
      const { DmaBuffer, MappedRegion } = require('vfio');
      const { parentPort, workerData: w } = require('node:worker_threads');
      const buf = DmaBuffer.fromShared(w.buf);
      const bar = MappedRegion.fromShared(w.bar);
      ${waitFor.toString()}
      ${submit.toString()}
      const [SQE, CQE, DEPTH, REG] = [${SQE}, ${CQE}, ${DEPTH}, ${JSON.stringify(REG)}];
      const q = { sq: ${AT.iosq}, cq: ${AT.iocq}, qid: 1, tail: 0, head: 0, phase: 1 };
      const rw = (opc, data) => submit(buf, bar, null, q, (d32, d64) => {
        d32(0, opc); d32(4, 1); d64(24, data); d32(40, 0); d32(44, 0); d32(48, 0); // nsid 1, LBA 0, 1 block
      });
      const wrote = rw(0x01, w.wdata);
      const read = rw(0x02, w.rdata);
      const same = Buffer.compare(buf.bytes.subarray(${AT.wdata}, ${AT.wdata} + 512), buf.bytes.subarray(${AT.rdata}, ${AT.rdata} + 512)) === 0;
      bar.close();
      buf.free();
      parentPort.postMessage({ wrote, read, same });`,
    { eval: true, execArgv: [], workerData: { buf: buf.share(), bar: bar.share(), wdata: io(AT.wdata), rdata: io(AT.rdata) } });
    const result = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.deepEqual(result, { wrote: 0, read: 0, same: true });
    assert.deepEqual([...buf.bytes.subarray(AT.rdata, AT.rdata + 4)], [7, 20, 33, 46], 'the main thread sees the data too');
    bar.write32(REG.CC, 0);
  } finally {
    await worker?.terminate();
    bar.close();
    nvme.close();
    buf.free();
  }
});

test('a worker\'s shared BAR mapping refuses access while the owner has the device\'s memory off', async () => {
  const nvme = openBound('nvme', { attach: false });
  const bar = nvme.dev.region(0).map();
  const worker = new Worker(`
    const { MappedRegion } = require('vfio');
    const { parentPort, workerData } = require('node:worker_threads');
    const bar = MappedRegion.fromShared(workerData);
    parentPort.on('message', () => {
      let out;
      try { out = bar.read32(0x08); } catch (e) { out = e.code; }
      parentPort.postMessage(out);
    });`, { eval: true, execArgv: [], workerData: bar.share() });
  const ask = () => new Promise((resolve) => { worker.once('message', resolve); worker.postMessage(0); });
  try {
    const version = await ask();
    assert.equal(version, bar.read32(0x08), 'the worker reads the controller version');
    const cmd = nvme.dev.config.command;
    nvme.dev.config.write16(4, cmd & ~2);
    assert.equal(await ask(), 'EIO', 'refused, not SIGBUS');
    nvme.dev.config.write16(4, cmd | 2);
    assert.equal(await ask(), version);
    bar.close();
    assert.throws(() => bar.share(), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => MappedRegion.fromShared({ vfioSharedMappedRegion: 0, size: 1, areas: [{ id: 1n, offset: 0, size: 1 }] }),
      { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => MappedRegion.fromShared({ vfioSharedMappedRegion: 0, areas: [{}] }), TypeError);
  } finally {
    await worker.terminate();
    bar.close();
    nvme.close();
  }
});
