// tools/testing/selftests/vfio/vfio_pci_device_init_perf_test.c (Linux 7.3) through the library:
// every lab PCI device of the default kinds initialised at once, one thread (worker) each, all
// on one iommufd and IOAS, timed as upstream prints it (wall, min, max, avg). Upstream also runs
// the four container modes, where the threads share one container: a VfioContainer belongs to
// the thread that opened it (the kernel object cannot be reopened from its fd, which would make
// a new container), so those variants are not expressible.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Iommufd } from 'vfio';
import { devicesOf } from '../lab.mjs';
import { IOMMU_MODES, notExpressible } from './modes.mjs';

const FILE = 'vfio_pci_device_init_perf_test';
for (const mode of IOMMU_MODES.filter((m) => m !== 'iommufd')) {
  notExpressible(FILE, `${mode}.init`, 'its threads share one container, and a VfioContainer belongs to one thread');
}

// upstream's vfio_pci_device_init(): open the cdev, bind, attach to the shared IOAS, read the
// device and region info and the MSI and MSI-X IRQ info, and mmap every mmappable BAR; then,
// after the barrier, clean up.
const THREAD_MAIN = `
  const { workerData, parentPort } = require('node:worker_threads');
  const { Iommufd, VfioDevice } = require('vfio');
  const { iommufdFd, ioasId, cdevPath, barrier, count } = workerData;
  const wait = () => {
    const arrived = Atomics.add(barrier, 0, 1) + 1;
    const generation = Math.floor((arrived - 1) / count);
    if (arrived % count === 0) { Atomics.add(barrier, 1, 1); Atomics.notify(barrier, 1); }
    else {
      const until = Date.now() + 30000;
      while (Atomics.load(barrier, 1) <= generation) {
        if (Date.now() > until) throw new Error('barrier: another thread never arrived');
        Atomics.wait(barrier, 1, generation, 100);
      }
    }
  };
  const iommufd = Iommufd.fromFd(iommufdFd, { own: false });
  wait();
  const start = process.hrtime.bigint();
  const dev = VfioDevice.open(cdevPath);
  dev.bind(iommufd);
  dev.attach(ioasId);
  const info = dev.info();
  const bars = [];
  for (let i = 0; i < Math.min(info.numRegions, 6); i++) {
    const r = dev.regionInfo(i);
    if (r.mmappable && r.size > 0) bars.push(dev.region(i).map());
  }
  for (const index of [1, 2]) dev.irqInfo(index); // MSI and MSI-X, as upstream's init reads
  const end = process.hrtime.bigint();
  wait();
  for (const b of bars) b.close();
  dev.close();
  parentPort.postMessage({ start, end, bars: bars.length });`;

test('vfio_pci_device_init_perf_test.iommufd.init', async () => {
  const devices = [...devicesOf('edu'), ...devicesOf('nvme')];
  const iommufd = Iommufd.open();
  const ioas = iommufd.allocIoas();
  const barrier = new Int32Array(new SharedArrayBuffer(8));
  try {
    const workers = [];
    const results = await Promise.all(devices.map((d) => new Promise((resolve, reject) => {
      const w = new Worker(THREAD_MAIN, { eval: true, workerData: { iommufdFd: iommufd.fd, ioasId: ioas.id,
        cdevPath: d.cdevPath, barrier, count: devices.length } });
      workers.push(w);
      w.once('message', resolve);
      w.once('error', reject);
    }))).catch(async (err) => {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    });
    const times = results.map((r) => Number(r.end - r.start));
    const wall = Number(results.reduce((m, r) => (r.end > m ? r.end : m), 0n) -
      results.reduce((m, r) => (r.start < m ? r.start : m), results[0].start));
    const s = (ns) => `${(ns / 1e9).toFixed(9)}s`;
    process.stdout.write(`# ${devices.length} devices: wall ${s(wall)}, min ${s(Math.min(...times))}, ` +
      `max ${s(Math.max(...times))}, avg ${s(times.reduce((a, b) => a + b, 0) / times.length)}\n`);
    assert.equal(results.length, devices.length);
    for (const r of results) assert.ok(r.bars > 0, 'each device mapped its BARs');
  } finally {
    iommufd.close();
  }
});
