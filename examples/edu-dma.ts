// Drive QEMU's edu device from Node: open its VFIO cdev, bind it to an iommufd, map a buffer
// for DMA, copy RAM -> device -> RAM, and wait for the MSI that signals each transfer.
//
//   npm run example                                        # in the lab
//   node examples/build/edu-dma.js [0000:00:05.0]          # on a host with an edu bound to vfio-pci
import { DmaBuffer, Iommufd, VfioDevice, listPciDevices } from 'vfio';
import { EDU } from './edu';

const EDU_BUFFER = BigInt(EDU.BUFFER);

function step(text: string): void {
  console.log(`- ${text}`);
}

async function main(): Promise<void> {
  const bdf =
    process.argv[2] ??
    listPciDevices().find((d) => d.vendorId === EDU.VENDOR_ID && d.deviceId === EDU.DEVICE_ID && d.cdevPath && !d.noiommu)?.bdf;
  if (!bdf) throw new Error('no edu device with a VFIO cdev found; pass its PCI address');

  using iommufd = Iommufd.open();
  using buf = DmaBuffer.alloc(8192);
  using ioas = iommufd.allocIoas();
  using dev = VfioDevice.open(bdf);
  step(`opened ${dev.path} for ${bdf}: state '${dev.state}'`);

  const devId = dev.bind(iommufd);
  step(`bound to ${iommufd.path}: devid ${devId}, state '${dev.state}'`);
  const hwpt = dev.attach(ioas);
  step(`attached to IOAS ${ioas.id} (kernel HWPT ${hwpt}): state '${dev.state}'`);

  const info = dev.info();
  step(`device: ${info.numRegions} regions, ${info.numIrqs} IRQ indexes; vendor 0x${dev.config.vendorId.toString(16)}, device 0x${dev.config.deviceId.toString(16)}`);

  // edu only reaches the low 256 MiB: let the kernel choose an IOVA inside it.
  ioas.allowIovas([{ start: 0x100000n, last: 0xfffffffn }]);
  const iova = ioas.map(buf);
  step(`mapped a ${buf.size}-byte DmaBuffer at IOVA 0x${iova.toString(16)}`);

  using bar = dev.region(0).map();
  bar.write32(EDU.LIVENESS, 0x12345678);
  step(`BAR0 mmapped (${bar.size} bytes); liveness check: wrote 0x12345678, read 0x${bar.read32(EDU.LIVENESS).toString(16)}`);

  dev.config.enableBusMaster();
  using irqs = dev.enableIrq('msi');
  step('bus mastering on, MSI routed to an eventfd');

  const len = 1024;
  const text = new TextEncoder().encode('Hello from Node.js through VFIO and the IOMMU! '.repeat(22)).subarray(0, len);
  buf.bytes.set(text, 0);

  const dma = async (src: bigint, dst: bigint, toRam: boolean): Promise<number> => {
    const done = irqs.wait(0, { timeoutMs: 5000 });
    bar.write64(EDU.DMA_SRC, src);
    bar.write64(EDU.DMA_DST, dst);
    bar.write64(EDU.DMA_COUNT, BigInt(len));
    bar.write64(EDU.DMA_CMD, BigInt(EDU.CMD_START | EDU.CMD_IRQ | (toRam ? EDU.CMD_TO_RAM : 0)));
    const count = await done;
    bar.write32(EDU.IRQ_ACK, bar.read32(EDU.IRQ_STATUS));
    return count;
  };

  let t = process.hrtime.bigint();
  let n = await dma(iova, EDU_BUFFER, false);
  step(`DMA RAM -> device, ${len} bytes: MSI received (count ${n}) after ${Number(process.hrtime.bigint() - t) / 1000} us`);
  t = process.hrtime.bigint();
  n = await dma(EDU_BUFFER, iova + 4096n, true);
  step(`DMA device -> RAM, ${len} bytes: MSI received (count ${n}) after ${Number(process.hrtime.bigint() - t) / 1000} us`);

  const back = buf.bytes.subarray(4096, 4096 + len);
  const equal = back.every((b, i) => b === text[i]);
  step(`the copy ${equal ? 'matches' : 'DOES NOT match'}: "${new TextDecoder().decode(back.subarray(0, 47))}"`);
  ioas.unmap(iova, buf.size);
  step('unmapped; closing everything');
  if (!equal) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
