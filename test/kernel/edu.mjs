// QEMU's edu device, as the kernel tests drive it (see docs/specs/edu.rst in QEMU).
import { Iommufd, VfioDevice } from 'vfio';
import { devicesOf } from './lab.mjs';

export const EDU = {
  ID: 0x00,
  LIVENESS: 0x04,
  STATUS: 0x20,
  IRQ_STATUS: 0x24,
  IRQ_RAISE: 0x60,
  IRQ_ACK: 0x64,
  DMA_SRC: 0x80,
  DMA_DST: 0x88,
  DMA_COUNT: 0x90,
  DMA_CMD: 0x98,
  BUFFER: 0x40000,
  CMD_START: 1,
  CMD_TO_RAM: 2,
  CMD_IRQ: 4,
};

/** Open edu number `n`, bound to a fresh iommufd and attached to a fresh IOAS. */
export function openEdu(n = 0) {
  const info = devicesOf('edu')[n];
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(info.bdf);
  dev.bind(iommufd);
  const ioas = iommufd.allocIoas();
  dev.attach(ioas);
  const close = () => {
    dev.close();
    try {
      ioas.unmapAll();
      ioas.destroy();
    } finally {
      iommufd.close();
    }
  };
  return { info, iommufd, dev, ioas, close };
}

/** Start one edu DMA of `count` bytes (below 4096: QEMU 7.2 aborts on exactly 4096). */
export function startDma(bar, { src, dst, count, toRam, irq = false }) {
  bar.write64(EDU.DMA_SRC, BigInt(src));
  bar.write64(EDU.DMA_DST, BigInt(dst));
  bar.write64(EDU.DMA_COUNT, BigInt(count));
  bar.write64(EDU.DMA_CMD, BigInt(EDU.CMD_START | (toRam ? EDU.CMD_TO_RAM : 0) | (irq ? EDU.CMD_IRQ : 0)));
}

/** Poll the DMA command register until the device clears its start bit. */
export function waitDmaIdle(bar, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (bar.read64(EDU.DMA_CMD) & 1n) {
    if (Date.now() > end) throw new Error('edu DMA did not complete');
  }
}

/** Acknowledge every pending edu interrupt. */
export function ackIrq(bar) {
  const pending = bar.read32(EDU.IRQ_STATUS);
  if (pending) bar.write32(EDU.IRQ_ACK, pending);
}
