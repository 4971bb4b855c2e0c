// QEMU's edu device, as the kernel tests drive it; its register map is examples/edu.ts.
import { EDU } from '../../examples/build/edu.js';
import { openBound } from './lab.mjs';

export { EDU } from '../../examples/build/edu.js';

/** Open edu number `n`, bound to a fresh iommufd and attached to a fresh IOAS. */
export function openEdu(n = 0) {
  return openBound('edu', { n });
}

/** Start one edu DMA of `count` bytes (below 4096: QEMU 7.2 aborts on exactly 4096). */
export function startDma(bar, { src, dst, count, toRam, irq = false }) {
  bar.write64(EDU.DMA_SRC, BigInt(src));
  bar.write64(EDU.DMA_DST, BigInt(dst));
  bar.write64(EDU.DMA_COUNT, BigInt(count));
  bar.write64(EDU.DMA_CMD, BigInt(EDU.CMD_START | (toRam ? EDU.CMD_TO_RAM : 0) | (irq ? EDU.CMD_IRQ : 0)));
}

/**
 * Copy the 4-byte word at `iova` into edu's buffer, then start copying it back to `iova + 4096`
 * without waiting: the caller watches the word arrive.
 */
export function startWordBounce(bar, iova) {
  startDma(bar, { src: iova, dst: EDU.BUFFER, count: 4, toRam: false });
  waitDmaIdle(bar);
  startDma(bar, { src: EDU.BUFFER, dst: iova + 4096n, count: 4, toRam: true });
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
