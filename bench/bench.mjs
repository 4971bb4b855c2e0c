// Runs in the lab guest: the library's operations and the C programs', on the same devices in
// the same boot, several alternating runs each; prints medians side by side and writes them as JSON.
//   npm run bench            (builds the C programs, boots the lab, runs this)
//   BENCH_RUNS=N             runs per figure (default 5)
//   BENCH_ONLY=edu|nvme      one of the two sets
//   BENCH_NVME_SECONDS=S     length of one NVMe run (default 3)
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DmaBuffer, Iommufd, VfioDevice } from 'vfio';
import { NvmeController } from 'vfio/nvme';
import { createRequire } from 'node:module';
import { types } from 'node:util';
import { cInProcessRun, closeKoffi, koffiFloor, koffiRun, openKoffi } from './koffi-side.mjs';
import { EDU } from '../examples/build/edu.js';

const RUNS = Number(process.env.BENCH_RUNS || 5);
const ONLY = process.env.BENCH_ONLY || '';
const NVME_SECONDS = Number(process.env.BENCH_NVME_SECONDS || 3);
const here = path.dirname(fileURLToPath(import.meta.url));
const manifest = JSON.parse(fs.readFileSync(process.env.VFIO_LAB_MANIFEST, 'utf8'));
const edus = manifest.devices.filter((d) => d.kind === 'edu');
if (edus.length < 2) throw new Error('the bench needs two edu devices');
const nvme = manifest.devices.find((d) => d.kind === 'nvme');
if (!nvme) throw new Error('the bench needs the lab nvme device');


// The addon itself, read after the library has loaded it: the module's `native` starts as a lazy
// stand-in (a Proxy, half again the cost of a call through it), which a destructured binding keeps.
const nativeModule = createRequire(import.meta.url)('../dist/native.js');
const { hot, napiCalls } = nativeModule;
function addon() {
  const b = nativeModule.native;
  if (types.isProxy(b)) throw new Error('bench: the addon is not loaded yet (open a device first)');
  return b;
}

// c: the C program's bench for the row (default: the same key; null: none).
const BENCHES = [
  { key: 'floor', label: 'floor: the cheapest call into the addon (noop)', unit: 'calls/s', c: null },
  { key: 'syscall', label: 'floor + one syscall (getppid, from the addon)', unit: 'calls/s' },
  { key: 'floorhandle', label: 'floor + the handle check (noopHandle(device))', unit: 'calls/s', c: null },
  { key: 'getinfo', label: 'ioctl VFIO_DEVICE_GET_INFO (info())', unit: 'calls/s', sys: 1 },
  { key: 'getinfobare', label: 'GET_INFO with the handle check only (no buffer, no errno capture)', unit: 'calls/s', c: 'getinfo', sys: 1 },
  { key: 'regioninfo', label: 'ioctl VFIO_DEVICE_GET_REGION_INFO (regionInfo())', unit: 'calls/s', sys: 1 },
  { key: 'pread32', label: 'read32 through pread (Region)', unit: 'reads/s', sys: 1 },
  { key: 'mmio32', label: 'read32 through the BAR mmap (MappedRegion)', unit: 'reads/s' },
  { key: 'mmiow32', label: 'write32 through the BAR mmap (MappedRegion)', unit: 'writes/s' },
  { key: 'mmioblock', label: 'read32 x64 in one batch (MappedRegion.readInto)', unit: 'reads/s' },
  { key: 'map4k', label: 'IOAS map + unmap, 4 KiB', unit: 'pairs/s', sys: 2 },
  { key: 'map2m', label: 'IOAS map + unmap, 2 MiB', unit: 'pairs/s' },
  { key: 'irq', label: "interrupt round trip ('interrupt' event)", unit: 'trips/s' },
  { key: 'irqwait', label: 'interrupt round trip (await wait())', unit: 'trips/s', c: 'irq' },
  { key: 'irqsync', label: 'interrupt round trip (waitSync())', unit: 'trips/s', c: 'irq' },
  { key: 'dma', label: 'edu DMA RAM->dev->RAM 1 KiB + MSI', unit: 'trips/s' },
];

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const now = () => process.hrtime.bigint();
const perOp = (t0, n) => Number(now() - t0) / n;

