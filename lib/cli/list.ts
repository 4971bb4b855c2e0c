// vfio list: every PCI device, its driver, IOMMU group and VFIO cdev, and SR-IOV PF/VF relations.
import * as fs from 'node:fs';
import { listPciDevices, type PciDeviceInfo } from '../sysfs';
import { deviceRow, table, UsageError, type Command } from './common';

export const list: Command = {
  name: 'list',
  args: '',
  summary: 'every PCI device, its driver, IOMMU group, VFIO cdev and SR-IOV PF/VF relation',
  options: { json: 'print JSON instead of a table' },
  run(positionals, options) {
    if (positionals.length) throw new UsageError('list takes no arguments');
    const devices = listPciDevices();
    if (options.json) {
      console.log(JSON.stringify(devices, null, 2));
    } else if (devices.length === 0) {
      console.log('no PCI devices (is /sys mounted?)');
    } else {
      console.log(table([['BDF', 'ID', 'CLASS', 'DRIVER', 'GROUP', 'CDEV', 'SR-IOV'], ...devices.map(deviceRow)]));
    }
    for (const note of kernelNotes(devices)) console.error(`vfio: note: ${note}`);
    return 0;
  },
};

/** What the kernel lacks for the cdev path, said once each (on stderr: stdout stays the list). */
function kernelNotes(devices: PciDeviceInfo[]): string[] {
  const notes: string[] = [];
  if (!fs.existsSync('/dev/iommu')) {
    notes.push('no /dev/iommu: this kernel has no iommufd (it needs Linux >= 6.6 with CONFIG_IOMMUFD=y, or ' +
      'modprobe iommufd); without it devices are reachable only through their groups, /dev/vfio/N (VfioGroup)');
  }
  if (devices.some((d) => d.driver === 'vfio-pci' && d.cdevPath === null && !d.noiommu)) {
    notes.push('devices on vfio-pci have no cdev (/dev/vfio/devices/vfioN): the kernel lacks CONFIG_VFIO_DEVICE_CDEV=y; ' +
      'use the group path, /dev/vfio/N (VfioGroup)');
  }
  return notes;
}
