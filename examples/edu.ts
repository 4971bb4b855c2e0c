// QEMU's edu device (docs/specs/edu.rst in QEMU 7.2): its PCI id, BAR0 register map and DMA
// command bits. The one copy: the example, the kernel tests and both sides of the benchmarks
// (the C++ one through -D flags) read it from here.
export const EDU = Object.freeze({
  VENDOR_ID: 0x1234,
  DEVICE_ID: 0x11e8,
  /** BAR0 registers. */
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
  /** The device's own 4 KiB buffer, a DMA source or destination (not reachable through MMIO). */
  BUFFER: 0x40000,
  /** DMA_CMD bits. */
  CMD_START: 1,
  CMD_TO_RAM: 2,
  CMD_IRQ: 4,
});