/** The library side: one run of a bench, in ns per operation. */
async function jsRun(ctx, key) {
  const { dev, ioas, region, bar, irqs } = ctx;
  const native = addon();
  let n;
  let t0;
  let sink = 0;
  switch (key) {
    case 'floor':
      n = 200000;
      t0 = now();
      for (let i = 0; i < n; i++) native.noop();
      return perOp(t0, n);
    case 'syscall':
      n = 100000;
      t0 = now();
      for (let i = 0; i < n; i++) native.noopSyscall();
      return perOp(t0, n);
    case 'floorhandle': {
      const h = dev._handle('ioctl');
      n = 200000;
      t0 = now();
      for (let i = 0; i < n; i++) native.noopHandle(h);
      return perOp(t0, n);
    }
    case 'getinfo':
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += dev.info().numRegions;
      return perOp(t0, n);
    case 'getinfobare': {
      const h = dev._handle('ioctl');
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += native.deviceBareGetInfo(h);
      return perOp(t0, n);
    }
    case 'regioninfo':
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += Number(dev.regionInfo(0).size);
      return perOp(t0, n);
    case 'pread32':
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += region.read32(0);
      return perOp(t0, n);
    case 'mmio32':
      n = 200000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += bar.read32(0);
      return perOp(t0, n);
    case 'mmiow32':
      n = 50000;
      t0 = now();
      for (let i = 0; i < n; i++) bar.write32(EDU.LIVENESS, i);
      return perOp(t0, n);
    case 'mmioblock': {
      const out = new Uint32Array(64);
      n = 5000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += bar.readInto(0, out)[0];
      return perOp(t0, n * 64);
    }
    case 'map4k':
    case 'map2m': {
      const buf = key === 'map4k' ? ctx.buf4k : ctx.buf2m;
      n = key === 'map4k' ? 2000 : 500;
      t0 = now();
      for (let i = 0; i < n; i++) {
        ioas.map(buf, { iova: 0x200000n });
        ioas.unmap(0x200000n, buf.size);
      }
      return perOp(t0, n);
    }
    case 'irq': {
      n = 2000;
      let left = n;
      const done = new Promise((resolve) => {
        const onIrq = () => {
          bar.write32(EDU.IRQ_ACK, bar.read32(EDU.IRQ_STATUS));
          if (--left === 0) {
            irqs.off('interrupt', onIrq);
            resolve();
          } else {
            bar.write32(EDU.IRQ_RAISE, 1);
          }
        };
        irqs.on('interrupt', onIrq);
      });
      t0 = now();
      bar.write32(EDU.IRQ_RAISE, 1);
      await done;
      return perOp(t0, n);
    }
    case 'irqwait':
      n = 2000;
      t0 = now();
      for (let i = 0; i < n; i++) {
        const w = irqs.wait(0);
        bar.write32(EDU.IRQ_RAISE, 1);
        await w;
        bar.write32(EDU.IRQ_ACK, bar.read32(EDU.IRQ_STATUS));
      }
      return perOp(t0, n);
    case 'jsevent': { // plain JS, no device: a loop callback (setImmediate) calling a listener
      const { EventEmitter } = await import('node:events');
      const em = new EventEmitter();
      n = 2000;
      let left = n;
      const done = new Promise((resolve) => {
        em.on('x', () => (--left === 0 ? resolve() : setImmediate(() => em.emit('x'))));
      });
      t0 = now();
      setImmediate(() => em.emit('x'));
      await done;
      return perOp(t0, n);
    }
    case 'jsawait': { // the same loop callback resolving a promise that the loop awaits
      n = 2000;
      t0 = now();
      for (let i = 0; i < n; i++) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      return perOp(t0, n);
    }
    case 'irqsync':
      n = 2000;
      t0 = now();
      for (let i = 0; i < n; i++) {
        bar.write32(EDU.IRQ_RAISE, 1);
        irqs.waitSync(0);
        bar.write32(EDU.IRQ_ACK, bar.read32(EDU.IRQ_STATUS));
      }
      return perOp(t0, n);
    case 'dma': {
      n = 3;
      const buf = ctx.dmaBuf;
      for (let i = 0; i < 1024; i++) buf.bytes[i] = (i * 7 + 3) & 0xff;
      const dma = async (src, dst, toRam) => {
        const w = irqs.wait(0);
        bar.write64(EDU.DMA_SRC, src);
        bar.write64(EDU.DMA_DST, dst);
        bar.write64(EDU.DMA_COUNT, 1024n);
        bar.write64(EDU.DMA_CMD, BigInt(EDU.CMD_START | EDU.CMD_IRQ | (toRam ? EDU.CMD_TO_RAM : 0)));
        await w;
        bar.write32(EDU.IRQ_ACK, bar.read32(EDU.IRQ_STATUS));
      };
      t0 = now();
      for (let i = 0; i < n; i++) {
        await dma(0x100000n, BigInt(EDU.BUFFER), false);
        await dma(BigInt(EDU.BUFFER), 0x101000n, true);
      }
      const t = perOp(t0, n);
      if (Buffer.compare(buf.bytes.subarray(0, 1024), buf.bytes.subarray(4096, 5120)) !== 0) throw new Error('DMA copy differs');
      return t;
    }
    default:
      throw new Error(`unknown bench ${key} (${sink})`);
  }
}

