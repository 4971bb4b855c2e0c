// tools/testing/selftests/vfio/vfio_pci_driver_test.c (Linux 7.3) through the library, in all
// five IOMMU modes. Upstream runs it on devices it has a test driver for (Intel DSA and IOAT, igb,
// nv_falcon): each implements init, remove, memcpy_start/memcpy_wait and send_msi. The lab has
// none of them, so this file brings that driver for the lab's edu, written on the library's API:
// a memcpy is edu DMA from RAM into its 4 KiB buffer and back out to RAM, chunk by chunk (below
// 4096 bytes: QEMU 7.2 aborts on exactly 4096); send_msi is a write to its interrupt-raise
// register. Two changes of scale, both inside upstream's own formulas: edu's DMA reaches only
// 28-bit IOVAs and completes each transfer on a 100 ms timer, so the memcpy region is 8 KiB
// instead of 1 GiB (upstream's size = min(4 x max_memcpy_size, region / 2) is then 2 chunks) and
// the storm is max_memcpy_count = 4 copies instead of up to 250 GiB.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DmaBuffer } from 'vfio';
import { EDU, waitDmaIdle } from '../edu.mjs';
import { deviceOf } from '../lab.mjs';
import { IOMMU_MODES, iovaFor, withMode } from './modes.mjs';

const edu = deviceOf('edu');
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MASTER = 0x4;

/** upstream's struct vfio_pci_driver for edu: its ops and limits. */
class EduDriver {
  /** Bytes one memcpy_start chunk copies (one DMA in, one out). */
  maxMemcpySize = 2048;
  /** Copies one memcpy_start may queue. */
  maxMemcpyCount = 4;
  /** The MSI vector the driver signals on. */
  msi = 0;

  constructor(dev) {
    this.dev = dev;
    this.bar = dev.region(0).map();
    this.irqs = null;
    this.pending = null;
  }

  init() {
    this.dev.config.write16(PCI_COMMAND, this.dev.config.read16(PCI_COMMAND) | PCI_COMMAND_MASTER);
    this.irqs = this.dev.enableIrq('msi');
  }

  remove() {
    this.irqs?.disable();
    this.irqs = null;
    this.dev.config.write16(PCI_COMMAND, this.dev.config.read16(PCI_COMMAND) & ~PCI_COMMAND_MASTER);
  }

  /** Queue `count` copies of `size` bytes (at most maxMemcpySize) from src to dst. */
  memcpyStart(src, dst, size, count) {
    assert.ok(size <= this.maxMemcpySize && count <= this.maxMemcpyCount);
    this.pending = { src, dst, size, count };
  }

  /** Run what memcpyStart queued: 0 on success (edu reports no DMA errors, as upstream allows). */
  memcpyWait() {
    const { src, dst, size, count } = this.pending;
    this.pending = null;
    for (let i = 0; i < count; i++) {
      this.#dma(src, EDU.BUFFER, size, false);
      this.#dma(EDU.BUFFER, dst, size, true);
    }
    return 0;
  }

  #dma(from, to, count, toRam) {
    this.bar.write64(EDU.DMA_SRC, BigInt(from));
    this.bar.write64(EDU.DMA_DST, BigInt(to));
    this.bar.write64(EDU.DMA_COUNT, BigInt(count));
    this.bar.write64(EDU.DMA_CMD, BigInt(EDU.CMD_START | (toRam ? EDU.CMD_TO_RAM : 0)));
    waitDmaIdle(this.bar);
  }

  sendMsi() {
    this.bar.write32(EDU.IRQ_RAISE, 1);
  }

  /** upstream's vfio_pci_driver_memcpy: chunks of maxMemcpySize, each started and waited for. */
  memcpy(src, dst, size) {
    for (let done = 0; done < size; done += this.maxMemcpySize) {
      const n = Math.min(this.maxMemcpySize, size - done);
      this.memcpyStart(src + BigInt(done), dst + BigInt(done), n, 1);
      const r = this.memcpyWait();
      if (r) return r;
    }
    return 0;
  }

  close() {
    if (this.irqs) this.remove();
    if (this.bar.read32(EDU.IRQ_STATUS)) this.bar.write32(EDU.IRQ_ACK, this.bar.read32(EDU.IRQ_STATUS));
    this.bar.close();
  }
}

const MEMCPY_REGION = 8192;
const DRIVER_REGION = 2 * 1024 * 1024;

