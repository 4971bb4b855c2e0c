// vfio list: every PCI device, its driver, IOMMU group and VFIO cdev, and SR-IOV PF/VF relations.
import { listPciDevices } from '../sysfs';
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
    return 0;
  },
};