/**
 * The addon call alone, without the TypeScript layer (its checks, state and bookkeeping), for the
 * control-path rows: library minus this is what lib/ adds, this minus C the crossing. null: none.
 */
function nativeRun(ctx, key) {
  const { dev, ioas, iommufd } = ctx;
  const native = addon();
  let n;
  let t0;
  let sink = 0;
  switch (key) {
    case 'getinfo': {
      const h = dev._handle('ioctl');
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += native.deviceGetInfoInto(h);
      return perOp(t0, n);
    }
    case 'regioninfo': {
      const h = dev._handle('ioctl');
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += hot.regionInfo(h, 0);
      return perOp(t0, n);
    }
    case 'pread32': {
      const h = dev._handle('pread');
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += hot.read32(h, 0);
      return perOp(t0, n);
    }
    case 'mmiow32': // the N-API call alone (what the library makes where the fast calls are not built)
    case 'mmiow32fast': { // the library's fast call alone (vfio_fast.node), when it is active
      if (key === 'mmiow32fast' && !nativeModule.fastCalls().active) return null;
      const h = nativeModule.native.mappingFromShared(ctx.bar.share().areas[0].id);
      try {
        n = 50000;
        if (key === 'mmiow32') {
          t0 = now();
          for (let i = 0; i < n; i++) napiCalls.write32(h, EDU.LIVENESS, i);
        } else {
          const k = native.handleKey(h);
          t0 = now();
          for (let i = 0; i < n; i++) hot.mmioWrite32(h, k, EDU.LIVENESS, i);
        }
        return perOp(t0, n);
      } finally {
        native.mappingClose(h);
      }
    }
    case 'drain': // an eventfd read with nothing pending (Interrupts.drain's syscall): N-API alone
    case 'drainfast': { // the same as the library's fast call, when it is active
      if (key === 'drainfast' && !nativeModule.fastCalls().active) return null;
      const w = (ctx.watcher ??= native.irqCreate(() => {}));
      const k = native.handleKey(w);
      n = 100000;
      t0 = now();
      if (key === 'drain') for (let i = 0; i < n; i++) sink += napiCalls.irqRead(w);
      else for (let i = 0; i < n; i++) sink += hot.irqRead(w, k);
      return perOp(t0, n);
    }
    case 'map4k': {
      const ih = iommufd._native();
      const b = ctx.buf4k._native();
      n = 2000;
      t0 = now();
      for (let i = 0; i < n; i++) {
        hot.ioasMap(ih, ioas.id, 7, b, 0, 4096, 0x200000n);
        sink += hot.ioasUnmap(ih, ioas.id, 0x200000n, 4096n);
      }
      return perOp(t0, n);
    }
    default:
      return sink === -1 ? 0 : null;
  }
}

function openJs(cdevPath) {
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(cdevPath);
  dev.bind(iommufd);
  const ioas = iommufd.allocIoas();
  dev.attach(ioas);
  dev.config.enableBusMaster();
  const ctx = {
    iommufd, dev, ioas,
    region: dev.region(0),
    bar: dev.region(0).map(),
    irqs: dev.enableIrq('msi'),
    buf4k: DmaBuffer.alloc(4096),
    buf2m: DmaBuffer.alloc(2 << 20),
    dmaBuf: DmaBuffer.alloc(8192),
  };
  ioas.map(ctx.dmaBuf, { iova: 0x100000n });
  return ctx;
}

function closeJs(ctx) {
  ctx.irqs.disable();
  if (ctx.watcher) addon().irqClose(ctx.watcher);
  ctx.dev.close();
  ctx.ioas.destroy();
  for (const b of [ctx.buf4k, ctx.buf2m, ctx.dmaBuf]) b.free();
  ctx.iommufd.close();
}

/**
 * The library side of the NVMe bench: bring-up through vfio/nvme, one polled queue pair, `qd`
 * 4 KiB reads at random LBAs in flight for `seconds`; returns IOPS. The hot loop a driver
 * writes: each slot awaits its read and issues the next; one loop spins on poll() until
 * something completes, then yields so that those continuations run.
 */
/** Run `fn({ qp, buf, blocks, span })` on a fresh controller, one polled queue pair and a buffer of `qd` 4 KiB slots. */
async function withNvmeQueue(qd, fn) {
  const ctrl = NvmeController.open(nvme.bdf);
  const buf = DmaBuffer.alloc(4096 * qd);
  try {
    const qp = ctrl.createQueuePair({ size: qd + 1, interrupts: false });
    const blocks = 4096 / ctrl.namespaces[0].blockSize;
    return await fn({ qp, buf, blocks, span: Number(ctrl.namespaces[0].blockCount) / blocks });
  } finally {
    ctrl.close();
    buf.free();
  }
}

