// Show the kernel's pre-bind gate on every VFIO cdev of this machine (or the paths given):
// open the cdev, ask the kernel what it answers before bind, bind, and read the device info.
//   npm run lab -- node examples/probe.mjs
import { Iommufd, VfioDevice, listPciDevices } from 'vfio';

const paths = process.argv.slice(2);
if (paths.length === 0) {
  for (const d of listPciDevices()) if (d.cdevPath) paths.push(d.cdevPath);
}
if (paths.length === 0) {
  console.error('no VFIO cdevs found: bind a device to vfio-pci first');
  process.exit(1);
}

const iommufd = Iommufd.open();
for (const path of paths) {
  const dev = VfioDevice.open(path);
  console.log(`${path}: state ${dev.state}`);
  console.log(`  before bind the kernel answers ${JSON.stringify(dev.probeBlocked())}`);
  const devId = dev.bind(iommufd);
  const info = dev.info();
  console.log(`  bound: devid ${devId}, state ${dev.state}, ${info.numRegions} regions, ${info.numIrqs} IRQ indexes, reset ${info.canReset}`);
  dev.close();
}
iommufd.close();