/** FIXTURE(vfio_pci_driver_test) in `mode`: the device, its driver initialised, the memcpy and driver regions mapped. */
function withDriver(mode, fn) {
  withMode(mode, edu, (m) => {
    const memcpyRegion = DmaBuffer.alloc(MEMCPY_REGION);
    const driverRegion = DmaBuffer.alloc(DRIVER_REGION);
    const driver = new EduDriver(m.dev);
    // upstream's iova_allocator: the driver region, then the memcpy region, then an unmapped one,
    // all low enough for edu's 28-bit DMA.
    const base = iovaFor(m, DRIVER_REGION);
    const driverIova = base;
    const memcpyIova = base + BigInt(DRIVER_REGION);
    const unmappedIova = memcpyIova + BigInt(DRIVER_REGION); // overlaps neither region
    let mapped = false;
    try {
      m.map(driverRegion, driverIova);
      m.map(memcpyRegion, memcpyIova);
      mapped = true;
      driver.init();
      const size = Math.min(driver.maxMemcpySize * 4, MEMCPY_REGION / 2);
      const src = memcpyRegion.bytes.subarray(0, size);
      const dst = memcpyRegion.bytes.subarray(size, 2 * size);
      fn({ m, driver, size, src, dst, srcIova: memcpyIova, dstIova: memcpyIova + BigInt(size), unmappedIova });
    } finally {
      driver.close();
      if (mapped) {
        m.unmap(memcpyIova, MEMCPY_REGION);
        m.unmap(driverIova, DRIVER_REGION);
      }
      memcpyRegion.free();
      driverRegion.free();
    }
  });
}

/** upstream's ASSERT_NO_MSI: nothing is pending on the driver's vector. */
function assertNoMsi(driver) {
  assert.equal(driver.irqs.drain(driver.msi), 0, 'no MSI');
}

for (const mode of IOMMU_MODES) {
  const name = (t) => `vfio_pci_driver_test.${mode}.${t}`;

  test(name('init_remove'), () => withDriver(mode, ({ driver }) => {
    for (let i = 0; i < 10; i++) {
      driver.remove();
      driver.init();
    }
    assert.ok(driver.irqs && !driver.irqs.closed);
  }));

  test(name('memcpy_success'), () => withDriver(mode, ({ driver, src, dst, srcIova, dstIova, size }) => {
    src.fill(0x78); // 'x'
    dst.fill(0x79); // 'y'
    assert.equal(driver.memcpy(srcIova, dstIova, size), 0);
    assert.equal(Buffer.compare(src, dst), 0);
    assertNoMsi(driver);
  }));

  test(name('memcpy_from_unmapped_iova'), () => withDriver(mode, ({ driver, dstIova, unmappedIova, size }) => {
    driver.memcpy(unmappedIova, dstIova, size); // edu does not report the IOMMU's refusal
    assertNoMsi(driver);
  }));

  test(name('memcpy_to_unmapped_iova'), () => withDriver(mode, ({ driver, srcIova, unmappedIova, size }) => {
    driver.memcpy(srcIova, unmappedIova, size);
    assertNoMsi(driver);
  }));

  test(name('send_msi'), () => withDriver(mode, ({ driver }) => {
    driver.sendMsi();
    assert.equal(driver.irqs.waitSync(driver.msi, { timeoutMs: 5000 }), 1);
  }));

  test(name('mix_and_match'), () => withDriver(mode, ({ driver, src, dst, srcIova, dstIova, unmappedIova, size }) => {
    for (let i = 0; i < 10; i++) {
      src.fill(0x78);
      dst.fill(0x79);
      assert.equal(driver.memcpy(srcIova, dstIova, size), 0);
      assert.equal(Buffer.compare(src, dst), 0);
      driver.memcpy(unmappedIova, dstIova, size);
      driver.sendMsi();
      assert.equal(driver.irqs.waitSync(driver.msi, { timeoutMs: 5000 }), 1);
    }
  }));

  test(name('memcpy_storm'), () => withDriver(mode, ({ driver, srcIova, dstIova }) => {
    const size = Math.min(driver.maxMemcpySize, MEMCPY_REGION / 2);
    const count = Math.min(Math.floor(250 * 2 ** 30 / size), driver.maxMemcpyCount);
    driver.memcpyStart(srcIova, dstIova, size, count);
    assert.equal(driver.memcpyWait(), 0);
    assertNoMsi(driver);
  }));
}