function nvmeJs(qd, seconds) {
  return withNvmeQueue(qd, async ({ qp, buf, blocks, span }) => {
    let running = true;
    let ios = 0;
    const slot = async (k) => {
      while (running) {
        await qp.read(1, Math.floor(Math.random() * span) * blocks, blocks, buf, k * 4096);
        if (running) ios++;
      }
    };
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    let stop = t0;
    const slots = Array.from({ length: qd }, (_, k) => slot(k));
    // Spin on the CQ until something completes, then yield so the continuations resubmit.
    while (running) {
      let now = performance.now();
      while (qp.poll() === 0 && now < end) now = performance.now();
      await null;
      if (now >= end) {
        running = false;
        stop = now;
      }
    }
    while (qp.outstanding) {
      qp.poll();
      await null;
    }
    await Promise.all(slots);
    return ios / ((stop - t0) / 1000);
  });
}

/**
 * Where the library's time per I/O goes, piece by piece, with `batch` reads per turn (1: the QD1
 * pattern; 31: a QD32 batch): submitting (checks, SQE and PRPs, the promise, in an async task as
 * the bench's slots are), the doorbell flush (one SQ tail write), reaping (poll() over the batch,
 * resolving the promises), and resuming the awaiting tasks (with the CQ head write). The device
 * completes the batch during a 20 ms spin between submitting and reaping, so no step waits on it.
 */
async function nvmeBreakdown(batch, rounds) {
  const sum = { submit: 0, flush: 0, reap: 0, resume: 0 };
  await withNvmeQueue(batch, async ({ qp, buf, blocks }) => {
    for (let round = 0; round < rounds + 20; round++) {
      let done = 0;
      const t0 = performance.now();
      for (let k = 0; k < batch; k++) {
        (async () => {
          await qp.read(1, k * blocks, blocks, buf, k * 4096);
          done++;
        })();
      }
      const t1 = performance.now();
      await null; // the flush microtask runs here
      const t2 = performance.now();
      // Let the device finish without returning to the event loop, where the queue pair's own
      // poller (setImmediate, as it has no interrupts) would reap the batch first.
      for (const until = performance.now() + 20; performance.now() < until;);
      const t3 = performance.now();
      if (qp.poll() !== batch) throw new Error('the device did not complete the batch within 20 ms');
      const t4 = performance.now();
      while (done < batch) await null;
      const t5 = performance.now();
      if (round < 20) continue; // warm-up
      sum.submit += t1 - t0;
      sum.flush += t2 - t1;
      sum.reap += t4 - t3;
      sum.resume += t5 - t4;
    }
  });
  const us = (ms) => (ms * 1000) / (rounds * batch);
  return { batch, submitUs: us(sum.submit), flushUs: us(sum.flush), reapUs: us(sum.reap), resumeUs: us(sum.resume),
    totalUs: us(sum.submit + sum.flush + sum.reap + sum.resume) };
}

/**
 * The same workload with read()'s callback form: no promise per I/O. Each completion callback
 * issues the next read; the loop spins on poll(), which runs the callbacks, as SPDK's does.
 */
function nvmeJsCallback(qd, seconds) {
  return withNvmeQueue(qd, ({ qp, buf, blocks, span }) => {
    let running = true;
    let ios = 0;
    let failed = null;
    const issue = (k) => {
      const done = (err) => {
        if (err) failed = err;
        else if (running) {
          ios++;
          issue(k);
        }
      };
      qp.read(1, Math.floor(Math.random() * span) * blocks, blocks, buf, k * 4096, done);
    };
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    for (let k = 0; k < qd; k++) issue(k);
    let now = t0;
    while (now < end) {
      qp.poll();
      now = performance.now();
    }
    running = false;
    while (qp.outstanding) qp.poll();
    if (failed) throw failed;
    return ios / ((now - t0) / 1000);
  });
}

const NVME_BENCHES = [
  { key: 'nvme-qd1', label: 'NVMe 4 KiB random read, polled, QD1', qd: 1, run: nvmeJs },
  { key: 'nvme-qd32', label: 'NVMe 4 KiB random read, polled, QD32', qd: 32, run: nvmeJs },
  { key: 'nvme-qd1-cb', label: 'the same, QD1, read() with a callback', qd: 1, run: nvmeJsCallback },
  { key: 'nvme-qd32-cb', label: 'the same, QD32, read() with a callback', qd: 32, run: nvmeJsCallback },
];

// The V8 fast API call evaluation: bench/fast-call.cc, built by run.mjs when V8's
// v8-fast-api-calls.h for this V8 is at hand. Each shape three ways: the addon's N-API call, a V8
// FunctionTemplate without a fast path, and the same with one (a CFunction).
const FAST_SHAPES = [
  { key: 'floor', label: 'the cheapest call (noop)', napi: 'floor' },
  { key: 'syscall', label: 'one syscall (getppid)', napi: 'syscall' },
  { key: 'mmiow32', label: 'MMIO write32, edu BAR (lock, checks, barrier, store)', napi: 'mmiow32' },
];
const FAST_FILE = path.join(here, 'out', 'fast-call.node');
const FAST_SKIPPED = path.join(here, 'out', 'fast-call.skipped');

