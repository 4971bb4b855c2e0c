// Runs in the lab guest: the library's operations and the C program's, on the same edu device
// in the same boot, several runs each; prints medians side by side and writes them as JSON.
//   npm run bench            (builds the C program, boots the lab, runs this)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DmaBuffer, Iommufd, VfioDevice } from 'vfio';
import { EDU } from '../examples/build/edu.js';

const RUNS = Number(process.env.BENCH_RUNS || 5);
const here = path.dirname(fileURLToPath(import.meta.url));
const manifest = JSON.parse(fs.readFileSync(process.env.VFIO_LAB_MANIFEST, 'utf8'));
const edus = manifest.devices.filter((d) => d.kind === 'edu');
if (edus.length < 2) throw new Error('the bench needs two edu devices');


const BENCHES = [
  { key: 'getinfo', label: 'ioctl VFIO_DEVICE_GET_INFO (info())', unit: 'calls/s' },
  { key: 'pread32', label: 'read32 through pread (Region)', unit: 'reads/s' },
  { key: 'mmio32', label: 'read32 through the BAR mmap (MappedRegion)', unit: 'reads/s' },
  { key: 'mmioblock', label: 'read32 x64 in one batch (MappedRegion.readInto)', unit: 'reads/s' },
  { key: 'map4k', label: 'IOAS map + unmap, 4 KiB', unit: 'pairs/s' },
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
  let n;
  let t0;
  let sink = 0;
  switch (key) {
    case 'getinfo':
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += dev.info().numRegions;
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
  ctx.dev.close();
  ctx.ioas.destroy();
  for (const b of [ctx.buf4k, ctx.buf2m, ctx.dmaBuf]) b.free();
  ctx.iommufd.close();
}

const cBinary = path.join(here, 'out', 'vfio-bench');
const cpus = fs.readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1];
if (!fs.existsSync(cBinary)) throw new Error(`${cBinary} is missing: run the benchmarks with npm run bench`);

// C on the second edu, the library on the first: each side owns its device for the whole run.
// The runs alternate (C, library, C, library, ...) so that drift in the emulator hits both.
const cKeys = [...new Set(BENCHES.map((b) => b.c ?? b.key))];
const cTimes = Object.fromEntries(cKeys.map((k) => [k, []]));
const jsTimes = Object.fromEntries(BENCHES.map((b) => [b.key, []]));
const ctx = openJs(edus[0].cdevPath);
try {
  for (const b of BENCHES) await jsRun(ctx, b.key); // warm up (JIT)
  for (let r = 0; r < RUNS; r++) {
    process.stderr.write(`bench: round ${r + 1} of ${RUNS}\n`);
    const cRun = spawnSync(cBinary, [edus[1].cdevPath, '1', ...cKeys], { encoding: 'utf8', timeout: 300_000 });
    if (cRun.status !== 0) throw new Error(`vfio-bench failed: ${cRun.stderr || cRun.error}`);
    for (const [k, v] of Object.entries(JSON.parse(cRun.stdout))) cTimes[k].push(...v);
    for (const b of BENCHES) jsTimes[b.key].push(await jsRun(ctx, b.key));
  }
} finally {
  closeJs(ctx);
}

const rows = BENCHES.map((b) => {
  const js = median(jsTimes[b.key]);
  const c = median(cTimes[b.c ?? b.key]);
  return { key: b.key, label: b.label, unit: b.unit, libNs: js, cNs: c, libPerSec: 1e9 / js, cPerSec: 1e9 / c, ratio: js / c };
});

const fmtRate = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
const fmtTime = (ns) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(1)} ms` : `${(ns / 1000).toFixed(2)} us`);
const table = [
  ['benchmark', 'library', '', 'C', '', 'library/C'],
  ...rows.map((r) => [r.label, `${fmtRate(r.libPerSec)} ${r.unit}`, fmtTime(r.libNs), `${fmtRate(r.cPerSec)} ${r.unit}`, fmtTime(r.cNs), `${r.ratio.toFixed(2)}x`]),
];
const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
console.log(`\nmedian of ${RUNS} alternating runs, guest kernel ${manifest.kernel}, node ${process.version}, CPUs ${cpus}\n`);
for (const row of table) console.log(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));

const result = { date: new Date().toISOString(), kernel: manifest.kernel, node: process.version, runs: RUNS, rows, raw: { lib: jsTimes, c: cTimes } };
if (process.env.VFIO_LAB_OUT) fs.writeFileSync(path.join(process.env.VFIO_LAB_OUT, 'bench.json'), `${JSON.stringify(result, null, 2)}\n`);