function openFast(ctx) {
  if (!fs.existsSync(FAST_FILE)) return null;
  const { Window } = createRequire(import.meta.url)(FAST_FILE);
  const h = addon().mappingFromShared(ctx.bar.share().areas[0].id);
  // The ArrayBuffer stays referenced until mappingClose detaches it: collected earlier, its view
  // would be counted until its finalizer ran, after the device's close, and the BAR stay mapped.
  const ab = addon().mappingArrayBuffer(h);
  return { win: new Window(ab), h, ab };
}

/** One run of a shape through fast-call.node, `fast` or not: ns per call and the slow callbacks taken. */
function fastRun(f, key, fast) {
  const { win } = f;
  const n = key === 'syscall' ? 100000 : key === 'mmiow32' ? 50000 : 200000;
  const slow0 = win.slowCalls();
  const t0 = now();
  // One loop per method, so each call site sees one function (as the library's own do).
  if (key === 'floor' && fast) for (let i = 0; i < n; i++) win.fastNoop();
  else if (key === 'floor') for (let i = 0; i < n; i++) win.slowNoop();
  else if (key === 'syscall' && fast) for (let i = 0; i < n; i++) win.fastGetppid();
  else if (key === 'syscall') for (let i = 0; i < n; i++) win.slowGetppid();
  else if (fast) for (let i = 0; i < n; i++) win.fastWrite32(EDU.LIVENESS, i);
  else for (let i = 0; i < n; i++) win.slowWrite32(EDU.LIVENESS, i);
  const ns = perOp(t0, n);
  return { ns, slowShare: (win.slowCalls() - slow0) / n };
}

function cProgram(name) {
  const file = path.join(here, 'out', name);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run the benchmarks with npm run bench`);
  return file;
}

const cpus = fs.readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1];
const fmtRate = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
const fmtTime = (ns) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(1)} ms` : `${(ns / 1000).toFixed(2)} us`);
function printTable(table) {
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) console.log(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
}
const result = { date: new Date().toISOString(), kernel: manifest.kernel, node: process.version, runs: RUNS, rows: [], raw: {} };
console.log(`\nmedian of ${RUNS} alternating runs, guest kernel ${manifest.kernel}, node ${process.version}, CPUs ${cpus}`);

// C on the second edu, the library on the first: each side owns its device for the whole run.
// The runs alternate (C, library, C, library, ...) so that drift in the emulator hits both.
const cKey = (b) => (b.c === undefined ? b.key : b.c);
let floorNs = 0;
if (ONLY !== 'nvme') {
  const cBinary = cProgram('vfio-bench');
  const cKeys = [...new Set(BENCHES.map(cKey).filter((k) => k !== null))];
  const cTimes = Object.fromEntries(cKeys.map((k) => [k, []]));
  const cInTimes = Object.fromEntries(cKeys.map((k) => [k, []]));
  const cPerCallTimes = {};
  const jsTimes = Object.fromEntries(BENCHES.map((b) => [b.key, []]));
  const koffiTimes = Object.fromEntries(BENCHES.map((b) => [b.key, []]));
  const nativeTimes = Object.fromEntries(BENCHES.map((b) => [b.key, []]));
  const fastTimes = Object.fromEntries([...FAST_SHAPES.flatMap((s) => [[`v8 ${s.key}`, []], [`fast ${s.key}`, []]]),
    ['library mmiow32', []], ['napi drain', []], ['library drain', []]]);
  const fastSlowShare = {};
  const jsLoopTimes = {};
  const ctx = openJs(edus[0].cdevPath);
  const fastCtx = openFast(ctx);
  try {
    // Warm up: V8 tiers code up only after many calls, which under TCG takes a few rounds.
    for (let w = 0; w < 3; w++) {
      for (const b of BENCHES) {
        await jsRun(ctx, b.key);
        nativeRun(ctx, b.key);
      }
      for (const sh of fastCtx ? FAST_SHAPES : []) for (const fast of [false, true]) fastRun(fastCtx, sh.key, fast);
      for (const k of ['mmiow32fast', 'drain', 'drainfast']) nativeRun(ctx, k);
      for (const k of ['jsevent', 'jsawait']) await jsRun(ctx, k);
    }
    for (let r = 0; r < RUNS; r++) {
      process.stderr.write(`bench: edu round ${r + 1} of ${RUNS}\n`);
      const cRun = spawnSync(cBinary, [edus[1].cdevPath, '1', ...cKeys], { encoding: 'utf8', timeout: 300_000 });
      if (cRun.status !== 0) throw new Error(`vfio-bench failed: ${cRun.stderr || cRun.error}`);
      for (const [k, v] of Object.entries(JSON.parse(cRun.stdout))) cTimes[k].push(...v);
      // koffi on the same edu as C, once the C program has let it go.
      const kctx = openKoffi(edus[1].cdevPath);
      try {
        for (const b of BENCHES) {
          const t = b.key === 'floor' ? koffiFloor() : koffiRun(kctx, cKey(b) ?? b.key);
          if (t !== null) koffiTimes[b.key].push(t);
        }
      } finally {
        closeKoffi(kctx);
      }
      // The C loops again, inside this process, on the same edu.
      const inProcess = cInProcessRun(cProgram('vfio-bench.so'), edus[1].cdevPath, cKeys);
      for (const [k, v] of Object.entries(inProcess.loops)) cInTimes[k].push(v);
      for (const [k, v] of Object.entries(inProcess.perCall)) (cPerCallTimes[k] ??= []).push(v);
      for (const b of BENCHES) jsTimes[b.key].push(await jsRun(ctx, b.key));
      for (const b of BENCHES) {
        const t = nativeRun(ctx, b.key);
        if (t !== null) nativeTimes[b.key].push(t);
      }
      for (const sh of fastCtx ? FAST_SHAPES : []) {
        for (const fast of [false, true]) {
          const { ns, slowShare } = fastRun(fastCtx, sh.key, fast);
          fastTimes[`${fast ? 'fast' : 'v8'} ${sh.key}`].push(ns);
          if (fast) fastSlowShare[sh.key] = Math.max(fastSlowShare[sh.key] ?? 0, slowShare);
        }
      }
      for (const k of ['jsevent', 'jsawait']) (jsLoopTimes[k] ??= []).push(await jsRun(ctx, k));
      for (const [k, into] of [['mmiow32fast', 'library mmiow32'], ['drain', 'napi drain'], ['drainfast', 'library drain']]) {
        const t = nativeRun(ctx, k);
        if (t !== null) fastTimes[into].push(t);
      }
    }
  } finally {
    if (fastCtx) {
      fastCtx.win.close();
      addon().mappingClose(fastCtx.h);
    }
    closeJs(ctx);
  }
  floorNs = median(jsTimes.floor);
  // What one syscall costs this process beyond what it costs the C program (emulated TLB and
  // cache effects of a large process, under TCG), after the crossing itself.
  const syscallGapNs = Math.max(0, median(jsTimes.syscall) - floorNs - median(cTimes.syscall));
  const rows = BENCHES.map((b) => {
    const js = median(jsTimes[b.key]);
    const ck = cKey(b);
    const c = ck === null ? null : median(cTimes[ck]);
    const cInProcessNs = ck === null ? null : median(cInTimes[ck]);
    // The least of the runs, not the median: koffi's call through a loop is bimodal here (in some
    // rounds 1-2 us dearer than the floor taken out), and the least is the conservative figure
    // for what C's op costs per call (a lower C makes the library's ratio to it worse, not better).
    const cPerCallNs = cPerCallTimes[b.key] ? Math.min(...cPerCallTimes[b.key]) : null;
    const koffiNs = koffiTimes[b.key].length ? median(koffiTimes[b.key]) : null;
    const nativeNs = nativeTimes[b.key].length ? median(nativeTimes[b.key]) : null;
    return { key: b.key, label: b.label, unit: b.unit, libNs: js, cNs: c, cInProcessNs, cPerCallNs, koffiNs, floorNs, nativeNs,
      libPerSec: 1e9 / js, cPerSec: c === null ? null : 1e9 / c, ratio: c === null ? null : js / c,
      ratioFloor: js / ((c ?? 0) + floorNs),
      ...(b.sys ? { syscallGapNs, ratioSyscallFloor: js / ((c ?? 0) + floorNs + b.sys * syscallGapNs) } : {}) };
  });
  console.log('\nedu and core calls (time per operation; ratios: lower is better; floor = the noop row)\n');
  const dash = (x, f) => (x === null ? '-' : f(x));
  printTable([
    ['benchmark', 'library', '', 'addon call alone', 'C', 'C in this process', 'C, one op per call from JS', 'koffi',
      'library/C', 'library/(C+floor)', '/(C+floor+syscall gap)'],
    ...rows.map((r) => [r.label, `${fmtRate(r.libPerSec)} ${r.unit}`, fmtTime(r.libNs), dash(r.nativeNs, fmtTime), dash(r.cNs, fmtTime),
      dash(r.cInProcessNs, fmtTime), dash(r.cPerCallNs, fmtTime),
      dash(r.koffiNs, fmtTime), dash(r.ratio, (x) => `${x.toFixed(2)}x`), `${r.ratioFloor.toFixed(2)}x`,
      dash(r.ratioSyscallFloor ?? null, (x) => `${x.toFixed(2)}x`)]),
  ]);
  console.log(`\nsyscall gap: one syscall costs this process ${fmtTime(syscallGapNs)} more than it costs the C program, beyond the crossing`);

  // Where a control-path call's time goes: crossings into the addon (the floor row), handle checks
  // (the handle-check row less the floor), the same syscalls made by C one op per call from a JS
  // loop (what the emulated CPU makes a syscall cost when JS runs between them: C pays it too),
  // and the rest, which is the library's own work (arguments, results, the TypeScript layer).
  const handleNs = median(jsTimes.floorhandle) - floorNs;
  const SHAPES = { getinfo: [1, 1], regioninfo: [1, 1], pread32: [1, 1], map4k: [2, 3] }; // [crossings, handle checks]
  const split = Object.entries(SHAPES).map(([key, [crossings, handles]]) => {
    const r = rows.find((x) => x.key === key);
    const rest = r.libNs - crossings * floorNs - handles * handleNs - r.cPerCallNs;
    r.breakdown = { crossings, handles, crossingNs: crossings * floorNs, handleNs: handles * handleNs, cPerCallNs: r.cPerCallNs,
      restNs: rest, addonRestNs: r.nativeNs === null ? null : r.nativeNs - crossings * floorNs - handles * handleNs - r.cPerCallNs,
      ratioPerCall: r.libNs / (r.cPerCallNs + crossings * floorNs) };
    return r;
  });
  console.log('\nwhere the control-path time goes (per operation)\n');
  printTable([
    ['call', 'library', 'crossings', 'handle checks', 'C, one op per call from JS', 'the rest', 'of it in the addon',
      'library/(C per call + crossings)'],
    ...split.map((r) => [r.key, fmtTime(r.libNs), `${r.breakdown.crossings} x ${fmtTime(floorNs)}`,
      `${r.breakdown.handles} x ${fmtTime(handleNs)}`, fmtTime(r.cPerCallNs), fmtTime(r.breakdown.restNs),
      dash(r.breakdown.addonRestNs, fmtTime), `${r.breakdown.ratioPerCall.toFixed(2)}x`]),
  ]);
  // await wait() against the 'interrupt' event, beside the same two shapes in plain JS (a loop
  // callback calling a listener, or resolving a promise the loop awaits): what the promise costs
  // by itself here, which wait() cannot avoid.
  {
    const ev = median(jsTimes.irq);
    const aw = median(jsTimes.irqwait);
    const jsEv = median(jsLoopTimes.jsevent);
    const jsAw = median(jsLoopTimes.jsawait);
    result.awaitSplit = { eventNs: ev, awaitNs: aw, jsEventNs: jsEv, jsAwaitNs: jsAw, libraryExtraNs: aw - ev, promiseExtraNs: jsAw - jsEv };
    console.log('\nawait wait() against the interrupt event (per round trip)\n');
    printTable([
      ['', "'interrupt' event", 'await', 'await - event', 'await / event'],
      ['the library (edu raise + MSI)', fmtTime(ev), fmtTime(aw), fmtTime(aw - ev), `${(aw / ev).toFixed(2)}x`],
      ['plain JS (setImmediate, no device)', fmtTime(jsEv), fmtTime(jsAw), fmtTime(jsAw - jsEv), `${(jsAw / jsEv).toFixed(2)}x`],
    ]);
  }

  // V8 fast API calls against the addon's N-API calls, shape by shape.
  if (fastCtx) {
    result.fastCalls = FAST_SHAPES.map((sh) => {
      const napiNs = sh.key === 'mmiow32' ? median(nativeTimes.mmiow32) : median(jsTimes[sh.napi]);
      const fastNs = median(fastTimes[`fast ${sh.key}`]);
      const lib = sh.key === 'mmiow32' && fastTimes['library mmiow32'].length ? median(fastTimes['library mmiow32']) : null;
      return { key: sh.key, label: sh.label, libNs: median(jsTimes[sh.napi]), napiNs, v8Ns: median(fastTimes[`v8 ${sh.key}`]), fastNs,
        cut: napiNs / fastNs, slowShare: fastSlowShare[sh.key], libraryFastNs: lib, libraryCut: lib === null ? null : napiNs / lib };
    });
    if (fastTimes['library drain'].length) {
      const napiNs = median(fastTimes['napi drain']);
      const lib = median(fastTimes['library drain']);
      result.fastCalls.push({ key: 'drain', label: 'eventfd read, none pending (Interrupts.drain)', libNs: lib, napiNs, v8Ns: null,
        fastNs: null, cut: null, slowShare: null, libraryFastNs: lib, libraryCut: napiNs / lib });
    }
    const status = nativeModule.fastCalls();
    console.log(`\nV8 fast API calls against the addon's N-API calls (per call; the library's own: ${status.active ? 'active' : `off: ${status.why}`})\n`);
    printTable([
      ['shape', 'library', 'N-API call alone', 'V8 call, no fast path', 'V8 fast call (fast-call.cc)', 'N-API / fast',
        'fast calls that fell back', "the library's fast call (vfio_fast.node)", 'N-API / it'],
      ...result.fastCalls.map((r) => [r.label, fmtTime(r.libNs), fmtTime(r.napiNs), dash(r.v8Ns, fmtTime), dash(r.fastNs, fmtTime),
        dash(r.cut, (x) => `${x.toFixed(2)}x`), dash(r.slowShare, (x) => `${(100 * x).toFixed(2)}%`), dash(r.libraryFastNs, fmtTime),
        dash(r.libraryCut, (x) => `${x.toFixed(2)}x`)]),
    ]);
  } else {
    const why = fs.existsSync(FAST_SKIPPED) ? fs.readFileSync(FAST_SKIPPED, 'utf8').trim() : `${FAST_FILE} is missing`;
    result.fastCalls = { notMeasured: why };
    console.log(`\nV8 fast API calls: not measured: ${why}`);
  }
  result.rows.push(...rows);
  result.raw.lib = jsTimes;
  result.raw.c = cTimes;
  result.raw.cInProcess = cInTimes;
  result.raw.cPerCall = cPerCallTimes;
  result.raw.koffi = koffiTimes;
  result.raw.native = nativeTimes;
  result.raw.fastCalls = fastTimes;
  result.raw.jsLoops = jsLoopTimes;
}

// NVMe: one controller, so the sides take turns on it (C, library, C, library, ...), each run
// a full bring-up, the workload, and a normal shutdown.
if (ONLY !== 'edu') {
  const cBinary = cProgram('nvme-bench');
  const cIops = Object.fromEntries(NVME_BENCHES.map((b) => [b.key, []]));
  const jsIops = Object.fromEntries(NVME_BENCHES.map((b) => [b.key, []]));
  for (const b of NVME_BENCHES) await b.run(b.qd, 2); // warm up (JIT)
  for (let r = 0; r < RUNS; r++) {
    process.stderr.write(`bench: nvme round ${r + 1} of ${RUNS}\n`);
    for (const b of NVME_BENCHES) {
      const cRun = spawnSync(cBinary, [nvme.cdevPath, String(b.qd), String(NVME_SECONDS)], { encoding: 'utf8', timeout: 120_000 });
      if (cRun.status !== 0) throw new Error(`nvme-bench failed: ${cRun.stderr || cRun.error}`);
      cIops[b.key].push(JSON.parse(cRun.stdout).iops);
      jsIops[b.key].push(await b.run(b.qd, NVME_SECONDS));
    }
  }
  const rows = NVME_BENCHES.map((b) => {
    const lib = median(jsIops[b.key]);
    const c = median(cIops[b.key]);
    return { key: b.key, label: b.label, unit: 'IOPS', libNs: 1e9 / lib, cNs: 1e9 / c, koffiNs: null, floorNs,
      libPerSec: lib, cPerSec: c, ratio: lib / c, ratioFloor: (1e9 / lib) / (1e9 / c + floorNs) };
  });
  console.log(`\nvfio/nvme against a minimal C driver (${NVME_SECONDS} s per run; library/C: IOPS ratio, higher is better)\n`);
  printTable([
    ['benchmark', 'vfio/nvme', '', 'C', '', 'library/C'],
    ...rows.map((r) => [r.label, `${fmtRate(r.libPerSec)} IOPS`, fmtTime(r.libNs), `${fmtRate(r.cPerSec)} IOPS`, fmtTime(r.cNs), r.ratio.toFixed(2)]),
  ]);
  result.rows.push(...rows);
  result.raw.nvmeLib = jsIops;
  result.raw.nvmeC = cIops;

  const parts = [await nvmeBreakdown(31, 60)];
  console.log('\nvfio/nvme: the library\'s own time per I/O, piece by piece (device time excluded)\n');
  const f = (x) => `${x.toFixed(2)} us`;
  printTable([
    ['reads per turn', 'submit', 'doorbell flush', 'reap (poll)', 'resume + CQ doorbell', 'total per I/O', 'QD32 gap to C per I/O'],
    ...parts.map((p) => [String(p.batch), f(p.submitUs), f(p.flushUs), f(p.reapUs), f(p.resumeUs), f(p.totalUs),
      f((rows[1].libNs - rows[1].cNs) / 1000)]),
  ]);
  result.nvmeBreakdown = parts;
}

if (process.env.VFIO_LAB_OUT) fs.writeFileSync(path.join(process.env.VFIO_LAB_OUT, 'bench.json'), `${JSON.stringify(result, null, 2)}\n`);
